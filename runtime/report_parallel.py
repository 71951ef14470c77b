"""A second process for large JSON Lines results files: it reads the file's second half while
the report's process reads the first.

Decoding the lines (orjson, which holds the GIL) is most of a JSON Lines report's time, so a
thread cannot share it; a forked process can. Once the first rows have shown the heads and
labels, :func:`start_worker` forks a worker that reads from the first line start after the
middle of what is left to the end of the file. It does only what the lean way
(:class:`~samplecnn.runtime.report_data._JsonLines`) does without the collector: decode each
line and, for rows with the known heads and labels, gather path, duration and scores into
float blocks. Every other line (an odd row, a line orjson refuses, a last line cut short) is
handed back as bytes and read by the report's process in file order, so the report is the
same as a one-process reading: same rows, same order, same skip counts (a unit test compares
them). Files with embeddings are read by one process: the map's sample is drawn row by row
in file order, and sending every embedding back would cost more than it saves; a worker that
meets one stops and its half is read by the report's process.

The worker's blocks come back through a pipe (pickled: data between two processes of this
reader, never stored). Linux only, and only from a process with no other thread (a fork with
threads running can deadlock): elsewhere, or on a one-CPU machine, the file is read by one
process. A worker that fails (killed, out of memory) costs time, not rows: its half is then
read by the report's process.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .procinfo import peak_rss_mb
from .report_data import _EMBEDDING_KEY, _Collector, _feed, _LeanRows, _require_orjson

PARALLEL_MIN_BYTES = 64 << 20  # files smaller than this left after the first rows: one process (a fork costs ~10 ms)
FIND_NEWLINE_BYTES = 4 << 20  # how far past the middle to look for a line start


def can_fork() -> bool:
    """A worker can help: Linux, more than one usable CPU, no other thread in this process."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    return len(os.sched_getaffinity(0)) > 1


@dataclass
class Worker:
    """A forked reader of bytes ``start:stop`` of a file."""

    pid: int
    pipe: int
    start: int
    stop: int
    peak_rss_mb: float = 0.0
    status: str = "running"  # then "ok", "embeddings" (it met one) or "failed"

    def records(self) -> list[tuple] | None:
        """The worker's records (waits for it); None when it failed or met an embedding: the
        caller then reads bytes ``start:stop`` itself."""
        try:
            with os.fdopen(self.pipe, "rb") as pipe:
                payload = pipe.read()
            self.pipe = -1
            os.waitpid(self.pid, 0)
            self.pid = 0
            self.status, records, self.peak_rss_mb = pickle.loads(payload)
            if self.status == "ok":
                return records
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
            self.status = "failed"
        return None

    def close(self) -> None:
        """Stop a worker whose records are not wanted (the report failed meanwhile)."""
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1
        if self.pid:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pid = 0


def start_worker(path: Path, position: int, size: int, heads: list[str], labels: list[list[str]]) -> Worker | None:
    """Fork a worker for the part of ``path`` after the first line start past the middle of
    ``position:size``; None when the rest is small, no line starts there, or forking cannot help."""
    if size - position < PARALLEL_MIN_BYTES or not can_fork():
        return None
    middle = position + (size - position) // 2
    with open(path, "rb") as f:
        f.seek(middle)
        found = f.read(FIND_NEWLINE_BYTES).find(b"\n")
    if found < 0 or middle + found + 1 >= size:
        return None
    start = middle + found + 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: read, send, exit without running the parent's exit handlers
        code = 1
        try:
            os.close(read_end)
            try:
                payload = pickle.dumps(("ok", read_range(path, start, size, heads, labels), peak_rss_mb()), protocol=5)
            except _HasEmbeddings:
                payload = pickle.dumps(("embeddings", None, peak_rss_mb()))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, which reads the half itself
                payload = pickle.dumps(("failed", repr(exc), 0.0))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return Worker(pid, read_end, start, size)


class _HasEmbeddings(Exception):
    """A worker met a row with an embedding: the report's process reads that half itself."""


def read_range(path: Path, start: int, stop: int, heads: list[str], labels: list[list[str]]) -> list[tuple]:
    """Records of the lines in bytes ``start:stop`` (``start`` at a line start), in file order:
    ``("rows", paths, durations (n,), {head: (labels, (n, L))})`` for lean rows converted in
    blocks (the lean way's own :class:`_LeanRows`), ``("line", bytes, truncated)`` for a line
    left to the reference way."""
    loads = _require_orjson()
    records: list[tuple] = []
    waiting = _LeanRows(heads, labels)

    def flush() -> None:
        if not len(waiting):
            return
        paths, durations, scores, lines = waiting.take()
        if scores is None:  # a score that is not a number: the reference way, row by row
            records.extend(("line", line, False) for line in lines)
        else:
            records.append(("rows", paths, durations, scores))

    def line_of(line: bytes) -> None:
        if not line.strip():
            return
        if _EMBEDDING_KEY in line:
            raise _HasEmbeddings
        try:
            row = loads(line)
        except json.JSONDecodeError:
            row = None
        if row is None or not waiting.add(row, line):
            flush()
            records.append(("line", line, False))
        elif len(waiting) >= _Collector.FLUSH_ROWS:
            flush()

    with open(path, "rb") as f:
        f.seek(start)
        tail, more = b"", True
        while more:
            tail, more = _feed(line_of, f, tail, stop)
        flush()
        if tail.strip():
            records.append(("line", tail, True))  # a last line without its newline
    return records
