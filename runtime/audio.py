"""Audio decoding shared by training and serving: anything soundfile reads (wav, flac, ogg,
mp3, opus, au, ...), any rate, any channel count -> mono float32 at the model's rate (soxr).

Files are read in blocks and resampled as a stream, so decoding never holds more than one
block of the source plus the mono float32 output; :func:`iter_audio_blocks` lets callers
(the segmenter) keep even less.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

BLOCK_SECONDS = 20.0  # source block size: ~3.5 MB of float32 stereo at 44.1 kHz
SILENCE_PEAK = 1e-5  # |x| below -100 dBFS everywhere: nothing to tag
TRUNCATION_TOLERANCE = 0.98  # decoded/declared frames below this: the file was cut short
# What a folder walk picks up (samplecnn infer DIR, export --calibration DIR): formats libsndfile reads.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".snd", ".caf", ".w64", ".rf64")


class AudioError(ValueError):
    """A file that cannot be turned into usable audio. ``path`` and ``reason`` say why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int  # as declared by the header (an estimate for some MP3s)
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _open(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise AudioError(path, "no such file")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    try:
        return sf.SoundFile(str(path))
    except PermissionError as exc:
        raise AudioError(path, f"permission denied ({exc.strerror})") from exc
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(path, f"not a readable audio file ({exc})") from exc


def audio_info(path: str | Path) -> AudioInfo:
    """Header information without decoding the samples."""
    path = Path(path)
    with _open(path) as f:
        return AudioInfo(str(path), f.samplerate, f.channels, f.frames, f.format)


def iter_audio_blocks(
    path: str | Path, sample_rate: int, *, block_seconds: float = BLOCK_SECONDS, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of ``path`` resampled to ``sample_rate``.

    Raises AudioError on an unreadable or truncated file, NaN/inf samples, zero length, or
    (after the last block) a silent file. ``max_seconds`` stops decoding early.
    """
    path = Path(path)
    f = _open(path)
    with f:
        if f.samplerate <= 0 or f.channels <= 0:
            raise AudioError(path, f"invalid header (rate {f.samplerate}, {f.channels} channels)")
        declared = f.frames
        limit = None if max_seconds is None else int(max_seconds * f.samplerate)
        block = max(1024, int(block_seconds * f.samplerate))
        resampler = None if f.samplerate == sample_rate else soxr.ResampleStream(
            f.samplerate, sample_rate, 1, dtype="float32"
        )
        decoded = 0
        peak = 0.0
        while limit is None or decoded < limit:
            want = block if limit is None else min(block, limit - decoded)
            try:
                chunk = f.read(want, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError(path, f"decoding failed after {decoded / f.samplerate:.1f} s ({exc})") from exc
            last = len(chunk) < want or (limit is not None and decoded + len(chunk) >= limit)
            decoded += len(chunk)
            mono = chunk.mean(axis=1, dtype=np.float32) if chunk.shape[1] > 1 else chunk[:, 0]
            if not np.isfinite(mono).all():
                raise AudioError(path, f"NaN or infinite samples near {decoded / f.samplerate:.1f} s")
            if len(mono):
                peak = max(peak, float(np.abs(mono).max()))
            out = mono if resampler is None else resampler.resample_chunk(mono, last=last)
            if len(out):
                yield np.ascontiguousarray(out, dtype=np.float32)
            if last:
                break
        if decoded == 0:
            raise AudioError(path, "no samples (zero-length audio)")
        if limit is None and declared > 0 and decoded < TRUNCATION_TOLERANCE * declared:
            raise AudioError(
                path,
                f"truncated or corrupt: decoded {decoded / f.samplerate:.2f} s of the "
                f"{declared / f.samplerate:.2f} s its header declares",
            )
        if peak < SILENCE_PEAK:
            raise AudioError(path, f"silent (peak amplitude {peak:.1e})")


def load_audio(path: str | Path, sample_rate: int, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to a mono float32 array at ``sample_rate``: shape (samples,)."""
    blocks = list(iter_audio_blocks(path, sample_rate, max_seconds=max_seconds))
    return np.concatenate(blocks) if len(blocks) != 1 else blocks[0]


def iter_array_blocks(
    audio: np.ndarray, source_rate: int, sample_rate: int, *, name: str = "<array>", block_seconds: float = BLOCK_SECONDS
) -> Iterator[np.ndarray]:
    """Like :func:`iter_audio_blocks` for audio already in memory.

    ``audio``: (samples,) or (samples, channels), any real dtype (integers are scaled to
    [-1, 1) as soundfile does). Raises AudioError with ``name`` as the path on empty, NaN/inf
    or silent input.
    """
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.size == 0 or (audio.ndim == 2 and audio.shape[1] == 0):
        raise AudioError(name, f"expected a non-empty array of shape (samples,) or (samples, channels), got {audio.shape}")
    if not isinstance(source_rate, (int, np.integer)) or source_rate <= 0:
        raise AudioError(name, f"sample rate {source_rate!r} must be a positive integer")
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / float(2 ** (8 * audio.dtype.itemsize - 1))
    mono = audio.mean(axis=1, dtype=np.float32) if audio.ndim == 2 else audio.astype(np.float32, copy=False)
    if not np.isfinite(mono).all():
        raise AudioError(name, "NaN or infinite samples")
    peak = float(np.abs(mono).max())
    if peak < SILENCE_PEAK:
        raise AudioError(name, f"silent (peak amplitude {peak:.1e})")
    block = max(1024, int(block_seconds * source_rate))
    resampler = None if source_rate == sample_rate else soxr.ResampleStream(source_rate, sample_rate, 1, dtype="float32")
    for i in range(0, len(mono), block):
        chunk = np.ascontiguousarray(mono[i : i + block])
        out = chunk if resampler is None else resampler.resample_chunk(chunk, last=i + block >= len(mono))
        if len(out):
            yield np.ascontiguousarray(out, dtype=np.float32)
