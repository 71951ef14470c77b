"""Backends: real onnxruntime sessions; requested backends that cannot load are errors."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.backends import BackendError, open_backend, resolve_backend
from samplecnn.runtime.backends.ort import OrtBackend, cuda_available
from samplecnn.runtime.bundle import Bundle, write_manifest_atomically
from samplecnn.runtime.tagger import Tagger

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return Bundle.load(tiny_bundle)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_ort_backend_returns_every_manifest_output(bundle, batch):
    scale = bundle.scale("3^9")
    with OrtBackend(bundle, scale, threads=1) as backend:
        x = np.random.default_rng(0).standard_normal((batch, scale.segment_samples)).astype(np.float32) * 0.1
        outputs = backend.infer(x)
        assert set(outputs) == {o.name for o in scale.outputs}
        for o in scale.outputs:
            assert outputs[o.name].shape == (batch, o.width) and outputs[o.name].dtype == np.float32
        single = backend.infer(x[:1])
        np.testing.assert_allclose(single["level1"][0], outputs["level1"][0], rtol=1e-5, atol=1e-6)
        assert "1 threads" in backend.description


def test_ort_backend_rejects_wrong_shapes(bundle):
    scale = bundle.scale("2^14")
    with OrtBackend(bundle, scale) as backend:
        with pytest.raises(ValueError, match=r"\(B >= 1, 32768\)"):
            backend.infer(np.zeros((2, 100), np.float32))


def test_auto_says_what_it_chose(bundle):
    assert resolve_backend(bundle, "auto", "cpu", "fp32") == ("ort", "auto: device cpu runs onnxruntime")
    with pytest.raises(BackendError, match="'tpu' is not one of auto, ort, trt"):
        resolve_backend(bundle, "tpu", "cpu", "fp32")
    with pytest.raises(BackendError, match="device 'gpu' is not one of cpu, cuda"):
        resolve_backend(bundle, "auto", "gpu", "fp32")


@pytest.mark.skipif(cuda_available(), reason="onnxruntime-gpu is installed here")
def test_ort_cuda_without_onnxruntime_gpu_is_an_error_not_a_cpu_fallback(bundle):
    with pytest.raises(BackendError, match=r"samplecnn\[gpu\]"):
        open_backend(bundle, bundle.scales[0], "ort", device="cuda")
    with pytest.raises(BackendError, match=r"samplecnn\[gpu\]"):
        Tagger(bundle, device="cuda")


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_trt_without_tensorrt_is_an_error_not_a_fallback(bundle, music_files):
    with pytest.raises(BackendError, match=r"pip install 'samplecnn\[trt\]'"):
        Tagger(bundle, backend="trt", device="cuda")
    result = CliRunner().invoke(app, ["infer", "--bundle", str(bundle.root), "--backend", "trt", "--device", "cuda", str(music_files["sorohanro_solo_trumpet_06"])])
    assert result.exit_code == 2
    assert "samplecnn[trt]" in result.output and "tagged" not in result.output


def test_trt_on_cpu_is_an_error(bundle):
    with pytest.raises(BackendError, match="device 'cuda'"):
        Tagger(bundle, backend="trt", device="cpu")


def _with_engine(tiny_bundle, tmp_path, **engine):
    root = tmp_path / "engine_bundle"
    shutil.copytree(tiny_bundle, root)
    manifest = json.loads((root / "manifest.json").read_text())
    for s in manifest["scales"]:
        plan = f"{s['name'].replace('^', '-')}.fp16.plan"
        (root / plan).write_bytes(b"not a real engine")
        s["engines"] = [{"file": plan, "precision": "fp16", "tensorrt_version": "10.0.0", "gpu": "NVIDIA Imaginary",
                         "compute_capability": "1.0", **engine}]
    write_manifest_atomically(root, manifest)
    return Bundle.load(root)


def test_auto_on_cuda_prefers_trt_only_with_engines_and_tensorrt(tiny_bundle, tmp_path, bundle):
    name, why = resolve_backend(bundle, "auto", "cuda", "fp16")
    assert name == "ort" and "no fp16 TensorRT engines" in why
    with_engines = _with_engine(tiny_bundle, tmp_path)
    name, why = resolve_backend(with_engines, "auto", "cuda", "fp16")
    assert (name == "trt") == HAS_TRT and why.startswith("auto:")


@pytest.mark.requires_trt
@pytest.mark.requires_gpu
def test_trt_refuses_an_engine_built_elsewhere(tiny_bundle, tmp_path):
    from samplecnn.runtime.backends.tensorrt import TrtBackend

    foreign = _with_engine(tiny_bundle, tmp_path)
    with pytest.raises(BackendError, match="samplecnn export --engine trt"):
        TrtBackend(foreign, foreign.scales[0], precision="fp16")


def test_ort_from_file_runs_one_graph_like_the_bundle_backend(bundle):
    from samplecnn.runtime.backends import run_in_batches

    scale = bundle.scale("3^9")
    x = np.random.default_rng(1).standard_normal((5, scale.segment_samples)).astype(np.float32) * 0.1
    with OrtBackend(bundle, scale, threads=1) as served, OrtBackend.from_file(bundle.path(scale.models["fp32"]), threads=1) as single:
        assert single.bundle is None and single.scale.segment_samples == scale.segment_samples
        assert [(o.name, o.level, o.width) for o in single.scale.outputs] == [(o.name, o.level, o.width) for o in scale.outputs]
        expected = served.infer(x)
        for name, value in run_in_batches(single, x, 2).items():  # ragged last batch
            np.testing.assert_array_equal(value, expected[name])
    with pytest.raises(BackendError, match="unknown options \\['providers'\\]"):
        OrtBackend.from_file(bundle.path(scale.models["fp32"]), providers=["CPUExecutionProvider"])


def test_unknown_precision_names_the_valid_ones_not_a_command_that_does_not_exist(bundle):
    with pytest.raises(BackendError) as info:
        Tagger(bundle, backend="ort", precision="int4")
    assert "'int4' is not one of fp32, fp16, int8" in str(info.value) and "export --precision int4" not in str(info.value)
