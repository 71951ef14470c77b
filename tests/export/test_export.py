"""Export: real checkpoints (tests/conftest.py), real clips (tests/data), real onnxruntime sessions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from samplecnn.export.audio_sets import AudioSourceError, load_songs, stack_segments
from samplecnn.export.bundle_writer import export_bundle
from samplecnn.export.onnx_export import export_backbone
from samplecnn.export.parity import ParityError, check_parity
from samplecnn.export.quantize import Int8Settings, QuantizationError, stem_convs
from samplecnn.runtime.backends import run_in_batches
from samplecnn.runtime.backends.ort import OrtBackend
from samplecnn.runtime.bundle import Bundle, BundleError
from samplecnn.trainer.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def model_3_9(tiny_checkpoints):
    return load_checkpoint(tiny_checkpoints[1]).build_model()


@pytest.fixture(scope="module")
def real_segments(data_dir):
    songs = load_songs(data_dir, 22050)
    return stack_segments(songs, 3**10, per_song=3)  # 4 songs x up to 3 segments of 3^9


@pytest.fixture(scope="module")
def graphs(model_3_9, tmp_path_factory):
    root = tmp_path_factory.mktemp("graphs")
    return {g: export_backbone(model_3_9, root / f"{g}.onnx", graph=g) for g in ("conv1d", "conv2d")}


@pytest.mark.parametrize("graph", ["conv1d", "conv2d"])
def test_parity_on_real_clips_at_two_batch_sizes(model_3_9, graphs, real_segments, graph):
    report = check_parity(model_3_9, graphs[graph], real_segments, graph=graph, batch_sizes=(1, 5))
    assert report["passed"] and report["batch_sizes"] == [1, 5] and report["segments"] == len(real_segments) >= 10
    assert set(report["outputs"]) == {"level1", "level2", "level3", "logits"}
    for row in report["outputs"].values():
        assert row["max_abs_diff"] <= row["tolerance"] and row["passed"]
    json.dumps(report)  # goes into the manifest as is


def test_conv2d_graph_equals_conv1d_graph(graphs, real_segments):
    kinds = {g: {n.op_type for n in onnx.load(str(p)).graph.node} for g, p in graphs.items()}
    assert "Conv" in kinds["conv2d"] and "MaxPool" in kinds["conv2d"]
    outs = {}
    for g, path in graphs.items():
        with OrtBackend.from_file(path, threads=1) as backend:  # the serving runner, from one graph file
            outs[g] = run_in_batches(backend, real_segments, 4)
    for name in outs["conv1d"]:
        np.testing.assert_allclose(outs["conv2d"][name], outs["conv1d"][name], rtol=1e-4, atol=1e-6)
    weights = {g: [t for t in onnx.load(str(p)).graph.initializer if len(t.dims) == 4] for g, p in graphs.items()}
    assert not weights["conv1d"] and weights["conv2d"], "conv2d graph holds (O, I, 1, k) kernels, conv1d none"


def test_perturbed_graph_fails_parity_naming_the_output(model_3_9, graphs, real_segments, tmp_path):
    graph = onnx.load(str(graphs["conv2d"]))
    n_tags = model_3_9.config.n_tags
    for tensor in graph.graph.initializer:  # the classifier's weight: the only (n_tags, C) or (C, n_tags) matrix
        if len(tensor.dims) == 2 and n_tags in tensor.dims:
            value = numpy_helper.to_array(tensor).copy()
            value += 0.5  # every tag moves by 0.5 * sum(level1) != 0
            tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
            break
    else:
        pytest.fail("classifier weight not found in the graph")
    bad = tmp_path / "perturbed.onnx"
    onnx.save(graph, str(bad))
    with pytest.raises(ParityError) as info:
        check_parity(model_3_9, bad, real_segments, graph="conv2d")
    assert info.value.failures == ["logits"]
    assert "logits: max |diff|" in str(info.value) and "perturbed.onnx" in str(info.value) and "level1:" not in str(info.value)
    assert info.value.report["outputs"]["level1"]["passed"]


def test_bundle_manifest_holds_the_contract(tiny_checkpoints, data_dir, tmp_path):
    out = export_bundle(tiny_checkpoints, tmp_path / "b", precisions=("fp16",), parity_audio=data_dir, training_data="tests")
    bundle = Bundle.load(out)
    assert bundle.precisions == ("fp32", "fp16")
    manifest = bundle.manifest
    assert "MODEL_CARD.md" in manifest["files"] and (out / "MODEL_CARD.md").is_file()
    for scale in manifest["scales"]:
        assert scale["graph"] == {"fp32": "conv2d", "fp16": "conv2d"}
        assert scale["parity"]["fp32"]["passed"] and scale["parity"]["fp16"]["passed"]
        assert scale["parity"]["fp32"]["songs"] and scale["parity"]["fp32"]["audio"] == str(data_dir)
    prov = manifest["provenance"]
    assert prov["training_data"] == "tests" and prov["samplecnn_version"]
    assert {c["sha256"] for c in prov["checkpoints"].values()} and set(prov["metrics"]) == {"2^14", "3^9"}
    assert not list(tmp_path.glob(".b.staging.*"))


def test_int8_report_and_refusal(tiny_checkpoints, data_dir, tmp_path):
    out = export_bundle(tiny_checkpoints[1:], tmp_path / "int8", precisions=("int8",), calibration=data_dir)
    q = Bundle.load(out).scales[0].quantization["int8"]
    assert q["passed"] and q["top_k"] == 5 and 0.0 <= q["top_k_agreement_mean"] <= 1.0
    assert not set(q["evaluation_songs"]) & set(q["calibration_songs"])
    assert set(q["outputs"]) == {"level1", "level2", "level3", "logits"} and q["song_tag_score_max_abs_diff"] < 0.05
    assert q["settings"]["per_channel"] and q["settings"]["quant_format"] == "QDQ" and q["settings"]["stem_fp32"]
    # By default the waveform stem (one input channel) stays float; without stem_fp32 every conv reads int8 weights.
    import onnx

    def float_convs(bundle_root):
        scale = Bundle.load(bundle_root).scales[0]
        graph = onnx.load(str(bundle_root / scale.models["int8"])).graph
        dequantized = {o for node in graph.node if node.op_type == "DequantizeLinear" for o in node.output}
        convs = [node for node in graph.node if node.op_type == "Conv"]
        assert len(convs) > 1
        return [node.name for node in convs if node.input[1] not in dequantized], stem_convs(bundle_root / scale.models["fp32"])

    floats, stems = float_convs(out)
    assert floats == stems and len(stems) == 1
    all_int8 = export_bundle(tiny_checkpoints[1:], tmp_path / "int8-all", precisions=("int8",), calibration=data_dir,
                             int8_settings=Int8Settings(stem_fp32=False))
    assert float_convs(all_int8)[0] == []
    assert not Bundle.load(all_int8).scales[0].quantization["int8"]["settings"]["stem_fp32"]
    with pytest.raises(QuantizationError, match=r"below the required 1.01; no bundle was written") as info:
        export_bundle(tiny_checkpoints[1:], tmp_path / "refused", precisions=("int8",), calibration=data_dir, min_agreement=1.01)
    assert info.value.report["top_k_agreement_mean"] == q["top_k_agreement_mean"]
    assert not (tmp_path / "refused").exists() and not list(tmp_path.glob(".refused.*"))


def test_bad_audio_sources(tiny_checkpoints, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioSourceError, match="holds no audio files"):
        export_bundle(tiny_checkpoints, tmp_path / "x", precisions=("int8",), calibration=tmp_path / "empty")
    with pytest.raises(Exception, match="parity checks need real audio"):
        export_bundle(tiny_checkpoints, tmp_path / "x")


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "bundle")


def test_tampered_bundle_is_refused(bundle_copy):
    target = bundle_copy / Bundle.load(bundle_copy).scales[0].models["fp32"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{target.name} does not match its sha256.*Re-export it with `samplecnn export`"):
        Bundle.load(bundle_copy)


def test_incomplete_bundle_is_refused(bundle_copy):
    missing = Bundle.load(bundle_copy).scales[1].models["fp32"]
    (bundle_copy / missing).unlink()
    with pytest.raises(BundleError, match=rf"missing file {missing}"):
        Bundle.load(bundle_copy)


@pytest.mark.parametrize("version,advice", [(99, "upgrade samplecnn"), (0, "re-export the bundle")])
def test_unknown_schema_is_refused(bundle_copy, version, advice):
    path = bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = version
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=rf"schema_version {version}.*{advice}"):
        Bundle.load(bundle_copy)


def test_tensorrt_helpers_do_not_import_torch():
    code = "import sys, samplecnn.export.tensorrt; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
