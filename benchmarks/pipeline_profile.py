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

from samplecnn.runtime.audio import audio_info, iter_audio_blocks
from samplecnn.runtime.streaming import StreamSegmenter, resampled_length
from samplecnn.runtime.tagger import Tagger, expand_inputs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("VmHWM_KB=" + line.split()[1] + "\\n")
atexit.register(report)
sys.argv = ["samplecnn"] + sys.argv[1:]
runpy.run_module("samplecnn.cli", run_name="__main__")
"""


def peak_rss(bundle: str, precision: str, long_file: str) -> dict:
    """Run `samplecnn infer` (default settings) in a fresh process; its peak RSS (VmHWM) in MB."""
    command = [sys.executable, "-c", _RUN_CLI_AND_REPORT_HWM, "infer", "--bundle", bundle, "--precision", precision, "--no-progress", long_file]
    t0 = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"samplecnn infer failed:\n{done.stderr}")
    maxrss_kb = int(done.stderr.rsplit("VmHWM_KB=", 1)[1].split()[0])
    audio = audio_info(long_file).duration
    return {"bundle": Path(bundle).name, "precision": precision, "file": long_file, "audio_h": round(audio / 3600, 2),
            "wall_s": round(wall, 1), "x_realtime": round(audio / wall, 1), "peak_rss_mb": round(maxrss_kb / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", required=True)
    parser.add_argument("--precision", action="append")
    parser.add_argument("--batch-size", type=int, action="append", help="0 = the default (memory budget)")
    parser.add_argument("--threads", type=int, action="append")
    parser.add_argument("--decode-workers", type=int, action="append")
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of audio per configuration (0: only the peak-RSS runs)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per configuration (best is reported)")
    parser.add_argument("--long-file", help="measure peak RSS of `samplecnn infer` on this file")
    parser.add_argument("--json", default="benchmarks/results/pipeline_profile.json")
    args = parser.parse_args()
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
