"""The machine's measured compute limit per precision and thread count: the best of several GEMMs.

Every backbone figure is read against these (achieved GFLOP/s = flops_per_segment x segments/s),
so "fraction of peak" means the fraction of what this CPU's best GEMM kernels reach on the same
cores at the same moment: ``benchmarks/backbones.py`` measures the peak of each precision in
every round, next to the backbones of that precision (:func:`measure_precision`), and divides
figures of the same round. A GEMM's rate is the median of its timed calls (as the backbones'
figures are); the peak is the best GEMM of its precision:

- fp32: numpy's BLAS, onnxruntime's MatMul (MLAS), torch.mm (MKL) and OpenVINO's MatMul, on
  square and convolution-shaped GEMMs;
- int8: onnxruntime's MatMulInteger (u8 x s8, MLAS; VNNI/AMX where the CPU has them),
  OpenVINO's int8 MatMul (a QDQ MatMul graph, the pattern of our int8 backbones; square and
  conv-shaped) and ``torch._int_mm`` (s8 x s8 -> s32, oneDNN);
- bf16 (CPUs with avx512_bf16 / amx_bf16): OpenVINO's MatMul with the bf16 precision hint and
  torch.mm on bf16 tensors (oneDNN), square and conv-shaped.

Each library's kernels win on some CPU and lose on another: on an AMD EPYC (Zen 4, no AMX)
torch's oneDNN bf16 and int8 GEMMs ran 14% and 30% above OpenVINO's bf16 MatMul and
onnxruntime's MatMulInteger, and without them the backbones' convolutions ran above "the peak".
On an AMD EPYC with AVX2 only (Zen 3: no AVX-512, no native bf16) ``torch._int_mm`` is a
reference loop at 1-2 GOP/s: a first call of 512^3 says so, and it is kept at that size (one
4096^3 call would take two minutes); bf16 is not measured there at all.

Run alone:

    python -m samplecnn.benchmarks.peak [--threads 1 --threads 2] [--seconds 1]
"""

from __future__ import annotations

import argparse
import json
import os
from functools import partial
from pathlib import Path

import numpy as np

from .common import machine_info, report_child, run_child, time_calls

# fp32: square GEMMs, and the shape of the backbones' big convolutions as im2col GEMMs
# (frames x (m * C_in) x C_out: 5^6 block 1 is 15625 x 640 x 128): the best of all is the peak,
# so a convolution can never be credited with more than 100% of what a GEMM reaches here.
FP32_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (16384, 640, 128), (8192, 384, 128))
INT8_SIZE = 4096  # int8 kernels are 4-20x faster; a bigger GEMM keeps each call > 10 ms
PROBE_SIZE = 512  # a first call this size says whether a kernel is fast enough to time at full size
MAX_CALL_SECONDS = 10.0  # real int8 kernels do 4096^3 in 0.05-3 s; a reference loop takes minutes
PRECISIONS = ("fp32", "bf16", "int8")
PEAK_KEY = {"fp32": "fp32_gflops", "bf16": "bf16_gflops", "int8": "int8_gops"}


def _rate(shape: tuple[int, int, int], times: list[float]) -> float:
    """G(FL)OP/s of an (m, k) x (k, n) GEMM at the median of its timed calls."""
    m, k, n = shape
    return 2 * m * k * n / float(np.median(times)) / 1e9


def _matmul_model(shape: tuple[int, int, int], int8: bool):
    from onnx import TensorProto, helper

    m, k, n = shape
    rng = np.random.default_rng(0)
    if int8:
        weight = rng.integers(-127, 128, (k, n), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])
        b = helper.make_tensor("b", TensorProto.INT8, [k, n], weight.tobytes(), raw=True)
    else:
        weight = rng.standard_normal((k, n), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
        b = helper.make_tensor("b", TensorProto.FLOAT, [k, n], weight.tobytes(), raw=True)
    return _model_bytes(helper.make_graph([node], "gemm", [a], [y], initializer=[b]))


def _model_bytes(graph) -> bytes:
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model.SerializeToString()


def _matmul_qdq_model(shape: tuple[int, int, int]):
    """A float (m, k) x (k, n) MatMul between QuantizeLinear / DequantizeLinear pairs (u8 activations,
    s8 per-tensor weights): the pattern of our int8 graphs, which OpenVINO runs as an int8 GEMM.
    The weights stay within 7 bits so the product is exact on every CPU: without VNNI, x86 int8
    kernels (onnxruntime's and OpenVINO's alike) sum u8 x s8 pairs in saturating int16, and full
    8-bit weights overflowed it (6.9 off on outputs of 32 on an AVX2-only EPYC); speed is the same."""
    from onnx import TensorProto, helper

    m, k, n = shape
    weight = np.random.default_rng(0).integers(-63, 64, (k, n), dtype=np.int8)
    scalar = lambda name, kind, value: helper.make_tensor(name, kind, [], [value])  # noqa: E731
    nodes = [helper.make_node("QuantizeLinear", ["a", "a_scale", "a_zero"], ["a_q"]),
             helper.make_node("DequantizeLinear", ["a_q", "a_scale", "a_zero"], ["a_dq"]),
             helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zero"], ["b_dq"]),
             helper.make_node("MatMul", ["a_dq", "b_dq"], ["y"])]
    initializers = [helper.make_tensor("b", TensorProto.INT8, [k, n], weight.tobytes(), raw=True),
                    scalar("a_scale", TensorProto.FLOAT, 0.02), scalar("a_zero", TensorProto.UINT8, 128),
                    scalar("b_scale", TensorProto.FLOAT, 0.01), scalar("b_zero", TensorProto.INT8, 0)]
    return _model_bytes(helper.make_graph(nodes, "gemm_qdq", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], initializer=initializers))


def _ort_gemm(shape: tuple[int, int, int], int8: bool, threads: int, seconds: float) -> float:
    """G(FL)OP/s of one onnxruntime MatMul / MatMulInteger (m, k) x (k, n) (weights constant, as in a conv)."""
    import onnxruntime as ort

    m, k, n = shape
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(_matmul_model(shape, int8), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (m, k), dtype=np.uint8) if int8 else rng.standard_normal((m, k), dtype=np.float32)
    times = time_calls(lambda: session.run(None, {"a": a}), min_seconds=seconds, min_calls=3)
    return _rate(shape, times)


def _openvino_compiled(shape: tuple[int, int, int], hint: str, threads: int):
    """OpenVINO's compiled MatMul with INFERENCE_PRECISION_HINT ``hint`` (f32 | bf16), or its int8
    MatMul (``hint`` "int8": the QDQ graph of :func:`_matmul_qdq_model`, compiled f32 as our int8
    backbones are); None without openvino."""
    try:
        import openvino as ov
    except ImportError:
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/gemm.onnx"
        with open(path, "wb") as f:
            f.write(_matmul_qdq_model(shape) if hint == "int8" else _matmul_model(shape, False))
        return ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32" if hint == "int8" else hint, "PERFORMANCE_HINT": "LATENCY",
                                                     "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads)})


def _openvino_gemm(shape: tuple[int, int, int], hint: str, threads: int, seconds: float) -> float | None:
    """G(FL)OP/s of :func:`_openvino_compiled`; None without openvino."""
    compiled = _openvino_compiled(shape, hint, threads)
    if compiled is None:
        return None
    request = compiled.create_infer_request()
    a = np.random.default_rng(1).standard_normal((shape[0], shape[1]), dtype=np.float32)
    times = time_calls(lambda: request.infer({0: a}, share_inputs=True), min_seconds=seconds, min_calls=3)
    return _rate(shape, times)


def _numpy_gemm(shape: tuple[int, int, int], seconds: float) -> float:
    m, k, n = shape
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    times = time_calls(lambda: np.matmul(a, b, out=out), min_seconds=seconds, min_calls=3)
    return _rate(shape, times)


def _slow_kernel(make_call, shape: tuple[int, int, int]) -> tuple[str, float] | None:
    """(name, rate) of a ``PROBE_SIZE``^3 call when a call at ``shape`` would take longer than
    ``MAX_CALL_SECONDS``: a reference loop, not a GEMM kernel (``torch._int_mm`` on a CPU without
    AVX512-VNNI runs at 1-2 GOP/s: 3^3 calls of 4096^3 took over 15 minutes), never the peak;
    None when the kernel is fast enough to time at ``shape``."""
    call, name = make_call((PROBE_SIZE,) * 3)
    times = time_calls(call, min_seconds=0.0, min_calls=1)
    projected = times[0] * float(np.prod(shape, dtype=np.float64)) / PROBE_SIZE**3
    return (name, round(_rate((PROBE_SIZE,) * 3, times), 1)) if projected > MAX_CALL_SECONDS else None


def _torch_gemms(threads: int, seconds: float, precisions: tuple[str, ...]) -> dict[str, float]:
    """torch's GEMMs, when torch is installed: torch.mm fp32 (MKL sgemm on x86 wheels; often the best
    2-thread fp32 GEMM), torch.mm bf16 and ``torch._int_mm`` int8 (oneDNN: AVX512-BF16 / VNNI / AMX).
    A kernel too slow to time at full size (:func:`_slow_kernel`) is kept at its probe's size."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(threads)

    def make(precision: str, shape: tuple[int, int, int]):
        m, k, n = shape
        if precision == "int8":
            a, b = torch.randint(-128, 128, (m, k), dtype=torch.int8), torch.randint(-128, 128, (k, n), dtype=torch.int8)
            return (lambda: torch._int_mm(a, b)), f"torch._int_mm int8 {m}x{k}x{n}"
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        a, b, c = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype), torch.empty(m, n, dtype=dtype)
        return (lambda: torch.mm(a, b, out=c)), f"torch.mm {precision} {m}x{k}x{n}"

    out = {}
    for precision in precisions:
        for shape in ((INT8_SIZE,) * 3,) if precision == "int8" else FP32_SHAPES[1:3]:
            try:
                slow = _slow_kernel(partial(make, precision), shape)
                if slow is not None:
                    out[slow[0]] = slow[1]
                    break
                call, name = make(precision, shape)
                times = time_calls(call, min_seconds=seconds, min_calls=3)
            except RuntimeError:  # a kernel this torch build lacks on this CPU: not a candidate
                break
            out[name] = round(_rate(shape, times), 1)
    return out


def child(spec: dict) -> dict:
    """The peak of each precision in ``spec["precisions"]`` (default all) with ``spec["threads"]`` threads."""
    threads, seconds = spec["threads"], spec["seconds"]
    wanted = spec.get("precisions") or PRECISIONS
    detail = {}
    if "fp32" in wanted:
        for shape in FP32_SHAPES:
            name = "x".join(map(str, shape))
            detail[f"numpy matmul fp32 {name}"] = round(_numpy_gemm(shape, seconds / 2), 1)
            detail[f"onnxruntime MatMul fp32 {name}"] = round(_ort_gemm(shape, False, threads, seconds / 2), 1)
    if "int8" in wanted:
        detail[f"onnxruntime MatMulInteger u8s8 {INT8_SIZE}^3"] = round(_ort_gemm((INT8_SIZE,) * 3, True, threads, seconds), 1)
        for shape in ((INT8_SIZE,) * 3, FP32_SHAPES[2]):  # square, and 5^6 block 1's im2col shape
            int8 = _openvino_gemm(shape, "int8", threads, seconds / 2)
            if int8 is not None:
                detail[f"openvino MatMul int8 {'x'.join(map(str, shape))}"] = round(int8, 1)
    # bf16: OpenVINO's MatMul with the bf16 hint (AVX512-BF16 / AMX-BF16 kernels), square and conv-shaped;
    # its f32 MatMul joins the fp32 candidates, so fp32 rows are never read against a lower peak.
    native_bf16 = any(f in _cpu_flags() for f in ("avx512_bf16", "amx_bf16"))
    for shape in (FP32_SHAPES[1], FP32_SHAPES[2]):
        name = "x".join(map(str, shape))
        if "fp32" in wanted:
            f32 = _openvino_gemm(shape, "f32", threads, seconds / 2)
            if f32 is not None:
                detail[f"openvino MatMul fp32 {name}"] = round(f32, 1)
        if "bf16" in wanted and native_bf16:
            bf16 = _openvino_gemm(shape, "bf16", threads, seconds / 2)
            if bf16 is not None:
                detail[f"openvino MatMul bf16 {name}"] = round(bf16, 1)
    torch_precisions = tuple(p for p in wanted if p != "bf16" or native_bf16)
    detail.update(_torch_gemms(threads, seconds / 2, torch_precisions))  # last: its OpenMP pool would spin under the others
    return {"threads": threads, **peaks_of(detail), "detail": detail}


def peaks_of(detail: dict[str, float]) -> dict[str, float | None]:
    """{fp32_gflops, bf16_gflops, int8_gops}: the best GEMM of each precision in ``detail`` (None: not measured)."""
    best = {}
    for precision, key in PEAK_KEY.items():
        rates = [v for name, v in detail.items() if f" {precision} " in name or (precision == "int8" and "MatMulInteger" in name)]
        best[key] = max(rates) if rates else None
    return best


def _cpu_flags() -> set[str]:
    from samplecnn.runtime.backends.openvino import cpu_flags

    return cpu_flags()


def measure(threads_list: list[int], seconds: float = 1.0) -> dict[int, dict]:
    """{threads: {fp32_gflops, bf16_gflops, int8_gops, detail}}, each thread count in its own process."""
    return {t: run_child("samplecnn.benchmarks.peak", {"threads": t, "seconds": seconds}, threads=t) for t in threads_list}


def measure_precision(threads: int, precision: str, seconds: float) -> dict:
    """One precision's peak in a fresh process: {"gflops": the best GEMM (None: none ran), "detail": {GEMM: rate}}."""
    got = run_child("samplecnn.benchmarks.peak", {"threads": threads, "seconds": seconds, "precisions": [precision]}, threads=threads)
    return {"gflops": got[PEAK_KEY[precision]], "detail": got["detail"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, action="append")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--out", help="save the peaks, every candidate GEMM and the machine as JSON")
    args = parser.parse_args()
    if args.child:
        report_child(child(json.loads(args.child)))
        return
    machine = machine_info()
    print(f"{machine['cpu']}, {machine['cores']} cores, SIMD: {' '.join(machine['simd'])}")
    rows = measure(args.threads or sorted({1, os.cpu_count() or 1}), args.seconds)
    for threads, row in rows.items():
        print(f"{threads} thread(s): fp32 {row['fp32_gflops']} GFLOP/s, bf16 {row['bf16_gflops']} GFLOP/s, int8 {row['int8_gops']} GOP/s  {row['detail']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine, "seconds": args.seconds, "peaks": {str(t): r for t, r in rows.items()}}, indent=2) + "\n")
        print(f"saved {args.out}")


if __name__ == "__main__":
    main()
