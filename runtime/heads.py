"""Song-level classifier heads, applied with numpy.

A head file is safetensors with float32 tensors::

    mean, std                 (D,)     standardisation of the song vector (std already >= eps)
    layers.{i}.weight         (out, in)   fully connected layers, i = 0..L-1
    layers.{i}.bias           (out,)

    h = (song_vector - mean) / std
    h = relu(h @ W_i.T + b_i)     for i < L-1
    z = h @ W_{L-1}.T + b_{L-1}
    scores = sigmoid(z) for task "tags", softmax(z) for task "classes"

Written by ``samplecnn fit`` (trainer side); this module is the only reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from .bundle import BundleError, HeadSpec
from .spectral import SPECTRAL


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free form


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Head:
    spec: HeadSpec
    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,))

    @classmethod
    def load(cls, path: str | Path, spec: HeadSpec) -> "Head":
        tensors = load_file(str(path))
        n_layers = len([k for k in tensors if k.startswith("layers.") and k.endswith(".weight")])
        try:
            layers = [(tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]) for i in range(n_layers)]
            mean, std = tensors["mean"], tensors["std"]
        except KeyError as exc:
            raise BundleError(f"{path}: head file lacks tensor {exc}; re-fit it with `samplecnn fit`") from exc
        if not layers or mean.shape != (spec.input_width,) or layers[0][0].shape[1] != spec.input_width:
            raise BundleError(f"{path}: head {spec.name!r} does not take {spec.input_width}-dim song vectors; re-fit it with `samplecnn fit`")
        if layers[-1][0].shape[0] != len(spec.labels):
            raise BundleError(f"{path}: head {spec.name!r} has {layers[-1][0].shape[0]} outputs for {len(spec.labels)} labels")
        return cls(spec, mean.astype(np.float32), std.astype(np.float32), [(w.astype(np.float32), b.astype(np.float32)) for w, b in layers])

    def logits(self, song_vectors: np.ndarray) -> np.ndarray:
        """(n_songs, D) -> (n_songs, n_labels) pre-activation scores.

        The products are numpy's own single-threaded loop (einsum), never the threaded BLAS: the
        pipeline scores each song as it finishes while the backend runs on every core, and a BLAS
        call there woke BLAS threads whose spinning took the cores from the backend (default
        model, int8, 2 cores: 24 songs in 2.04 s vs 1.46 s without heads). A head is one small
        MLP: microseconds per song, well under a second for thousands of songs."""
        h = (np.asarray(song_vectors, dtype=np.float32) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = np.einsum("nd,od->no", h, w) + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def __call__(self, song_vectors: np.ndarray) -> np.ndarray:
        """(n_songs, D) -> (n_songs, n_labels) scores: sigmoid for tags, softmax for classes."""
        z = self.logits(song_vectors)
        return sigmoid(z) if self.spec.task == "tags" else softmax(z)

    def song(self, levels: dict[str, dict[int, np.ndarray]]) -> np.ndarray:
        """(n_labels,) scores of one song from its level vectors (``SongFeatures.levels``)."""
        return self(head_input(levels, self.spec)[None, :])[0]


def save_head(path: str | Path, mean: np.ndarray, std: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Write a head file in the format above (used by ``samplecnn fit``)."""
    tensors = {"mean": np.asarray(mean, np.float32), "std": np.asarray(std, np.float32)}
    for i, (w, b) in enumerate(layers):
        tensors[f"layers.{i}.weight"] = np.ascontiguousarray(w, np.float32)
        tensors[f"layers.{i}.bias"] = np.ascontiguousarray(b, np.float32)
    save_file(tensors, str(path))


def song_vector(levels: dict[str, dict[int, np.ndarray]], scales: tuple[str, ...] | list[str], level_order: tuple[int, ...] | list[int]) -> np.ndarray:
    """Concatenate per-song level vectors into the vector a head reads.

    ``levels``: {scale: {level: (width,) segment-mean vector}} as :meth:`Tagger.features`
    returns. Order: each scale of ``scales`` in turn, within it each level of
    ``level_order`` in turn; the spectral pseudo-scale ``"mel"`` has one level and gives it
    whatever ``level_order`` says. Returns (sum of widths,) float32.
    """
    try:
        parts = [levels[s][lv] for s in scales for lv in ((1,) if s == SPECTRAL else level_order)]
    except KeyError as exc:
        have = {s: sorted(v) for s, v in levels.items()}
        raise BundleError(f"song features lack {exc}; they have {have}") from exc
    return np.concatenate(parts).astype(np.float32, copy=False)


def head_input(levels: dict[str, dict[int, np.ndarray]], spec: HeadSpec) -> np.ndarray:
    """(spec.input_width,) song vector for head ``spec`` (its scales and levels, in order)."""
    vector = song_vector(levels, spec.scales, spec.levels)
    if vector.shape != (spec.input_width,):
        raise BundleError(f"head {spec.name!r} expects {spec.input_width}-dim song vectors, the features give {vector.shape[0]}")
    return vector
