"""Cutting a song into model segments.

Rule (documented in the README): a song of ``n`` samples gets ``ceil(n / L)`` segments of
``L = segment_samples`` samples, evenly spaced from the first to the last sample, so together
they cover the whole song with as little overlap as possible. A song shorter than one segment
gets one segment: the song followed by zeros (the papers' MTAT clips never hit this; a 1 s
jingle is still tagged, from what there is). ``max_segments`` caps the count for very long
songs by spacing that many segments evenly over the song instead.
"""

from __future__ import annotations

import math

import numpy as np


def segment_starts(n_samples: int, segment_samples: int, max_segments: int | None = None) -> np.ndarray:
    """Start offsets (int64, ascending) of the segments of a song of ``n_samples`` samples."""
    if n_samples <= 0:
        raise ValueError(f"n_samples = {n_samples}: a song needs at least one sample")
    if n_samples <= segment_samples:
        return np.zeros(1, dtype=np.int64)
    count = math.ceil(n_samples / segment_samples)
    if max_segments is not None:
        if max_segments < 1:
            raise ValueError(f"max_segments = {max_segments}: must be at least 1")
        count = min(count, max_segments)
    if count == 1:
        return np.array([(n_samples - segment_samples) // 2], dtype=np.int64)
    return np.round(np.linspace(0, n_samples - segment_samples, count)).astype(np.int64)


def cut_segments(audio: np.ndarray, segment_samples: int, max_segments: int | None = None) -> np.ndarray:
    """(n_segments, segment_samples) float32 segments of a mono song, per :func:`segment_starts`."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {audio.shape}")
    if len(audio) < segment_samples:
        out = np.zeros((1, segment_samples), dtype=np.float32)
        out[0, : len(audio)] = audio
        return out
    starts = segment_starts(len(audio), segment_samples, max_segments)
    return np.stack([audio[s : s + segment_samples] for s in starts])
