"""The batched, streaming inference engine behind :class:`samplecnn.runtime.tagger.Tagger`.

Decode workers (threads: soundfile and soxr release the GIL) turn each song into segments
with a :class:`StreamSegmenter` and put them on a bounded queue. The calling thread takes
them off, packs the segments of many songs into fixed-size batches per scale, runs the
backend, and adds each output row to its song's running sums. A song is finished when its
decoder is done and every one of its segments has been inferred; finished songs come out in
input order. Memory stays bounded: a few decoder blocks, the queue, one batch per scale, and
the running sums.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import AudioError, audio_info, iter_array_blocks, iter_audio_blocks
from .backends import Backend
from .bundle import Bundle, ScaleSpec
from .heads import sigmoid
from .spectral import SPECTRAL, SpectralStats
from .streaming import StreamSegmenter, resampled_length

QUEUE_ITEMS_PER_WORKER = 4  # each item is one decoded block's segments of one scale (<= ~2 MB)
LOOKAHEAD_SONGS_PER_WORKER = 2  # songs submitted ahead so a worker never waits for the next path


@dataclass
class SongFeatures:
    """Segment-mean level vectors of one song (or why there are none).

    ``levels``: {scale name: {level: (width,) float32}}: the mean over the song's segments of
    each level's (segment max-pooled) activations; level 1 = last hidden layer. A bundle with
    a spectral level adds ``levels["mel"][1]``: log-mel statistics of the whole song
    (runtime/spectral.py).
    ``backbone_scores``: (n_backbone_labels,) mean over scales of the mean over segments of
    sigmoid(logits). ``series``: with ``keep_series``, {scale: (starts (k,) seconds,
    scores (k, n_backbone_labels))} per segment, in time order.
    """

    index: int
    path: str
    duration: float = 0.0  # seconds decoded, at the bundle rate
    n_segments: dict[str, int] = field(default_factory=dict)
    levels: dict[str, dict[int, np.ndarray]] | None = None
    backbone_scores: np.ndarray | None = None
    series: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Stopped(Exception):
    """The consumer went away (generator closed or failed): a worker stops quietly."""


class _Song:
    """Running sums of one song while its segments are in flight."""

    def __init__(self, index: int, path: str, scales: tuple[ScaleSpec, ...], keep_series: bool) -> None:
        self.index, self.path = index, path
        self.sums = {s.name: {o.level: np.zeros(o.width, np.float64) for o in s.level_outputs} for s in scales}
        self.prob_sums: dict[str, np.ndarray] = {}
        self.counts = {s.name: 0 for s in scales}
        self.expected: dict[str, int] | None = None  # known when decoding is done
        self.samples = 0
        self.spectral: np.ndarray | None = None  # the decoder's log-mel statistics, with the bundle's spectral level
        self.series: dict[str, list] | None = {s.name: [] for s in scales} if keep_series else None
        self.error: str | None = None

    def add(self, scale: ScaleSpec, row: dict[str, np.ndarray], start: int, sample_rate: int) -> None:
        for o in scale.level_outputs:
            self.sums[scale.name][o.level] += row[o.name]
        probs = sigmoid(row["logits"].astype(np.float64)) if "logits" in row else None
        if probs is not None:
            self.prob_sums[scale.name] = self.prob_sums.get(scale.name, 0.0) + probs
            if self.series is not None:
                self.series[scale.name].append((start / sample_rate, probs.astype(np.float32)))
        self.counts[scale.name] += 1

    @property
    def complete(self) -> bool:
        return self.error is not None or (self.expected is not None and self.expected == self.counts)

    def finish(self, sample_rate: int) -> SongFeatures:
        if self.error is not None:
            return SongFeatures(self.index, self.path, self.samples / sample_rate, error=self.error)
        levels = {s: {lv: (v / self.counts[s]).astype(np.float32) for lv, v in per.items()} for s, per in self.sums.items()}
        if self.spectral is not None:
            levels[SPECTRAL] = {1: self.spectral}
        scores = None
        if self.prob_sums:
            scores = np.mean([p / self.counts[s] for s, p in self.prob_sums.items()], axis=0).astype(np.float32)
        series = None
        if self.series is not None:
            series = {}
            for s, rows in self.series.items():
                rows.sort(key=lambda r: r[0])
                series[s] = (np.array([r[0] for r in rows], np.float64), np.stack([r[1] for r in rows]) if rows else np.zeros((0, 0), np.float32))
        return SongFeatures(self.index, self.path, self.samples / sample_rate, dict(self.counts), levels, scores, series)


class _Batch:
    """A fixed-size batch buffer of one scale and the (song, start) owning each row."""

    def __init__(self, scale: ScaleSpec, size: int) -> None:
        self.scale = scale
        self.data = np.empty((size, scale.segment_samples), np.float32)
        self.owners: list[tuple[int, int]] = []

    @property
    def full(self) -> bool:
        return len(self.owners) == len(self.data)


def describe_input(index: int, item) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    return f"<array {index}>"


def _blocks(item, index: int, sample_rate: int) -> tuple[int, Iterator[np.ndarray]]:
    """(declared length at ``sample_rate`` or 0, iterator of mono float32 blocks)."""
    if isinstance(item, (str, Path)):
        info = audio_info(item)
        return resampled_length(info.frames, info.sample_rate, sample_rate), iter_audio_blocks(item, sample_rate)
    try:
        audio, rate = item
    except (TypeError, ValueError):
        raise AudioError(f"<input {index}>", f"expected a path or an (array, sample_rate) pair, got {type(item).__name__}") from None
    audio = np.asarray(audio)
    name = f"<array {index}>"
    return resampled_length(audio.shape[0], int(rate), sample_rate), iter_array_blocks(audio, int(rate), sample_rate, name=name)


class Engine:
    """Runs songs through one backend per scale; see the module docstring.

    ``backends``: {scale name: Backend}, one per scale of ``bundle``; ``batch_sizes``:
    {scale name: segments per backend call}. Used by Tagger.
    """

    def __init__(
        self,
        bundle: Bundle,
        backends: dict[str, Backend],
        *,
        batch_sizes: dict[str, int],
        decode_workers: int,
        max_segments: int | None = None,
    ) -> None:
        self.bundle = bundle
        self.scales = bundle.scales
        self.backends = backends
        self.batch_sizes = batch_sizes
        self.decode_workers = decode_workers
        self.max_segments = max_segments
        self.seconds_inferring = 0.0  # wall time inside backend.infer, for the profile

    def _decode(self, index: int, item, out: queue.Queue, stop: threading.Event) -> None:
        """Worker: decode one song and queue its segments, then a 'done' or 'error' message."""
        lengths = {s.name: s.segment_samples for s in self.scales}
        counts = {s.name: 0 for s in self.scales}
        received = 0

        def put(message: tuple) -> None:
            while True:
                try:
                    out.put(message, timeout=0.1)
                    return
                except queue.Full:
                    if stop.is_set():
                        raise _Stopped from None

        try:
            declared, blocks = _blocks(item, index, self.bundle.sample_rate)
            segmenter = StreamSegmenter(lengths, declared, self.max_segments)
            spectral = SpectralStats(self.bundle.spectral, self.bundle.sample_rate) if self.bundle.spectral is not None else None
            for block in blocks:
                if stop.is_set():
                    return
                received += len(block)
                if spectral is not None:
                    spectral.push(block)
                for scale, starts, segments in segmenter.push(block):
                    counts[scale] += len(starts)
                    put(("segments", index, scale, starts, segments))
            for scale, starts, segments in segmenter.finish():
                counts[scale] += len(starts)
                put(("segments", index, scale, starts, segments))
            put(("done", index, received, counts, spectral.finish() if spectral is not None else None))
        except _Stopped:
            return
        except AudioError as exc:
            put(("error", index, exc.reason, None))
        except MemoryError:
            put(("error", index, "out of memory while decoding", None))
        except Exception as exc:  # a bug, not a bad file: hand it to the caller instead of hanging
            put(("crash", index, exc, None))

    def run(self, inputs: Iterable, *, keep_series: bool = False) -> Iterator[SongFeatures]:
        """Yield a :class:`SongFeatures` per input, in input order (failures carry ``error``)."""
        sample_rate = self.bundle.sample_rate
        items = iter(enumerate(inputs))
        messages: queue.Queue = queue.Queue(maxsize=QUEUE_ITEMS_PER_WORKER * self.decode_workers + 2 * len(self.scales))
        stop = threading.Event()
        songs: dict[int, _Song] = {}
        finished: dict[int, SongFeatures] = {}
        batches = {s.name: _Batch(s, self.batch_sizes[s.name]) for s in self.scales}
        next_out, submitted, decoding, exhausted = 0, 0, 0, False

        def run_batch(batch: _Batch) -> None:
            n = len(batch.owners)
            if not n:
                return
            t0 = time.perf_counter()
            outputs = self.backends[batch.scale.name].infer(batch.data[:n])
            self.seconds_inferring += time.perf_counter() - t0
            for row, (index, start) in enumerate(batch.owners):
                song = songs.get(index)
                if song is not None and song.error is None:
                    song.add(batch.scale, {k: v[row] for k, v in outputs.items()}, start, sample_rate)
                    check(song)
            batch.owners.clear()

        def check(song: _Song) -> None:
            if song.complete:
                finished[song.index] = song.finish(sample_rate)
                del songs[song.index]

        pool = ThreadPoolExecutor(max_workers=self.decode_workers, thread_name_prefix="samplecnn-decode")
        try:
            while True:
                while not exhausted and decoding < LOOKAHEAD_SONGS_PER_WORKER * self.decode_workers:
                    try:
                        index, item = next(items)
                    except StopIteration:
                        exhausted = True
                        break
                    songs[index] = _Song(index, describe_input(index, item), self.scales, keep_series)
                    pool.submit(self._decode, index, item, messages, stop)
                    submitted += 1
                    decoding += 1
                while next_out in finished:
                    yield finished.pop(next_out)
                    next_out += 1
                if exhausted and next_out == submitted:
                    return
                try:
                    message = messages.get(timeout=0.02) if decoding else messages.get_nowait()
                except queue.Empty:
                    # Nothing decoded right now: run the fullest partial batch instead of idling.
                    pending = [b for b in batches.values() if b.owners]
                    if pending:
                        run_batch(max(pending, key=lambda b: len(b.owners)))
                    continue
                kind, index, payload, extra = message[0], message[1], message[2], message[3]
                song = songs.get(index)
                if kind == "segments":
                    batch = batches[payload]
                    for start, segment in zip(extra, message[4]):
                        batch.data[len(batch.owners)] = segment
                        batch.owners.append((index, int(start)))
                        if batch.full:
                            run_batch(batch)
                    continue
                if kind == "crash":
                    raise RuntimeError(f"decoding {song.path} failed unexpectedly: {payload!r}") from payload
                decoding -= 1
                if kind == "error":
                    song.error = payload
                else:
                    song.samples, song.expected, song.spectral = payload, extra, message[4]
                check(song)
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
