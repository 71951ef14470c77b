"""Backbone throughput per engine, batch size and thread count, against the measured GEMM peak.

Engines, each in its own process (``common.run_child``): torch eager fp32 (the unfolded
SampleCNN from the checkpoint, ``torch.inference_mode``: what a user would otherwise run),
onnxruntime fp32 with the Conv1d graph, onnxruntime fp32 with the 2-D lowered graph (the
bundle default), onnxruntime int8 (the bundle's QDQ graph) -- the three ORT engines through
the runtime's own ``OrtBackend``, as ``samplecnn infer`` runs them. TensorRT runs on GPUs
only (``benchmarks/gpu.py``). Inputs are real audio segments (mer4q test songs). Weights are
random (BatchNorm statistics randomised): speed does not depend on the values.

The grid: the main scale (3^9) at batch 1/4/16/64 with 1 thread and all threads; the other
presets at batch 1/16 with all threads; optionally width 0.25 (the default model's width).

    python -m samplecnn.benchmarks.backbones [--quick] [--widths 1 --widths 0.25] [--json ...] [--plot ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np

from .common import (DEFAULT_WORKDIR, PRESET_SCALES, RESULTS, cached_bundle, machine_info, peak_rss_mb, random_checkpoints, real_segments,
                     report_child, run_child, time_calls, write_json)
from .peak import measure as measure_peak

ENGINES = ("torch eager fp32", "ort fp32 conv1d", "ort fp32 conv2d", "ort int8", "openvino fp32", "openvino bf16", "openvino int8")
ENGINE_PRECISION = {"torch eager fp32": "fp32", "ort fp32 conv1d": "fp32", "ort fp32 conv2d": "fp32", "ort int8": "int8",
                    "openvino fp32": "fp32", "openvino bf16": "bf16", "openvino int8": "int8"}
PEAK_KEY = {"fp32": "fp32_gflops", "bf16": "bf16_gflops", "int8": "int8_gops"}  # each row against the peak of its precision


def available_engines() -> tuple[str, ...]:
    """ENGINES this machine runs: OpenVINO rows need openvino, bf16 also a native-bf16 CPU."""
    from samplecnn.runtime.backends.openvino import NATIVE_BF16_FLAGS, cpu_flags

    has_ov = importlib.util.find_spec("openvino") is not None
    native_bf16 = any(f in cpu_flags() for f in NATIVE_BF16_FLAGS)
    return tuple(e for e in ENGINES if not e.startswith("openvino") or (has_ov and (e != "openvino bf16" or native_bf16)))
MAIN_SCALE = "3^9"
MAIN_BATCHES = (1, 4, 16, 64)
OTHER_BATCHES = (1, 16)
MAX_BATCH = max(MAIN_BATCHES)


# --- child: one engine, one thread count ---------------------------------------------------------


def _torch_runner(case: dict, threads: int):
    import torch

    from samplecnn.trainer.checkpoint import load_checkpoint

    model = load_checkpoint(case["checkpoint"]).build_model()

    def run(batch: np.ndarray) -> None:
        with torch.inference_mode():
            model(torch.from_numpy(batch))

    return run


def _ort_runner(case: dict, threads: int):
    """The runtime's own backend (onnxruntime or OpenVINO, ``case["backend"]``) for one scale."""
    from samplecnn.runtime.backends import open_backend
    from samplecnn.runtime.bundle import Bundle

    bundle = Bundle.load(case["bundle"])
    backend = open_backend(bundle, bundle.scale(case["scale"]), case.get("backend", "ort"), precision=case["precision"], threads=threads)
    return backend.infer


def child(spec: dict) -> dict:
    """Time every case of ``spec`` with one engine in this process; rows of ms/segment."""
    engine, threads = spec["engine"], spec["threads"]
    if engine.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    rows = []
    for case in spec["cases"]:
        runner = _torch_runner(case, threads) if engine.startswith("torch") else _ort_runner(case, threads)
        segments = np.load(case["segments"], allow_pickle=False)
        for batch in case["batches"]:
            data = np.ascontiguousarray(segments[:batch])
            times = time_calls(lambda: runner(data), min_seconds=spec["min_seconds"], min_calls=spec["min_calls"])
            best, median = min(times) / batch, float(np.median(times)) / batch
            rows.append({"engine": engine, "scale": case["scale"], "width": case["width"], "threads": threads, "batch": batch,
                         "ms_per_segment": round(best * 1e3, 3), "ms_per_segment_median": round(median * 1e3, 3),
                         "segments_per_s": round(1 / best, 2), "timed_calls": len(times)})
            print(f"  {engine:<17} {case['scale']:>5} w{case['width']:<5g} {threads}t b{batch:<3} {best * 1e3:8.2f} ms/seg", flush=True)
    return {"rows": rows, "peak_rss_mb": round(peak_rss_mb(), 1)}


# --- parent ------------------------------------------------------------------------------------


def plan_cases(widths: list[float], all_threads: int, scales=PRESET_SCALES, main_batches=MAIN_BATCHES,
               other_batches=OTHER_BATCHES) -> list[tuple[str, float, int, tuple[int, ...]]]:
    """(scale, width, threads, batches) of the grid described in the module docstring."""
    cases = []
    for width in widths:
        full = width == max(widths)
        for scale in scales:
            if scale == MAIN_SCALE and full:
                cases += [(scale, width, t, main_batches) for t in sorted({1, all_threads})]
            else:
                cases.append((scale, width, all_threads, other_batches))
    return cases


def prepare(workdir: Path, widths: list[float], scales=PRESET_SCALES, log=print) -> dict:
    """Checkpoints, bundles (conv2d fp32 + int8, conv1d fp32) and real segments per scale."""
    models = {}
    for width in widths:
        checkpoints = random_checkpoints(workdir, scales, width)
        lowered = cached_bundle(workdir, f"random_w{width:g}", checkpoints, precisions=("fp32", "int8"), log=log)
        conv1d = cached_bundle(workdir, f"random_w{width:g}_conv1d", checkpoints, precisions=("fp32",), lowering=False, log=log)
        models[width] = {"checkpoints": dict(zip(scales, map(str, checkpoints))), "bundle": str(lowered), "bundle_conv1d": str(conv1d)}
    segment_files = {}
    from samplecnn.trainer.model import preset

    for scale in scales:
        path = workdir / "segments" / f"{scale.replace('^', '-')}_{MAX_BATCH}.npy"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, real_segments(preset(scale, n_tags=1).segment_samples, MAX_BATCH), allow_pickle=False)
        segment_files[scale] = str(path)
    return {"models": models, "segments": segment_files}


def engine_case(engine: str, scale: str, width: float, batches, prepared: dict) -> dict:
    model = prepared["models"][width]
    case = {"scale": scale, "width": width, "batches": list(batches), "segments": prepared["segments"][scale]}
    if engine.startswith("torch"):
        case["checkpoint"] = model["checkpoints"][scale]
    else:
        case["bundle"] = model["bundle_conv1d"] if "conv1d" in engine else model["bundle"]
        case["precision"] = ENGINE_PRECISION[engine]
        case["backend"] = "openvino" if engine.startswith("openvino") else "ort"
    return case


def run(*, widths: list[float], min_seconds: float, min_calls: int, workdir: Path = DEFAULT_WORKDIR, scales=PRESET_SCALES,
        main_batches=MAIN_BATCHES, other_batches=OTHER_BATCHES, log=print) -> dict:
    """Peak GEMM + every engine over the grid; returns {machine, peak, rows, ...} with derived figures."""
    from samplecnn.trainer.model import preset

    all_threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    prepared = prepare(workdir, widths, scales, log=log)
    log(f"backbones: models ready in {time.perf_counter() - t0:.0f} s; measuring peak GEMM")
    threads_used = sorted({1, all_threads})
    peak = measure_peak(threads_used, seconds=max(0.3, min_seconds / 2))
    cases = plan_cases(widths, all_threads, scales, main_batches, other_batches)
    rows, child_rss = [], {}
    for engine in available_engines():
        for threads in threads_used:
            mine = [engine_case(engine, s, w, b, prepared) for s, w, t, b in cases if t == threads]
            if not mine:
                continue
            result = run_child("samplecnn.benchmarks.backbones", {"engine": engine, "threads": threads, "cases": mine,
                                                                   "min_seconds": min_seconds, "min_calls": min_calls}, threads=threads)
            rows += result["rows"]
            child_rss[f"{engine}, {threads} thread(s)"] = result["peak_rss_mb"]
    torch_ms = {(r["scale"], r["width"], r["threads"], r["batch"]): r["ms_per_segment"] for r in rows if r["engine"].startswith("torch")}
    for r in rows:
        flops = preset(r["scale"], n_tags=50, width=r["width"]).flops_per_segment()
        r["gflop_per_segment"] = round(flops / 1e9, 3)
        r["achieved_gflops"] = round(flops * r["segments_per_s"] / 1e9, 1)
        limit = peak[r["threads"]][PEAK_KEY[ENGINE_PRECISION[r["engine"]]]]
        r["peak_precision"] = ENGINE_PRECISION[r["engine"]]
        r["fraction_of_peak"] = round(r["achieved_gflops"] / limit, 3) if limit else None
        base = torch_ms.get((r["scale"], r["width"], r["threads"], r["batch"]))
        r["speedup_vs_torch"] = round(base / r["ms_per_segment"], 2) if base else None
    return {"peak": {str(k): v for k, v in peak.items()}, "rows": rows, "prepared": prepared, "child_peak_rss_mb": child_rss,
            "tensorrt": tensorrt_note(), "models": "presets 50 tags, random weights (BatchNorm statistics randomised)",
            "inputs": "real audio segments (mer4q test songs)", "seconds": round(time.perf_counter() - t0, 1)}


def tensorrt_note() -> str:
    if importlib.util.find_spec("tensorrt") is None:
        return "not available: tensorrt is not importable here (GPU-only; see benchmarks/gpu.py)"
    return "tensorrt is importable, but engines need a CUDA GPU: run benchmarks/gpu.py there"


def format_table(result: dict) -> str:
    lines = [f"{'engine':<17} {'scale':>5} {'width':>5} {'thr':>3} {'batch':>5} {'ms/seg':>8} {'seg/s':>7} {'GFLOP/s':>8} {'% peak':>7} {'x torch':>7}"]
    for r in result["rows"]:
        speed = "" if r["speedup_vs_torch"] is None else f"{r['speedup_vs_torch']:.2f}"
        lines.append(f"{r['engine']:<17} {r['scale']:>5} {r['width']:>5g} {r['threads']:>3} {r['batch']:>5} {r['ms_per_segment']:>8.2f} "
                     f"{r['segments_per_s']:>7.2f} {r['achieved_gflops']:>8.1f} {100 * (r['fraction_of_peak'] or 0):>6.1f}% {speed:>7}")
    for threads, p in result["peak"].items():
        lines.append(f"measured peak, {threads} thread(s): fp32 {p['fp32_gflops']} GFLOP/s, bf16 {p.get('bf16_gflops')} GFLOP/s, "
                     f"int8 {p['int8_gops']} GOP/s  {p['detail']}")
    lines.append(f"TensorRT fp16/int8: {result['tensorrt']}")
    return "\n".join(lines)


def plot(result: dict, path: Path, pipeline: dict | None = None) -> Path:
    """PNG: segments/s against batch size per engine (main scale, full width), one panel per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(x["width"] for x in result["rows"])
    rows = [r for r in result["rows"] if r["scale"] == MAIN_SCALE and r["width"] == width]
    threads = sorted({r["threads"] for r in rows})
    panels = len(threads) + (1 if pipeline else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
    top = max(r["segments_per_s"] for r in rows) * 1.15
    for ax, t in zip(axes[0], threads):
        for engine in ENGINES:
            mine = sorted((r for r in rows if r["engine"] == engine and r["threads"] == t), key=lambda r: r["batch"])
            if mine:
                ax.plot([r["batch"] for r in mine], [r["segments_per_s"] for r in mine], marker="o", label=engine)
        peak = result["peak"][str(t)]["fp32_gflops"]
        gflop = next(r["gflop_per_segment"] for r in rows)
        ax.axhline(peak / gflop, color="grey", ls="--", lw=1)
        ax.text(max(r["batch"] for r in rows), peak / gflop, f"measured fp32 GEMM peak ({peak:.0f} GFLOP/s) ", va="bottom", ha="right",
                fontsize=8, color="grey")
        ax.set_xscale("log", base=2)
        batches = sorted({r["batch"] for r in rows})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_ylim(0, max(top, 1.1 * peak / gflop))
        ax.set_xlabel("batch size (segments)")
        ax.set_ylabel(f"segments / s ({MAIN_SCALE}, {gflop:.2f} GFLOP each)")
        ax.set_title(f"backbone {MAIN_SCALE} width {width:g}, {t} thread{'s' if t > 1 else ''}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if pipeline:
        ax = axes[0][-1]
        names = list(pipeline)
        values = [pipeline[n] for n in names]
        ax.barh(names, values, color=["tab:blue" if "torch" in n else "tab:green" for n in names])
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.1f}x", va="center", fontsize=8)
        ax.set_xlabel("x real time (audio seconds per wall second)")
        ax.set_title("whole pipeline (3 scales, decode..tags)")
        ax.set_xlim(0, max(values) * 1.25)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--widths", type=float, action="append", help="channel widths to measure (default: 1.0 and 0.25)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per configuration (best call is reported)")
    parser.add_argument("--min-calls", type=int, default=1, help="timed calls per configuration at least")
    parser.add_argument("--quick", action="store_true", help="smoke run: width 0.125 only, a few calls (numbers are meaningless)")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="cache of checkpoints, bundles and segments")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_arguments(parser)
    parser.add_argument("--json", default=str(RESULTS / "backbones.json"))
    parser.add_argument("--plot", default=str(RESULTS / "backbones.png"))
    args = parser.parse_args()
    if args.child:
        report_child(child(json.loads(args.child)))
        return
    widths = [0.125] if args.quick else (args.widths or [1.0, 0.25])
    result = {"machine": machine_info()}
    result.update(run(widths=widths, min_seconds=0.05 if args.quick else args.min_seconds, min_calls=1 if args.quick else args.min_calls,
                      workdir=Path(args.workdir)))
    print(format_table(result))
    write_json(Path(args.json), result)
    plot(result, Path(args.plot))
    print(f"saved {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
