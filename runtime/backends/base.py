"""The backend interface every runner shares (Polygraphy-like).

A backend is built from one scale of a verified bundle and runs that scale's graph::

    with OrtBackend(bundle, scale, precision="fp32") as backend:
        outputs = backend.infer(batch)      # (B, segment_samples) float32
        outputs["level1"]                   # (B, width) float32, one entry per manifest output

Each backend imports its library lazily inside its module, so importing
``samplecnn.runtime.backends`` costs nothing and a missing library raises
:class:`BackendError` naming the extra to install.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..bundle import Bundle, ScaleSpec

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

    def __init__(self, bundle: Bundle, scale: ScaleSpec) -> None:
        self.bundle = bundle
        self.scale = scale
        self.output_names = tuple(o.name for o in scale.outputs)

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
