"""Real audio for export checks: parity songs, INT8 calibration songs, held-out evaluation songs.

A source is a folder (searched recursively for audio files), a CSV with a ``path`` column
(paths relative to the CSV's folder, as the dataset CSVs in ``shared/data`` are), or one audio
file. Songs are decoded with the runtime's own decoder and cut with the runtime's own
segmenting rule, so the checks see exactly what serving will feed the graphs.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from ..runtime.segments import cut_segments
from .errors import ExportError

# Decode at most this much of each song: the checks need a handful of segments per song, not
# whole albums (30 s covers 11 segments of 3^9, 20 of 2^14).
MAX_SECONDS_PER_SONG = 30.0


class AudioSourceError(ExportError):
    """An audio source (folder, CSV, file) that yields no usable songs. Says which and why."""


@dataclass(frozen=True)
class Song:
    """One decoded song: ``audio`` is mono float32 at the bundle's sample rate, shape (samples,)."""

    name: str
    audio: np.ndarray

    def segments(self, segment_samples: int, max_segments: int | None = None) -> np.ndarray:
        """(n_segments, segment_samples) float32, per the runtime's segmenting rule."""
        return cut_segments(self.audio, segment_samples, max_segments)


def list_audio(source: str | Path) -> list[Path]:
    """Audio files named by ``source`` (folder, CSV with a ``path`` column, or one file), sorted."""
    source = Path(source)
    if not source.exists():
        raise AudioSourceError(f"{source}: no such file or folder; pass a folder of audio files, a CSV with a 'path' column, or an audio file")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise AudioSourceError(
                f"{source}: folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)}); "
                "point it at a folder of songs like the ones you will tag"
            )
        return files
    if source.suffix.lower() == ".csv":
        with open(source, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise AudioSourceError(f"{source}: CSV has columns {reader.fieldnames}, needs a 'path' column (relative to the CSV's folder)")
            files = [source.parent / row["path"] for row in reader if row.get("path")]
        if not files:
            raise AudioSourceError(f"{source}: CSV lists no songs; add rows with a 'path' column")
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise AudioSourceError(f"{source}: {len(missing)} listed songs do not exist, e.g. {missing[0]}; fix the paths (relative to the CSV's folder)")
        return files
    if source.suffix.lower() in AUDIO_EXTENSIONS:
        return [source]
    raise AudioSourceError(f"{source}: not a folder, a .csv or an audio file ({', '.join(AUDIO_EXTENSIONS)})")


def load_songs(
    source: str | Path | list[Path], sample_rate: int, *, max_songs: int | None = None, max_seconds: float = MAX_SECONDS_PER_SONG
) -> list[Song]:
    """Decode up to ``max_songs`` songs of ``source`` (evenly spread over its sorted list) at ``sample_rate``.

    An undecodable song is an error (it names the file): a calibration set should not silently shrink.
    """
    files = pick_evenly(list_audio(source) if not isinstance(source, list) else list(source), max_songs)
    songs = []
    for path in files:
        try:
            songs.append(Song(path.name, load_audio(path, sample_rate, max_seconds=max_seconds)))
        except AudioError as exc:
            raise AudioSourceError(f"{exc}; remove the file from the audio source or fix it") from exc
    return songs


def pick_evenly(files: list[Path], count: int | None) -> list[Path]:
    """Up to ``count`` of ``files``, evenly spread over the list (all when ``count`` is None)."""
    if count is None or len(files) <= count:
        return list(files)
    picks = np.round(np.linspace(0, len(files) - 1, count)).astype(int)
    return [files[i] for i in sorted(set(picks.tolist()))]


def content_digest(path: Path) -> str:
    """sha256 of a file's bytes: the same song copied to another folder is still the same song."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stack_segments(songs: list[Song], segment_samples: int, per_song: int) -> np.ndarray:
    """(sum of segments, segment_samples) float32: up to ``per_song`` evenly spaced segments of each song."""
    if not songs:
        raise AudioSourceError("no songs to cut segments from")
    return np.concatenate([song.segments(segment_samples, per_song) for song in songs]).astype(np.float32, copy=False)


def split_holdout(songs: list[Song], every: int = 3) -> tuple[list[Song], list[Song]]:
    """(calibration, held out): every ``every``-th song (1-based) is held out for evaluation."""
    if len(songs) < 2:
        raise AudioSourceError(
            f"{len(songs)} song(s) cannot be split into calibration and evaluation songs; "
            "pass at least 2 songs, or name separate evaluation songs with --parity-audio"
        )
    held_out = {i for i in range(len(songs)) if (i + 1) % every == 0} or {len(songs) - 1}
    return [s for i, s in enumerate(songs) if i not in held_out], [s for i, s in enumerate(songs) if i in held_out]
