"""Where a backbone graph spends its time: the engine's own profiler, per node, with each
convolution's FLOPs and achieved GFLOP/s, so a missed target can be traced to layers.

    python -m samplecnn.benchmarks.op_profile BUNDLE [--engine ort|openvino] [--scale 3^9] [--precision fp32] [--batch 8] [--threads 2]

onnxruntime sessions are built with the runtime's own options (``runtime.backends.ort``: all
graph optimisations, the shared CPU arena); OpenVINO models are compiled by the runtime's
backend (``runtime.backends.openvino``, its precision hint and threads) with its per-node
performance counters on. So the profile is the one ``samplecnn infer`` runs. Convolution nodes
(Conv, the NCHWc Conv, QLinearConv, OpenVINO's Convolution, ...) are matched in execution order
to the backbone's layers (stem, blocks 1..n, the 1x1 conv), whose FLOPs come from the bundle's config.

``--peak`` also measures the GEMM peak of the profile's precision and threads (``peak.py``, a
fresh process before and after the profile; their mean) and reads the profile against it
(:func:`ceiling`): the backbone's fraction of that peak as profiled, and its ceiling, the fraction
it would reach if every block convolution (the GEMM-shaped layers: blocks 1..n and the 1x1 conv)
ran at the peak (or kept its time where it already beat the peak) while everything else (the 1-channel stem, max-pools, reorders,
quantize, reductions, the logits) kept its measured time. A ceiling under a goal says the goal
cannot be met by faster convolutions: only by removing or fusing the other nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from .common import real_segments

CONV_OPS = {"Conv", "FusedConv", "QLinearConv", "ConvInteger", "NchwcConv", "Convolution"}  # the last: OpenVINO's
ENGINES = ("ort", "openvino")


def layer_flops(config: dict) -> list[tuple[str, int]]:
    """(layer name, FLOPs per segment) of every convolution, in execution order."""
    from samplecnn.trainer.model import BackboneConfig

    c = BackboneConfig.from_dict(config)
    ch, m, frames = c.block_channels, c.m, c.m**c.n
    rows = [("stem conv (1 -> %d ch, stride %d)" % (ch[0], m), 2 * frames * m * ch[0])]
    for i in range(1, c.n + 1):
        rows.append((f"block {i} conv ({ch[i - 1]} -> {ch[i]} ch, {frames} frames)", 2 * frames * m * ch[i - 1] * ch[i]))
        frames //= m
    rows.append((f"1x1 conv ({ch[-2]} -> {ch[-1]} ch)", 2 * ch[-2] * ch[-1]))
    return rows


def profile(bundle_path: str, scale: str, precision: str, batch: int, threads: int, runs: int = 3, engine: str = "ort") -> dict:
    """Per-node and per-op-type time (ms per segment, median over ``runs`` after one warm-up)."""
    from samplecnn.runtime.backends.base import check_choice

    check_choice("engine", engine, ENGINES)
    profiler = _openvino_nodes if engine == "openvino" else _ort_nodes
    spec, nodes = profiler(bundle_path, scale, precision, batch, threads, runs)
    return {"engine": engine, **_summary(bundle_path, spec, nodes, scale, precision, batch, threads)}


def _openvino_nodes(bundle_path: str, scale: str, precision: str, batch: int, threads: int, runs: int):
    """OpenVINO's performance counters per node (its executed kernel in ``kernel``), per run."""
    from samplecnn.runtime.backends.openvino import OpenVinoBackend
    from samplecnn.runtime.bundle import Bundle

    bundle = Bundle.load(bundle_path)
    spec = bundle.scale(scale)
    data = real_segments(spec.segment_samples, batch)
    with OpenVinoBackend(bundle, spec, precision=precision, threads=threads, cache=False, perf_counts=True) as backend:
        per_run = []
        for _ in range(runs + 1):  # call 1 is the compiled model's first: counted in every running average
            backend.infer(data)
            per_run.append(list(backend.request.profiling_info))
    executed = [p for p in per_run[1] if p.status.name == "EXECUTED"]  # in execution order
    averages = {p.node_name: [] for p in executed}
    for run in per_run:
        for p in run:
            if p.node_name in averages:
                averages[p.node_name].append(p.real_time.total_seconds() * 1e6)
    # the warm-up call is dropped from each node's own per-call times
    times = {name: calls_from_running_averages(values)[1:] for name, values in averages.items()}
    nodes = [{"node": p.node_name, "op": p.node_type, "kernel": p.exec_type, "ms_per_segment": float(np.median(times[p.node_name])) / 1e3 / batch}
             for p in executed]
    return spec, nodes


def calls_from_running_averages(averages: list[float]) -> list[float]:
    """Each call's own time from OpenVINO's per-node counters after calls 1..n.

    The CPU plugin reports a node's mean time over every call since the model was compiled,
    so read after call n it is (t_1 + ... + t_n) / n and t_n = n avg_n - (n - 1) avg_(n-1).
    Read as they come, the first call's cost (26 ms of a 4 ms full-width 3^9 bf16 segment)
    lingers in every later figure: profiles before 2026-12-02 put the bf16 stem at 1.4-1.6 ms
    per segment where each call took 0.5-0.6 ms, and their node times summed to 7 ms for
    calls of 4.3 ms. The counters are whole microseconds, so a tiny node's difference can dip
    below zero: it is clipped to 0."""
    return [max(0.0, n * avg - (n - 1) * previous) for n, (avg, previous) in enumerate(zip(averages, [0.0] + averages[:-1]), start=1)]


def _ort_nodes(bundle_path: str, scale: str, precision: str, batch: int, threads: int, runs: int):
    """onnxruntime's profiler: kernel time per node, per run."""
    import onnxruntime as ort

    from samplecnn.runtime.backends.ort import session_options
    from samplecnn.runtime.bundle import Bundle

    bundle = Bundle.load(bundle_path)
    spec = bundle.scale(scale)
    options = session_options(ort, threads, optimise=True)  # the runtime's own session options
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="samplecnn-prof-") as tmp:
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(str(bundle.path(spec.models[precision])), options, providers=["CPUExecutionProvider"])
        data = real_segments(spec.segment_samples, batch)
        for _ in range(runs + 1):
            session.run(None, {spec.input_name: data})
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(kernels) // (runs + 1)
    runs_nodes = [kernels[i * per_run:(i + 1) * per_run] for i in range(1, runs + 1)]  # drop the warm-up run
    nodes = []
    for position, event in enumerate(runs_nodes[0]):
        us = float(np.median([r[position]["dur"] for r in runs_nodes]))
        nodes.append({"node": event["name"][: -len("_kernel_time")], "op": event["args"].get("op_name"), "ms_per_segment": us / 1e3 / batch})
    return spec, nodes


BLOCK_CONV_PREFIXES = ("block ", "1x1 conv")


def ceiling(result: dict, peak_gflops: float) -> dict:
    """The profile against a GEMM peak: {"peak_gflops", "fraction_of_peak" (the whole backbone's
    FLOPs over the profile's kernel time), "outside_block_convs_share" (of the kernel time),
    "ceiling_fraction_of_peak": every block convolution at ``peak_gflops`` (or at its measured
    time where it already ran faster than the peak), every other node as measured, and
    "block_convs_above_peak": how many ran faster than the peak (a peak below them is no limit)}."""
    flops = sum(n["gflop_per_segment"] for n in result["nodes"] if "layer" in n) * 1e9
    block = [n for n in result["nodes"] if n.get("layer", "").startswith(BLOCK_CONV_PREFIXES)]
    if not block:
        raise ValueError("the profile's convolutions are not matched to the backbone's layers: no ceiling can be read")
    peak = peak_gflops * 1e9
    measured_s = [n["ms_per_segment"] / 1e3 for n in block]
    at_peak_s = [n["gflop_per_segment"] * 1e9 / peak for n in block]
    total_s = result["kernel_ms_per_segment"] / 1e3
    other_s = total_s - sum(measured_s)
    best_s = flops / peak
    return {"peak_gflops": round(peak_gflops, 1), "fraction_of_peak": round(best_s / total_s, 3),
            "outside_block_convs_share": round(other_s / total_s, 3),
            "ceiling_fraction_of_peak": round(best_s / (sum(map(min, measured_s, at_peak_s)) + other_s), 3),
            "block_convs_above_peak": sum(m < a for m, a in zip(measured_s, at_peak_s))}


def _summary(bundle_path: str, spec, nodes: list[dict], scale: str, precision: str, batch: int, threads: int) -> dict:
    layers = layer_flops(spec.config)
    convs = [n for n in nodes if n["op"] in CONV_OPS]
    if len(convs) == len(layers):
        for node, (name, flops) in zip(convs, layers):
            node["layer"], node["gflop_per_segment"] = name, round(flops / 1e9, 4)
            node["gflops"] = round(flops / (node["ms_per_segment"] / 1e3) / 1e9, 1)
    total = sum(n["ms_per_segment"] for n in nodes)
    by_op: dict[str, float] = defaultdict(float)
    for n in nodes:
        by_op[n["op"]] += n["ms_per_segment"]
        n["share"] = round(n["ms_per_segment"] / total, 4)
        n["ms_per_segment"] = round(n["ms_per_segment"], 3)
    return {"bundle": Path(bundle_path).name, "scale": scale, "precision": precision, "batch": batch, "threads": threads,
            "kernel_ms_per_segment": round(total, 3), "by_op": {k: round(v / total, 4) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
            "nodes": nodes}


def measure_peak(threads: int, precision: str, seconds: float = 1.0) -> dict:
    """This precision's GEMM peak now ({"gflops", "detail"}), from ``peak.py`` in a fresh process."""
    from .peak import measure_precision

    got = measure_precision(threads, precision, seconds)
    if not got["gflops"]:
        raise SystemExit(f"no {precision} GEMM runs on this machine: no peak to read the profile against")
    return got


def format_profile(p: dict, top: int = 8) -> str:
    lines = [f"profile ({p.get('engine', 'ort')}) {p['bundle']} {p['scale']} {p['precision']} batch {p['batch']} {p['threads']} thread(s): "
             f"{p['kernel_ms_per_segment']} ms/segment in kernels; by op: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(p["by_op"].items())[:5])]
    if "ceiling" in p:
        c = p["ceiling"]
        lines.append(f"  against the {p['precision']} GEMM peak {c['peak_gflops']}: {100 * c['fraction_of_peak']:.1f}% as profiled; "
                     f"{100 * c['outside_block_convs_share']:.1f}% of the time is outside the block convolutions, so with every block "
                     f"convolution at the peak the backbone reaches at most {100 * c['ceiling_fraction_of_peak']:.1f}%"
                     + (f" ({c['block_convs_above_peak']} block convolution(s) already ran above the peak)" if c["block_convs_above_peak"] else ""))
    for n in sorted(p["nodes"], key=lambda n: -n["share"])[:top]:
        extra = f"  {n['layer']}: {n['gflop_per_segment']} GFLOP at {n['gflops']} GFLOP/s" if "layer" in n else ""
        kernel = f" [{n['kernel']}]" if "kernel" in n else ""
        lines.append(f"  {100 * n['share']:5.1f}%  {n['ms_per_segment']:8.3f} ms  {n['op']:<14}{extra}{kernel}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--engine", default="ort", choices=ENGINES, help="ort (onnxruntime's profiler) or openvino (its performance counters)")
    parser.add_argument("--scale", default="3^9")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=3, help="timed calls after one warm-up (each node's median)")
    parser.add_argument("--peak", action="store_true", help="measure the precision's GEMM peak before and after, and read the profile against it")
    parser.add_argument("--json", help="also save the profile here")
    args = parser.parse_args()
    peaks = [measure_peak(args.threads, args.precision)] if args.peak else []
    result = profile(args.bundle, args.scale, args.precision, args.batch, args.threads, runs=args.runs, engine=args.engine)
    if args.peak:
        peaks.append(measure_peak(args.threads, args.precision))
        result["peak_rounds"] = peaks
        result["ceiling"] = ceiling(result, float(np.mean([p["gflops"] for p in peaks])))
    print(format_profile(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
