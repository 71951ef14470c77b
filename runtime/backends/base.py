"""The backend interface every runner shares (Polygraphy-like).

A backend is built from one scale of a verified bundle and runs that scale's graph::

    with OrtBackend(bundle, scale, precision="fp32") as backend:
        outputs = backend.infer(batch)      # (B, segment_samples) float32
        outputs["level1"]                   # (B, width) float32, one entry per manifest output

or from one graph file (Polygraphy's runner shape; inputs and outputs read from the graph)::

    with OrtBackend.from_file("scale_3-9.int8.onnx", threads=1) as backend:
        outputs = run_in_batches(backend, segments, batch_size=5)   # {name: (N, width)}

Export's parity and agreement checks run exactly these serving runners.

Each backend imports its library lazily inside its module, so importing
``samplecnn.runtime.backends`` costs nothing and a missing library raises
:class:`BackendError` naming the extra to install.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..bundle import Bundle, OutputSpec, ScaleSpec

BACKENDS = ("auto", "ort", "trt", "openvino")
DEVICES = ("cpu", "cuda")


class BackendError(RuntimeError):
    """A requested backend cannot run here: missing library, device, engine or precision."""


class Backend(ABC):
    """Runs one scale's graph on batches of segments.

    ``infer(batch)`` takes a C-contiguous float32 array of shape (B, segment_samples), any
    B >= 1, and returns {output name: float32 array (B, width)} for every output the manifest
    lists for the scale (levels and logits). ``description`` says what actually runs.
    """

    name = "backend"

    def __init__(self, bundle: Bundle | None, scale: ScaleSpec) -> None:
        self.bundle = bundle  # None when built from one graph file
        self.scale = scale
        self.output_names = tuple(o.name for o in scale.outputs)

    @classmethod
    def from_file(cls, path: str | Path, *, device: str = "cpu", threads: int | None = None, **backend_options) -> "Backend":
        """A backend running the one graph file ``path``; its input and outputs come from the graph."""
        raise NotImplementedError(f"backend {cls.name!r} cannot run a single graph file")

    @property
    @abstractmethod
    def description(self) -> str:
        """One line for logs: library, device, precision, threads."""

    @abstractmethod
    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """(B, segment_samples) float32 -> {output name: (B, width) float32}."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.scale.segment_samples or batch.shape[0] < 1:
            raise ValueError(
                f"scale {self.scale.name} takes batches of shape (B >= 1, {self.scale.segment_samples}), "
                f"got {batch.shape}"
            )
        return self._run(batch)

    def close(self) -> None:
        """Release the session / engine and device memory. Idempotent."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_choice(what: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise BackendError(f"{what} {value!r} is not one of {', '.join(valid)}")
    return value


def graph_scale_spec(path: str | Path, input_name: str, input_shape, outputs: list[tuple[str, tuple]]) -> ScaleSpec:
    """A ScaleSpec describing one graph file: input ``input_name`` (B, L), outputs ``(name, (B, width))``.

    Levels come from the output names the exporter writes (``level3`` -> 3; anything else 0).
    """
    shape = tuple(input_shape)
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise BackendError(f"{path}: input {input_name!r} has shape {shape}; a samplecnn graph takes (batch, segment_samples)")
    specs = []
    for name, out_shape in outputs:
        if len(out_shape) != 2 or not isinstance(out_shape[1], int):
            raise BackendError(f"{path}: output {name!r} has shape {tuple(out_shape)}; a samplecnn graph gives (batch, width)")
        match = re.fullmatch(r"level(\d+)", name)
        specs.append(OutputSpec(name, int(match.group(1)) if match else 0, int(out_shape[1])))
    stem = Path(path).name
    return ScaleSpec(stem, int(shape[1]), input_name, {}, tuple(specs))


def run_in_batches(backend: Backend, segments: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """``segments: (N, segment_samples)`` through ``backend`` in batches -> {output name: (N, width)} float32."""
    if batch_size < 1 or len(segments) == 0:
        raise ValueError(f"run_in_batches needs batch_size >= 1 and segments, got batch {batch_size}, {len(segments)} segments")
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(segments), batch_size):
        for name, value in backend.infer(segments[start : start + batch_size]).items():
            parts.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}
