"""The streaming segmenter cuts exactly the segments of cut_segments, block by block."""

from __future__ import annotations

import numpy as np
import pytest

from samplecnn.runtime.segments import cut_segments
from samplecnn.runtime.streaming import StreamSegmenter, resampled_length


def stream(audio, declared, lengths, block, max_segments=None):
    segmenter = StreamSegmenter(lengths, declared, max_segments)
    out = {name: [] for name in lengths}
    peak_buffer = 0
    for i in range(0, len(audio), block):
        for name, starts, segments in segmenter.push(audio[i : i + block]):
            out[name] += list(zip(starts.tolist(), segments))
        peak_buffer = max(peak_buffer, len(segmenter.buffer))
    for name, starts, segments in segmenter.finish():
        out[name] += list(zip(starts.tolist(), segments))
    return out, peak_buffer


@pytest.mark.parametrize("seed", range(40))
def test_exact_declared_length_gives_cut_segments(seed):
    rng = np.random.default_rng(seed)
    lengths = {"a": int(rng.integers(5, 60)), "b": int(rng.integers(5, 60))}
    n, block = int(rng.integers(1, 2000)), int(rng.integers(1, 300))
    max_segments = None if seed % 3 else int(rng.integers(1, 8))
    audio = rng.standard_normal(n).astype(np.float32)
    out, peak = stream(audio, n, lengths, block, max_segments)
    for name, length in lengths.items():
        np.testing.assert_array_equal(np.stack([s for _, s in out[name]]), cut_segments(audio, length, max_segments))
    assert peak <= block + max(lengths.values())  # bounded: one block plus one segment


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("error", [-0.02, -1e-4, 1e-4, 0.02, 0.5, -0.5, "unknown"])
def test_wrong_declared_length_still_covers_the_song(seed, error):
    rng = np.random.default_rng(seed)
    length, n, block = int(rng.integers(5, 60)), int(rng.integers(1, 2000)), int(rng.integers(1, 300))
    declared = 0 if error == "unknown" else max(1, int(round(n * (1 + error))))
    audio = rng.standard_normal(n).astype(np.float32)
    out, peak = stream(audio, declared, {"a": length}, block)
    starts = [s for s, _ in out["a"]]
    assert len(set(starts)) == len(starts) and min(starts) == 0
    assert max(starts) + length >= n  # the end is covered
    for start, segment in out["a"]:
        expected = np.zeros(length, np.float32)
        piece = audio[start : start + length]
        expected[: len(piece)] = piece
        np.testing.assert_array_equal(segment, expected)
    assert peak <= block + length


def test_resampled_length_matches_soxr():
    import soxr

    for frames, src, dst in [(235201, 44100, 22050), (1355168, 22050, 16000), (1000, 48000, 22050)]:
        out = soxr.resample(np.ones(frames, np.float32), src, dst)
        assert resampled_length(frames, src, dst) == len(out)
