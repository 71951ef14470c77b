"""Backends that run one scale of a bundle: onnxruntime (``ort``), TensorRT (``trt``) and OpenVINO (``openvino``).

:func:`open_backend` resolves ``backend="auto"`` and says what it chose; a backend that was
asked for by name and cannot load raises :class:`BackendError`, never falls back.
"""

from __future__ import annotations

import importlib.util

from ..bundle import Bundle, ScaleSpec
from .base import BACKENDS, DEVICES, Backend, BackendError, check_choice, run_in_batches


def resolve_backend(bundle: Bundle, backend: str, device: str, precision: str) -> tuple[str, str]:
    """(backend name, reason) for a request; ``auto`` picks, a named backend is kept as is.

    ``auto`` on cpu -> the fastest installed backend exact for ``precision`` (CPU_ORDER). ``auto``
    on cuda -> trt when tensorrt is installed and every scale has an engine of ``precision``,
    else ort (which then needs onnxruntime-gpu).
    """
    check_choice("backend", backend, BACKENDS)
    check_choice("device", device, DEVICES)
    if precision == "bf16" and backend not in ("auto", "openvino"):
        raise BackendError(f"precision bf16 runs on --backend openvino only ({backend} has no bf16 kernels for these graphs): "
                           "pass --backend openvino (pip install 'samplecnn[openvino]'), or --precision fp32")
    if backend != "auto":
        return backend, "requested"
    if device == "cpu":
        return resolve_cpu_backend(precision)
    has_engines = all(any(e.precision == precision for e in s.engines) for s in bundle.scales)
    if has_engines and importlib.util.find_spec("tensorrt") is not None:
        return "trt", f"auto: tensorrt is installed and the bundle has {precision} engines"
    why = "tensorrt is not installed" if has_engines else f"the bundle has no {precision} TensorRT engines"
    return "ort", f"auto: {why}, so onnxruntime's CUDA provider"


# CPU backends first to last per precision, among those exact for it (OpenVINO with its
# precision hint pinned; onnxruntime runs the fp32 and QDQ int8 graphs as they are). Measured
# with the default model on 2 cores (Sapphire Rapids, 2026-11-30, `samplecnn infer SONG`):
# onnxruntime reaches the first result 0.6-1.4 s sooner (OpenVINO: +0.2 s import, +0.3 s
# compile/import, +0.1-0.6 s first-shape kernels), and the throughput of the two was within
# run-to-run spread, so fp32 and int8 stay on onnxruntime; bf16 exists only on OpenVINO.
# `samplecnn bench` measures both again; reorder here when its pipeline rows say otherwise.
CPU_ORDER = {"fp32": ("ort", "openvino"), "bf16": ("openvino",), "int8": ("ort", "openvino"), "fp16": ("ort",)}


def resolve_cpu_backend(precision: str) -> tuple[str, str]:
    """(backend, reason) of ``auto`` on cpu: the first installed backend of CPU_ORDER[precision]."""
    order = CPU_ORDER.get(precision, ("ort",))
    if order[0] == "ort":
        return "ort", "auto: device cpu runs onnxruntime"
    if importlib.util.find_spec("openvino") is not None:
        return "openvino", f"auto: {precision} on cpu runs on OpenVINO (the only backend with {precision} kernels here)"
    raise BackendError(f"precision {precision} on cpu needs --backend openvino, and openvino is not installed: "
                       "pip install 'samplecnn[openvino]', or pass --precision fp32")


def open_backend(
    bundle: Bundle, scale: ScaleSpec, backend: str, *, device: str = "cpu", precision: str = "fp32", threads: int | None = None
) -> Backend:
    """Build the named backend (``ort``, ``trt`` or ``openvino``; resolve ``auto`` first) for one scale."""
    if backend == "ort":
        from .ort import OrtBackend

        return OrtBackend(bundle, scale, precision=precision, device=device, threads=threads)
    if backend == "trt":
        from .tensorrt import TrtBackend

        return TrtBackend(bundle, scale, precision=precision, device=device)
    if backend == "openvino":
        from .openvino import OpenVinoBackend

        return OpenVinoBackend(bundle, scale, precision=precision, device=device, threads=threads)
    raise BackendError(f"backend {backend!r} is not one of ort, trt, openvino (resolve 'auto' with resolve_backend first)")


GRAPH_SUFFIXES = {".onnx": "ort", ".plan": "trt", ".engine": "trt"}


def open_graph_file(path, *, device: str | None = None, threads: int | None = None, **backend_options) -> Backend:
    """The serving backend for one graph file, chosen by its suffix (.onnx: ort, .plan/.engine: trt).

    ``device`` defaults to cpu for ONNX and cuda for engines; outputs come from the graph itself.
    """
    from pathlib import Path

    backend = GRAPH_SUFFIXES.get(Path(path).suffix)
    if backend == "ort":
        from .ort import OrtBackend

        return OrtBackend.from_file(path, device=device or "cpu", threads=threads, **backend_options)
    if backend == "trt":
        from .tensorrt import TrtBackend

        return TrtBackend.from_file(path, device=device or "cuda", threads=threads, **backend_options)
    raise BackendError(f"{path}: no backend runs {Path(path).suffix!r} files; valid suffixes: {', '.join(GRAPH_SUFFIXES)}")


__all__ = ["BACKENDS", "DEVICES", "Backend", "BackendError", "open_backend", "open_graph_file", "resolve_backend", "run_in_batches"]
