"""Song vectors for fitting: the runtime's multi-level features, cached on disk.

Extraction runs the torch-free serving path (:meth:`samplecnn.runtime.Tagger.features`), so a
fitted head sees exactly the vectors the runtime will give it. The cache is keyed by

* the bundle's backbones: the sha256 of every ONNX graph of the chosen precision, so a
  re-exported or different bundle never reuses vectors (fitting a head changes the manifest
  but not the backbones, and keeps the cache), and its spectral level when it has one;
* the extraction settings (precision, max_segments);
* the audio file: its absolute path, size and modification time.

One safetensors file per song holds ``<scale>/<level>`` vectors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ..runtime.atomic import atomic_path
from ..runtime.bundle import Bundle
from ..runtime.heads import song_vector
from .progress import Progress
from ..runtime.tagger import Tagger

CACHE_FORMAT = 1


class FeatureError(ValueError):
    """Features could not be extracted (e.g. every file of a split failed)."""


def bundle_feature_key(bundle: Bundle, precision: str, max_segments: int | None) -> str:
    """Hex key of what determines the vectors: backbone graphs and extraction settings."""
    files = bundle.manifest["files"]
    graphs = {s.name: files[s.models[precision]] for s in bundle.scales}
    key = {"graphs": graphs, "precision": precision, "max_segments": max_segments, "format": CACHE_FORMAT}
    if bundle.spectral is not None:  # a bundle without it keeps its old key
        key["spectral"] = bundle.spectral.to_dict()
    blob = json.dumps(key, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def file_key(path: Path) -> str:
    stat = path.stat()
    blob = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class SongVectors:
    """Level vectors of the songs of one split: ``levels[i]`` is None where song i failed."""

    paths: list[Path]
    levels: list[dict[str, dict[int, np.ndarray]] | None]
    errors: dict[str, str]

    @property
    def ok(self) -> np.ndarray:
        return np.array([lv is not None for lv in self.levels], dtype=bool)

    def matrix(self, scales: list[str] | tuple[str, ...], levels: list[int] | tuple[int, ...]) -> np.ndarray:
        """(n_ok_songs, D) song vectors of the songs that succeeded, in order."""
        rows = [song_vector(lv, scales, levels) for lv in self.levels if lv is not None]
        if not rows:
            raise FeatureError(f"no song could be read ({len(self.errors)} failed); first errors: {list(self.errors.items())[:3]}")
        return np.stack(rows)


def _write(path: Path, levels: dict[str, dict[int, np.ndarray]]) -> None:
    tensors = {f"{scale}/{level}": np.ascontiguousarray(v, np.float32) for scale, d in levels.items() for level, v in d.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp)


def _read(path: Path) -> dict[str, dict[int, np.ndarray]]:
    levels: dict[str, dict[int, np.ndarray]] = {}
    for key, value in load_file(str(path)).items():
        scale, level = key.rsplit("/", 1)
        levels.setdefault(scale, {})[int(level)] = value
    return levels


def extract_song_vectors(
    tagger: Tagger,
    paths: list[Path],
    cache_dir: str | Path | None,
    *,
    desc: str = "features",
) -> SongVectors:
    """Level vectors of ``paths`` with ``tagger``; cached under ``cache_dir`` (None: no cache)."""
    paths = [Path(p) for p in paths]
    levels: list = [None] * len(paths)
    errors: dict[str, str] = {}
    folder = None
    if cache_dir is not None:
        key = bundle_feature_key(tagger.bundle, tagger.precision, tagger.engine.max_segments)
        folder = Path(cache_dir) / key
        folder.mkdir(parents=True, exist_ok=True)
    todo = []
    for i, path in enumerate(paths):
        cached = folder / f"{file_key(path)}.safetensors" if folder is not None and path.exists() else None
        if cached is not None and cached.is_file():
            levels[i] = _read(cached)
        else:
            todo.append(i)
    with Progress(len(todo), desc) as bar:
        for position, song in zip(todo, tagger.features([str(paths[i]) for i in todo])):
            if song.ok:
                levels[position] = song.levels
                if folder is not None:
                    _write(folder / f"{file_key(paths[position])}.safetensors", song.levels)
            else:
                errors[str(paths[position])] = song.error
            bar.update(1)
    return SongVectors(paths, levels, errors)
