"""Whole-pipeline profile of the runtime: real-time factor, decode vs inference time, and peak
RSS of `samplecnn infer` on a long file. Prints a table and saves JSON.

    python -m samplecnn.benchmarks.pipeline_profile --bundle B [--bundle B2] \
        [--precision fp32 --precision int8] [--batch-size 4 --batch-size 8 ...] \
        [--threads 2] [--decode-workers 1] [--minutes 5] [--repeat 3] [--long-file /tmp/long.mp3] \
        [--json benchmarks/results/pipeline_profile.json]

Audio: the real clips in examples/ (repeated until ``--minutes`` of audio). ``decode_s`` is a
separate decode + resample + segmenting pass over the same files (one thread), ``infer_s`` the
wall time the pipeline spent inside backend calls; on a machine with spare cores decoding
overlaps inference, so the total is less than their sum.

:func:`compare` (run by ``python -m samplecnn.benchmarks.suite`` / ``samplecnn bench``) puts
the onnxruntime pipelines next to a torch-eager pipeline on the same songs, each in its own
process: songs/s, real-time factor, p50/p95 latency per song, top-5 agreement of int8 with
fp32, cold start against a torch process, and peak RSS of ``samplecnn infer``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from samplecnn.runtime.audio import audio_info, iter_audio_blocks
from samplecnn.runtime.procinfo import peak_rss_mb
from samplecnn.runtime.streaming import StreamSegmenter, resampled_length
from samplecnn.runtime.tagger import Tagger, expand_inputs

from .common import EXAMPLES, SPREAD_FLAG, format_figure, paired_ratio, percentile, report_child, round_order, run_child, spread


def playlist(minutes: float) -> list[str]:
    clips = expand_inputs([str(EXAMPLES)])
    seconds = [audio_info(c).duration for c in clips]
    out, total = [], 0.0
    while total < minutes * 60:
        for clip, s in zip(clips, seconds):
            out.append(clip)
            total += s
    return out


def decode_only(paths: list[str], tagger: Tagger) -> float:
    """Seconds to decode, resample and segment ``paths`` on one thread (no inference)."""
    lengths = {s.name: s.segment_samples for s in tagger.bundle.scales}
    rate = tagger.bundle.sample_rate
    t0 = time.perf_counter()
    for path in paths:
        info = audio_info(path)
        segmenter = StreamSegmenter(lengths, resampled_length(info.frames, info.sample_rate, rate))
        for block in iter_audio_blocks(path, rate):
            for _ in segmenter.push(block):
                pass
        for _ in segmenter.finish():
            pass
    return time.perf_counter() - t0


def profile(bundle: str, precision: str, batch_size: int | None, threads: int | None, workers: int, paths: list[str], repeat: int) -> dict:
    """Best of ``repeat`` timed passes (the machine is shared: the minimum is the least disturbed)."""
    with Tagger(bundle, precision=precision, batch_size=batch_size, threads=threads, decode_workers=workers) as tagger:
        list(tagger.tag(paths[:1]))  # warm-up: session arenas, first-call allocations
        passes = []
        for _ in range(repeat):
            tagger.engine.seconds_inferring = 0.0
            t0 = time.perf_counter()
            audio = sum(r.duration for r in tagger.tag(paths) if r.ok)
            passes.append((time.perf_counter() - t0, tagger.engine.seconds_inferring))
        wall, infer = min(passes)
        decode = min(decode_only(paths, tagger) for _ in range(repeat))
        return {
            "bundle": Path(bundle).name, "precision": precision, "batch_size": batch_size or "auto:" + "/".join(map(str, tagger.batch_sizes.values())), "threads": tagger.threads,
            "decode_workers": workers, "songs": len(paths), "audio_s": round(audio, 1), "wall_s": round(wall, 2),
            "x_realtime": round(audio / wall, 1), "infer_s": round(infer, 2), "decode_s": round(decode, 2),
            "decode_share": round(decode / (decode + infer), 3), "passes_wall_s": [round(w, 2) for w, _ in passes],
        }


# The child reports its own VmHWM at exit: ru_maxrss of a child also counts the parent's pages
# it was forked with before exec (this benchmark process holds the sessions above).
_RUN_CLI_AND_REPORT_HWM = """
import atexit, runpy, sys
def report():
    from samplecnn.runtime.procinfo import peak_rss_mb
    sys.stderr.write(f"VmHWM_MB={peak_rss_mb()}\\n")
atexit.register(report)
sys.argv = ["samplecnn"] + sys.argv[1:]
runpy.run_module("samplecnn.cli", run_name="__main__")
"""


def peak_rss(bundle: str | None, precision: str, long_file: str) -> dict:
    """Run `samplecnn infer` (default settings; bundle None = the installed default model) in a
    fresh process; its peak RSS (VmHWM) in MB."""
    chosen = ["--bundle", bundle] if bundle else []
    command = [sys.executable, "-c", _RUN_CLI_AND_REPORT_HWM, "infer", *chosen, "--precision", precision, "--no-progress", long_file]
    t0 = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"samplecnn infer failed:\n{done.stderr}")
    peak_mb = float(done.stderr.rsplit("VmHWM_MB=", 1)[1].split()[0])
    audio = audio_info(long_file).duration
    return {"bundle": Path(bundle).name if bundle else "default model", "precision": precision, "file": long_file, "audio_h": round(audio / 3600, 4),
            "wall_s": round(wall, 1), "x_realtime": round(audio / wall, 1), "peak_rss_mb": round(peak_mb, 1)}


# --- side by side: onnxruntime pipeline vs a torch-eager pipeline, cold start, peak RSS ---------
#
# Each engine runs in its own process (common.run_child). The torch pipeline does what a user
# without the runtime would write: decode the whole song with the same decoder, cut the same
# segments, run the unfolded SampleCNN of each checkpoint (torch.inference_mode, torch's
# default threads), average each level and sigmoid(logits) over segments, mean over scales.

TORCH_BATCH = 1  # segments per torch call: torch eager is fastest at batch 1 on this CPU (benchmarks/backbones.py), so the baseline gets its best


def _top5(scores: np.ndarray, labels) -> list[str]:
    return [labels[i] for i in np.argsort(-scores)[:5]]


def _ort_child(spec: dict) -> dict:
    """One runtime pipeline (any backend: ``spec["backend"]``, default ort) over the songs."""
    paths, rows = spec["paths"], {}
    with Tagger(spec["bundle"], backend=spec.get("backend", "ort"), precision=spec["precision"]) as tagger:  # default batch and threads
        list(tagger.tag(paths[:1]))  # warm-up
        passes = []
        for _ in range(spec["repeat"]):
            t0 = time.perf_counter()
            results = list(tagger.tag(paths))
            passes.append(time.perf_counter() - t0)
        latencies = []
        for path in paths if spec.get("latencies", True) else []:
            t0 = time.perf_counter()
            (result,) = tagger.tag([path])
            latencies.append(time.perf_counter() - t0)
        latencies = latencies or [min(passes) / len(paths)] * len(paths)
        head = next(iter(results[0].scores))
        rows = {r.path: [label for label, _ in r.top[head]] for r in results if r.ok}
        segments = {s: sum(r.n_segments.get(s, 0) for r in results if r.ok) for s in tagger.batch_sizes}
        audio = sum(r.duration for r in results if r.ok)
        described = tagger.description
    return {"wall_s": min(passes), "passes_wall_s": passes, "latencies_s": latencies, "audio_s": audio, "top5": rows, "segments": segments,
            "failed": [r.path for r in results if not r.ok], "description": described, "peak_rss_mb": round(peak_rss_mb(), 1)}


def _torch_child(spec: dict) -> dict:
    import torch

    from samplecnn.runtime.audio import load_audio
    from samplecnn.runtime.segments import cut_segments
    from samplecnn.trainer.checkpoint import load_checkpoint

    checkpoints = [load_checkpoint(p) for p in spec["checkpoints"]]
    models = [c.build_model() for c in checkpoints]
    labels, rate, batch = checkpoints[0].labels, checkpoints[0].config.sample_rate, spec["batch"]

    counts: dict[str, int] = {}

    def tag(path: str) -> tuple[np.ndarray, float, dict]:
        audio = load_audio(path, rate)
        probs, levels = [], {}
        with torch.inference_mode():
            for model in models:
                segments = torch.from_numpy(cut_segments(audio, model.config.segment_samples))
                counts[model.config.name] = counts.get(model.config.name, 0) + len(segments)
                sums: dict[str, torch.Tensor] = {}
                for start in range(0, len(segments), batch):
                    for name, value in model(segments[start : start + batch]).items():
                        value = torch.sigmoid(value) if name == "logits" else value
                        sums[name] = sums.get(name, 0) + value.sum(dim=0)
                means = {k: (v / len(segments)).numpy() for k, v in sums.items()}
                probs.append(means.pop("logits"))
                levels[model.config.name] = means
        return np.mean(probs, axis=0), len(audio) / rate, levels

    tag(spec["paths"][0])  # warm-up
    latencies, top5, audio = [], {}, 0.0
    for _ in range(spec["repeat"]):
        latencies, top5, audio = [], {}, 0.0
        counts.clear()
        for path in spec["paths"]:
            t0 = time.perf_counter()
            scores, seconds, _ = tag(path)
            latencies.append(time.perf_counter() - t0)
            top5[path], audio = _top5(scores, labels), audio + seconds
    return {"wall_s": sum(latencies), "passes_wall_s": [sum(latencies)], "latencies_s": latencies, "audio_s": audio, "top5": top5, "segments": dict(counts),
            "failed": [], "description": f"torch {torch.__version__} eager fp32, {torch.get_num_threads()} threads, batch {batch}",
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def child(spec: dict) -> dict:
    return _torch_child(spec) if spec["engine"] == "torch" else _ort_child(spec)


def pipeline_row(name: str, result: dict, flops: dict[str, int]) -> dict:
    """songs/s, x real time, p50/p95 per-song latency and backbone GFLOP/s of one engine's child result."""
    songs = len(result["latencies_s"])
    total_flops = sum(flops[s] * n for s, n in result["segments"].items())
    return {"segments": result["segments"], "achieved_gflops": round(total_flops / result["wall_s"] / 1e9, 1),"pipeline": name, "description": result["description"], "songs": songs, "audio_s": round(result["audio_s"], 1),
            "wall_s": round(result["wall_s"], 2), "songs_per_s": round(songs / result["wall_s"], 3),
            "x_realtime": round(result["audio_s"] / result["wall_s"], 1),
            "latency_p50_s": round(percentile(result["latencies_s"], 50), 3), "latency_p95_s": round(percentile(result["latencies_s"], 95), 3),
            "child_peak_rss_mb": result["peak_rss_mb"], "failed": result["failed"]}


def top5_agreement(reference: dict, candidate: dict) -> dict:
    """Mean and min over songs of |top-5 of reference ∩ top-5 of candidate| / 5."""
    values = [len(set(reference[p]) & set(candidate[p])) / 5 for p in reference if p in candidate]
    return {"mean": round(float(np.mean(values)), 4), "min": round(float(np.min(values)), 4), "songs": len(values)}


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("samplecnn")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "samplecnn.cli"]


_TORCH_COLD_START = """
import sys, numpy as np, torch
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.segments import cut_segments
from samplecnn.trainer.checkpoint import load_checkpoint
BATCH = int(sys.argv[1])  # torch at its best batch (TORCH_BATCH), as in the pipeline table
song, checkpoints = sys.argv[2], [load_checkpoint(p) for p in sys.argv[3:]]
models = [c.build_model() for c in checkpoints]
audio, probs = load_audio(song, checkpoints[0].config.sample_rate), []
with torch.inference_mode():
    for m in models:
        segments = torch.from_numpy(cut_segments(audio, m.config.segment_samples))
        probs.append(torch.cat([torch.sigmoid(m(segments[i:i + BATCH])["logits"]) for i in range(0, len(segments), BATCH)]).mean(0).numpy())
scores = np.mean(probs, axis=0)
print(song, [checkpoints[0].labels[i] for i in np.argsort(-scores)[:5]])
"""


COLD_WARM, COLD_FIRST, COLD_TORCH = "samplecnn infer (onnxruntime)", "samplecnn infer, first start (empty graph cache)", "torch process"


def cold_start(bundle: str | None, checkpoints: list[str], song: str, repeat: int = 3) -> dict:
    """Process start to first result (one song, then exit): `samplecnn infer` vs a torch process.

    ``repeat`` rounds after one untimed round (so every process finds the files in the page
    cache and `samplecnn infer` finds its optimised graphs in the graph cache, as on every start
    after a machine's first); each round runs the three commands one after the other (reversed
    every other round), and the ratios are taken within a round (:func:`cold_start_summary`).
    The first start with an empty graph cache (onnxruntime optimises every graph, then stores
    it) is its own row. The graph caches are private to the run. ``bundle`` None: `samplecnn
    infer` with the installed default model (no --bundle)."""
    import tempfile

    chosen = ["--bundle", bundle] if bundle else []
    infer = _cli() + ["infer", *chosen, "--no-progress", song]
    commands = {COLD_WARM: infer, COLD_FIRST: infer,
                COLD_TORCH: [sys.executable, "-c", _TORCH_COLD_START, str(TORCH_BATCH), song, *checkpoints]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory(prefix="samplecnn-cold-") as caches:
        for attempt in range(repeat + 1):
            for name in round_order(list(commands), attempt):
                folder = os.path.join(caches, "warm" if name == COLD_WARM else f"empty-{attempt}")
                env = {**os.environ, "SAMPLECNN_ONNXRUNTIME_CACHE": folder}
                t0 = time.perf_counter()
                done = subprocess.run(commands[name], capture_output=True, text=True, env=env)
                elapsed = time.perf_counter() - t0
                if done.returncode != 0:
                    raise RuntimeError(f"cold start of {name} failed:\n{done.stderr[-2000:]}")
                if attempt:
                    times[name].append(elapsed)
    return {"song": song, **cold_start_summary(times)}


def cold_start_summary(times: dict[str, list[float]]) -> dict:
    """Medians of each command's runs, and the per-round ratios samplecnn / torch (median, spread)."""
    medians = {name: round(float(np.median(t)), 3) for name, t in times.items()}
    warm = paired_ratio(times[COLD_WARM], times[COLD_TORCH])
    first = paired_ratio(times[COLD_FIRST], times[COLD_TORCH])
    return {"median_s": medians, "runs_s": times, "ratio": warm["median"], "ratio_rounds": warm,
            "ratio_first_start": first["median"], "ratio_first_start_rounds": first}


def runtime_engines(precisions=("fp32", "int8")) -> dict[str, dict]:
    """{pipeline name: child spec} of the runtime pipelines this machine can run: onnxruntime per
    precision, and OpenVINO fp32 / bf16 (native-bf16 CPUs only) / int8 when it is installed."""
    import importlib.util

    from samplecnn.runtime.backends.openvino import NATIVE_BF16_FLAGS, cpu_flags

    engines = {f"onnxruntime {p}": {"engine": "ort", "backend": "ort", "precision": p} for p in precisions}
    if importlib.util.find_spec("openvino") is not None:
        native_bf16 = any(f in cpu_flags() for f in NATIVE_BF16_FLAGS)
        for p in ("fp32", "bf16", "int8"):
            if (p == "bf16" and native_bf16) or p in precisions:
                engines[f"openvino {p}"] = {"engine": "ort", "backend": "openvino", "precision": p}
    return engines


# Engine pairs whose songs/s ratio each block reports (per round, then the median): the issue's
# OpenVINO-vs-onnxruntime goals, and int8 against fp32 on onnxruntime.
PAIRS = (("openvino bf16", "onnxruntime fp32"), ("openvino int8", "onnxruntime int8"), ("openvino fp32", "onnxruntime fp32"),
         ("onnxruntime int8", "onnxruntime fp32"))
BASELINES = {"vs_torch": "torch eager fp32", "vs_musicnn": "musicnn"}


def compare(bundle: str, checkpoints: list[str] | None, paths: list[str], *, rounds: int = 3, precisions=("fp32", "int8"),
            rss_file: str | None = None, cold_repeat: int = 3, musicnn: bool = True, log=print) -> dict:
    """Runtime pipelines (default settings), torch eager (when ``checkpoints``) and musicnn (when
    its environment exists) on the same songs, in interleaved rounds: every engine once per round,
    each in a fresh process, the order reversed every other round (A B C, C B A, ...). Every
    ratio is taken within a round, then the median over rounds with its spread
    (:func:`summarise`); the raw per-round wall times stay in each row."""
    from . import musicnn_speed

    engines = {name: {**spec, "bundle": bundle, "paths": paths, "repeat": 1} for name, spec in runtime_engines(precisions).items()}
    if checkpoints:
        engines["torch eager fp32"] = {"engine": "torch", "checkpoints": checkpoints, "paths": paths, "repeat": 1, "batch": TORCH_BATCH}
    absent = {}
    results: dict[str, list[dict]] = {name: [] for name in engines}
    for r in range(rounds):
        for name in round_order(list(engines) + (["musicnn"] if musicnn else []), r):
            if name != "musicnn":
                results[name].append(run_child("samplecnn.benchmarks.pipeline_profile", {**engines[name], "latencies": r == 0}))
            elif "musicnn" not in absent:
                got = musicnn_speed.run_round(paths)
                if "absent" in got:
                    absent["musicnn"] = got["absent"]
                else:
                    got.update(segments={}, failed=[], peak_rss_mb=None, passes_wall_s=[got["wall_s"]])
                    results.setdefault("musicnn", []).append(got)
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]['wall_s']:.1f} s" for n, v in results.items() if v))
    from samplecnn.trainer.model import BackboneConfig

    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    flops = {s["name"]: BackboneConfig.from_dict(s["config"]).flops_per_segment() for s in manifest["scales"]}
    rows, ratios = summarise(results, flops)
    reference = results.get("onnxruntime fp32", [{}])[0].get("top5")
    out = {"bundle": bundle, "checkpoints": checkpoints, "songs": paths, "rounds": rounds, "rows": rows, "ratios": ratios, "absent": absent,
           "flagged": [r["pipeline"] for r in rows if r["x_realtime_rounds"]["flagged"]],
           "top5_agreement_vs_ort_fp32": {name: top5_agreement(reference, r[0]["top5"]) for name, r in results.items()
                                          if reference and name not in ("onnxruntime fp32", "musicnn")}}
    if checkpoints:
        out["cold_start"] = cold_start(bundle, checkpoints, paths[0], repeat=cold_repeat)
        log(f"  cold start: {out['cold_start']['median_s']}")
    out["peak_rss"] = [peak_rss(bundle, p, rss_file or paths[0]) for p in precisions]
    return out


def summarise(results: dict[str, list[dict]], flops: dict[str, int]) -> tuple[list[dict], dict[str, dict]]:
    """(rows, paired ratios) of the per-round results {pipeline: [child result of round 0, 1, ...]}.

    Every pipeline ran the same songs in each round, so a songs/s ratio of one round is the
    inverse ratio of its wall times. A row: the first round's details, wall time / songs/s / x
    real time at the median round, ``x_realtime_rounds`` (median, spread, per round), the raw
    ``wall_s_rounds``, and ``vs_torch`` / ``vs_musicnn`` (its speed over the baseline's, per
    round). ``ratios``: {"A / B": songs/s of A over B, per round} for :data:`PAIRS`.
    """
    rows = []
    walls = {name: [x["wall_s"] for x in per_round] for name, per_round in results.items()}
    for name, per_round in results.items():
        row = pipeline_row(name, per_round[0], flops if name != "musicnn" else {})
        wall = float(np.median(walls[name]))
        row["wall_s"] = round(wall, 2)
        row["songs_per_s"] = round(row["songs"] / wall, 3)
        row["x_realtime"] = round(row["audio_s"] / wall, 1)
        if name != "musicnn":
            row["achieved_gflops"] = round(sum(flops[s] * n for s, n in per_round[0]["segments"].items()) / wall / 1e9, 1)
        row["wall_s_rounds"] = [round(w, 3) for w in walls[name]]
        row["x_realtime_rounds"] = spread([x["audio_s"] / x["wall_s"] for x in per_round])
        for key, base in BASELINES.items():
            if base in walls:
                ratio = paired_ratio(walls[base], walls[name])
                if ratio:
                    row[key] = ratio
        row["speedup_vs_torch"] = row.get("vs_torch", {}).get("median")
        rows.append(row)
    ratios = {}
    for a, b in PAIRS:
        if a in walls and b in walls:
            ratio = paired_ratio(walls[b], walls[a])
            if ratio:
                ratios[f"{a} / {b}"] = ratio
    return rows, ratios


def format_compare(result: dict, title: str) -> str:
    lines = [f"{title} (median of {result.get('rounds', 1)} interleaved rounds, ±spread, ! = spread > {100 * SPREAD_FLAG:.0f}%)",
             f"{'pipeline':<20}{'songs':>6}{'audio s':>9}{'wall s':>8}{'songs/s':>9}{'x RT':>14}{'p50 s':>7}{'GFLOP/s':>8}{'x torch':>14}{'x musicnn':>14}"]
    for r in result["rows"]:
        rt = format_figure(r.get("x_realtime_rounds"), missing="-").split("±")[-1]
        lines.append(f"{r['pipeline']:<20}{r['songs']:>6}{r['audio_s']:>9}{r['wall_s']:>8}{r['songs_per_s']:>9}{str(r['x_realtime']) + '±' + rt:>14}"
                     f"{r['latency_p50_s']:>7}{r['achieved_gflops']:>8}{format_figure(r.get('vs_torch'), missing='-'):>14}{format_figure(r.get('vs_musicnn'), missing='-'):>14}")
    for pair, v in result.get("ratios", {}).items():
        lines.append(f"songs/s {pair} (per round, median): {format_figure(v)}")
    for name, why in result.get("absent", {}).items():
        lines.append(f"{name}: absent ({why})")
    for name, a in result["top5_agreement_vs_ort_fp32"].items():
        lines.append(f"top-5 agreement of {name} with onnxruntime fp32: mean {a['mean']:.3f}, worst song {a['min']:.2f} ({a['songs']} songs)")
    c = result.get("cold_start")
    if c:
        lines.append("cold start (one song, process start to exit): " + ", ".join(f"{k} {v} s" for k, v in c["median_s"].items())
                     + f"; ratio {c['ratio']}" + (f" ±{100 * c['ratio_rounds']['spread']:.0f}% (per round)" if c.get("ratio_rounds") else ""))
    for r in result["peak_rss"]:
        lines.append(f"peak RSS of samplecnn infer ({r['precision']}, default settings, {r['audio_h'] * 60:.1f} min file): {r['peak_rss_mb']} MB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bundle", action="append")
    parser.add_argument("--precision", action="append")
    parser.add_argument("--batch-size", type=int, action="append", help="0 = the default (memory budget)")
    parser.add_argument("--threads", type=int, action="append")
    parser.add_argument("--decode-workers", type=int, action="append")
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of audio per configuration (0: only the peak-RSS runs)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per configuration (best is reported)")
    parser.add_argument("--long-file", help="measure peak RSS of `samplecnn infer` on this file")
    parser.add_argument("--json", default="benchmarks/results/pipeline_profile.json")
    args = parser.parse_args()
    if args.child:
        report_child(child(json.loads(args.child)))
        return
    if not args.bundle:
        parser.error("--bundle is required")
    paths = playlist(args.minutes) if args.minutes > 0 else []
    rows = []
    for bundle in args.bundle if paths else []:
        for precision in args.precision or ["fp32"]:
            for batch in [b or None for b in args.batch_size or [0]]:
                for threads in args.threads or [None]:
                    for workers in args.decode_workers or [1]:
                        rows.append(profile(bundle, precision, batch, threads, workers, paths, args.repeat))
                        print("  ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    rss = [peak_rss(b, p, args.long_file) for b in args.bundle for p in (args.precision or ["fp32"])] if args.long_file else []
    header = f"{'bundle':<14}{'prec':<6}{'batch':>10}{'thr':>4}{'dec':>4}{'audio s':>9}{'wall s':>8}{'x RT':>7}{'infer s':>9}{'decode s':>9}{'decode%':>8}"
    print("\n" + header)
    for r in rows:
        print(f"{r['bundle']:<14}{r['precision']:<6}{r['batch_size']:>10}{r['threads']:>4}{r['decode_workers']:>4}{r['audio_s']:>9}"
              f"{r['wall_s']:>8}{r['x_realtime']:>7}{r['infer_s']:>9}{r['decode_s']:>9}{100 * r['decode_share']:>7.1f}%")
    for r in rss:
        print(f"peak RSS of samplecnn infer ({r['bundle']}, {r['precision']}) on {r['audio_h']} h: {r['peak_rss_mb']} MB, {r['x_realtime']}x real time")
    machine = {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": machine, "pipeline": rows, "peak_rss": rss}, indent=2) + "\n")
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
