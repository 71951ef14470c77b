"""Progress line and summary for ``samplecnn infer`` (stderr; the bar only on a terminal)."""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts songs, failures and audio; redraws one status line at most 4 times a second."""

    def __init__(self, total: int, stream=None, enabled: bool | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.perf_counter()
        self.done = self.failed = 0
        self.audio_seconds = 0.0
        self._drawn = 0.0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def realtime_factor(self) -> float:
        """Audio seconds tagged per wall-clock second."""
        return self.audio_seconds / max(self.elapsed, 1e-9)

    def update(self, ok: bool, duration: float) -> None:
        self.done += 1
        self.failed += not ok
        self.audio_seconds += duration if ok else 0.0
        now = time.perf_counter()
        if self.enabled and (now - self._drawn > 0.25 or self.done == self.total):
            self._drawn = now
            self._draw()

    def _draw(self) -> None:
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        failed = f", {self.failed} failed" if self.failed else ""
        line = (
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} songs{failed}, "
            f"{self.audio_seconds / 3600:.2f} h audio, {self.realtime_factor:.1f}x real time, {_clock(self.elapsed)}"
        )
        self.stream.write(line)
        self.stream.flush()

    def clear_line(self) -> None:
        """Before printing a message: end the status line so the message starts clean."""
        if self.enabled and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = 0.0

    def summary(self) -> str:
        ok = self.done - self.failed
        failed = f" ({self.failed} failed)" if self.failed else ""
        return (
            f"tagged {ok} of {self.done} songs{failed}: {self.audio_seconds / 3600:.3f} h of audio in "
            f"{_clock(self.elapsed)} ({self.realtime_factor:.1f}x real time)"
        )
