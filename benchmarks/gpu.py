"""GPU backbone throughput: torch CUDA eager fp32 and torch.compile fp16 (the references),
onnxruntime's CUDA provider when onnxruntime-gpu is installed, TensorRT fp16 when tensorrt is.

    python -m samplecnn.benchmarks.gpu OUT_DIR [--scales 3^9 ...] [--width 1.0] [--batches 1 16 64] [--budget-s 270]

Writes OUT_DIR/gpu.json and prints a table. Random weights (speed does not depend on them) and
random-normal input. Finishes within ``--budget-s`` (default 270 s, under the 5 minutes the
issue allows): configurations that would start after the budget is spent are recorded as
skipped, never silently dropped. Exits with status 2 and a message when there is no CUDA GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import PRESET_SCALES, machine_info, random_model, write_json


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def cuda_seconds(call, sync, min_seconds: float, warmup: int = 3) -> float:
    """Best seconds per call after ``warmup`` calls, timed until ``min_seconds`` (at least 5 calls)."""
    for _ in range(warmup):
        call()
    sync()
    times: list[float] = []
    while len(times) < 5 or sum(times) < min_seconds:
        t0 = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write gpu.json into")
    parser.add_argument("--scales", nargs="+", default=list(PRESET_SCALES))
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=0.5, help="timed seconds per configuration")
    parser.add_argument("--budget-s", type=float, default=270.0, help="stop starting new configurations after this many seconds")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        fail("torch is not installed: pip install 'samplecnn[train]' with a CUDA build of torch")
    if not torch.cuda.is_available():
        fail(f"no CUDA GPU visible to torch {torch.__version__} (torch.cuda.is_available() is False); run this on a GPU machine")
    started = time.perf_counter()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    result = {"machine": machine_info(), "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "width": args.width,
              "weights": "random", "rows": [], "skipped": [], "notes": []}
    has_ort_cuda = importlib.util.find_spec("onnxruntime") is not None and "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    if not has_ort_cuda:
        result["notes"].append("onnxruntime CUDA provider: not available (pip install 'samplecnn[gpu]')")
    if not has_trt:
        result["notes"].append("TensorRT: not available (pip install 'samplecnn[trt]')")
    tmp = Path(tempfile.mkdtemp(prefix="samplecnn-gpu-bench-"))

    def record(engine: str, scale: str, batch: int, seconds_per_call: float, flops: int) -> None:
        row = {"engine": engine, "scale": scale, "batch": batch, "ms_per_segment": round(seconds_per_call / batch * 1e3, 4),
               "segments_per_s": round(batch / seconds_per_call, 1), "tflops": round(flops * batch / seconds_per_call / 1e12, 2)}
        result["rows"].append(row)
        print(f"{engine:<26} {scale:>5} b{batch:<3} {row['ms_per_segment']:>9.3f} ms/seg {row['segments_per_s']:>9.1f} seg/s {row['tflops']:>7.2f} TFLOP/s", flush=True)

    def over_budget(what: str) -> bool:
        if time.perf_counter() - started > args.budget_s:
            result["skipped"].append(f"{what}: time budget of {args.budget_s:.0f} s spent")
            return True
        return False

    for scale in args.scales:
        model = random_model(scale, args.width)
        config = model.config
        flops = config.flops_per_segment()
        eager = model.to(device).eval()
        half = torch.compile(random_model(scale, args.width).to(device).half().eval(), dynamic=False)
        onnx_path = plan = None
        for batch in args.batches:
            x = torch.randn(batch, config.segment_samples, device=device)
            if over_budget(f"{scale} batch {batch}"):
                continue
            with torch.inference_mode():
                record("torch cuda eager fp32", scale, batch, cuda_seconds(lambda: eager(x), torch.cuda.synchronize, args.seconds), flops)
                xh = x.half()
                record("torch.compile fp16", scale, batch, cuda_seconds(lambda: half(xh), torch.cuda.synchronize, args.seconds), flops)
            host = x.cpu().numpy()
            if (has_ort_cuda or has_trt) and onnx_path is None:
                from samplecnn.export.onnx_export import export_backbone

                onnx_path = export_backbone(model.cpu(), tmp / f"{config.name.replace('^', '-')}.onnx", graph="conv1d")
                model.to(device)
            if has_ort_cuda:
                import onnxruntime as ort

                session = ort.InferenceSession(str(onnx_path), providers=["CUDAExecutionProvider"])
                record("onnxruntime CUDA fp32", scale, batch, cuda_seconds(lambda: session.run(None, {"waveform": host}), lambda: None, args.seconds), flops)
            if has_trt and batch <= 64:
                from samplecnn.export.quantize import convert_fp16
                from samplecnn.export.tensorrt import build_engine
                from samplecnn.runtime.backends import run_in_batches
                from samplecnn.runtime.backends.tensorrt import TrtBackend

                if plan is None:
                    fp16 = convert_fp16(onnx_path, tmp / f"{config.name.replace('^', '-')}.fp16.onnx")
                    plan = tmp / f"{config.name.replace('^', '-')}.fp16.plan"
                    build_engine(fp16, plan, precision="fp16", input_name="waveform", segment_samples=config.segment_samples)
                # the serving backend: includes host<->device copies of each batch.
                many = np.repeat(host, 8, axis=0)
                with TrtBackend.from_file(plan) as engine:
                    seconds = cuda_seconds(lambda: run_in_batches(engine, many, batch), lambda: None, args.seconds, warmup=1) / 8
                record("TensorRT fp16 (host I/O)", scale, batch, seconds, flops)
    result["seconds"] = round(time.perf_counter() - started, 1)
    out = write_json(Path(args.out) / "gpu.json", result)
    for note in result["notes"] + result["skipped"]:
        print(note)
    print(f"saved {out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
