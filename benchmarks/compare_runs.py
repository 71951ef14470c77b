"""Do two `samplecnn bench` runs agree? Every ratio of one run against the same ratio of the other.

The issue's last goal is that two runs of the same command agree within 10% on every ratio.
This reads two saved ``bench.json`` files and pairs, by name, every figure they both hold:
the judged targets (``targets``: fp32 / bf16 / int8 vs peak, OpenVINO vs onnxruntime, the
default model vs musicnn, cold start, peak RSS, agreement) and the median of every per-round
ratio (:func:`samplecnn.benchmarks.suite.ratio_spreads`: each pipeline row's x real time, x
torch and x musicnn, the engine pairs, cold start, and every backbone row's fraction of peak
and x torch). Two figures agree when the larger is at most ``tolerance`` (10%) above the
smaller. Prints the disagreeing figures, widest first, and the counts; ``--out`` saves it.

A backbone ratio is a quotient of two measured figures: x torch is torch eager's time over the
engine's, fraction of peak the engine's rate over the GEMM peak of its round. For each one
apart, ``moved`` gives how far each of its terms moved from the first run to the second (the
row's own time, torch eager's time on the same row, the peak), so a ratio that moved because
torch eager or the peak did is told from one whose engine did.

    python -m samplecnn.benchmarks.compare_runs benchmarks/results/bench_session12_first_run.json benchmarks/results/bench.json \\
        [--tolerance 0.1] [--out benchmarks/results/compare_runs.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .common import write_json
from .suite import backbone_row_name, evaluate_targets, ratio_spreads

TOLERANCE = 0.10


def figures(result: dict) -> dict[str, dict[str, float]]:
    """{"targets" | "pipeline" | "backbone": {name: value}} of one bench result (positive values only)."""
    pipeline, backbone = ratio_spreads(result)
    targets = {row["target"]: row["measured"] for row in (result.get("targets") or evaluate_targets(result))}
    return {
        "targets": {k: float(v) for k, v in targets.items() if isinstance(v, (int, float)) and v > 0 and "spread" not in k},  # a spread of spreads means nothing
        "pipeline": {name: float(s["median"]) for name, s in pipeline if s.get("median")},
        "backbone": {name: float(s["median"]) for name, s in backbone if s.get("median")},
    }


def backbone_terms(result: dict) -> dict[str, dict[str, float]]:
    """{ratio name: {term: value}}: the measured figures behind each backbone ratio (median over rounds)."""
    rows = {backbone_row_name(r): r for r in result["backbones"]["rows"]}
    terms = {}
    for name, r in rows.items():
        own = {"engine ms": r["ms_per_segment"]}
        torch = rows.get(backbone_row_name({**r, "engine": "torch eager fp32"}))
        if torch and torch is not r:
            terms[f"{name} speedup_vs_torch"] = {**own, "torch eager ms": torch["ms_per_segment"]}
        peaks = [x["peak_gflops"] for x in r.get("rounds", []) if x.get("peak_gflops")]
        if peaks:
            terms[f"{name} fraction_of_peak"] = {**own, "peak": float(np.median(peaks))}
    return terms


def difference(a: float, b: float) -> float:
    """How far the larger is above the smaller (0.1 = 10%)."""
    return max(a, b) / min(a, b) - 1


def compare(first: dict, second: dict, tolerance: float = TOLERANCE) -> dict:
    """Per group: figures compared, how many agree, the disagreeing ones (widest first), names in one run only."""
    a, b = figures(first), figures(second)
    out: dict = {"tolerance": tolerance, "groups": {}}
    for group in a:
        common = sorted(set(a[group]) & set(b[group]))
        rows = [{"name": n, "first": a[group][n], "second": b[group][n], "difference": round(difference(a[group][n], b[group][n]), 4)}
                for n in common]
        apart = sorted((r for r in rows if r["difference"] > tolerance), key=lambda r: -r["difference"])
        out["groups"][group] = {"compared": len(rows), "agree": len(rows) - len(apart), "apart": apart,
                                "only_in_one": sorted(set(a[group]) ^ set(b[group]))}
    terms_a, terms_b = backbone_terms(first), backbone_terms(second)
    for r in out["groups"]["backbone"]["apart"]:
        ta, tb = terms_a.get(r["name"], {}), terms_b.get(r["name"], {})
        r["moved"] = {t: round(tb[t] / ta[t] - 1, 4) for t in ta if ta[t] and tb.get(t)}
    apart = out["groups"]["backbone"]["apart"]
    out["groups"]["backbone"]["apart_with_engine_time_within_tolerance"] = sum(
        1 for r in apart if "engine ms" in r["moved"] and difference(1, 1 + r["moved"]["engine ms"]) <= tolerance)
    out["agree_on_every_figure"] = all(not g["apart"] for g in out["groups"].values())
    return out


def format_comparison(result: dict, first: str, second: str, show: int = 12) -> str:
    lines = [f"{first} vs {second}: figures agree when the larger is at most {100 * result['tolerance']:.0f}% above the smaller"]
    for group, g in result["groups"].items():
        lines.append(f"{group}: {g['agree']} of {g['compared']} agree" + (f"; {len(g['only_in_one'])} in one run only" if g["only_in_one"] else ""))
        if "apart_with_engine_time_within_tolerance" in g and g["apart"]:
            lines.append(f"   of the {len(g['apart'])} apart, {g['apart_with_engine_time_within_tolerance']} had the engine's own time "
                         f"within {100 * result['tolerance']:.0f}%: torch eager or the peak moved")
        for r in g["apart"][:show]:
            moved = ", ".join(f"{t} {100 * v:+.0f}%" for t, v in r.get("moved", {}).items())
            lines.append(f"   {100 * r['difference']:5.1f}%  {r['name']}: {r['first']:g} vs {r['second']:g}" + (f" ({moved})" if moved else ""))
        if len(g["apart"]) > show:
            lines.append(f"   ... and {len(g['apart']) - show} more")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    parser.add_argument("--out", type=Path, default=None, help="save the comparison as JSON")
    args = parser.parse_args(argv)
    runs = []
    for path in (args.first, args.second):
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            parser.error(f"{path}: not a readable bench.json ({exc})")
        if not isinstance(runs[-1], dict) or "pipeline" not in runs[-1] or "backbones" not in runs[-1]:
            parser.error(f"{path}: not a `samplecnn bench` result (no pipeline and backbones)")
    result = compare(*runs, tolerance=args.tolerance)
    result["runs"] = [{"file": p.name, "date_utc": r["machine"].get("date_utc"), "cpu": r["machine"].get("cpu")} for p, r in zip((args.first, args.second), runs)]
    print(format_comparison(result, args.first.name, args.second.name))
    if args.out:
        print(f"saved {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
