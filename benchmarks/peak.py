"""The machine's measured compute limit: the best of several fp32 GEMMs and an int8 GEMM, per thread count.

Every backbone figure is read against these (achieved GFLOP/s = flops_per_segment x segments/s),
so "fraction of peak" means fraction of what this CPU's best GEMM kernels reach right now,
on the same cores, in the same run. fp32: numpy's BLAS, onnxruntime's MatMul (MLAS) and
torch.mm (MKL) and OpenVINO's MatMul on square and convolution-shaped GEMMs; the best of all is the peak. int8: onnxruntime's MatMulInteger (u8 x s8, MLAS; uses
VNNI/AMX where the CPU has them). bf16 (CPUs with avx512_bf16 / amx_bf16, OpenVINO installed): OpenVINO's MatMul
with the bf16 precision hint, the best of square and conv-shaped. Run alone:

    python -m samplecnn.benchmarks.peak [--threads 1 --threads 2] [--seconds 1]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from .common import report_child, run_child, time_calls

# fp32: square GEMMs, and the shape of the backbones' big convolutions as im2col GEMMs
# (frames x (m * C_in) x C_out: 5^6 block 1 is 15625 x 640 x 128): the best of all is the peak,
# so a convolution can never be credited with more than 100% of what a GEMM reaches here.
FP32_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (16384, 640, 128), (8192, 384, 128))
INT8_SIZE = 4096  # int8 kernels are 4-20x faster; a bigger GEMM keeps each call > 10 ms


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
    graph = helper.make_graph([node], "gemm", [a], [y], initializer=[b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model.SerializeToString()


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
    return 2 * m * k * n / min(times) / 1e9


def _openvino_gemm(shape: tuple[int, int, int], hint: str, threads: int, seconds: float) -> float | None:
    """GFLOP/s of OpenVINO's MatMul with INFERENCE_PRECISION_HINT ``hint`` (f32 | bf16); None without openvino."""
    try:
        import openvino as ov
    except ImportError:
        return None
    import tempfile

    m, k, n = shape
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/gemm.onnx"
        with open(path, "wb") as f:
            f.write(_matmul_model(shape, False))
        compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                                         "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads)})
    request = compiled.create_infer_request()
    a = np.random.default_rng(1).standard_normal((m, k), dtype=np.float32)
    times = time_calls(lambda: request.infer({0: a}, share_inputs=True), min_seconds=seconds, min_calls=3)
    return 2 * m * k * n / min(times) / 1e9


def _numpy_gemm(shape: tuple[int, int, int], seconds: float) -> float:
    m, k, n = shape
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    times = time_calls(lambda: np.matmul(a, b, out=out), min_seconds=seconds, min_calls=3)
    return 2 * m * k * n / min(times) / 1e9


def _torch_gemms(threads: int, seconds: float) -> dict[str, float]:
    """torch.mm (MKL sgemm on x86 wheels), when torch is installed: often the best 2-thread GEMM."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    out = {}
    for m, k, n in FP32_SHAPES[1:3]:
        a, b, c = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        times = time_calls(lambda: torch.mm(a, b, out=c), min_seconds=seconds, min_calls=3)
        out[f"torch.mm fp32 {m}x{k}x{n}"] = round(2 * m * k * n / min(times) / 1e9, 1)
    return out


def child(spec: dict) -> dict:
    threads, seconds = spec["threads"], spec["seconds"]
    detail = {}
    for shape in FP32_SHAPES:
        name = "x".join(map(str, shape))
        detail[f"numpy matmul fp32 {name}"] = round(_numpy_gemm(shape, seconds / 2), 1)
        detail[f"onnxruntime MatMul fp32 {name}"] = round(_ort_gemm(shape, False, threads, seconds / 2), 1)
    detail[f"onnxruntime MatMulInteger u8s8 {INT8_SIZE}^3"] = round(_ort_gemm((INT8_SIZE,) * 3, True, threads, seconds), 1)
    # bf16: OpenVINO's MatMul with the bf16 hint (AVX512-BF16 / AMX-BF16 kernels), square and conv-shaped;
    # its f32 MatMul joins the fp32 candidates, so fp32 rows are never read against a lower peak.
    native_bf16 = any(f in _cpu_flags() for f in ("avx512_bf16", "amx_bf16"))
    for shape in (FP32_SHAPES[1], FP32_SHAPES[2]):
        name = "x".join(map(str, shape))
        f32 = _openvino_gemm(shape, "f32", threads, seconds / 2)
        if f32 is not None:
            detail[f"openvino MatMul fp32 {name}"] = round(f32, 1)
            if native_bf16:
                detail[f"openvino MatMul bf16 {name}"] = round(_openvino_gemm(shape, "bf16", threads, seconds / 2), 1)
    detail.update(_torch_gemms(threads, seconds / 2))  # last: its OpenMP pool would spin under the others
    bf16 = [v for k, v in detail.items() if " bf16 " in k]
    return {
        "threads": threads,
        "fp32_gflops": max(v for k, v in detail.items() if "fp32" in k),
        "bf16_gflops": max(bf16) if bf16 else None,
        "int8_gops": detail[f"onnxruntime MatMulInteger u8s8 {INT8_SIZE}^3"],
        "detail": detail,
    }


def _cpu_flags() -> set[str]:
    from samplecnn.runtime.backends.openvino import cpu_flags

    return cpu_flags()


def measure(threads_list: list[int], seconds: float = 1.0) -> dict[int, dict]:
    """{threads: {fp32_gflops, int8_gops, detail}}, each thread count in its own process."""
    return {t: run_child("samplecnn.benchmarks.peak", {"threads": t, "seconds": seconds}, threads=t) for t in threads_list}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, action="append")
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    if args.child:
        report_child(child(json.loads(args.child)))
        return
    for threads, row in measure(args.threads or sorted({1, os.cpu_count() or 1}), args.seconds).items():
        print(f"{threads} thread(s): fp32 {row['fp32_gflops']} GFLOP/s, bf16 {row['bf16_gflops']} GFLOP/s, int8 {row['int8_gops']} GOP/s  {row['detail']}")


if __name__ == "__main__":
    main()
