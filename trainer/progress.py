"""A small progress bar: redraws one line on a terminal, prints a few plain lines otherwise
(log files stay readable: at most one line per 25% and one at the end)."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, "train") as bar: bar.update(n, loss=0.3)``."""

    def __init__(self, total: int, desc: str, stream=None, width: int = 24) -> None:
        self.total = max(1, total)
        self.desc = desc
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.start = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._next_plain = 0.25
        self._last_draw = 0.0
        self.fields: dict[str, float] = {}

    def update(self, n: int = 1, **fields: float) -> None:
        self.done += n
        self.fields.update(fields)
        now = time.perf_counter()
        if self.tty and (now - self._last_draw > 0.1 or self.done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line())
            self.stream.flush()
        elif not self.tty and self.done / self.total >= self._next_plain and self.done < self.total:
            self._next_plain += 0.25
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        fraction = min(1.0, self.done / self.total)
        bar = "#" * int(fraction * self.width)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        extra = " ".join(f"{k}={v:.4g}" for k, v in self.fields.items())
        return f"{self.desc} [{bar:<{self.width}}] {self.done}/{self.total} {elapsed:.0f}s {rate:.1f}/s {extra}".rstrip()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.stream.write(("\r" if self.tty else "") + self._line() + "\n")
        self.stream.flush()
