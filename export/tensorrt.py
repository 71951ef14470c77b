"""TensorRT engines: one per scale and precision, built from the bundle's ONNX graph.

Written against the TensorRT 10/11 Python API:

- the network is *strongly typed* (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; always on
  and the flag ignored in TensorRT 11), so the precision comes from the ONNX graph itself: an
  fp32 graph builds an fp32 engine, the FP16 graph an fp16 one, the QDQ graph an int8 one. No
  builder precision flags are set (they are not allowed on strongly typed networks);
- one optimization profile over the dynamic batch axis (min / opt / max);
- a timing cache kept between builds (``~/.cache/samplecnn/trt_timing.cache`` by default) so
  rebuilding on the same GPU skips kernel timing;
- optionally ``BuilderFlag.VERSION_COMPATIBLE`` (the engine then also runs on later TensorRT
  releases of the same major version with the lean runtime).

``tensorrt`` and ``cuda-python`` are imported lazily; when missing, :class:`TensorRTError`
names ``pip install 'samplecnn[trt]'``. :func:`engine_compatible` is pure Python (no torch,
no tensorrt) so the runtime can apply the same rule before deserializing an engine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..runtime import trt_support
from ..runtime.atomic import write_bytes_atomically
from ..runtime.trt_support import REBUILD, cuda_call, engine_compatible
from .errors import ExportError

DEFAULT_PROFILE = (1, 16, 64)  # min / opt / max batch: serving batches 16 segments by default
WORKSPACE_BYTES = 4 << 30  # 3^9 at batch 64 needs well under 1 GiB of scratch; 4 leaves tactic room


class TensorRTError(ExportError):
    """TensorRT missing, an engine that failed to build, or one built for another TensorRT/GPU."""


def default_timing_cache() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "samplecnn" / "trt_timing.cache"


def import_tensorrt():
    """(tensorrt, cudart) or :class:`TensorRTError` naming the extra to install."""
    return trt_support.import_tensorrt(TensorRTError, "--engine trt")


def _cuda(result):
    return cuda_call(result, TensorRTError)


def current_gpu(cudart) -> tuple[str, str]:
    return trt_support.current_gpu(cudart, TensorRTError)


def check_engine_compatible(engine_spec, trt_version: str, gpu: str, compute_capability: str | None = None) -> None:
    """:func:`engine_compatible`, raising :class:`TensorRTError` with the reason when it is not."""
    ok, reason = engine_compatible(engine_spec, trt_version, gpu, compute_capability)
    if not ok:
        raise TensorRTError(reason)


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    precision: str,
    input_name: str,
    segment_samples: int,
    profile: tuple[int, int, int] = DEFAULT_PROFILE,
    timing_cache: str | Path | None = None,
    version_compatible: bool = False,
) -> dict:
    """Build a serialized engine for ``input_name: (B, segment_samples)``, B in ``profile``.

    Returns the manifest ``engines`` entry (file, precision, tensorrt_version, gpu,
    compute_capability) plus build details under ``"build"`` (callers keep them elsewhere).
    """
    trt, cudart = import_tensorrt()
    low, opt, high = profile
    if not 1 <= low <= opt <= high:
        raise TensorRTError(f"batch profile {profile}: need 1 <= min <= opt <= max, e.g. {DEFAULT_PROFILE}")
    gpu, capability = current_gpu(cudart)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    shapes = builder.create_optimization_profile()
    shapes.set_shape(input_name, (low, segment_samples), (opt, segment_samples), (high, segment_samples))
    config.add_optimization_profile(shapes)
    cache_path = Path(timing_cache) if timing_cache is not None else default_timing_cache()
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"TensorRT failed to build an engine from {onnx_path} on {gpu}; see the TensorRT log above")
    seconds = time.perf_counter() - started
    write_bytes_atomically(cache_path, bytes(config.get_timing_cache().serialize()))
    write_bytes_atomically(plan_path, bytes(serialized))
    return {
        "file": Path(plan_path).name,
        "precision": precision,
        "tensorrt_version": trt.__version__,
        "gpu": gpu,
        "compute_capability": capability,
        "build": {
            "file": Path(plan_path).name,
            "onnx": Path(onnx_path).name,
            "profile": {"min": low, "opt": opt, "max": high},
            "strongly_typed": True,
            "version_compatible": version_compatible,
            "build_seconds": round(seconds, 2),
        },
    }


def run_engine(plan_path: str | Path, input_name: str, segments, batch_size: int) -> dict:
    """Run ``segments: (N, L)`` float32 through an engine in batches -> {output: (N, width)} (for parity)."""
    import numpy as np

    trt, cudart = import_tensorrt()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
    if engine is None:
        raise TensorRTError(f"TensorRT could not load {plan_path}; {REBUILD}")
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    stream = _cuda(cudart.cudaStreamCreate())
    results: dict[str, list] = {n: [] for n in outputs}
    buffers = {}
    try:
        for start in range(0, len(segments), batch_size):
            batch = np.ascontiguousarray(segments[start : start + batch_size], dtype=np.float32)
            context.set_input_shape(input_name, batch.shape)
            host = {input_name: batch}
            for name in outputs:
                host[name] = np.empty(tuple(context.get_tensor_shape(name)), dtype=np.float32)
            for name, array in host.items():
                buffers[name] = _cuda(cudart.cudaMalloc(array.nbytes))
                context.set_tensor_address(name, buffers[name])
            _cuda(cudart.cudaMemcpyAsync(buffers[input_name], batch.ctypes.data, batch.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
            if not context.execute_async_v3(stream):
                raise TensorRTError(f"TensorRT execution of {plan_path} failed")
            for name in outputs:
                _cuda(cudart.cudaMemcpyAsync(host[name].ctypes.data, buffers[name], host[name].nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
            _cuda(cudart.cudaStreamSynchronize(stream))
            for name in outputs:
                results[name].append(host[name])
            for address in buffers.values():
                _cuda(cudart.cudaFree(address))
            buffers.clear()
    finally:
        for address in buffers.values():
            cudart.cudaFree(address)
        cudart.cudaStreamDestroy(stream)
    return {name: np.concatenate(parts) for name, parts in results.items()}

