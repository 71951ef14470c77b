"""Teacher-label files: a teacher's per-window tag probabilities (and features) for a corpus.

One safetensors file per corpus, no pickle. The windows of all files are stacked::

    probs            (N, K) float32   teacher tag probabilities of every window, in [0, 1]
    <feature name>   (N, D) float16   optional teacher features per window (e.g. penultimate)
    offsets          (F + 1,) int64   windows of file f are rows offsets[f]:offsets[f + 1]

and the metadata (a JSON string under ``"teacher_labels"``) says ``format``, ``teacher``
(identity: package, version, model), ``tags`` (K names), ``window_seconds``, ``hop_seconds``
(window w covers [w * hop, w * hop + window) seconds of its file), the ``features`` with their
widths, and ``files``: ``[{"path", "seconds"}]`` in row order.

This module is numpy + safetensors only, so the teacher's own environment (TensorFlow, no
torch) writes the files with :func:`write_teacher_labels` and the trainer reads them with
:func:`read_teacher_labels`: one owner of the format. A file that does not describe its audio
(wrong tag count, NaN, values outside [0, 1], windows that do not cover the audio) is a
:class:`TargetsError` naming the file and the entry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "samplecnn-teacher-labels/1"
METADATA_KEY = "teacher_labels"
PROBS = "probs"
OFFSETS = "offsets"


class TargetsError(ValueError):
    """A teacher-label file that cannot be used. The message names the file and the entry."""


@dataclass(frozen=True)
class TargetFile:
    """One audio file of a teacher-label file: its windows are rows ``start:stop``."""

    path: Path
    seconds: float
    start: int
    stop: int

    @property
    def n_windows(self) -> int:
        return self.stop - self.start


@dataclass
class TeacherLabels:
    """A whole teacher-label file in memory. ``arrays``: name -> (N, width) (see module doc)."""

    source: Path
    teacher: dict
    tags: list[str]
    window_seconds: float
    hop_seconds: float
    files: list[TargetFile]
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def feature_names(self) -> list[str]:
        return [name for name in self.arrays if name != PROBS]

    def windows(self, index: int, name: str = PROBS) -> np.ndarray:
        """(n_windows, width) rows of file ``index`` for array ``name``."""
        entry = self.files[index]
        return self.arrays[name][entry.start : entry.stop]

    def crop_target(self, index: int, start_seconds: float, length_seconds: float, name: str = PROBS) -> np.ndarray:
        """Overlap-weighted mean of the windows a crop [start, start + length) overlaps: (width,) float32.

        A crop in a tail no window covers (teachers drop an incomplete last window) takes the
        nearest window.
        """
        rows = self.windows(index, name)
        starts = np.arange(len(rows)) * self.hop_seconds
        overlap = np.minimum(starts + self.window_seconds, start_seconds + length_seconds) - np.maximum(starts, start_seconds)
        weights = np.clip(overlap, 0.0, None)
        if weights.sum() <= 0:
            nearest = int(np.argmin(np.abs(starts + self.window_seconds / 2 - (start_seconds + length_seconds / 2))))
            return rows[nearest].astype(np.float32)
        return (weights @ rows.astype(np.float32) / weights.sum()).astype(np.float32)

    def song_target(self, index: int, name: str = PROBS) -> np.ndarray:
        """(width,) float32 mean over all windows of file ``index``: the song-level teacher output."""
        return self.windows(index, name).astype(np.float32).mean(axis=0)


def _check_windows(source: Path, entry: dict, n_windows: int, window: float, hop: float) -> None:
    seconds = float(entry["seconds"])
    if n_windows < 1:
        raise TargetsError(f"{source}: {entry['path']} has no teacher windows")
    covered = (n_windows - 1) * hop + window
    # A teacher drops at most the incomplete last window: less than one hop (or one window for
    # a clip shorter than a window, which is padded) may stay uncovered.
    if covered < seconds - max(hop, window) - 1e-3 or covered > seconds + window + hop + 1e-3:
        raise TargetsError(
            f"{source}: {entry['path']}: {n_windows} windows of {window:g} s every {hop:g} s cover "
            f"{covered:.2f} s, but the audio lasts {seconds:.2f} s; relabel this file with the teacher"
        )


def write_teacher_labels(
    path: str | Path,
    *,
    teacher: dict,
    tags: list[str],
    window_seconds: float,
    hop_seconds: float,
    items: list[tuple[str, float, dict[str, np.ndarray]]],
) -> Path:
    """Write a teacher-label file atomically.

    items: ``(audio path, seconds, {"probs": (n, K), feature: (n, D), ...})`` per file; every
    item has the same array names. Probabilities are stored float32, features float16.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    if not items:
        raise TargetsError(f"{path}: no files to write")
    names = sorted(items[0][2])
    if PROBS not in names:
        raise TargetsError(f"{path}: every item needs a {PROBS!r} array")
    offsets, stacked = [0], {name: [] for name in names}
    for audio_path, _, arrays in items:
        if sorted(arrays) != names:
            raise TargetsError(f"{path}: {audio_path} has arrays {sorted(arrays)}, expected {names}")
        n = len(arrays[PROBS])
        for name in names:
            if len(arrays[name]) != n:
                raise TargetsError(f"{path}: {audio_path}: {name} has {len(arrays[name])} windows, probs {n}")
            stacked[name].append(arrays[name])
        offsets.append(offsets[-1] + n)
    tensors = {
        name: np.ascontiguousarray(np.concatenate(parts), dtype=np.float32 if name == PROBS else np.float16)
        for name, parts in stacked.items()
    }
    tensors[OFFSETS] = np.asarray(offsets, dtype=np.int64)
    metadata = {
        "format": FORMAT, "teacher": teacher, "tags": list(tags),
        "window_seconds": float(window_seconds), "hop_seconds": float(hop_seconds),
        "features": {n: int(tensors[n].shape[1]) for n in names if n != PROBS},
        "files": [{"path": str(p), "seconds": round(float(s), 4)} for p, s, _ in items],
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(metadata)})
    tmp.replace(path)
    return path


def read_teacher_labels(path: str | Path) -> TeacherLabels:
    """Read and check a teacher-label file (every array loaded into memory)."""
    from safetensors import safe_open

    source = Path(path)
    if not source.is_file():
        raise TargetsError(f"{source}: no such teacher-label file (write one with experiments/teacher_musicnn.py)")
    try:
        with safe_open(str(source), framework="numpy") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
            arrays = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same message
        raise TargetsError(f"{source}: not a readable safetensors file ({error})") from error
    if raw is None:
        raise TargetsError(f"{source}: no {METADATA_KEY!r} metadata: not a teacher-label file")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise TargetsError(f"{source}: format {meta.get('format')!r}, this samplecnn reads {FORMAT!r}")
    offsets = arrays.pop(OFFSETS, None)
    files_meta, tags = meta["files"], meta["tags"]
    if offsets is None or len(offsets) != len(files_meta) + 1 or PROBS not in arrays:
        raise TargetsError(f"{source}: needs {PROBS!r} and {OFFSETS!r} ({len(files_meta) + 1} entries)")
    probs = arrays[PROBS]
    if probs.ndim != 2 or probs.shape[1] != len(tags):
        raise TargetsError(f"{source}: probs has shape {probs.shape}, but {len(tags)} tags are named")
    for name, array in arrays.items():
        if array.ndim != 2 or len(array) != offsets[-1]:
            raise TargetsError(f"{source}: {name} has shape {array.shape}, expected ({offsets[-1]}, width)")
    window, hop = float(meta["window_seconds"]), float(meta["hop_seconds"])
    if not (window > 0 and hop > 0):
        raise TargetsError(f"{source}: window {window} s and hop {hop} s must be positive")
    files = []
    for index, entry in enumerate(files_meta):
        start, stop = int(offsets[index]), int(offsets[index + 1])
        _check_windows(source, entry, stop - start, window, hop)
        for name, array in arrays.items():
            rows = array[start:stop]
            if not np.isfinite(rows).all():
                raise TargetsError(f"{source}: {entry['path']}: {name} holds NaN or infinite values")
        rows = probs[start:stop]
        if rows.min() < 0 or rows.max() > 1:
            raise TargetsError(
                f"{source}: {entry['path']}: probabilities outside [0, 1] (min {rows.min():.3g}, max {rows.max():.3g})"
            )
        files.append(TargetFile(Path(entry["path"]), float(entry["seconds"]), start, stop))
    return TeacherLabels(source, meta["teacher"], list(tags), window, hop, files, arrays)


def check_audio_length(labels: TeacherLabels, index: int, n_samples: int, sample_rate: int) -> None:
    """Refuse a file whose decoded length disagrees with the label file (another audio file)."""
    entry = labels.files[index]
    seconds = n_samples / sample_rate
    if not math.isclose(seconds, entry.seconds, rel_tol=0.01, abs_tol=0.25):
        raise TargetsError(
            f"{labels.source}: {entry.path} decodes to {seconds:.2f} s but was labelled as {entry.seconds:.2f} s: "
            "the audio changed since the teacher ran; relabel it"
        )
