"""Backends that run one scale of a bundle: onnxruntime (``ort``) and TensorRT (``trt``).

:func:`open_backend` resolves ``backend="auto"`` and says what it chose; a backend that was
asked for by name and cannot load raises :class:`BackendError`, never falls back.
"""

from __future__ import annotations

import importlib.util

from ..bundle import Bundle, ScaleSpec
from .base import BACKENDS, DEVICES, Backend, BackendError, check_choice


def resolve_backend(bundle: Bundle, backend: str, device: str, precision: str) -> tuple[str, str]:
    """(backend name, reason) for a request; ``auto`` picks, a named backend is kept as is.

    ``auto`` on cpu -> ort. ``auto`` on cuda -> trt when tensorrt is installed and every scale
    has an engine of ``precision``, else ort (which then needs onnxruntime-gpu).
    """
    check_choice("backend", backend, BACKENDS)
    check_choice("device", device, DEVICES)
    if backend != "auto":
        return backend, "requested"
    if device == "cpu":
        return "ort", "auto: device cpu runs onnxruntime"
    has_engines = all(any(e.precision == precision for e in s.engines) for s in bundle.scales)
    if has_engines and importlib.util.find_spec("tensorrt") is not None:
        return "trt", f"auto: tensorrt is installed and the bundle has {precision} engines"
    why = "tensorrt is not installed" if has_engines else f"the bundle has no {precision} TensorRT engines"
    return "ort", f"auto: {why}, so onnxruntime's CUDA provider"


def open_backend(
    bundle: Bundle, scale: ScaleSpec, backend: str, *, device: str = "cpu", precision: str = "fp32", threads: int | None = None
) -> Backend:
    """Build the named backend (``ort`` or ``trt``; resolve ``auto`` first) for one scale."""
    if backend == "ort":
        from .ort import OrtBackend

        return OrtBackend(bundle, scale, precision=precision, device=device, threads=threads)
    if backend == "trt":
        from .tensorrt import TrtBackend

        return TrtBackend(bundle, scale, precision=precision, device=device)
    raise BackendError(f"backend {backend!r} is not one of ort, trt (resolve 'auto' with resolve_backend first)")


__all__ = ["BACKENDS", "DEVICES", "Backend", "BackendError", "open_backend", "resolve_backend"]
