"""The machine's measured compute limit: a large fp32 GEMM and an int8 GEMM, per thread count.

Every backbone figure is read against these (achieved GFLOP/s = flops_per_segment x segments/s),
so "fraction of peak" means fraction of what this CPU's best GEMM kernels reach right now,
on the same cores, in the same run. fp32: numpy's BLAS and onnxruntime's MatMul (MLAS), the
better of the two is the peak. int8: onnxruntime's MatMulInteger (u8 x s8, MLAS; uses
VNNI/AMX where the CPU has them). Run alone:

    python -m samplecnn.benchmarks.peak [--threads 1 --threads 2] [--seconds 1]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from .common import report_child, run_child, time_calls

FP32_SIZE = 2048  # 17.2 GFLOP per call: large enough that packing and threading overheads vanish
INT8_SIZE = 4096  # int8 kernels are 4-20x faster; a bigger GEMM keeps each call > 10 ms


def _matmul_model(size: int, int8: bool):
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    if int8:
        weight = rng.integers(-127, 128, (size, size), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])
        b = helper.make_tensor("b", TensorProto.INT8, [size, size], weight.tobytes(), raw=True)
    else:
        weight = rng.standard_normal((size, size), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])
        b = helper.make_tensor("b", TensorProto.FLOAT, [size, size], weight.tobytes(), raw=True)
    graph = helper.make_graph([node], "gemm", [a], [y], initializer=[b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model.SerializeToString()


def _ort_gemm(size: int, int8: bool, threads: int, seconds: float) -> float:
    """G(FL)OP/s of one onnxruntime MatMul / MatMulInteger of size^3 (weights constant, as in a conv)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(_matmul_model(size, int8), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (size, size), dtype=np.uint8) if int8 else rng.standard_normal((size, size), dtype=np.float32)
    times = time_calls(lambda: session.run(None, {"a": a}), min_seconds=seconds, min_calls=3)
    return 2 * size**3 / min(times) / 1e9


def _numpy_gemm(size: int, seconds: float) -> float:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    times = time_calls(lambda: np.matmul(a, b, out=out), min_seconds=seconds, min_calls=3)
    return 2 * size**3 / min(times) / 1e9


def child(spec: dict) -> dict:
    threads, seconds = spec["threads"], spec["seconds"]
    numpy_fp32 = _numpy_gemm(FP32_SIZE, seconds)
    ort_fp32 = _ort_gemm(FP32_SIZE, False, threads, seconds)
    ort_int8 = _ort_gemm(INT8_SIZE, True, threads, seconds)
    return {
        "threads": threads,
        "fp32_gflops": round(max(numpy_fp32, ort_fp32), 1),
        "int8_gops": round(ort_int8, 1),
        "detail": {f"numpy matmul fp32 {FP32_SIZE}^3": round(numpy_fp32, 1), f"onnxruntime MatMul fp32 {FP32_SIZE}^3": round(ort_fp32, 1),
                   f"onnxruntime MatMulInteger u8s8 {INT8_SIZE}^3": round(ort_int8, 1)},
    }


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
        print(f"{threads} thread(s): fp32 {row['fp32_gflops']} GFLOP/s, int8 {row['int8_gops']} GOP/s  {row['detail']}")


if __name__ == "__main__":
    main()
