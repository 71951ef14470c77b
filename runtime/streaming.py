"""Cutting segments out of a song while it is still being decoded (bounded memory).

The segment positions follow :func:`segments.segment_starts` for the length the header
declares (resampled to the bundle rate), so a song never has to be held whole: each decoded
block is appended to a small rolling buffer, every segment that is complete is handed out,
and samples no pending segment needs are dropped. The buffer holds at most one block plus
one segment of the longest scale.

Headers can be slightly off (MP3 frame counts are estimates; resampling rounds). When the
decoded length ``n`` differs from the declared one, :meth:`StreamSegmenter.finish` applies:

- planned segments that would run past the real end are moved to end at ``n`` (a song
  shorter than a segment gets one zero-padded segment at 0), duplicates dropped;
- audio past the last planned segment (the file is longer than declared) gets back-to-back
  segments while it arrives, and one more ending at the end if some is left uncovered.

When the declared length is exact (WAV, FLAC, Ogg) the segments are exactly those of
:func:`segments.cut_segments` on the whole decoded song.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .segments import segment_starts


def resampled_length(frames: int, source_rate: int, target_rate: int) -> int:
    """Frames after resampling, rounded half up as soxr's stream output is."""
    return (2 * frames * target_rate + source_rate) // (2 * source_rate)


class _ScaleCursor:
    """Planned starts of one scale and which have been handed out."""

    def __init__(self, segment_samples: int, declared: int, max_segments: int | None) -> None:
        self.length = segment_samples
        self.max_segments = max_segments
        self.planned = list(segment_starts(declared, segment_samples, max_segments)) if declared > 0 else []
        self.next = 0  # index into planned: planned[:next] have been handed out

    def pending_start(self) -> int | None:
        return int(self.planned[self.next]) if self.next < len(self.planned) else None

    def can_add(self) -> bool:
        return self.max_segments is None or len(self.planned) < self.max_segments

    def extend_past_plan(self, received: int) -> None:
        """The song runs past the plan (or its length is unknown): add back-to-back segments."""
        if self.pending_start() is not None:
            return
        covered = self.planned[-1] + self.length if self.planned else 0
        while covered + self.length <= received and self.can_add():
            self.planned.append(covered)
            covered += self.length


class StreamSegmenter:
    """Feed decoded blocks, get complete segments per scale.

    ``segment_samples``: {scale name: L}. ``declared``: expected song length in samples at the
    bundle rate (0 or less if unknown: then back-to-back segments plus one ending at the end).
    ``push(block)`` and ``finish()`` yield ``(scale, starts (k,) int64, segments (k, L) float32)``.
    """

    def __init__(self, segment_samples: dict[str, int], declared: int, max_segments: int | None = None) -> None:
        self.cursors = {name: _ScaleCursor(length, declared, max_segments) for name, length in segment_samples.items()}
        self.longest = max(segment_samples.values())
        self.buffer = np.zeros(0, np.float32)
        self.buffer_start = 0  # song offset of buffer[0]
        self.received = 0  # samples pushed so far

    def _take(self, start: int, length: int) -> np.ndarray:
        """Samples [start, start + length) of the song, zero-padded past the end."""
        lo = start - self.buffer_start
        if lo < 0:
            raise RuntimeError(f"segment at {start} was dropped from the buffer (starts at {self.buffer_start})")
        piece = self.buffer[lo : lo + length]
        if len(piece) == length:
            return piece
        out = np.zeros(length, np.float32)
        out[: len(piece)] = piece
        return out

    def _emit(self, name: str, length: int, starts: list[int]) -> tuple[str, np.ndarray, np.ndarray]:
        return name, np.array(starts, np.int64), np.stack([self._take(s, length) for s in starts])

    def push(self, block: np.ndarray) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Append a mono float32 block (n,) and yield the segments it completes."""
        block = np.asarray(block, dtype=np.float32)
        self.buffer = np.concatenate([self.buffer, block]) if len(self.buffer) else block.copy()
        self.received += len(block)
        for name, cursor in self.cursors.items():
            starts = []
            while True:
                cursor.extend_past_plan(self.received)
                start = cursor.pending_start()
                if start is None or start + cursor.length > self.received:
                    break
                starts.append(start)
                cursor.next += 1
            if starts:
                yield self._emit(name, cursor.length, starts)
        self._trim()

    def _trim(self) -> None:
        # Keep what pending segments need, and always the last `longest` samples for finish().
        keep_from = self.received - self.longest
        for cursor in self.cursors.values():
            start = cursor.pending_start()
            if start is not None:
                keep_from = min(keep_from, start)
        if keep_from > self.buffer_start:
            self.buffer = self.buffer[keep_from - self.buffer_start :].copy()
            self.buffer_start = keep_from

    def finish(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """After the last block: place the segments the real length calls for (see module doc)."""
        n = self.received
        if n <= 0:
            return
        for name, cursor in self.cursors.items():
            anchored = max(0, n - cursor.length)
            emitted = cursor.planned[: cursor.next]
            tail = [min(int(s), anchored) for s in cursor.planned[cursor.next :]]
            cursor.next = len(cursor.planned)
            covered = max(emitted + tail, default=-cursor.length) + cursor.length
            if covered < n and cursor.can_add():
                tail.append(anchored)
            seen, starts = set(emitted), []
            for s in tail:
                if s not in seen:
                    seen.add(s)
                    starts.append(s)
            if starts:
                yield self._emit(name, cursor.length, starts)
