"""Bounded load test of ``samplecnn serve`` on 127.0.0.1 against ``samplecnn infer`` on the same songs.

    python -m samplecnn.benchmarks.serve_load                        # 200 requests at 1, 4, 8 clients
    python -m samplecnn.benchmarks.serve_load --requests 10 --concurrency 2 --songs 4   # smoke

Starts the server as a real process (``runtime.serve.ServerProcess``), sends every request as an
audio file (base64 over HTTP/JSON, as tritonclient.http sends it; one client per thread) with
``concurrency`` requests in flight, and records requests/s, p50/p95 latency, errors (goal:
zero) and the server's peak RSS (sampled every 0.1 s). The baseline is ``samplecnn infer`` on
the distinct songs in one process (songs/s over the whole command, its ~1-2 s start-up
included); the ratio is served requests/s over that. Prints a table and saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .common import RESULTS, machine_info, percentile, song_paths, write_json


class RssSampler(threading.Thread):
    """Peak resident memory (MB) of a process, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process, self.interval, self.peak_mb, self.stop_event = psutil.Process(pid), interval, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / 2**20)
            except Exception:  # the process went away: keep the last peak
                return
            self.stop_event.wait(self.interval)


def _inputs(data: bytes):
    import tritonclient.http as http

    tensor = http.InferInput("audio", [1], "BYTES")
    return [tensor.set_data_from_numpy(np.array([base64.b64encode(data)], dtype=object), binary_data=False)]


def run_level(url: str, songs: list[bytes], requests: int, concurrency: int) -> dict:
    """``requests`` requests (cycling over ``songs``) with ``concurrency`` in flight."""
    import tritonclient.http as http

    local = threading.local()
    latencies: list[float] = []
    errors: list[str] = []

    def one(i: int) -> None:
        if not hasattr(local, "client"):  # tritonclient.http (gevent) clients are per thread
            local.client = http.InferenceServerClient(url, network_timeout=600.0, connection_timeout=60.0)
        t0 = time.perf_counter()
        try:
            local.client.infer("samplecnn", _inputs(songs[i % len(songs)]))
            latencies.append(time.perf_counter() - t0)
        except Exception as exc:
            errors.append(str(exc)[:200])

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    return {
        "concurrency": concurrency, "requests": requests, "ok": len(latencies), "errors": len(errors),
        "error_examples": errors[:3], "wall_s": round(wall, 3), "requests_per_s": round(len(latencies) / wall, 3),
        "p50_ms": round(1000 * percentile(latencies, 50), 1), "p95_ms": round(1000 * percentile(latencies, 95), 1),
    }


def infer_baseline(paths: list[str], bundle: str | None, threads: int | None) -> dict:
    """``samplecnn infer`` on ``paths`` in a child process; songs/s over its whole wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        command = [sys.executable, "-m", "samplecnn.cli", "infer", *paths, "--out", str(out), "--no-progress"]
        command += (["--bundle", bundle] if bundle else []) + (["--threads", str(threads)] if threads else [])
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - started
        rows = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    failed = [r for r in rows if "error" in r]
    return {"songs": len(paths), "ok": len(rows) - len(failed), "exit_code": result.returncode, "wall_s": round(wall, 3),
            "songs_per_s": round((len(rows) - len(failed)) / wall, 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--songs", type=int, default=20, help="distinct real songs (mer4q test split, else examples/)")
    parser.add_argument("--bundle", default=None, help="bundle to serve (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads of server and baseline")
    parser.add_argument("--out", default=str(RESULTS / "serve_load.json"))
    args = parser.parse_args(argv)
    from samplecnn.runtime.serve import ServerProcess

    paths = song_paths(args.songs)
    songs = [Path(p).read_bytes() for p in paths]
    baseline = infer_baseline(paths, args.bundle, args.threads)
    extra = ("--threads", str(args.threads)) if args.threads else ()
    levels = []
    with ServerProcess.start(args.bundle, extra, ready_timeout=300) as server:
        run_level(server.url, songs, 1, 1)  # warm-up
        sampler = RssSampler(server.pid)
        sampler.start()
        for concurrency in args.concurrency:
            level = run_level(server.url, songs, args.requests, concurrency)
            level["ratio_to_infer"] = round(level["requests_per_s"] / baseline["songs_per_s"], 3) if baseline["songs_per_s"] else None
            levels.append(level)
        sampler.stop_event.set()
        sampler.join()
    record = {"benchmark": "serve_load", "machine": machine_info(), "songs": paths, "baseline_infer": baseline,
              "levels": levels, "server_peak_rss_mb": round(sampler.peak_mb, 1), "args": vars(args)}
    print(f"samplecnn infer: {baseline['ok']}/{baseline['songs']} songs, {baseline['songs_per_s']} songs/s (wall {baseline['wall_s']} s)")
    print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'vs infer':>8}")
    for lv in levels:
        print(f"{lv['concurrency']:>7} {lv['requests']:>8} {lv['errors']:>6} {lv['requests_per_s']:>7} {lv['p50_ms']:>8} {lv['p95_ms']:>8} {lv['ratio_to_infer']!s:>8}")
    print(f"server peak RSS {record['server_peak_rss_mb']} MB; saved {write_json(Path(args.out), record)}")
    return record


if __name__ == "__main__":
    main()
