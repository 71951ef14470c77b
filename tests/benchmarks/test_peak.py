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
