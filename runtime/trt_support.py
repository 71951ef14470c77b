"""TensorRT helpers shared by the runtime backend and the exporter (no torch, and no tensorrt
import until a function needs it).

An engine is tied to the exact TensorRT release and to the GPU model it was built on (kernels
are chosen and timed per SM), so :func:`engine_compatible` demands both match exactly.
"""

from __future__ import annotations

INSTALL = "pip install 'samplecnn[trt]'"
REBUILD = "rebuild the engine on this machine with `samplecnn export CHECKPOINT... --engine trt`"


def import_tensorrt(error: type[Exception], purpose: str):
    """(tensorrt, cudart), or ``error`` naming the extra to install. ``purpose``: who asks, for the message."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise error(f"{purpose} needs the tensorrt package, which is not installed: {INSTALL} (on a machine with an NVIDIA GPU)") from exc
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise error(f"{purpose} needs cuda-python for GPU memory, which is not installed: {INSTALL}") from exc
    return trt, cudart


def cuda_call(result, error: type[Exception] = RuntimeError):
    """cuda-python returns (status, *values): raise ``error`` on a failed status, else return the values."""
    status, *values = result if isinstance(result, tuple) else (result,)
    if int(status) != 0:
        raise error(f"CUDA call failed ({status}); TensorRT engines need an NVIDIA GPU and driver")
    return values[0] if len(values) == 1 else values


def current_gpu(cudart, error: type[Exception] = RuntimeError) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of CUDA device 0."""
    props = cuda_call(cudart.cudaGetDeviceProperties(0), error)
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00").strip(), f"{props.major}.{props.minor}"


def _field(spec, name: str) -> str:
    value = spec.get(name) if isinstance(spec, dict) else getattr(spec, name, None)
    return "" if value is None else str(value)


def engine_compatible(engine_spec, trt_version: str, gpu: str, compute_capability: str | None = None) -> tuple[bool, str]:
    """Whether an engine (manifest ``engines`` entry, dict or EngineSpec) runs here: (ok, reason).

    The reason says what differs and how to rebuild; ``compute_capability`` is compared when given.
    """
    built_trt, built_gpu, built_cc = (_field(engine_spec, k) for k in ("tensorrt_version", "gpu", "compute_capability"))
    file = _field(engine_spec, "file") or "engine"
    if built_trt != str(trt_version):
        return False, f"{file} was built with TensorRT {built_trt}, this is TensorRT {trt_version}; {REBUILD}"
    if built_gpu != str(gpu) or (compute_capability is not None and built_cc != str(compute_capability)):
        here = f"{gpu}" + (f" (compute {compute_capability})" if compute_capability is not None else "")
        return False, f"{file} was built for {built_gpu} (compute {built_cc}), this GPU is {here}; {REBUILD}"
    return True, f"{file}: TensorRT {built_trt} on {built_gpu} matches"
