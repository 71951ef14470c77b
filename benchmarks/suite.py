"""The whole benchmark in one run (what ``samplecnn bench`` runs): backbones against the measured
GEMM peak, then the whole pipeline side by side with torch eager, cold start and peak RSS,
then the issue's targets, each met or missed. Prints tables, writes ``bench.json`` and
``bench.png`` into ``--out`` (default ``benchmarks/results``).

    python -m samplecnn.benchmarks.suite [--songs 8] [--quick] [--out benchmarks/results]

Speed models: the three presets at full width with random weights (speed does not depend on
the values). int8 agreement: the trained default-model checkpoints (runs/mer4q/*/best.safetensors,
width 0.25) when they exist, exported to a bundle here with int8 calibrated on mer4q train;
their pipeline is timed too. Songs: the mer4q test split (30 s, 16 kHz MP3: decode + resample).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from . import backbones, op_profile, pipeline_profile
from .common import (AUDIO_ENV, DEFAULT_WORKDIR, EXAMPLES, PRESET_SCALES, RESULTS, cached_bundle, machine_info, random_checkpoints, song_paths,
                     trained_checkpoints, training_running, write_json)

TARGETS = {
    "pipeline_fp32_vs_torch": 3.0,  # onnxruntime fp32 pipeline songs/s >= 3x torch eager
    "pipeline_int8_vs_torch": 8.0,
    "int8_top5_agreement": 0.95,
    "cold_start_ratio": 1 / 3,  # samplecnn infer process <= 1/3 of a torch process
    "peak_rss_mb": 200.0,
    "backbone_fp32_fraction_of_peak": 0.80,
}


def default_model_installed() -> bool:
    from samplecnn.runtime.tagger import DEFAULT_MODEL

    return (DEFAULT_MODEL / "manifest.json").is_file()


def longest_example() -> str:
    from samplecnn.runtime.audio import audio_info

    files = sorted(EXAMPLES.glob("*.ogg"))
    return str(max(files, key=lambda p: audio_info(p).duration)) if files else ""


def evaluate_targets(result: dict) -> list[dict]:
    """One row per target: measured value, target, met, margin."""
    rows = []

    def add(name: str, measured, target, met: bool, detail: str) -> None:
        rows.append({"target": name, "measured": measured, "required": target, "met": bool(met), "detail": detail})

    main = result["pipeline"]["speed"]
    by_name = {r["pipeline"]: r for r in main["rows"]}
    fp32, int8 = by_name["onnxruntime fp32"]["speedup_vs_torch"], by_name["onnxruntime int8"]["speedup_vs_torch"]
    add("pipeline onnxruntime fp32 >= 3x torch eager", fp32, TARGETS["pipeline_fp32_vs_torch"], fp32 >= 3.0,
        f"songs/s ratio, speed presets, {main['rows'][0]['songs']} songs")
    add("pipeline int8 >= 8x torch eager", int8, TARGETS["pipeline_int8_vs_torch"], int8 >= 8.0, "songs/s ratio, speed presets")
    agreement_source = result["pipeline"].get("trained") or main
    agreement = agreement_source["top5_agreement_vs_ort_fp32"]["onnxruntime int8"]
    add("int8 top-5 agreement >= 95% vs fp32", agreement["mean"], TARGETS["int8_top5_agreement"], agreement["mean"] >= 0.95,
        f"{'trained default model' if result['pipeline'].get('trained') else 'random weights'}, {agreement['songs']} held-out songs, worst {agreement['min']}")
    blocks = [main] + [result["pipeline"][k] for k in ("trained", "default_model") if result["pipeline"].get(k)]
    cold = [b["cold_start"] for b in blocks]
    worst = max(c["ratio"] for c in cold)
    add("cold start <= 1/3 of a torch process", worst, round(TARGETS["cold_start_ratio"], 3), worst <= TARGETS["cold_start_ratio"],
        "; ".join(f"{c['median_s']}" for c in cold))
    rss = [r for block in blocks for r in block["peak_rss"]]
    worst_rss = max(r["peak_rss_mb"] for r in rss)
    add("peak RSS of samplecnn infer <= 200 MB (defaults)", worst_rss, TARGETS["peak_rss_mb"], worst_rss <= 200.0,
        "; ".join(f"{r['bundle']} {r['precision']} {r['peak_rss_mb']} MB" for r in rss))
    fp32_rows = [r for r in result["backbones"]["rows"] if r["engine"] == "ort fp32 conv2d" and r["width"] == max(x["width"] for x in result["backbones"]["rows"])]
    best = max(fp32_rows, key=lambda r: r["fraction_of_peak"])
    add("backbone fp32 >= 80% of measured fp32 peak", best["fraction_of_peak"], TARGETS["backbone_fp32_fraction_of_peak"], best["fraction_of_peak"] >= 0.8,
        f"best: {best['scale']} batch {best['batch']} {best['threads']} thread(s), {best['achieved_gflops']} of "
        f"{result['backbones']['peak'][str(best['threads'])]['fp32_gflops']} GFLOP/s")
    return rows


def format_targets(rows: list[dict]) -> str:
    lines = [f"{'target':<50}{'measured':>10}{'required':>10}  verdict"]
    for r in rows:
        lines.append(f"{r['target']:<50}{r['measured']:>10}{r['required']:>10}  {'MET' if r['met'] else 'MISSED'}  ({r['detail']})")
    return "\n".join(lines)


def run(args: argparse.Namespace, log=print) -> dict:
    t0 = time.perf_counter()
    workdir = Path(args.workdir)
    if args.audio:
        os.environ[AUDIO_ENV] = str(Path(args.audio).resolve())
    result: dict = {"machine": machine_info()}
    if result["machine"]["training_running_at_start"]:
        log("note: `samplecnn train` is running: these numbers are taken under load")
    quick = args.quick
    width = 0.125 if quick else 1.0
    scales = ("3^9",) if quick else PRESET_SCALES
    log("== backbones")
    result["backbones"] = backbones.run(
        widths=[width] if quick else [1.0, 0.25], min_seconds=0.02 if quick else args.min_seconds, min_calls=1,
        workdir=workdir, scales=scales, main_batches=(1, 4) if quick else backbones.MAIN_BATCHES,
        other_batches=(1,) if quick else backbones.OTHER_BATCHES, log=log)
    log(backbones.format_table(result["backbones"]))
    bundle_main = result["backbones"]["prepared"]["models"][width]["bundle"]
    result["profiles"] = [op_profile.profile(bundle_main, "3^9", p, batch=4 if quick else 8, threads=os.cpu_count() or 1) for p in ("fp32", "int8")]
    for p in result["profiles"]:
        log(op_profile.format_profile(p))
    log("== pipeline")
    prepared = result["backbones"]["prepared"]["models"][width]
    checkpoints = [prepared["checkpoints"][s] for s in scales]
    paths = song_paths(args.songs)
    rss_file = args.rss_file or (paths[0] if quick else longest_example())
    speed = pipeline_profile.compare(prepared["bundle"], checkpoints, paths, rss_file=rss_file, cold_repeat=1 if quick else 3, log=log)
    result["pipeline"] = {"speed": speed}
    log(pipeline_profile.format_compare(speed, f"whole pipeline, {'width 0.125' if quick else 'full-width'} presets, random weights"))
    trained = [] if quick else trained_checkpoints()
    if trained:
        bundle = cached_bundle(workdir, "trained_mer4q", trained, precisions=("fp32", "int8"), log=log)
        block = pipeline_profile.compare(str(bundle), [str(p) for p in trained], song_paths(args.agreement_songs), rss_file=rss_file, log=log)
        block["export_int8_agreement"] = export_agreement(bundle)
        result["pipeline"]["trained"] = block
        log(pipeline_profile.format_compare(block, "whole pipeline, trained default model (width 0.25, runs/mer4q)"))
    if not quick and default_model_installed() and trained:
        song = paths[0]
        result["pipeline"]["default_model"] = {"cold_start": pipeline_profile.cold_start(None, [str(p) for p in trained], song),
                                               "peak_rss": [pipeline_profile.peak_rss(None, p, rss_file) for p in ("fp32", "int8")]}
        d = result["pipeline"]["default_model"]
        log(f"default model (runtime/default_model, with heads): cold start {d['cold_start']['median_s']} ratio {d['cold_start']['ratio']}; "
            f"peak RSS " + ", ".join(f"{r['precision']} {r['peak_rss_mb']} MB" for r in d["peak_rss"]))
    result["targets"] = evaluate_targets(result)
    result["training_running_at_end"] = training_running()
    result["under_load"] = bool(result["machine"]["training_running_at_start"] or result["training_running_at_end"])
    result["seconds"] = round(time.perf_counter() - t0, 1)
    log("== targets" + ("  (taken while `samplecnn train` was running: under load)" if result["under_load"] else ""))
    log(format_targets(result["targets"]))
    out = Path(args.out)
    write_json(out / "bench.json", result)
    (out / "bench.md").write_text(markdown(result))
    ratios = {r["pipeline"]: r["x_realtime"] for r in speed["rows"]}
    if "trained" in result["pipeline"]:
        ratios.update({f"{r['pipeline']} (w0.25)": r["x_realtime"] for r in result["pipeline"]["trained"]["rows"]})
    backbones.plot(result["backbones"], out / "bench.png", pipeline=ratios)
    log(f"saved {out / 'bench.json'}, bench.md and bench.png in {out} ({result['seconds']:.0f} s)")
    return result


def markdown(result: dict) -> str:
    """The run as Markdown tables (bench.md), for the README."""
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd'])}), {m['memory_gb']} GB; onnxruntime {m['onnxruntime']}, "
             f"torch {m['torch']}, numpy {m['numpy']}; {m['date_utc']}" + ("; **under load** (`samplecnn train` running)" if result["under_load"] else "; no other job running") + ".",
             "", "| target | measured | required | verdict |", "|---|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {t['required']} | {'met' if t['met'] else '**missed**'} |")
    b = result["backbones"]
    lines += ["", "Measured peak: " + "; ".join(f"{k} thread(s): fp32 GEMM {p['fp32_gflops']} GFLOP/s, int8 GEMM {p['int8_gops']} GOP/s"
                                               for k, p in b["peak"].items()) + ".", "",
              "| engine | scale | width | threads | batch | ms/segment | segments/s | GFLOP/s | % of peak | x torch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in b["rows"]:
        lines.append(f"| {r['engine']} | {r['scale']} | {r['width']:g} | {r['threads']} | {r['batch']} | {r['ms_per_segment']:.2f} | {r['segments_per_s']:.2f} | "
                     f"{r['achieved_gflops']} | {100 * r['fraction_of_peak']:.1f}% | {r['speedup_vs_torch'] or ''} |")
    for title, block in (("full-width presets, random weights", result["pipeline"]["speed"]), ("trained default model, width 0.25", result["pipeline"].get("trained"))):
        if not block:
            continue
        lines += ["", f"Whole pipeline, {title} ({block['rows'][0]['songs']} mer4q test songs):", "",
                  "| pipeline | songs/s | x real time | p50 s/song | p95 s/song | GFLOP/s | x torch |", "|---|---|---|---|---|---|---|"]
        for r in block["rows"]:
            lines.append(f"| {r['pipeline']} | {r['songs_per_s']} | {r['x_realtime']} | {r['latency_p50_s']} | {r['latency_p95_s']} | {r['achieved_gflops']} | {r['speedup_vs_torch']} |")
        c = block["cold_start"]
        lines.append("")
        lines.append("Cold start (median s): " + ", ".join(f"{k} {v}" for k, v in c["median_s"].items()) + f" (ratio {c['ratio']}). Peak RSS of "
                     "`samplecnn infer`: " + ", ".join(f"{r['precision']} {r['peak_rss_mb']} MB" for r in block["peak_rss"]) + ". int8 top-5 agreement "
                     f"with fp32: {block['top5_agreement_vs_ort_fp32']['onnxruntime int8']['mean']}.")
    d = result["pipeline"].get("default_model")
    if d:
        lines += ["", "Installed default model (`samplecnn infer SONG`, no options: runtime/default_model with its heads): cold start "
                  + ", ".join(f"{k} {v} s" for k, v in d["cold_start"]["median_s"].items()) + f" (ratio {d['cold_start']['ratio']}); peak RSS "
                  + ", ".join(f"{r['precision']} {r['peak_rss_mb']} MB" for r in d["peak_rss"]) + "."]
    for p in result.get("profiles", []):
        lines += ["", "```", op_profile.format_profile(p), "```"]
    return "\n".join(lines) + "\n"


def export_agreement(bundle: Path) -> dict:
    """The int8 agreement export_bundle measured per scale (segment-level songs, held out)."""
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    return {s["name"]: {k: s["quantization"]["int8"].get(k) for k in ("top_k_agreement_mean", "top_k_agreement_min", "song_tag_score_max_abs_diff")}
            | {"evaluation_songs": len(s["quantization"]["int8"].get("evaluation_songs", []))} for s in manifest["scales"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=str(RESULTS), help="folder for bench.json and bench.png")
    parser.add_argument("--songs", type=int, default=8, help="mer4q test songs for the full-width pipeline comparison")
    parser.add_argument("--agreement-songs", type=int, default=16, help="mer4q test songs for the trained model (agreement, timing)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per backbone configuration")
    parser.add_argument("--rss-file", help="song for the peak-RSS run (default: the longest example)")
    parser.add_argument("--audio", help="folder or CSV of songs replacing mer4q (smoke tests)")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="cache of checkpoints, bundles and segments")
    parser.add_argument("--quick", action="store_true", help="smoke run: width 0.125, 3^9 only, tiny grid (numbers are meaningless)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
