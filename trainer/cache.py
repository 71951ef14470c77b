"""Decode-once audio cache: every clip is decoded and resampled by the runtime's decoder
(:mod:`samplecnn.runtime.audio`) once, stored as a float16 ``.npy`` file and memory-mapped by
the training workers afterwards, so training is compute-bound instead of decode-bound.

Entries are keyed by the file's resolved path, size and mtime plus the sample rate, so an
edited file or another rate gets a new entry. Writes go to a temporary file in the same
folder and are renamed into place (atomic), so concurrent workers or runs sharing a cache
never see half-written entries. A file that cannot be used (unreadable, corrupt, empty,
silent, too short) is remembered in a small JSON entry with the reason and skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.atomic import atomic_path
from ..runtime.audio import AudioError, load_audio
from .data import Clip

CACHE_VERSION = 1  # bump when the stored format or the decoding rule changes
DTYPE = np.float16  # 11-bit mantissa: ~-66 dB relative error, half the bytes of float32
DEFAULT_CACHE_DIR = Path(os.environ.get("SAMPLECNN_CACHE", Path.home() / ".cache" / "samplecnn" / "audio"))


@dataclass(frozen=True)
class CachedClip:
    """A decoded clip: ``file`` is a float16 .npy of shape (n_samples,) at the cache's rate."""

    path: Path
    target: np.ndarray
    file: Path
    n_samples: int

    def audio(self) -> np.ndarray:
        """(n_samples,) float16, memory-mapped (read-only)."""
        return np.load(self.file, mmap_mode="r")


@dataclass(frozen=True)
class SkippedClip:
    path: Path
    reason: str

    def to_dict(self) -> dict:
        return {"path": str(self.path), "reason": self.reason}


def cache_key(path: Path, sample_rate: int) -> str:
    """Hex key of a file's identity (resolved path, size, mtime) and the decoding rate."""
    stat = path.stat()
    identity = f"{CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample_rate}"
    return hashlib.sha1(identity.encode()).hexdigest()


def _atomic_write(target: Path, write) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        write(f)


class AudioCache:
    """Decoded audio at ``sample_rate`` under ``root/<rate>/<key[:2]>/<key>.npy``."""

    def __init__(self, root: str | Path = DEFAULT_CACHE_DIR, sample_rate: int = 22050) -> None:
        self.root = Path(root)
        self.sample_rate = sample_rate

    def _entry(self, path: Path) -> tuple[Path, Path]:
        key = cache_key(path, self.sample_rate)
        folder = self.root / str(self.sample_rate) / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.bad.json"

    def fetch(self, path: str | Path, min_samples: int = 1) -> tuple[Path, int]:
        """(cache file, n_samples) of ``path``, decoding it if needed.

        Raises AudioError (with the path and reason) for a file that cannot be used,
        including one with fewer than ``min_samples`` samples at the cache's rate.
        """
        path = Path(path)
        if not path.is_file():
            raise AudioError(path, "no such file" if not path.exists() else "not a regular file")
        npy, bad = self._entry(path)
        if bad.is_file():
            raise AudioError(path, json.loads(bad.read_text())["reason"])
        if not npy.is_file():
            npy.parent.mkdir(parents=True, exist_ok=True)
            try:
                audio = load_audio(path, self.sample_rate)
            except AudioError as exc:
                _atomic_write(bad, lambda f: f.write(json.dumps({"reason": exc.reason}).encode()))
                raise
            _atomic_write(npy, lambda f: np.save(f, audio.astype(DTYPE)))
        n_samples = int(np.load(npy, mmap_mode="r").shape[0])
        if n_samples < min_samples:
            raise AudioError(
                path,
                f"too short: {n_samples / self.sample_rate:.2f} s, the model needs at least "
                f"{min_samples / self.sample_rate:.2f} s ({min_samples} samples)",
            )
        return npy, n_samples

    def prepare(
        self, clips: list[Clip], *, min_samples: int = 1, workers: int = 0, on_done=None
    ) -> tuple[list[CachedClip], list[SkippedClip]]:
        """Decode every clip not cached yet (with ``workers`` processes when > 0).

        Returns the usable clips (in input order) and the skipped ones with their reasons.
        ``on_done(n)`` is called after each clip (for a progress bar).
        """
        args = [(self.root, self.sample_rate, clip.path, min_samples) for clip in clips]
        if workers > 0 and len(clips) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(_tick(pool.map(_fetch_one, args, chunksize=4), on_done))
        else:
            results = list(_tick(map(_fetch_one, args), on_done))
        kept, skipped = [], []
        for clip, (file, n_samples, reason) in zip(clips, results):
            if reason is None:
                kept.append(CachedClip(clip.path, clip.target, Path(file), n_samples))
            else:
                skipped.append(SkippedClip(clip.path, reason))
        return kept, skipped


def _tick(results, on_done):
    for result in results:
        if on_done is not None:
            on_done(1)
        yield result


def _fetch_one(args: tuple) -> tuple[str | None, int, str | None]:
    root, sample_rate, path, min_samples = args
    try:
        file, n_samples = AudioCache(root, sample_rate).fetch(path, min_samples)
        return str(file), n_samples, None
    except AudioError as exc:
        return None, 0, exc.reason
    except OSError as exc:  # e.g. permission denied on stat: still one bad file, not a dead run
        return None, 0, f"cannot read ({exc.strerror or exc})"
