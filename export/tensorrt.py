"""TensorRT engines: one per scale and precision, built from the bundle's ONNX graph.

Written against the TensorRT 10/11 Python API:

- the network is *strongly typed* (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; always on
  and the flag ignored in TensorRT 11), so the precision comes from the ONNX graph itself: an
  fp32 graph builds an fp32 engine, the FP16 graph an fp16 one, the QDQ graph an int8 one. No
  builder precision flags are set (they are not allowed on strongly typed networks);
- one optimization profile over the dynamic batch axis (min / opt / max);
- a timing cache kept between builds (``~/.cache/samplecnn/trt_timing.cache`` by default) so
  rebuilding on the same GPU skips kernel timing. A cache written by another TensorRT or GPU is
  detected (a ``.json`` record beside it: TensorRT version, GPU, compute capability, sha256;
  and ``set_timing_cache(..., ignore_mismatch=False)``'s result) and started afresh;
- int8 engines are built from the TensorRT int8 graph (signed, symmetric QDQ: see
  ``quantize.Int8Settings.tensorrt``), never from the onnxruntime-tuned u8 graph.

No version-compatible engines: they need the lean runtime and host code allowed at load, and
the runtime's rule (:func:`engine_compatible`) demands the exact TensorRT that built an engine.

``tensorrt`` and ``cuda-python`` are imported lazily; when missing, :class:`TensorRTError`
names ``pip install 'samplecnn[trt]'``. :func:`engine_compatible` is pure Python (no torch,
no tensorrt) so the runtime can apply the same rule before deserializing an engine.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..runtime import trt_support
from ..runtime.atomic import write_bytes_atomically
from ..runtime.bundle import sha256_file
from ..runtime.trt_support import cuda_call, engine_compatible
from .errors import ExportCheckFailed, ExportError

DEFAULT_PROFILE = (1, 16, 64)  # min / opt / max batch: serving batches 16 segments by default
WORKSPACE_BYTES = 4 << 30  # 3^9 at batch 64 needs well under 1 GiB of scratch; 4 leaves tactic room


class TensorRTError(ExportError):
    """TensorRT missing, a bad build option, or an engine built for another TensorRT/GPU."""


class EngineBuildError(TensorRTError, ExportCheckFailed):
    """TensorRT could not parse a graph or build its engine."""


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


def timing_cache_record(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name + ".json")


def read_timing_cache(cache_path: str | Path, tensorrt_version: str, gpu: str, compute_capability: str) -> tuple[bytes, str]:
    """(cache bytes or b"", why) for a build with this TensorRT on this GPU (pure Python).

    A cache without its record, with a record of another TensorRT / GPU / compute capability,
    or whose bytes do not match the record's sha256 is stale: b"" (a fresh cache) and the reason.
    """
    cache_path = Path(cache_path)
    record_path = timing_cache_record(cache_path)
    if not cache_path.is_file():
        return b"", "no timing cache yet"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return b"", f"{cache_path} has no valid record {record_path.name}: rebuilt"
    here = {"tensorrt_version": str(tensorrt_version), "gpu": gpu, "compute_capability": str(compute_capability)}
    differs = {k: record.get(k) for k, v in here.items() if record.get(k) != v}
    if differs:
        return b"", f"{cache_path} was written for {differs}, this is {here}: rebuilt"
    if record.get("sha256") != sha256_file(cache_path):
        return b"", f"{cache_path} does not match its record (changed or truncated): rebuilt"
    return cache_path.read_bytes(), f"reused {cache_path}"


def write_timing_cache(cache_path: str | Path, data: bytes, tensorrt_version: str, gpu: str, compute_capability: str) -> None:
    """Save the cache, then its record (a cache without a valid record is never trusted)."""
    cache_path = Path(cache_path)
    write_bytes_atomically(cache_path, data)
    record = {"tensorrt_version": str(tensorrt_version), "gpu": gpu, "compute_capability": str(compute_capability), "sha256": sha256_file(cache_path)}
    write_bytes_atomically(timing_cache_record(cache_path), (json.dumps(record, indent=2) + "\n").encode())


def _attach_timing_cache(config, data: bytes):
    """Give ``config`` a timing cache from ``data``; TensorRT refusing it (a mismatch) means a fresh one."""
    cache = config.create_timing_cache(data) if data else None
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return True
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return False


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    precision: str,
    input_name: str,
    segment_samples: int,
    profile: tuple[int, int, int] = DEFAULT_PROFILE,
    timing_cache: str | Path | None = None,
) -> dict:
    """Build a serialized engine for ``input_name: (B, segment_samples)``, B in ``profile``.

    Returns the manifest ``engines`` entry (:class:`samplecnn.runtime.bundle.EngineSpec`
    fields: file, precision, tensorrt_version, gpu, compute_capability, onnx, build).
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
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    shapes = builder.create_optimization_profile()
    shapes.set_shape(input_name, (low, segment_samples), (opt, segment_samples), (high, segment_samples))
    config.add_optimization_profile(shapes)
    cache_path = Path(timing_cache) if timing_cache is not None else default_timing_cache()
    data, cache_note = read_timing_cache(cache_path, trt.__version__, gpu, capability)
    if not _attach_timing_cache(config, data) and data:
        cache_note = f"TensorRT refused {cache_path} (another build's cache): rebuilt"
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} on {gpu}; see the TensorRT log above")
    seconds = time.perf_counter() - started
    write_timing_cache(cache_path, bytes(config.get_timing_cache().serialize()), trt.__version__, gpu, capability)
    write_bytes_atomically(plan_path, bytes(serialized))
    return {
        "file": Path(plan_path).name,
        "precision": precision,
        "tensorrt_version": trt.__version__,
        "gpu": gpu,
        "compute_capability": capability,
        "onnx": Path(onnx_path).name,
        "build": {
            "profile": {"min": low, "opt": opt, "max": high},
            "strongly_typed": True,
            "timing_cache": cache_note,
            "build_seconds": round(seconds, 2),
        },
    }
