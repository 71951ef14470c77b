"""The public serving API: :class:`Tagger`.

    from samplecnn.runtime import Tagger

    with Tagger("bundles/mtat") as tagger:                 # or Tagger() for the default model
        for song in tagger.tag(["a.mp3", "b.flac"], top_k=5):
            print(song.path, song.top["backbone"] if song.ok else song.error)
        feats = list(tagger.features(["a.mp3"]))           # per-song level vectors (for fit)

Inputs are paths or ``(array, sample_rate)`` pairs (array (samples,) or (samples, channels)).
Results come out lazily, one per input, in input order; a song that cannot be decoded gives a
result with ``error`` set instead of stopping the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AUDIO_EXTENSIONS
from .backends import Backend, open_backend, resolve_backend
from .backends.ort import default_threads
from .bundle import Bundle, BundleError, ScaleSpec
from .heads import Head
from .pipeline import Engine, SongFeatures

DEFAULT_MODEL = Path(__file__).parent / "default_model"
BACKBONE_HEAD = "backbone"  # the head name of tags read from the backbones' own logits


def result_heads(bundle: Bundle) -> list[tuple[str, tuple[str, ...]]]:
    """(head name, labels) of every score a SongResult holds, in order.

    The backbones' own tags come first (head ``backbone``) whenever the bundle names them:
    they are what the backbones were trained (or distilled) to predict. Then every fitted head.
    """
    heads = [(BACKBONE_HEAD, tuple(bundle.backbone_labels))] if bundle.backbone_labels else []
    return heads + [(h.name, tuple(h.labels)) for h in bundle.heads]
# Default batch sizes, measured on the 2-core dev machine (benchmarks/pipeline_profile.py):
# CPU throughput stops improving around batch 8, while memory grows with the batch by about
# BYTES_PER_FIRST_LAYER_VALUE x (the first conv's output: segment/m frames x C0 channels) per
# segment. So the CPU default is the largest batch <= MAX_CPU_BATCH whose activations fit
# ACTIVATION_BUDGET_BYTES, which keeps `samplecnn infer` under its 200 MB peak-RSS target.
# int8 as fp32: its graphs keep the stem a float Conv (export's Int8Settings.stem_fp32), so the
# largest activations are float as in fp32. Measured with onnxruntime's shared arena
# (backends/ort.py), full-width presets, int8, 2.2 min example (2026-11-30): peak RSS 155 / 192
# / 266 / 414 MB at batch 1 / 2 / 4 / 8, batch 1 as fast as any; so full-width models run batch 1
# in both precisions, the default model (width 0.25) batch 4-5, width 0.125 batch 8.
MAX_CPU_BATCH = 8
ACTIVATION_BUDGET_BYTES = 56 << 20
BYTES_PER_FIRST_LAYER_VALUE = {"fp32": 20, "fp16": 10, "int8": 20}
GPU_BATCH = 16  # the TensorRT engines' optimal profile batch (export.tensorrt.DEFAULT_PROFILE)
DEFAULT_DECODE_WORKERS = 1  # one decoder keeps ahead of inference here (decode is 1-5% of the time)


def default_batch_size(scale: ScaleSpec, precision: str, device: str) -> int:
    """Segments per backend call for ``scale`` when none is given (see the constants above)."""
    if device == "cuda":
        return GPU_BATCH
    m, width = int(scale.config.get("m", 3)), float(scale.config.get("width", 1.0))
    first_channels = max(8, int(round(128 * width / 8)) * 8)  # as trainer.model._scaled
    per_segment = scale.segment_samples // m * first_channels * BYTES_PER_FIRST_LAYER_VALUE.get(precision, 20)
    return max(1, min(MAX_CPU_BATCH, ACTIVATION_BUDGET_BYTES // per_segment))


def default_bundle_path() -> Path:
    """The default model shipped with the package; BundleError if this install has none."""
    if not (DEFAULT_MODEL / "manifest.json").is_file():
        raise BundleError(
            f"no default model is installed at {DEFAULT_MODEL}; pass a bundle explicitly "
            "(`samplecnn infer --bundle PATH`, or Tagger(bundle=PATH)) written by `samplecnn export`"
        )
    return DEFAULT_MODEL


@dataclass
class SongResult:
    """Tags of one song.

    ``scores``: {head name: {label: score}} (sigmoid per tag for "tags" heads, softmax for
    "classes"; head "backbone" first: the backbones' own tags). ``top``: {head: [(label, score)]}
    best first. ``embedding``: (D,) song vector (every scale in bundle order, levels 1..K in
    order) when asked for. ``segments``: {scale: {"start": [seconds], "scores": (k, n_labels)}}
    of the backbone tags per segment when asked for. ``error``: why the song failed, else None.
    """

    path: str
    duration: float
    n_segments: dict[str, int]
    scores: dict[str, dict[str, float]]
    top: dict[str, list[tuple[str, float]]]
    embedding: np.ndarray | None = None
    segments: dict[str, dict] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        """JSON-ready dict (floats rounded to 6 digits)."""
        row: dict = {"path": self.path, "duration": round(self.duration, 3), "n_segments": self.n_segments}
        if self.error is not None:
            row["error"] = self.error
            return row
        row["top"] = {h: [[label, round(s, 6)] for label, s in pairs] for h, pairs in self.top.items()}
        row["scores"] = {h: {label: round(s, 6) for label, s in d.items()} for h, d in self.scores.items()}
        if self.embedding is not None:
            row["embedding"] = [round(float(v), 6) for v in self.embedding]
        if self.segments is not None:
            row["segments"] = {
                s: {"start": [round(float(t), 3) for t in v["start"]], "labels": v["labels"], "scores": np.round(v["scores"], 6).tolist()}
                for s, v in self.segments.items()
            }
        return row


def _check_positive(name: str, value: int | None, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} = {value!r}: must be a positive integer")


class Tagger:
    """Batched, streaming tagging with a bundle's backbones and heads; torch-free.

    Args:
        bundle: bundle folder (or a loaded :class:`Bundle`); None = the default model.
        backend: "auto" | "ort" | "trt". "auto" picks (see ``backend_choice``); a named
            backend that cannot load raises BackendError, never falls back.
        device: "cpu" | "cuda".
        precision: "fp32" | "fp16" | "int8": which graph (or engine) of each scale to run.
        batch_size: segments per backend call, per scale (default: :func:`default_batch_size`).
        threads: onnxruntime intra-op threads (default: one per CPU).
        decode_workers: songs decoded concurrently with inference (default 1).
        max_segments: cap on segments per song and scale (None = cover the whole song).
    """

    def __init__(
        self,
        bundle: str | Path | Bundle | None = None,
        *,
        backend: str = "auto",
        device: str = "cpu",
        precision: str = "fp32",
        batch_size: int | None = None,
        threads: int | None = None,
        decode_workers: int | None = None,
        max_segments: int | None = None,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("threads", threads), ("decode_workers", decode_workers), ("max_segments", max_segments)):
            _check_positive(name, value)
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle if bundle is not None else default_bundle_path())
        self.backend_name, self.backend_choice = resolve_backend(self.bundle, backend, device, precision)
        self.device, self.precision = device, precision
        self.batch_sizes = {s.name: batch_size or default_batch_size(s, precision, device) for s in self.bundle.scales}
        self.threads = threads or default_threads()
        self.heads = [Head.load(self.bundle.path(h.file), h) for h in self.bundle.heads]
        if not self.heads and not self.bundle.backbone_labels:
            raise BundleError(f"bundle {self.bundle.root} has neither heads nor backbone labels: nothing to tag with; re-export it")
        self.backends: dict[str, Backend] = {}
        self._open_backends()
        self.engine = Engine(
            self.bundle,
            self.backends,
            batch_sizes=self.batch_sizes,
            decode_workers=decode_workers or DEFAULT_DECODE_WORKERS,
            max_segments=max_segments,
        )

    def _open_backends(self) -> None:
        """One backend per scale. On cpu the scales open concurrently (each session reads and
        checks its cached graph and builds its kernels; hashing and onnxruntime's session
        set-up release the GIL: 0.095 -> 0.075 s for the three full-width scales, part of
        every cold start); on cuda one after the other. A scale that fails closes the others
        and raises its error (the first in scale order)."""
        scales = self.bundle.scales

        def attempt(scale: ScaleSpec) -> tuple[Backend | None, BaseException | None]:
            try:
                return open_backend(self.bundle, scale, self.backend_name, device=self.device, precision=self.precision, threads=self.threads), None
            except BaseException as exc:  # noqa: BLE001 - the others are closed and it is re-raised below
                return None, exc

        if self.device == "cpu" and len(scales) > 1:
            with ThreadPoolExecutor(max_workers=len(scales), thread_name_prefix="samplecnn-open") as pool:
                outcomes = list(pool.map(attempt, scales))
        else:  # a GPU backend stays on the calling thread (its CUDA context); stop at the first failure
            outcomes = []
            for scale in scales:
                outcomes.append(attempt(scale))
                if outcomes[-1][1] is not None:
                    break
        error = next((exc for _, exc in outcomes if exc is not None), None)
        for scale, (backend, _) in zip(scales, outcomes):
            if backend is not None:
                self.backends[scale.name] = backend
        if error is not None:
            self.close()
            raise error

    @property
    def description(self) -> str:
        """What runs, for logs: backend choice and each scale's backend description."""
        first = next(iter(self.backends.values()))
        batches = ", ".join(f"{s} {b}" for s, b in self.batch_sizes.items())
        return f"{first.description}; {self.backend_choice}; batch {batches}; {self.engine.decode_workers} decode worker(s)"

    def features(self, inputs: Iterable, *, segments: bool = False) -> Iterator[SongFeatures]:
        """Per-song level vectors: the input of every song-level classifier (and of ``fit``).

        ``inputs``: paths or (array (samples,) | (samples, channels), sample_rate) pairs.
        Yields one :class:`SongFeatures` per input in input order: ``levels`` =
        {scale: {level: (width,) float32 segment mean}}, ``n_segments`` = {scale: count},
        ``duration`` in seconds, ``backbone_scores`` (n_backbone_labels,), and ``error`` (then
        ``levels`` is None) for a song that could not be decoded. ``segments=True`` also keeps
        the per-segment backbone scores in ``series``. Build a head's input with
        :func:`samplecnn.runtime.heads.head_input` or ``song_vector``.
        """
        if isinstance(inputs, (str, Path)):
            inputs = [inputs]
        return self.engine.run(inputs, keep_series=segments)

    def tag(self, inputs: Iterable, *, top_k: int = 5, embeddings: bool = False, segments: bool = False) -> Iterator[SongResult]:
        """Tag songs: yields one :class:`SongResult` per input, in input order.

        ``top_k``: tags per head in ``top``; ``embeddings``: attach the (D,) song vector;
        ``segments``: attach the per-segment backbone tag series. A bad ``top_k`` raises
        ValueError here, at the call, not when the first result is drawn.
        """
        _check_positive("top_k", top_k, allow_none=False)
        return (self._result(f, top_k, embeddings) for f in self.features(inputs, segments=segments))

    def _result(self, f: SongFeatures, top_k: int, embeddings: bool) -> SongResult:
        if not f.ok:
            return SongResult(f.path, f.duration, f.n_segments, {}, {}, error=f.error)
        scores: dict[str, dict[str, float]] = {}
        for head in self.heads:
            values = head.song(f.levels)
            scores[head.spec.name] = dict(zip(head.spec.labels, map(float, values)))
        if self.bundle.backbone_labels:
            scores = {BACKBONE_HEAD: dict(zip(self.bundle.backbone_labels, map(float, f.backbone_scores))), **scores}
        top = {h: sorted(d.items(), key=lambda kv: -kv[1])[:top_k] for h, d in scores.items()}
        embedding = None
        if embeddings:
            embedding = np.concatenate([f.levels[s][lv] for s, lv, _ in self.bundle.embedding_parts])
        series = None
        if f.series is not None:
            labels = list(self.bundle.backbone_labels)
            series = {s: {"start": starts, "labels": labels, "scores": values} for s, (starts, values) in f.series.items()}
        return SongResult(f.path, f.duration, f.n_segments, scores, top, embedding, series)

    def close(self) -> None:
        """Release every backend. Idempotent."""
        for backend in self.backends.values():
            backend.close()
        self.backends = {}

    def __enter__(self) -> "Tagger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def expand_inputs(patterns: Iterable[str], extensions: tuple[str, ...] | None = None) -> list[str]:
    """Paths from files, globs and directories (walked recursively for audio extensions).

    A pattern that matches nothing is kept as is, so it is reported as a failed song.
    """
    import glob

    extensions = extensions or AUDIO_EXTENSIONS
    out: list[str] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            for root, dirs, files in os.walk(pattern):
                dirs.sort()
                out += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(extensions)]
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            out += matches if matches else [pattern]
        else:
            out.append(pattern)
    return out

