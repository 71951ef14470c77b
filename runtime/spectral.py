"""The spectral level of the song vector: log-mel statistics of the whole song, in numpy.

A bundle whose manifest has a ``spectral`` entry (:class:`SpectralSpec`) adds to every song's
level vectors a pseudo-scale named :data:`SPECTRAL` (``"mel"``) with one level (1)::

    frames      n_fft samples every hop samples of the decoded song (at the bundle rate),
                Hann window; a song shorter than n_fft is one zero-padded frame
    logmel      log10(1 + 10000 * (|rfft(frame)|^2 @ mel filterbank))   (n_mels HTK-mel triangles, 0 Hz..f_max)
    delta       logmel[t + 1] - logmel[t]
    vector      [mean_t logmel, std_t logmel, mean_t |delta|, std_t delta]   (4 * n_mels,) float32

The statistics are taken over every frame of the song (not per segment), accumulated block by
block as the decoder streams, so memory does not grow with the song. Heads read it when
``"mel"`` is among their scales (see :func:`samplecnn.runtime.heads.song_vector`).

Why: with the small distilled backbones of the default model, these 384 numbers add the timbre
their features miss (experiments/probes/README.md, same folds, backbone levels alone -> with
these: synthtags style 0.411 -> 0.531, mer4q genre 0.531 -> 0.574, mer4q quadrant 0.653 -> 0.650).
The bands stop at 7 kHz, below the low-pass of 16 kHz MP3s (MagnaTagATune, most previews), so
the statistics describe the music rather than the source's sample rate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

SPECTRAL = "mel"  # the pseudo-scale name in SongFeatures.levels and HeadSpec.scales (no backbone may use it)
STATS = ("mean", "std", "delta_abs_mean", "delta_std")
LOG_SCALE = 10000.0


class SpectralError(ValueError):
    """A spectral spec this runtime cannot compute."""


@dataclass(frozen=True)
class SpectralSpec:
    """The manifest's ``spectral`` entry: frame length, hop and mel bands of the statistics."""

    n_fft: int = 1024
    hop: int = 1024
    n_mels: int = 96
    f_max: float = 7000.0  # Hz: below the low-pass of 16 kHz MP3s (MagnaTagATune, previews), so every common source has these bands

    @property
    def width(self) -> int:
        return len(STATS) * self.n_mels

    def to_dict(self) -> dict:
        return {"name": SPECTRAL, "n_fft": self.n_fft, "hop": self.hop, "n_mels": self.n_mels, "f_max": self.f_max, "stats": list(STATS),
                "log": f"log10(1 + {LOG_SCALE:g} x)", "width": self.width}

    @classmethod
    def from_dict(cls, d: dict) -> "SpectralSpec":
        spec = cls(int(d["n_fft"]), int(d["hop"]), int(d["n_mels"]), float(d["f_max"]))
        expected = spec.to_dict()
        if not (8 <= spec.n_fft <= 1 << 16 and 1 <= spec.hop <= spec.n_fft and 1 <= spec.n_mels <= spec.n_fft // 2 and spec.f_max > 0):
            raise SpectralError(f"spectral {d}: n_fft must be 8..65536, hop 1..n_fft, n_mels 1..n_fft/2 and f_max > 0")
        differing = sorted(k for k in expected if k in d and d[k] != expected[k])
        if differing or set(d) - set(expected):
            raise SpectralError(f"spectral {d}: this samplecnn computes {expected}")
        return spec


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_max: float) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) float32 triangular filters, equally spaced in HTK mels from 0 Hz to
    min(f_max, rate/2). Raises SpectralError when a filter would cover no FFT bin."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(min(f_max, sample_rate / 2)), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    triangles = np.maximum(0.0, np.minimum((bins - lo) / (centre - lo), (hi - bins) / (hi - centre)))
    if not (triangles.sum(axis=1) > 0).all():
        raise SpectralError(f"{n_mels} mel bands up to {f_max:g} Hz are too narrow for {n_fft}-point frames at {sample_rate} Hz")
    return np.ascontiguousarray(triangles.T, np.float32)


@dataclass(frozen=True)
class MelBands:
    """What every song of one spec and rate shares: the Hann window and the triangles as a sparse
    sum (about 2 FFT bins per band, every band non-empty). A dense (frames x bins) @ (bins x
    bands) product would go to the threaded BLAS, whose spinning threads took the cores from the
    backend running beside the decoder (-30% songs/s)."""

    window: np.ndarray  # (n_fft,) float32
    bins: np.ndarray  # FFT bin of each nonzero weight, band by band
    weights: np.ndarray
    band_starts: np.ndarray  # (n_mels,) offset of each band's first weight

    @classmethod
    @functools.lru_cache(maxsize=8)
    def of(cls, spec: SpectralSpec, sample_rate: int) -> "MelBands":
        """The bands of ``spec`` at ``sample_rate``, built once per process (the bundle's check and
        every Engine share them; the arrays are read-only). Raises SpectralError like mel_filterbank."""
        bank = mel_filterbank(sample_rate, spec.n_fft, spec.n_mels, spec.f_max)
        band_of, bin_of = np.nonzero(bank.T)  # band-major: each band's bins in a row
        arrays = (np.hanning(spec.n_fft).astype(np.float32), bin_of, bank[bin_of, band_of], np.searchsorted(band_of, np.arange(spec.n_mels)))
        for a in arrays:
            a.setflags(write=False)
        return cls(*arrays)


class SpectralStats:
    """Streaming accumulator of one song's statistics: ``push`` blocks in order, then ``finish``."""

    def __init__(self, spec: SpectralSpec, sample_rate: int) -> None:
        self.spec = spec
        self.bands = MelBands.of(spec, sample_rate)  # shared by every song of this spec and rate
        self.pending = np.zeros(0, np.float32)  # samples not yet consumed by a frame start
        self.frames = 0
        self.sums = np.zeros((2, spec.n_mels), np.float64)  # logmel, logmel^2
        self.delta_sums = np.zeros((3, spec.n_mels), np.float64)  # |delta|, delta, delta^2
        self.last: np.ndarray | None = None  # the previous frame's logmel, for the delta across blocks

    def _add(self, logmel: np.ndarray) -> None:
        self.frames += len(logmel)
        self.sums += (logmel.sum(0), np.square(logmel).sum(0))
        chain = logmel if self.last is None else np.concatenate([self.last[None], logmel])
        delta = np.diff(chain, axis=0)
        self.delta_sums += (np.abs(delta).sum(0), delta.sum(0), np.square(delta).sum(0))
        self.last = logmel[-1].astype(np.float64)

    def _logmel(self, frames: np.ndarray) -> np.ndarray:
        bands = self.bands
        power = np.square(np.abs(np.fft.rfft(frames * bands.window, axis=1)))
        mel = np.add.reduceat(power[:, bands.bins] * bands.weights, bands.band_starts, axis=1)
        return np.log10(1.0 + LOG_SCALE * mel).astype(np.float64)

    def push(self, block: np.ndarray) -> None:
        """Add the next mono float32 block of the song (any length)."""
        n_fft, hop = self.spec.n_fft, self.spec.hop
        audio = np.concatenate([self.pending, np.asarray(block, np.float32)]) if len(self.pending) else np.asarray(block, np.float32)
        if len(audio) < n_fft:
            self.pending = audio
            return
        count = 1 + (len(audio) - n_fft) // hop
        frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[: (count - 1) * hop + 1 : hop]
        self._add(self._logmel(frames))
        self.pending = audio[count * hop :].copy()

    def finish(self) -> np.ndarray:
        """(4 * n_mels,) float32 statistics; a song shorter than n_fft counts as one zero-padded frame."""
        if self.frames == 0:
            frame = np.zeros((1, self.spec.n_fft), np.float32)
            frame[0, : len(self.pending)] = self.pending
            self._add(self._logmel(frame))
        n = self.frames
        mean = self.sums[0] / n
        std = np.sqrt(np.maximum(self.sums[1] / n - mean**2, 0.0))
        if n > 1:
            d_abs = self.delta_sums[0] / (n - 1)
            d_mean = self.delta_sums[1] / (n - 1)
            d_std = np.sqrt(np.maximum(self.delta_sums[2] / (n - 1) - d_mean**2, 0.0))
        else:
            d_abs = d_std = np.zeros(self.spec.n_mels)
        return np.concatenate([mean, std, d_abs, d_std]).astype(np.float32)


def spectral_vector(audio: np.ndarray, spec: SpectralSpec, sample_rate: int) -> np.ndarray:
    """The statistics of a whole mono song at once (the same numbers as streaming it)."""
    stats = SpectralStats(spec, sample_rate)
    stats.push(audio)
    return stats.finish()
