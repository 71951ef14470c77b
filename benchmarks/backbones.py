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

Rounds (``--rounds``, default 3): per round and thread count, each precision's GEMM peak
(``peak.py``) is measured next to the engines of that precision, the order reversed every
other round (peak fp32, torch, ort fp32 ..., peak int8, ort int8 ...; then backwards). Every
ratio (fraction of peak, speedup over torch) is taken within a round and reported as the
median over rounds with its spread; the raw per-round figures stay in each row's ``rounds``
and in ``peak_rounds``.

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

from samplecnn.runtime.procinfo import peak_rss_mb

from .common import (DEFAULT_WORKDIR, PRESET_SCALES, RESULTS, cached_bundle, format_figure, machine_info, paired_ratio, random_checkpoints,
                     real_segments, report_child, round_order, run_child, spread, time_calls, write_json)
from .peak import PEAK_KEY, PRECISIONS, measure_precision

ENGINES = ("torch eager fp32", "ort fp32 conv1d", "ort fp32 conv2d", "ort int8", "openvino fp32", "openvino bf16", "openvino int8")
ENGINE_PRECISION = {"torch eager fp32": "fp32", "ort fp32 conv1d": "fp32", "ort fp32 conv2d": "fp32", "ort int8": "int8",
                    "openvino fp32": "fp32", "openvino bf16": "bf16", "openvino int8": "int8"}


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


def round_plan(engines, threads_used, has_cases) -> list[tuple[int, list[tuple[str, str]]]]:
    """[(threads, [("peak", precision) | ("engine", name), ...])] of one round: per thread count,
    each precision's GEMM peak followed by the engines of that precision (engines without
    cases at that thread count are left out; a precision without engines gets no peak)."""
    plan = []
    for threads in threads_used:
        items = []
        for precision in PRECISIONS:
            mine = [e for e in engines if ENGINE_PRECISION[e] == precision and has_cases(threads)]
            if mine:
                items += [("peak", precision)] + [("engine", e) for e in mine]
        if items:
            plan.append((threads, items))
    return plan


def run(*, widths: list[float], min_seconds: float, min_calls: int, workdir: Path = DEFAULT_WORKDIR, scales=PRESET_SCALES,
        main_batches=MAIN_BATCHES, other_batches=OTHER_BATCHES, rounds: int = 3, log=print) -> dict:
    """Every engine over the grid in ``rounds`` rounds, each precision's GEMM peak measured in
    every round next to the engines of that precision (the order reversed every other round);
    returns {peak, rows, peak_rounds (every GEMM of every round), ...}: see :func:`summarise`."""
    from samplecnn.trainer.model import preset

    all_threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    prepared = prepare(workdir, widths, scales, log=log)
    log(f"backbones: models ready in {time.perf_counter() - t0:.0f} s; {rounds} round(s), each precision's GEMM peak next to its engines")
    threads_used = sorted({1, all_threads})
    cases = plan_cases(widths, all_threads, scales, main_batches, other_batches)
    plan = round_plan(available_engines(), threads_used, lambda t: any(c[2] == t for c in cases))
    raw, child_rss = [], {}
    for r in range(rounds):
        peaks: dict[str, dict] = {}
        rows: list[dict] = []
        for threads, items in plan:
            for kind, name in round_order(items, r):
                if kind == "peak":
                    peaks.setdefault(str(threads), {})[name] = measure_precision(threads, name, seconds=max(0.3, min_seconds / 2))
                    continue
                mine = [engine_case(name, s, w, b, prepared) for s, w, t, b in cases if t == threads]
                result = run_child("samplecnn.benchmarks.backbones", {"engine": name, "threads": threads, "cases": mine,
                                                                       "min_seconds": min_seconds, "min_calls": min_calls}, threads=threads)
                rows += result["rows"]
                key = f"{name}, {threads} thread(s)"
                child_rss[key] = max(child_rss.get(key, 0.0), result["peak_rss_mb"])
        raw.append({"peak": peaks, "rows": rows})
        log(f"  backbones round {r + 1}/{rounds} done ({time.perf_counter() - t0:.0f} s)")
    summary = summarise(raw, lambda scale, width: preset(scale, n_tags=50, width=width).flops_per_segment())
    # Raw per-round figures: each row's in its "rounds", each GEMM's in "peak_rounds".
    return {**summary, "peak_rounds": [one["peak"] for one in raw], "prepared": prepared, "child_peak_rss_mb": child_rss, "tensorrt": tensorrt_note(),
            "models": "presets 50 tags, random weights (BatchNorm statistics randomised)", "inputs": "real audio segments (mer4q test songs)",
            "timing": "per round: the median of each configuration's timed calls; every ratio is taken within a round, then the median "
                      "over rounds (±spread = (max - min) / median)",
            "seconds": round(time.perf_counter() - t0, 1)}


def summarise(raw: list[dict], flops_per_segment) -> dict:
    """Rows and peaks of the rounds ``raw`` ([{"peak": {threads: {precision: {"gflops"}}}, "rows": [child rows]}]).

    Per round, a row's figure is its median call (``ms_per_segment_median``), its achieved
    GFLOP/s that figure's rate, its fraction of peak that rate over the same round's peak of its
    precision and thread count, and its speedup the same round's torch row over it. A row
    reports the median over rounds of each, ``fraction_of_peak_rounds`` /
    ``speedup_vs_torch_rounds`` (:func:`common.spread`: median, spread, flag, per-round values)
    and the raw per-round figures in ``rounds``. ``flops_per_segment(scale, width)``.
    """
    by_key: dict[tuple, list[dict | None]] = {}
    for r, one in enumerate(raw):
        for row in one["rows"]:
            key = (row["engine"], row["scale"], row["width"], row["threads"], row["batch"])
            by_key.setdefault(key, [None] * len(raw))[r] = row
    rows = []
    for (engine, scale, width, threads, batch), per_round in by_key.items():
        flops = flops_per_segment(scale, width)
        precision = ENGINE_PRECISION[engine]
        torch_rounds = by_key.get(("torch eager fp32", scale, width, threads, batch), [None] * len(raw))
        rounds = []
        for r, row in enumerate(per_round):
            if row is None:
                continue
            ms = row["ms_per_segment_median"]
            peak = (raw[r]["peak"].get(str(threads), {}).get(precision) or {}).get("gflops")
            achieved = flops / (ms / 1e3) / 1e9
            base = torch_rounds[r]
            rounds.append({"round": r, "ms_per_segment": ms, "ms_per_segment_best": row["ms_per_segment"], "timed_calls": row["timed_calls"],
                           "achieved_gflops": round(achieved, 1), "peak_gflops": peak,
                           "fraction_of_peak": round(achieved / peak, 3) if peak else None,
                           "speedup_vs_torch": round(base["ms_per_segment_median"] / ms, 3) if base else None})
        ms = float(np.median([x["ms_per_segment"] for x in rounds]))
        fraction = paired_ratio([x["achieved_gflops"] for x in rounds], [x["peak_gflops"] for x in rounds])
        speeds = [x["speedup_vs_torch"] for x in rounds]
        speedup = spread(speeds) if all(v is not None for v in speeds) else None
        rows.append({"engine": engine, "scale": scale, "width": width, "threads": threads, "batch": batch,
                     "ms_per_segment": round(ms, 3), "ms_per_segment_best": min(x["ms_per_segment_best"] for x in rounds),
                     "segments_per_s": round(1e3 / ms, 2), "timed_calls": sum(x["timed_calls"] for x in rounds),
                     "gflop_per_segment": round(flops / 1e9, 3), "achieved_gflops": round(flops / (ms / 1e3) / 1e9, 1),
                     "peak_precision": precision, "fraction_of_peak": fraction["median"] if fraction else None,
                     "fraction_of_peak_rounds": fraction, "speedup_vs_torch": speedup["median"] if speedup else None,
                     "speedup_vs_torch_rounds": speedup, "rounds": rounds})
    rows.sort(key=lambda row: (ENGINES.index(row["engine"]), row["threads"]))  # stable: the grid's order inside
    return {"peak": summarise_peaks(raw), "rows": rows}


def summarise_peaks(raw: list[dict]) -> dict:
    """{threads: {fp32_gflops, bf16_gflops, int8_gops (medians over rounds; None: not measured),
    "rounds": {precision: spread}, "best_kernel": {precision: GEMM of the median round}}}."""
    out: dict[str, dict] = {}
    for threads in sorted({t for one in raw for t in one["peak"]}, key=int):
        summary: dict = {"threads": int(threads), "rounds": {}, "best_kernel": {}}
        for precision in PRECISIONS:
            got = [one["peak"].get(threads, {}).get(precision) for one in raw]
            values = [g["gflops"] for g in got if g and g.get("gflops")]
            summary[PEAK_KEY[precision]] = spread(values)["median"] if values else None
            if values:
                summary["rounds"][precision] = spread(values)
                details = [g["detail"] for g in got if g and g.get("gflops")]
                middle = details[int(np.argsort(values)[len(values) // 2])]
                summary["best_kernel"][precision] = max(middle, key=middle.get)
        out[threads] = summary
    return out


def tensorrt_note() -> str:
    if importlib.util.find_spec("tensorrt") is None:
        return "not available: tensorrt is not importable here (GPU-only; see benchmarks/gpu.py)"
    return "tensorrt is importable, but engines need a CUDA GPU: run benchmarks/gpu.py there"


def format_peaks(peak: dict) -> list[str]:
    """One line per thread count: each precision's peak (median over rounds ± spread) and its best GEMM."""
    lines = []
    for threads, p in peak.items():
        parts = []
        for precision in PRECISIONS:
            value, figure = p.get(PEAK_KEY[precision]), (p.get("rounds") or {}).get(precision)
            unit = "GOP/s" if precision == "int8" else "GFLOP/s"
            spread_text = f" ±{100 * figure['spread']:.0f}%" if figure else ""
            kernel = (p.get("best_kernel") or {}).get(precision)
            parts.append(f"{precision} {value} {unit}{spread_text}" + (f" ({kernel})" if kernel else ""))
        lines.append(f"measured peak, {threads} thread(s): " + "; ".join(parts))
    return lines


def format_table(result: dict) -> str:
    lines = [f"{'engine':<17} {'scale':>5} {'width':>5} {'thr':>3} {'batch':>5} {'ms/seg':>8} {'seg/s':>7} {'GFLOP/s':>8} {'% peak':>13} {'x torch':>12}"]
    for r in result["rows"]:
        lines.append(f"{r['engine']:<17} {r['scale']:>5} {r['width']:>5g} {r['threads']:>3} {r['batch']:>5} {r['ms_per_segment']:>8.2f} "
                     f"{r['segments_per_s']:>7.2f} {r['achieved_gflops']:>8.1f} {format_figure(r.get('fraction_of_peak_rounds'), percent=True):>13} "
                     f"{format_figure(r.get('speedup_vs_torch_rounds'), digits=2):>12}")
    lines += format_peaks(result["peak"])
    lines.append(f"(median over rounds, ±spread = (max - min) / median, ! = spread > 10%) TensorRT fp16/int8: {result['tensorrt']}")
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
    parser.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per configuration and round (its median call is its figure)")
    parser.add_argument("--min-calls", type=int, default=1, help="timed calls per configuration and round at least")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the grid, each with its own GEMM peaks (median and spread over rounds)")
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
                      workdir=Path(args.workdir), rounds=1 if args.quick else args.rounds))
    print(format_table(result))
    write_json(Path(args.json), result)
    plot(result, Path(args.plot))
    print(f"saved {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
