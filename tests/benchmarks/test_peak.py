"""The GEMM peak's candidates: a kernel too slow to time at full size is kept at its probe size."""

import time

import numpy as np

from samplecnn.benchmarks import peak


def _numpy_make(shape):
    m, k, n = shape
    a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    return (lambda: a @ b), f"numpy fp32 {m}x{k}x{n}"


def test_slow_kernel_is_kept_at_probe_size_when_a_full_call_would_take_too_long():
    # a call 2^30 times the probe's work (1 GFLOP of probe -> an exaflop) can never be timed
    slow = peak._slow_kernel(_numpy_make, (peak.PROBE_SIZE * 1024,) * 3)
    assert slow is not None
    name, rate = slow
    assert name == f"numpy fp32 {peak.PROBE_SIZE}x{peak.PROBE_SIZE}x{peak.PROBE_SIZE}"
    assert rate > 0


def test_fast_kernel_is_timed_at_full_size():
    assert peak._slow_kernel(_numpy_make, (peak.PROBE_SIZE,) * 3) is None


def test_torch_int8_candidate_finishes_on_any_cpu():
    # on an AVX2-only CPU torch._int_mm is a reference loop: the 4096^3 candidate took minutes per
    # call (the bench's peak child timed out after 15 minutes); now it is measured at the probe size
    started = time.perf_counter()
    got = peak._torch_gemms(1, 0.05, ("int8",))
    assert time.perf_counter() - started < 60
    assert len(got) == 1
    (name, rate), = got.items()
    assert name.startswith("torch._int_mm int8 ") and rate > 0
    assert peak.peaks_of(got)["int8_gops"] == rate


def test_openvino_int8_gemm_runs_an_int8_kernel_and_computes_the_qdq_product():
    import onnx
    from onnx import numpy_helper

    shape = (64, 128, 32)
    compiled = peak._openvino_compiled(shape, "int8", 1)
    kinds = {op.get_rt_info()["layerType"].astype(str): op.get_rt_info()["runtimePrecision"].astype(str)
             for op in compiled.get_runtime_model().get_ops()}
    assert kinds["FullyConnected"] in ("u8", "i8")  # the GEMM itself runs on int8 data, not f32
    model = onnx.load_from_string(peak._matmul_qdq_model(shape))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    a = np.random.default_rng(1).standard_normal(shape[:2], dtype=np.float32)
    a_q = np.clip(np.round(a / init["a_scale"]) + init["a_zero"].astype(np.int32), 0, 255)
    expected = ((a_q - init["a_zero"].astype(np.int32)) * init["a_scale"]) @ (init["b"].astype(np.float32) * init["b_scale"])
    got = compiled.create_infer_request().infer({0: a})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
