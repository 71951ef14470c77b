"""TensorRT: the pure-Python compatibility rule here; engine builds behind requires_trt/requires_gpu."""

from __future__ import annotations

import pytest

from samplecnn.export.tensorrt import TensorRTError, check_engine_compatible, engine_compatible
from samplecnn.runtime.bundle import EngineSpec

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
    assert (tmp_path / "cache").is_file()
