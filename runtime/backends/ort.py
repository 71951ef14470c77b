"""onnxruntime backend: CPU, or the CUDA execution provider when onnxruntime-gpu is installed.

Never falls back silently: asking for ``device="cuda"`` without a CUDA provider is an error,
and the session is created with exactly the providers asked for.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..bundle import PRECISIONS, Bundle, BundleError, ScaleSpec, sha256_file
from .base import DEVICES, Backend, BackendError, check_choice, graph_scale_spec
from .compiled_cache import CacheRefused, CompiledCache, cache_key

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


_shared_arena_lock = threading.Lock()
_shared_arena_registered = False


def _shared_cpu_arena(ort) -> None:
    """Register, once per process, the CPU arena every session of this backend allocates from.

    Activations come from one arena shared by all sessions (``session.use_env_allocators``): it
    grows to the largest single run of any of them and every later run reuses it. Per-session
    arenas kept each session's own high-water mark (970 vs 430 MB peak for the full-width presets
    at batch 8 fp32). No arena handed every activation back to malloc, and under `samplecnn
    infer`'s 1 MB mmap threshold (runtime/infer.py) each run page-faulted its activations in
    afresh: ~300,000 minor faults and ~0.6 s of kernel time per 30 s song at full width fp32
    (shared arena: ~9,000 and 0.03 s). Measured 2026-11-30 on the loaded 2-core VM, interleaved:
    a cold `samplecnn infer` of one song 4.13 -> 2.80 s (full width, fp32), 2.2 min example
    10.8 -> 6.9 s, same output; peak RSS +9 MB fp32 on a 20 min file (int8: see the batch budget
    in runtime/tagger.py). ``arena_extend_strategy`` 1 (kSameAsRequested): grow by what a run
    asks for, not by powers of two.
    """
    global _shared_arena_registered
    with _shared_arena_lock:
        if not _shared_arena_registered:
            memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(memory, ort.OrtArenaCfg({"arena_extend_strategy": 1}))
            _shared_arena_registered = True


def session_options(ort, threads: int, optimise: bool):
    """The CPU session options of every onnxruntime session samplecnn makes (the backend, the graph
    cache, benchmarks/op_profile.py): ``threads`` intra-op threads, the shared arena, all graph
    optimisations or none (``optimise``: False for an already optimised graph)."""
    options = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimise else level.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the optimizer's notices are not user-facing
    # One arena shared by every session of the process (see _shared_cpu_arena); memory
    # patterns off: they pre-plan one block per session and input shape.
    _shared_cpu_arena(ort)
    options.enable_cpu_mem_arena = True
    options.add_session_config_entry("session.use_env_allocators", "1")
    options.enable_mem_pattern = False
    # A Tagger holds one session per scale; with spinning on, each idle session's pool
    # keeps busy-waiting on the cores the running one needs. Off: pipeline measured 15%
    # faster fp32 and 58% faster int8 on 2 cores (benchmarks/, 2026-11-28).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _session(ort, model, options, providers, path):
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types per failure
        raise BackendError(f"onnxruntime could not load {path} ({exc}); re-export the bundle with `samplecnn export`") from exc


def _cached_cpu_session(ort, path: Path, threads: int, cache: CompiledCache, graph_sha256: str | None):
    """(session, cache status) on the CPU through the optimised-graph cache (compiled_cache.py).

    Hit: the stored optimised graph, loaded with the optimiser off (no rewrite at start).
    Miss or refused entry: optimise as usual, asking onnxruntime to save the optimised graph,
    and store it. The key covers graph, onnxruntime version, optimisation level and CPU flags:
    an ``ORT_ENABLE_ALL`` graph holds layouts for this CPU's vector width, so it is never
    carried to another machine."""
    graph_sha256 = graph_sha256 or sha256_file(path)
    stem = Path(path).name.removesuffix(".onnx")
    key = cache_key(graph_sha256, ort.__version__, {"graph_optimization_level": "ORT_ENABLE_ALL"})
    status = "miss"
    try:
        blob = cache.read(stem, key)
    except CacheRefused as exc:
        blob, status = None, f"rebuilt: {exc}"
    if blob is not None:
        try:
            return ort.InferenceSession(blob, sess_options=session_options(ort, threads, optimise=False), providers=[CPU]), "hit"
        except Exception as exc:  # a blob onnxruntime will not load is rebuilt, never trusted
            status = f"rebuilt: cached {stem} was refused by onnxruntime ({exc})"
    options = session_options(ort, threads, optimise=True)
    fd, saved = tempfile.mkstemp(prefix=f"{stem}.", suffix=".onnx")
    os.close(fd)
    try:
        options.optimized_model_filepath = saved
        session = _session(ort, str(path), options, [CPU], path)
        data = Path(saved).read_bytes()
    finally:
        Path(saved).unlink(missing_ok=True)
    record = {"graph": Path(path).name, "graph_sha256": graph_sha256, "onnxruntime": ort.__version__, "graph_optimization_level": "ORT_ENABLE_ALL"}
    if data and cache.write(stem, key, data, record):
        return session, status
    return session, "off (not writable)"


def open_session(path: str | Path, device: str, threads: int, *, cache: bool = True, cache_dir: str | Path | None = None,
                 graph_sha256: str | None = None):
    """(session, cache status) serving uses for ``path``: exactly the provider asked for, tuned as
    in :func:`_options`. On the CPU the optimised graph comes from the graph cache unless
    ``cache=False`` (status "hit" | "miss" | "rebuilt: <why>" | "off")."""
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
    if device == "cpu" and cache:
        session, status = _cached_cpu_session(ort, Path(path), threads, CompiledCache("onnxruntime", cache_dir), graph_sha256)
    else:
        session, status = _session(ort, str(path), session_options(ort, threads, optimise=True), providers, path), "off"
    used = session.get_providers()
    if providers[0] not in used:
        raise BackendError(f"onnxruntime did not enable {providers[0]} for {path} (it used {used}); no fallback is taken")
    return session, status


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
        cache: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        """``cache``/``cache_dir``: the optimised-graph cache (compiled_cache.py; CPU only)."""
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
        graph_sha256 = (bundle.manifest.get("files") or {}).get(scale.models[precision])
        session, self.cache_status = open_session(path, device, threads, cache=cache, cache_dir=cache_dir, graph_sha256=graph_sha256)
        self._attach(bundle, scale, session, precision, device, threads)
        graph_outputs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self.output_names if n not in graph_outputs]
        if missing:
            raise BundleError(f"{path} lacks outputs {missing} the manifest lists; re-export the bundle with `samplecnn export`")

    @classmethod
    def from_file(cls, path: str | Path, *, device: str = "cpu", threads: int | None = None, **backend_options) -> "OrtBackend":
        """Run the single ONNX file ``path``; every graph output is returned by :meth:`infer`.

        ``backend_options``: ``precision`` (a label for :attr:`description`, default "graph"),
        ``cache`` and ``cache_dir`` (the optimised-graph cache, as for a bundle).
        """
        precision = backend_options.pop("precision", "graph")
        cache, cache_dir = backend_options.pop("cache", True), backend_options.pop("cache_dir", None)
        if backend_options:
            raise BackendError(f"OrtBackend.from_file got unknown options {sorted(backend_options)}; valid: precision, cache, cache_dir")
        threads = _threads(threads)
        session, cache_status = open_session(path, device, threads, cache=cache, cache_dir=cache_dir)
        (graph_input,) = session.get_inputs()
        outputs = [(o.name, tuple(o.shape)) for o in session.get_outputs()]
        backend = cls.__new__(cls)
        backend._attach(None, graph_scale_spec(path, graph_input.name, graph_input.shape, outputs), session, precision, device, threads)
        backend.cache_status = cache_status
        return backend

    def _attach(self, bundle, scale: ScaleSpec, session, precision: str, device: str, threads: int) -> None:
        Backend.__init__(self, bundle, scale)
        self.session, self.precision, self.device, self.threads = session, precision, device, threads

    @property
    def description(self) -> str:
        # What runs, never how it was loaded: export records this in manifests, which must be
        # byte-identical between builds (the graph cache's hit/miss is in ``cache_status``).
        where = f"CPU, {self.threads} threads" if self.device == "cpu" else "CUDA"
        return f"onnxruntime ({where}), {self.precision}"

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(list(self.output_names), {self.scale.input_name: batch})
        return dict(zip(self.output_names, values))

    def close(self) -> None:
        self.session = None
