"""TensorRT: what can be checked without it here (the compatibility rule, the int8 QDQ graph and
its agreement gate on onnxruntime, timing-cache staleness); engine builds behind requires_trt/requires_gpu."""

from __future__ import annotations

import inspect

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from samplecnn.export.audio_sets import load_songs, split_holdout, stack_segments
from samplecnn.export.onnx_export import export_backbone
from samplecnn.export.quantize import (
    DEFAULT_MIN_AGREEMENT, Int8Settings, QuantizationError, check_agreement, check_tensorrt_qdq, evaluate_against_fp32, quantize_int8,
)
from samplecnn.export.tensorrt import TensorRTError, build_engine, check_engine_compatible, engine_compatible, read_timing_cache, write_timing_cache
from samplecnn.runtime.bundle import EngineSpec
from samplecnn.trainer.checkpoint import load_checkpoint

SPEC = {"file": "scale_3-9.fp16.plan", "precision": "fp16", "tensorrt_version": "10.9.0.34", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


def test_matching_engine_is_compatible():
    assert engine_compatible(SPEC, "10.9.0.34", "NVIDIA H100 80GB HBM3", "9.0")[0]
    assert engine_compatible(EngineSpec(**SPEC), "10.9.0.34", "NVIDIA H100 80GB HBM3")[0]


def test_other_tensorrt_is_refused_with_rebuild_command():
    ok, reason = engine_compatible(SPEC, "10.10.0.31", "NVIDIA H100 80GB HBM3", "9.0")
    assert not ok and "TensorRT 10.9.0.34, this is TensorRT 10.10.0.31" in reason and "samplecnn export" in reason and "--engine trt" in reason


@pytest.mark.parametrize("gpu,cc", [("NVIDIA A100-SXM4-80GB", "8.0"), ("NVIDIA H100 80GB HBM3", "8.9")])
def test_other_gpu_is_refused(gpu, cc):
    with pytest.raises(TensorRTError, match=r"built for NVIDIA H100 80GB HBM3 \(compute 9.0\).*--engine trt"):
        check_engine_compatible(SPEC, "10.9.0.34", gpu, cc)


@pytest.fixture(scope="module")
def int8_graphs(tiny_checkpoints, data_dir, tmp_path_factory):
    """The fp32 graph of the tiny 3^9 model and its two int8 graphs: onnxruntime's and TensorRT's."""
    root = tmp_path_factory.mktemp("int8")
    fp32 = export_backbone(load_checkpoint(tiny_checkpoints[1]).build_model(), root / "fp32.onnx", graph="conv2d")
    calibration, evaluation = split_holdout(load_songs(data_dir, 22050))
    segments = stack_segments(calibration, 3**10, per_song=4)
    graphs = {name: quantize_int8(fp32, root / f"{name}.onnx", segments, settings=settings)
              for name, settings in (("ort", Int8Settings()), ("trt", Int8Settings.tensorrt()))}
    return fp32, graphs, evaluation


def qdq_zero_points(path) -> dict[str, np.ndarray]:
    graph = onnx.load(str(path)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    return {n.name: constants.get(n.input[2]) if len(n.input) > 2 else None
            for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}


def test_tensorrt_int8_graph_is_signed_symmetric_and_per_channel(int8_graphs):
    _, graphs, _ = int8_graphs
    zero_points = qdq_zero_points(graphs["trt"])
    assert len(zero_points) > 20
    for name, zero in zero_points.items():
        assert zero is not None and zero.dtype == np.int8 and not zero.any(), name
    graph = onnx.load(str(graphs["trt"])).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weight_scales = [constants[n.input[1]] for n in graph.node
                     if n.op_type == "DequantizeLinear" and n.input[0] in constants and constants[n.input[0]].ndim > 1]
    assert weight_scales and all(s.size > 1 for s in weight_scales)  # one scale per output channel
    assert check_tensorrt_qdq(graphs["trt"])["zero_points"] == "int8, all 0"


def test_onnxruntime_int8_graph_is_refused_for_tensorrt(int8_graphs):
    _, graphs, _ = int8_graphs
    assert any(z is None or z.dtype != np.int8 for z in qdq_zero_points(graphs["ort"]).values())  # u8 activations, int32 biases
    with pytest.raises(QuantizationError, match=r"not a TensorRT int8 graph.*Int8Settings.tensorrt\(\)"):
        check_tensorrt_qdq(graphs["ort"])


def test_tensorrt_int8_graph_passes_the_agreement_gate_on_onnxruntime(int8_graphs):
    fp32, graphs, evaluation = int8_graphs
    report = check_agreement(evaluate_against_fp32(fp32, graphs["trt"], evaluation, 3**10), DEFAULT_MIN_AGREEMENT, "trt.onnx")
    assert report["passed"] and report["song_tag_score_max_abs_diff"] < 0.05
    with pytest.raises(QuantizationError, match="below the required 1.01"):
        check_agreement(report, 1.01, "trt.onnx")


def test_stale_or_foreign_timing_cache_is_rebuilt(tmp_path):
    cache = tmp_path / "trt_timing.cache"
    here = ("10.9.0.34", "NVIDIA H100 80GB HBM3", "9.0")
    assert read_timing_cache(cache, *here) == (b"", "no timing cache yet")
    write_timing_cache(cache, b"stand-in timing cache bytes", *here)
    assert read_timing_cache(cache, *here)[0] == b"stand-in timing cache bytes"
    data, why = read_timing_cache(cache, "10.10.0.31", *here[1:])
    assert data == b"" and "10.10.0.31" in why and "rebuilt" in why
    data, why = read_timing_cache(cache, here[0], "NVIDIA A100-SXM4-80GB", "8.0")
    assert data == b"" and "A100" in why
    cache.write_bytes(b"stand-in timing cache bytes, then more")  # rewritten by something else
    assert read_timing_cache(cache, *here)[0] == b""
    (tmp_path / "trt_timing.cache.json").unlink()
    assert "no valid record" in read_timing_cache(cache, *here)[1]


def test_no_version_compatible_option():
    assert "version_compatible" not in inspect.signature(build_engine).parameters


@pytest.mark.requires_trt
@pytest.mark.requires_gpu
def test_int8_engine_builds_from_the_tensorrt_graph(tiny_checkpoints, data_dir, tmp_path):
    from samplecnn.export.bundle_writer import export_bundle
    from samplecnn.runtime.bundle import Bundle
    from samplecnn.runtime.tagger import Tagger

    out = export_bundle(tiny_checkpoints[1:], tmp_path / "int8", precisions=("int8",), engine="trt", calibration=data_dir,
                        trt_options={"timing_cache": tmp_path / "cache"})
    bundle = Bundle.load(out)
    scale = bundle.scales[0]
    assert {e.precision: e.onnx for e in scale.engines}["int8"] == scale.extra_graphs["int8_trt"]
    assert scale.quantization["int8_trt"]["passed"] and scale.quantization["int8_engine"]["passed"]
    with Tagger(bundle, backend="trt", device="cuda", precision="int8") as tagger:
        (song,) = tagger.tag([data_dir / "sorohanro_solo_trumpet_06.ogg"])
    assert song.ok


@pytest.mark.requires_trt
@pytest.mark.requires_gpu
def test_engine_bundle_builds_and_matches_torch(tiny_checkpoints, data_dir, tmp_path):
    from samplecnn.export.bundle_writer import export_bundle
    from samplecnn.runtime.bundle import Bundle

    out = export_bundle(tiny_checkpoints, tmp_path / "trt", precisions=("fp16",), engine="trt", parity_audio=data_dir,
                        trt_options={"timing_cache": tmp_path / "cache"})
    bundle = Bundle.load(out)
    for scale in bundle.scales:
        assert {e.precision for e in scale.engines} == {"fp32", "fp16"}
        assert scale.parity["fp16_engine"]["passed"]
    assert (tmp_path / "cache").is_file() and (tmp_path / "cache.json").is_file()
    # a second build reuses the cache; the engines run in the serving backend from their files alone
    from samplecnn.runtime.backends.tensorrt import TrtBackend

    with TrtBackend.from_file(out / bundle.scales[0].engines[0].file) as engine:
        assert set(engine.output_names) == {o.name for o in bundle.scales[0].outputs}
