"""Throughput of ``samplecnn catalogue`` (a Ray Data job) vs ``samplecnn infer`` on the same songs.

    python -m samplecnn.benchmarks.catalogue_speed                               # 4 examples x 10 = 40 songs
    python -m samplecnn.benchmarks.catalogue_speed --songs ../shared/data/mer4q --count 48   # 48 distinct songs

One run measures, on one song list (symlinks under distinct names, so every song is tagged):
``infer --threads N`` and the Ray job with N actors of one onnxruntime thread each, for N = 1
and 2 (equal cores), each its own ``samplecnn`` process, in the order infer 1, Ray 1, infer 2,
Ray 2 (each pair side by side in time). A 2-actor pool on 2 CPUs reserves 0.5 Ray CPU per actor
(``--actor-cpus``) so that one CPU stays free for Ray Data (ray-project/ray#44687); with more
CPUs each actor reserves its one thread's CPU.

Per runner: the wall seconds of the whole command (a Ray job includes starting a local Ray and
its actors) and of the tagging (infer's summary clock, whole seconds; the job's own clock from
``catalogue.json``), songs/s and x real time on the tagging clock, the time to the first result
from the command's start (infer: the first line of its --out file; Ray: the job's first result),
and the peak RSS (infer: the process; Ray: per actor, from the actors). The Ray overhead at
equal cores is Ray's time / infer's time - 1 on both clocks (goal: within 15%). Prints a table,
saves ``benchmarks/results/catalogue_speed.json`` (``--out`` to write elsewhere, e.g. smoke
runs); ``python -m samplecnn.benchmarks.readme_tables`` puts :func:`markdown` into the README.
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
AUDIO = (".ogg", ".mp3", ".wav", ".flac", ".m4a", ".opus")
GOAL = 0.15  # Ray overhead at equal cores


def song_folder(source: Path, count: int, root: Path) -> tuple[Path, int]:
    """``count`` symlinks in ``root/songs`` to the audio files under ``source`` (sorted by file
    name, so sub-folders mix), repeating them under new names when there are fewer; returns
    the folder and the number of distinct songs."""
    found = sorted((p for p in source.rglob("*") if p.suffix.lower() in AUDIO and p.is_file()), key=lambda p: (p.name, str(p)))
    if not found:
        raise SystemExit(f"--songs {source}: no audio files ({', '.join(AUDIO)}) in it; pass a folder of songs")
    folder = root / "songs"
    folder.mkdir()
    for i in range(count):
        song = found[i % len(found)]
        (folder / f"{i:04d}_{song.name}").symlink_to(song.resolve())
    return folder, min(count, len(found))


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen, float, float]:
    stream = open(log, "w")
    started, unix = time.perf_counter(), time.time()
    proc = subprocess.Popen([sys.executable, "-m", "samplecnn.cli", *args], stdout=subprocess.DEVNULL, stderr=stream)
    stream.close()
    return proc, started, unix


def _finish(proc: subprocess.Popen, started: float, log: Path, args: list[str], first_line: Path | None = None) -> tuple[float, float, float | None, str]:
    """Wait for ``proc``: (wall s, peak RSS MB of the process, s to the first line of ``first_line``, stderr)."""
    first = None
    while True:
        if first is None and first_line is not None and first_line.is_file() and first_line.stat().st_size:
            first = time.perf_counter() - started
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"samplecnn {' '.join(args)} failed ({proc.returncode}): {text[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, first, text


def run_infer(folder: Path, root: Path, threads: int, max_segments: int | None) -> dict:
    out = root / f"infer-{threads}.jsonl"
    args = ["infer", str(folder), "--out", str(out), "--no-progress", "--threads", str(threads)]
    args += ["--max-segments", str(max_segments)] if max_segments else []
    log = root / f"infer-{threads}.log"
    proc, started, _ = _start(args, log)
    wall, rss, first, text = _finish(proc, started, log, args, first_line=out)
    match = SUMMARY.search(text)
    if not match:
        raise RuntimeError(f"no summary line in the output of samplecnn {' '.join(args)}: {text[-1000:]}")
    songs, hours = int(match.group(1)), float(match.group(3))
    tagging = int(match.group(4)) * 3600 + int(match.group(5)) * 60 + int(match.group(6))
    return {"runner": f"infer --threads {threads}", "kind": "infer", "cores": threads, "songs": songs, "audio_hours": round(hours, 4),
            "command_s": round(wall, 2), "tagging_s": float(tagging), "songs_per_s": round(songs / max(tagging, 1), 3),
            "x_real_time": round(hours * 3600 / max(tagging, 1), 1), "first_result_s": None if first is None else round(first, 2),
            "first_result_job_s": None, "peak_rss_mb": [round(rss, 1)], "nodes": None, "actor_cpus": None,
            "note": "tagging clock: infer's summary line (whole seconds); peak RSS: the infer process"}  # fmt: skip


def run_catalogue(folder: Path, root: Path, actors: int, actor_cpus: float, max_segments: int | None) -> dict:
    out = root / f"catalogue-{actors}"
    args = ["catalogue", str(folder), "--out", str(out), "--actors", str(actors), "--threads", "1",
            "--actor-cpus", f"{actor_cpus:g}", "--no-progress"]  # fmt: skip
    args += ["--max-segments", str(max_segments)] if max_segments else []
    log = root / f"catalogue-{actors}.log"
    proc, started, unix = _start(args, log)
    wall, _, _, _ = _finish(proc, started, log, args)
    last = json.loads((out / "catalogue.json").read_text())["last_run"]
    tagging = last["wall_seconds"]
    return {"runner": f"catalogue {actors} actor(s) x 1 thread", "kind": "catalogue", "cores": actors, "songs": last["songs"],
            "audio_hours": round(last["audio_seconds"] / 3600, 4), "command_s": round(wall, 2), "tagging_s": tagging,
            "songs_per_s": round(last["songs"] / tagging, 3), "x_real_time": round(last["audio_seconds"] / tagging, 1),
            "first_result_s": round(last["started_unix"] - unix + last["first_result_seconds"], 2),
            "first_result_job_s": last["first_result_seconds"], "peak_rss_mb": last["peak_rss_mb_per_actor"],
            "nodes": len({a["node_id"] for a in last["actors_seen"]}), "actor_cpus": last["actor_cpus"],
            "note": "tagging clock: the job's own (Ray Data execution, actor start-up included, Ray start not); peak RSS per actor"}  # fmt: skip


def compare(rows: list[dict]) -> list[dict]:
    """Ray's time / infer's time - 1 at equal cores, on the whole command and on the tagging clocks."""
    out = []
    for ray in (r for r in rows if r["kind"] == "catalogue"):
        base = next((r for r in rows if r["kind"] == "infer" and r["cores"] == ray["cores"]), None)
        if base is None:
            continue
        command = ray["command_s"] / base["command_s"] - 1
        tagging = ray["tagging_s"] / max(base["tagging_s"], 1) - 1
        out.append({"cores": ray["cores"], "ray": ray["runner"], "infer": base["runner"], "command_overhead": round(command, 3),
                    "tagging_overhead": round(tagging, 3), "within_goal_command": command <= GOAL, "within_goal_tagging": tagging <= GOAL})  # fmt: skip
    return out


def _cell(value, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def format_table(rows: list[dict]) -> str:
    head = f"{'runner':<32} {'songs':>5} {'audio h':>7} {'command s':>9} {'tagging s':>9} {'songs/s':>7} {'x RT':>6} {'1st s':>6}  peak RSS MB"
    lines = [head, "-" * len(head)]
    for r in rows:
        rss = ", ".join(f"{v:.0f}" for v in r["peak_rss_mb"] or [])
        lines.append(f"{r['runner']:<32} {r['songs']:>5} {r['audio_hours']:>7.3f} {r['command_s']:>9.1f} {r['tagging_s']:>9.1f} "
                     f"{r['songs_per_s']:>7.2f} {r['x_real_time']:>6.1f} {_cell(r['first_result_s'], '.1f'):>6}  {rss}")  # fmt: skip
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """The README table (and a line per comparison) from a saved run; older runs' fields are optional."""
    machine = result.get("machine", {})
    simd = "/".join(f for f in ("avx512f", "amx_tile") if f in machine.get("simd", [])) or "no AVX-512"
    lines = [
        f"{result.get('label') or 'Run'}: {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, {simd}), "
        f"{machine.get('date_utc', '?')}; {result.get('songs_note') or ''}".rstrip("; ") + ".",
        "",
        "| runner | songs | audio h | command s | tagging s | songs/s | x real time | first result s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        command = r.get("command_s", r.get("process_wall_s"))
        rss = r.get("peak_rss_mb", r.get("peak_rss_mb_per_actor")) or []
        who = " per actor" if r["runner"].startswith("catalogue") else ""
        cells = [f"`{r['runner']}`", str(r["songs"]), f"{r['audio_hours']:.3f}", f"{command:.1f}", f"{r['tagging_s']:.1f}",
                 f"{r['songs_per_s']:.2f}", f"{r['x_real_time']:.1f}", _cell(r.get("first_result_s"), ".1f"),
                 (", ".join(f"{v:.0f}" for v in rss) + who) if rss else ""]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for c in result.get("comparisons", []):
        verdict = "within" if c["within_goal_command"] and c["within_goal_tagging"] else "NOT within"
        lines.append(f"- {c['cores']} core(s): `{c['ray']}` vs `{c['infer']}`: {c['command_overhead']:+.0%} on the whole command "
                     f"(Ray start included), {c['tagging_overhead']:+.0%} on the tagging clocks ({verdict} the 15% goal).")  # fmt: skip
    if not result.get("comparisons"):
        lines.append("- Saved by an earlier version of this benchmark: no 2-actor run; its first result is on the job's clock.")
        for r in result["rows"]:
            if "tagging_s_vs_infer_equal_cores" in r:
                lines.append(f"- `{r['runner']}` vs infer at equal cores: x{r['process_s_vs_infer_equal_cores']:.2f} on the whole command, "
                             f"x{r['tagging_s_vs_infer_equal_cores']:.2f} on the tagging clocks.")  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", default=str(EXAMPLES), help="Folder of songs, searched recursively (default: examples/).")
    parser.add_argument("--count", type=int, default=40, help="Songs in the run; fewer files are repeated under new names (default 40).")
    parser.add_argument("--max-segments", type=int, default=None, help="Segments per song and scale (smoke runs only).")
    parser.add_argument("--label", default="", help="Note saved with the figures, e.g. 'quiet machine'.")
    parser.add_argument("--out", default=str(RESULTS / "catalogue_speed.json"), help="Where to save the JSON (default: benchmarks/results/).")
    args = parser.parse_args(argv)
    cpus = len(os.sched_getaffinity(0))
    pools = [a for a in (1, 2) if a <= cpus]
    if cpus < 2:
        raise SystemExit(f"{cpus} CPU: a Ray pool needs one CPU beyond its actors' reservations; run this on 2+ CPUs")
    machine = machine_info()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="samplecnn-catbench-") as tmp:
        root = Path(tmp)
        folder, distinct = song_folder(Path(args.songs), args.count, root)
        for a in pools:
            rows.append(run_infer(folder, root, a, args.max_segments))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
            rows.append(run_catalogue(folder, root, a, min(1.0, (cpus - 1) / a), args.max_segments))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    comparisons = compare(rows)
    table = format_table(rows)
    print(table)
    for c in comparisons:
        print(f"{c['cores']} core(s): Ray overhead {c['command_overhead']:+.1%} on the whole command, {c['tagging_overhead']:+.1%} on the tagging clocks (goal: within {GOAL:.0%})")
    songs_note = f"{args.count} songs ({distinct} distinct, from {args.songs}), the default model, fp32" + (f", max {args.max_segments} segments" if args.max_segments else "")
    record = {"label": args.label, "machine": machine, "cpus": cpus, "songs_source": args.songs, "count": args.count, "distinct_songs": distinct,
              "max_segments": args.max_segments, "songs_note": songs_note, "rows": rows, "comparisons": comparisons, "table": table}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
