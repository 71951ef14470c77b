"""benchmarks/op_profile.py: per-node profiles from onnxruntime and from OpenVINO, on the shipped
default model (trained weights, fp32 and int8 graphs) and real clips. No timing is asserted."""

from __future__ import annotations

import pytest

from samplecnn.benchmarks.op_profile import calls_from_running_averages, ceiling, format_profile, layer_flops, profile
from samplecnn.runtime.bundle import Bundle
from samplecnn.runtime.tagger import DEFAULT_MODEL

SCALE = "3^9"


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPLECNN_OPENVINO_CACHE", str(tmp_path / "ov-cache"))


def _check(result: dict, engine: str, precision: str) -> list[dict]:
    spec = Bundle.load(DEFAULT_MODEL).scale(SCALE)
    layers = layer_flops(spec.config)
    convs = [n for n in result["nodes"] if "layer" in n]
    assert result["engine"] == engine and result["precision"] == precision
    assert [n["layer"] for n in convs] == [name for name, _ in layers]  # every conv matched to its layer, in order
    assert all(n["gflops"] > 0 and n["ms_per_segment"] >= 0 for n in convs)
    assert abs(sum(result["by_op"].values()) - 1) < 0.01
    assert f"({engine})" in format_profile(result)
    return convs


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnxruntime_profile_matches_every_conv_to_its_layer(precision):
    _check(profile(str(DEFAULT_MODEL), SCALE, precision, batch=2, threads=1, runs=1), "ort", precision)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_profile_names_each_layers_kernel(precision):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'samplecnn[openvino]')")
    convs = _check(profile(str(DEFAULT_MODEL), SCALE, precision, batch=2, threads=1, runs=1, engine="openvino"), "openvino", precision)
    kernels = [n["kernel"].lower() for n in convs]
    if precision == "fp32":
        assert all(k.endswith("f32") for k in kernels), kernels  # the f32 hint: no bf16 behind the user's back
    else:  # the int8 graph keeps its stem in float (the exactness choice of export.quantize); the rest run int8 kernels
        assert kernels[0].endswith("f32") and all(k.endswith("i8") for k in kernels[1:]), kernels


def test_openvino_running_averages_become_each_calls_own_time():
    # OpenVINO's CPU counters hold a node's mean over every call so far; a slow first call
    # (26 ms) then 0.5 ms calls read as 26, 13.25, 9, 6.875 ... and must come back as the calls.
    calls = [26.0, 0.5, 0.5, 0.5]
    averages = [sum(calls[:n]) / n for n in range(1, len(calls) + 1)]
    assert calls_from_running_averages(averages) == pytest.approx(calls)
    assert calls_from_running_averages([3.0, 1.0]) == [3.0, 0.0]  # whole-microsecond rounding: clipped at 0, never negative


def test_ceiling_puts_block_convolutions_at_the_peak_and_keeps_the_rest():
    # 6 ms of kernels: a 1-channel stem (1 ms), block 1 at half the peak (4 ms for 2 GFLOP at 1,000 GFLOP/s), a pool (1 ms)
    nodes = [{"op": "Conv", "layer": "stem conv (1 -> 128 ch, stride 3)", "gflop_per_segment": 0.01, "ms_per_segment": 1.0},
             {"op": "Conv", "layer": "block 1 conv (128 -> 128 ch, 19683 frames)", "gflop_per_segment": 2.0, "ms_per_segment": 4.0},
             {"op": "MaxPool", "ms_per_segment": 1.0}]
    got = ceiling({"kernel_ms_per_segment": 6.0, "nodes": nodes}, 1000.0)
    assert got["fraction_of_peak"] == pytest.approx(2.01 / 6, abs=1e-3)
    assert got["outside_block_convs_share"] == pytest.approx(2 / 6, abs=1e-3)
    assert got["ceiling_fraction_of_peak"] == pytest.approx(2.01 / (2 + 2), abs=1e-3)  # block 1 at the peak: 2 ms; stem and pool stay
    assert got["block_convs_above_peak"] == 0
    # against a peak block 1 already outran (400 GFLOP/s), block 1 keeps its 4 ms: the ceiling is what was measured
    low = ceiling({"kernel_ms_per_segment": 6.0, "nodes": nodes}, 400.0)
    assert low["block_convs_above_peak"] == 1 and low["ceiling_fraction_of_peak"] == low["fraction_of_peak"]
    with pytest.raises(ValueError, match="not matched"):
        ceiling({"kernel_ms_per_segment": 6.0, "nodes": [nodes[2]]}, 1000.0)


def test_ceiling_of_a_real_profile_is_at_least_what_it_measured():
    result = profile(str(DEFAULT_MODEL), SCALE, "fp32", batch=2, threads=1, runs=1)
    peak = max(n["gflops"] for n in result["nodes"] if "layer" in n)  # a peak no block convolution exceeds
    result["ceiling"] = got = ceiling(result, peak)
    assert 0 < got["fraction_of_peak"] <= got["ceiling_fraction_of_peak"] <= 1
    assert 0 < got["outside_block_convs_share"] < 1
    assert "reaches at most" in format_profile(result)
