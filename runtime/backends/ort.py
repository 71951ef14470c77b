"""onnxruntime backend: CPU, or the CUDA execution provider when onnxruntime-gpu is installed.

Never falls back silently: asking for ``device="cuda"`` without a CUDA provider is an error,
and the session is created with exactly the providers asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..bundle import PRECISIONS, Bundle, BundleError, ScaleSpec
from .base import DEVICES, Backend, BackendError, check_choice, graph_scale_spec

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def default_threads() -> int:
    """Intra-op threads when none are given: one per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def cuda_available() -> bool:
    return CUDA in available_providers()


def open_session(path: str | Path, device: str, threads: int):
    """The InferenceSession serving uses for ``path``: exactly the provider asked for, tuned as below."""
    import onnxruntime as ort

    check_choice("device", device, DEVICES)
    if device == "cuda":
        if CUDA not in ort.get_available_providers():
            raise BackendError(
                f"device 'cuda' needs onnxruntime's {CUDA}, and this onnxruntime has only "
                f"{ort.get_available_providers()}: pip install 'samplecnn[gpu]' (onnxruntime-gpu), "
                "or pass --device cpu"
            )
        providers = [CUDA]
    else:
        providers = [CPU]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the optimizer's notices are not user-facing
    # Without the arena and memory patterns, activations are freed after each run instead of
    # kept at their high-water mark: measured 430 vs 970 MB peak for the full-width presets
    # at batch 8 fp32, for 0-10% of speed (benchmarks/pipeline_profile.py).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    # A Tagger holds one session per scale; with spinning on, each idle session's pool
    # keeps busy-waiting on the cores the running one needs. Off: pipeline measured 15%
    # faster fp32 and 58% faster int8 on 2 cores (benchmarks/, 2026-11-28).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types per failure
        raise BackendError(f"onnxruntime could not load {path} ({exc}); re-export the bundle with `samplecnn export`") from exc
    used = session.get_providers()
    if providers[0] not in used:
        raise BackendError(f"onnxruntime did not enable {providers[0]} for {path} (it used {used}); no fallback is taken")
    return session


def _threads(threads: int | None) -> int:
    if threads is not None and threads < 1:
        raise BackendError(f"threads = {threads}: must be at least 1 (or None for one per CPU)")
    return threads or default_threads()


class OrtBackend(Backend):
    """One onnxruntime InferenceSession for one scale and precision (or one graph file: :meth:`from_file`)."""

    name = "ort"

    def __init__(
        self,
        bundle: Bundle,
        scale: ScaleSpec,
        *,
        precision: str = "fp32",
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise BackendError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}; pass --precision {' or '.join(sorted(scale.models))}")
        if precision not in scale.models:
            raise BundleError(
                f"bundle {bundle.root} has no {precision} graph for scale {scale.name}; it has "
                f"{sorted(scale.models)}. Pass --precision {' or '.join(sorted(scale.models))}, or export "
                f"one with `samplecnn export --precision {precision}`"
            )
        check_choice("device", device, DEVICES)
        threads = _threads(threads)
        path = bundle.path(scale.models[precision])
        self._attach(bundle, scale, open_session(path, device, threads), precision, device, threads)
        graph_outputs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self.output_names if n not in graph_outputs]
        if missing:
            raise BundleError(f"{path} lacks outputs {missing} the manifest lists; re-export the bundle with `samplecnn export`")

    @classmethod
    def from_file(cls, path: str | Path, *, device: str = "cpu", threads: int | None = None, **backend_options) -> "OrtBackend":
        """Run the single ONNX file ``path``; every graph output is returned by :meth:`infer`.

        ``backend_options``: ``precision`` (a label for :attr:`description`, default "graph").
        """
        precision = backend_options.pop("precision", "graph")
        if backend_options:
            raise BackendError(f"OrtBackend.from_file got unknown options {sorted(backend_options)}; valid: precision")
        threads = _threads(threads)
        session = open_session(path, device, threads)
        (graph_input,) = session.get_inputs()
        outputs = [(o.name, tuple(o.shape)) for o in session.get_outputs()]
        backend = cls.__new__(cls)
        backend._attach(None, graph_scale_spec(path, graph_input.name, graph_input.shape, outputs), session, precision, device, threads)
        return backend

    def _attach(self, bundle, scale: ScaleSpec, session, precision: str, device: str, threads: int) -> None:
        Backend.__init__(self, bundle, scale)
        self.session, self.precision, self.device, self.threads = session, precision, device, threads

    @property
    def description(self) -> str:
        where = f"CPU, {self.threads} threads" if self.device == "cpu" else "CUDA"
        return f"onnxruntime ({where}), {self.precision}"

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(list(self.output_names), {self.scale.input_name: batch})
        return dict(zip(self.output_names, values))

    def close(self) -> None:
        self.session = None
