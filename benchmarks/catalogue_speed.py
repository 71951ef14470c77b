"""Throughput of ``samplecnn catalogue`` (a Ray Data job) vs ``samplecnn infer`` on the same songs.

    python -m samplecnn.benchmarks.catalogue_speed --repeats 10      # 4 examples x 10 = 40 songs

Each runner is its own ``samplecnn`` process on the same song list (symlinks to the example
songs under distinct names, so every song is tagged, none is cached): ``infer`` with the
default threads and with as many threads as the Ray pool uses in all (equal cores), and
``catalogue`` with each pool size that fits the machine (actors x 1 thread <= CPUs - 1).
Reported per runner: wall seconds of the whole process (a catalogue run includes starting a
local Ray), of the tagging itself (the job's own clock, from catalogue.json), songs/s and x
real time on the tagging clock, the time to the first result, and the peak RSS per actor.
Prints a table and saves ``benchmarks/results/catalogue_speed.json`` with the machine record.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import EXAMPLES, RESULTS, machine_info

SUMMARY = re.compile(r"tagged (\d+) of (\d+) songs.*?: ([\d.]+) h of audio in (\d+):(\d+):(\d+) \(([\d.]+)x real time\)")


def _song_folder(source: Path, repeats: int, root: Path) -> Path:
    folder = root / "songs"
    folder.mkdir()
    for i in range(repeats):
        for song in sorted(source.glob("*.ogg")):
            (folder / f"{i:03d}_{song.name}").symlink_to(song.resolve())
    return folder


def _run(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "samplecnn.cli", *args], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"samplecnn {' '.join(args[:1])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, done.stderr


def run_infer(folder: Path, root: Path, threads: int | None, max_segments: int | None) -> dict:
    out = root / f"infer-{threads or 'default'}.jsonl"
    args = ["infer", str(folder), "--out", str(out), "--no-progress"] + (["--threads", str(threads)] if threads else [])
    args += ["--max-segments", str(max_segments)] if max_segments else []
    wall, log = _run(args)
    match = SUMMARY.search(log)
    songs, hours = int(match.group(1)), float(match.group(3))
    tagging = int(match.group(4)) * 3600 + int(match.group(5)) * 60 + int(match.group(6))
    return {"runner": f"infer --threads {threads or 'default'}", "songs": songs, "audio_hours": hours, "process_wall_s": round(wall, 2),
            "tagging_s": float(tagging), "songs_per_s": round(songs / max(tagging, 1), 3), "x_real_time": round(hours * 3600 / max(tagging, 1), 1),
            "first_result_s": None, "peak_rss_mb_per_actor": None, "note": "tagging clock: infer's summary line (whole seconds)"}  # fmt: skip


def run_catalogue(folder: Path, root: Path, actors: int, max_segments: int | None) -> dict:
    out = root / f"catalogue-{actors}"
    args = ["catalogue", str(folder), "--out", str(out), "--actors", str(actors), "--threads", "1", "--no-progress"]
    args += ["--max-segments", str(max_segments)] if max_segments else []
    wall, _ = _run(args)
    last = json.loads((out / "catalogue.json").read_text())["last_run"]
    tagging = last["wall_seconds"]
    return {"runner": f"catalogue {actors} actor(s) x 1 thread", "songs": last["songs"], "audio_hours": round(last["audio_seconds"] / 3600, 4),
            "process_wall_s": round(wall, 2), "tagging_s": tagging, "songs_per_s": round(last["songs"] / tagging, 3),
            "x_real_time": round(last["audio_seconds"] / tagging, 1), "first_result_s": last["first_result_seconds"],
            "peak_rss_mb_per_actor": last["peak_rss_mb_per_actor"], "note": "rates on the job's tagging clock (after Ray start)"}  # fmt: skip


def format_table(rows: list[dict]) -> str:
    head = f"{'runner':<34} {'songs':>5} {'audio h':>7} {'process s':>9} {'tagging s':>9} {'songs/s':>7} {'x RT':>6} {'1st s':>6}  peak RSS/actor MB"
    lines = [head, "-" * len(head)]
    for r in rows:
        tagging = "" if r["tagging_s"] is None else f"{r['tagging_s']:.1f}"
        first = "" if r["first_result_s"] is None else f"{r['first_result_s']:.1f}"
        rss = "" if not r["peak_rss_mb_per_actor"] else ", ".join(f"{v:.0f}" for v in r["peak_rss_mb_per_actor"])
        lines.append(f"{r['runner']:<34} {r['songs']:>5} {r['audio_hours']:>7.3f} {r['process_wall_s']:>9.1f} {tagging:>9} "
                     f"{r['songs_per_s']:>7.2f} {r['x_real_time']:>6.1f} {first:>6}  {rss}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", default=str(EXAMPLES), help="Folder of songs (default: examples/).")
    parser.add_argument("--repeats", type=int, default=10, help="Copies of each song (4 examples x 10 = 40 songs).")
    parser.add_argument("--max-segments", type=int, default=None, help="Segments per song and scale (smoke runs).")
    parser.add_argument("--label", default="", help="Note saved with the figures, e.g. 'machine under load'.")
    parser.add_argument("--out", default=str(RESULTS / "catalogue_speed.json"))
    args = parser.parse_args(argv)
    cpus = len(os.sched_getaffinity(0))
    pools = [a for a in (1, 2) if a <= cpus - 1] or [1]
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="samplecnn-catbench-") as tmp:
        root = Path(tmp)
        folder = _song_folder(Path(args.songs), args.repeats, root)
        rows = [run_infer(folder, root, None, args.max_segments)]
        rows += [run_infer(folder, root, a, args.max_segments) for a in pools]
        rows += [run_catalogue(folder, root, a, args.max_segments) for a in pools]
    for a in pools:
        base = next(r for r in rows if r["runner"] == f"infer --threads {a}")
        ray = next(r for r in rows if r["runner"].startswith(f"catalogue {a} "))
        ray["tagging_s_vs_infer_equal_cores"] = round(ray["tagging_s"] / max(base["tagging_s"], 1), 3)
        ray["process_s_vs_infer_equal_cores"] = round(ray["process_wall_s"] / base["process_wall_s"], 3)
    table = format_table(rows)
    print(table)
    for r in rows:
        if "tagging_s_vs_infer_equal_cores" in r:
            print(f"{r['runner']} vs infer on equal cores: tagging time x{r['tagging_s_vs_infer_equal_cores']:.2f}, "
                  f"whole command x{r['process_s_vs_infer_equal_cores']:.2f} (includes starting Ray and the actors)")  # fmt: skip
    record = {"label": args.label, "machine": machine, "cpus": cpus, "repeats": args.repeats, "max_segments": args.max_segments, "rows": rows, "table": table}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
