"""OpenVINO backend (CPU): the bundle's ONNX graphs compiled by OpenVINO, in fp32, bf16 or int8.

    with OpenVinoBackend(bundle, scale, precision="bf16") as backend:
        backend.infer(batch)               # (B, segment_samples) float32 -> {name: (B, width) float32}

Precisions (``PRECISIONS``) and what runs:

- ``fp32``: the fp32 graph with ``INFERENCE_PRECISION_HINT`` pinned to f32. OpenVINO's CPU
  plugin otherwise picks bf16 by itself on CPUs that have it; that never happens here behind
  the user's back (the hint is read back from the compiled model and checked).
- ``bf16``: the same fp32 graph with the hint set to bf16: only on a CPU with native bf16
  (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo); elsewhere OpenVINO would emulate it
  slowly, so it is an error. A bundle that records a bf16 top-5 agreement with fp32 below
  ``BF16_MIN_AGREEMENT`` (``quantization.bf16`` of a scale) is refused, as export refuses int8.
- ``int8``: the bundle's QDQ int8 graph (OpenVINO runs its quantized convolutions with
  VNNI / AMX int8 kernels); everything outside the quantized ops stays f32, as in onnxruntime.

Compiled-model cache (compiled_cache.py, shared with onnxruntime's optimised graphs): compiling
costs 0.2-0.5 s per graph. The compiled model is exported to
``cache_dir`` (default ``$SAMPLECNN_OPENVINO_CACHE`` or ``~/.cache/samplecnn/openvino``) as
``<key>.blob`` + ``<key>.json``; the key covers the graph's sha256, the OpenVINO version, the
precision, the threads and the CPU's flags. A blob is imported only when its sha256 matches
its record and OpenVINO accepts it with the requested precision; anything else (truncated,
corrupt, wrong precision) is rebuilt and rewritten atomically, never trusted.
``cache_status`` says what happened: "hit", "miss", "rebuilt: <why>" or "off".
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from ..bundle import Bundle, BundleError, OutputSpec, ScaleSpec, sha256_file
from .base import DEVICES, Backend, BackendError, check_choice
from .compiled_cache import CacheRefused, CompiledCache, cache_key, cpu_flags

PRECISIONS = ("fp32", "bf16", "int8")
GRAPH_OF = {"fp32": "fp32", "bf16": "fp32", "int8": "int8"}  # which bundle graph each precision compiles
HINT_OF = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # INFERENCE_PRECISION_HINT
HINT_READ_BACK = {"f32": "float32", "bf16": "bfloat16"}  # how the compiled model reports the hint
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
BF16_MIN_AGREEMENT = 0.9  # the same gate export applies to int8 (export.quantize.DEFAULT_MIN_AGREEMENT)
EXTRA = "pip install 'samplecnn[openvino]'"

_core = None  # one ov.Core per process: creating it loads the plugin registry (about 50 ms)


def import_openvino():
    """The ``openvino`` module, or BackendError naming the extra to install."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendError(f"--backend openvino needs the openvino package, which is not installed ({exc}): {EXTRA}, "
                           "or pass --backend ort") from exc
    return openvino


def core():
    global _core
    if _core is None:
        _core = import_openvino().Core()
    return _core


def openvino_version() -> str:
    return import_openvino().get_version()


def check_native_bf16(flags: set[str]) -> None:
    """BackendError unless ``flags`` has a native bf16 instruction set (no slow emulation)."""
    if not any(f in flags for f in NATIVE_BF16_FLAGS):
        raise BackendError(
            f"precision bf16 needs a CPU with native bf16 ({' or '.join(NATIVE_BF16_FLAGS)} in /proc/cpuinfo); this CPU has "
            "neither, and emulated bf16 is slower than fp32: pass --precision fp32 (exact) or --precision int8"
        )


def _scale_from_model(path: Path, model) -> ScaleSpec:
    """A ScaleSpec for a lone graph file, read by OpenVINO: input (B, samples), every output
    (B, width); levels from the exporter's output names (``level3`` -> 3, anything else 0)."""
    (port,) = model.inputs
    shape = port.get_partial_shape()
    if shape.rank.get_length() != 2 or not shape[1].is_static:
        raise BackendError(f"{path}: input {port.get_any_name()!r} has shape {shape}; a samplecnn graph takes (batch, segment_samples)")
    outputs = []
    for out in model.outputs:
        name, out_shape = out.get_any_name(), out.get_partial_shape()
        if out_shape.rank.get_length() != 2 or not out_shape[1].is_static:
            raise BackendError(f"{path}: output {name!r} has shape {out_shape}; a samplecnn graph gives (batch, width)")
        match = re.fullmatch(r"level(\d+)", name)
        outputs.append(OutputSpec(name, int(match.group(1)) if match else 0, out_shape[1].get_length()))
    return ScaleSpec(path.name, shape[1].get_length(), port.get_any_name(), {}, tuple(outputs))


class OpenVinoBackend(Backend):
    """One OpenVINO compiled model (latency mode, one stream) for one scale and precision.

    Args:
        bundle, scale: a verified bundle and one of its scales.
        precision: "fp32" | "bf16" | "int8" (see the module docstring).
        device: "cpu" only (OpenVINO's GPU plugin is not wired in; use --backend trt on cuda).
        threads: inference threads (default: one per CPU this process may use).
        cache_dir: compiled-model cache folder (default :func:`default_cache_dir`); ``cache=False``
            compiles every time.
        perf_counts: turn on OpenVINO's per-node performance counters (``request.profiling_info``;
            for profiling, benchmarks/op_profile.py). A separate compiled model: the cache key
            covers the whole config.
    """

    name = "openvino"

    def __init__(self, bundle: Bundle | None, scale: ScaleSpec, *, precision: str = "fp32", device: str = "cpu",
                 threads: int | None = None, cache_dir: str | Path | None = None, cache: bool = True, perf_counts: bool = False,
                 _graph: Path | None = None,
                 _graph_sha256: str | None = None) -> None:
        super().__init__(bundle, scale)
        check_choice("device", device, DEVICES)
        if device != "cpu":
            raise BackendError(f"--backend openvino runs on cpu only here, not {device!r}: pass --device cpu, or --backend trt / ort on cuda")
        if precision not in PRECISIONS:
            raise BackendError(f"--backend openvino runs precision {' | '.join(PRECISIONS)}, not {precision!r}; "
                               "fp16 graphs run on --backend ort or trt")
        if threads is not None and threads < 1:
            raise BackendError(f"threads = {threads}: must be at least 1 (or None for one per CPU)")
        import_openvino()
        if precision == "bf16":
            check_native_bf16(cpu_flags())
            self._check_bf16_gate(scale)
        from .ort import default_threads

        self.precision, self.device = precision, device
        self.threads = threads or default_threads()
        if _graph is None:
            graph_precision = GRAPH_OF[precision]
            if graph_precision not in scale.models:
                raise BundleError(f"bundle {bundle.root} has no {graph_precision} graph for scale {scale.name} (precision {precision} "
                                  f"compiles it); it has {sorted(scale.models)}: export one with `samplecnn export --precision {graph_precision}`")
            _graph = bundle.path(scale.models[graph_precision])
            _graph_sha256 = (bundle.manifest.get("files") or {}).get(scale.models[graph_precision])
        self.graph = Path(_graph)
        self.graph_sha256 = _graph_sha256 or sha256_file(self.graph)
        self.config = {
            "INFERENCE_PRECISION_HINT": HINT_OF[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(self.threads),
            **({"PERF_COUNT": "YES"} if perf_counts else {}),  # per-node times in request.profiling_info (benchmarks/op_profile.py)
        }
        self.cache = CompiledCache("openvino", cache_dir)
        self.cache_dir = self.cache.folder
        self.cache_status = "off"
        self.compiled = self._load_cached() if cache else None
        if self.compiled is None:
            self.compiled = self._compile()
            if cache:
                self._store()
        self._check_compiled()
        self.request = self.compiled.create_infer_request()
        self._ports = {o.get_any_name(): i for i, o in enumerate(self.compiled.outputs)}

    @classmethod
    def from_file(cls, path: str | Path, *, device: str = "cpu", threads: int | None = None, **backend_options) -> "OpenVinoBackend":
        """One ONNX graph file, without a bundle. ``backend_options``: precision (fp32 | bf16 for an
        fp32 graph, int8 for a QDQ graph), cache_dir, cache."""
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"{path}: no such graph file; pass an .onnx file written by `samplecnn export`")
        precision = backend_options.pop("precision", "fp32")
        if precision not in PRECISIONS:
            raise BackendError(f"--backend openvino runs precision {' | '.join(PRECISIONS)}, not {precision!r}")
        try:
            model = core().read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses per frontend
            raise BackendError(f"OpenVINO could not read {path} ({exc}); pass an ONNX graph written by `samplecnn export`") from exc
        quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        if quantized != (precision == "int8"):
            raise BackendError(f"{path} is {'a quantized (QDQ int8)' if quantized else 'an unquantized'} graph, and precision {precision!r} "
                               f"needs {'a QDQ int8 graph' if precision == 'int8' else 'an fp32 graph'}: pass "
                               f"precision={'int8' if quantized else 'fp32'!r}{'' if quantized else ' or bf16'}")
        return cls(None, _scale_from_model(path, model), precision=precision, device=device, threads=threads,
                   _graph=path, **backend_options)

    # --- compile, cache -------------------------------------------------------------------------

    def _check_bf16_gate(self, scale: ScaleSpec) -> None:
        record = scale.quantization.get("bf16") or {}
        agreement = record.get("top_k_agreement_mean")
        if agreement is not None and agreement < BF16_MIN_AGREEMENT:
            raise BackendError(f"scale {scale.name}: bf16 top-5 agreement with fp32 is {agreement:.3f} on the bundle's held-out songs, "
                               f"below the required {BF16_MIN_AGREEMENT}: pass --precision fp32 or int8")

    def _compile(self):
        try:
            return core().compile_model(str(self.graph), "CPU", self.config)
        except Exception as exc:
            raise BackendError(f"OpenVINO could not compile {self.graph} for {self.precision} ({exc}); re-export the bundle with "
                               "`samplecnn export`, or pass --backend ort") from exc

    @property
    def cache_key(self) -> str:
        return cache_key(self.graph_sha256, openvino_version(), self.config)

    @property
    def _cache_stem(self) -> str:
        return f"{self.graph.stem}.{self.precision}"

    def cache_files(self) -> tuple[Path, Path]:
        """(blob, record) paths of this graph + precision + threads + CPU in the cache."""
        return self.cache.files(self._cache_stem, self.cache_key)

    def _load_cached(self):
        try:
            blob = self.cache.read(self._cache_stem, self.cache_key)
            if blob is None:
                self.cache_status = "miss"
                return None
            compiled = core().import_model(io.BytesIO(blob), "CPU", self.config)
            self._check_compiled(compiled)
        except Exception as exc:  # any failure means the blob is not trusted: rebuild (CacheRefused included)
            self.cache_status = f"rebuilt: {exc}" if isinstance(exc, CacheRefused) else f"rebuilt: cached {self.cache_files()[0].name} was refused ({exc})"
            return None
        self.cache_status = "hit"
        return compiled

    def _store(self) -> None:
        stream = io.BytesIO()
        self.compiled.export_model(stream)
        record = {"graph": self.graph.name, "graph_sha256": self.graph_sha256, "precision": self.precision, "config": self.config,
                  "openvino": openvino_version()}
        if self.cache.write(self._cache_stem, self.cache_key, stream.getvalue(), record) and self.cache_status == "off":
            self.cache_status = "miss"

    def _check_compiled(self, compiled=None) -> None:
        compiled = compiled or self.compiled
        hint = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        expected = HINT_READ_BACK[HINT_OF[self.precision]]
        if expected not in hint:
            raise BackendError(f"OpenVINO compiled {self.graph} with inference precision {hint}, not the requested {expected}; "
                               "no other precision is taken")
        names = {o.get_any_name() for o in compiled.outputs}
        missing = [n for n in self.output_names if n not in names]
        if missing:
            raise BundleError(f"{self.graph} lacks outputs {missing} the manifest lists; re-export the bundle with `samplecnn export`")

    # --- run ------------------------------------------------------------------------------------

    @property
    def description(self) -> str:
        return (f"OpenVINO {openvino_version().split('-')[0]} (CPU, {self.threads} threads), {self.precision} "
                f"(inference precision {HINT_OF[self.precision]}), compiled-model cache {self.cache_status}")

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        result = self.request.infer({0: batch}, share_inputs=True, share_outputs=False)
        return {name: np.asarray(result[self._ports[name]]) for name in self.output_names}

    def close(self) -> None:
        self.request = None
        self.compiled = None
