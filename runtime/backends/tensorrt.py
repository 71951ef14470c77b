"""TensorRT backend: runs the bundle's prebuilt engine for a scale (TensorRT 10/11 Python API).

Needs ``tensorrt`` and ``cuda-python`` (``pip install 'samplecnn[trt]'``), both imported only
when a :class:`TrtBackend` is built. An engine only runs on the TensorRT version and GPU it
was built for, so the manifest's record of both is checked first and a mismatch is an error
that says to rebuild with ``samplecnn export --engine trt``.

Execution uses the name-based tensor API: ``set_input_shape`` for the dynamic batch,
``set_tensor_address`` for every I/O tensor, ``execute_async_v3`` on a private stream.
Device buffers are sized for the largest batch seen so far and reused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bundle import Bundle, BundleError, EngineSpec, ScaleSpec
from .. import trt_support
from ..trt_support import REBUILD, cuda_call, engine_compatible
from .base import Backend, BackendError, graph_scale_spec

def _check_device(device: str) -> None:
    if device != "cuda":
        raise BackendError(f"backend 'trt' runs on device 'cuda', not {device!r}; pass --device cuda or --backend ort")


def _deserialize(trt, path: Path):
    """(runtime, engine) of ``path``; the runtime must outlive its engine. TensorRT itself refuses
    an engine of another version or GPU, so a single file needs no manifest to be checked."""
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        raise BackendError(f"TensorRT could not deserialize {path}; {REBUILD}")
    return runtime, engine


def import_tensorrt():
    """(tensorrt, cudart) or BackendError naming the extra to install."""
    return trt_support.import_tensorrt(BackendError, "backend 'trt'")


def _check(result):
    return cuda_call(result, BackendError)


def select_engine(bundle: Bundle, scale: ScaleSpec, precision: str | None) -> EngineSpec:
    """The manifest's engine for ``scale`` (of ``precision`` when given)."""
    engines = [e for e in scale.engines if precision in (None, e.precision)]
    if not engines:
        have = sorted({e.precision for e in scale.engines})
        raise BundleError(
            f"bundle {bundle.root} has no TensorRT engine for scale {scale.name}"
            + (f" at precision {precision}" if precision else "")
            + (f" (it has {have})" if have else "")
            + "; build one with `samplecnn export --engine trt`, or use --backend ort"
        )
    return engines[0]


class TrtBackend(Backend):
    """One deserialized engine + execution context for one scale (or one engine file: :meth:`from_file`)."""

    name = "trt"

    def __init__(self, bundle: Bundle, scale: ScaleSpec, *, precision: str | None = None, device: str = "cuda") -> None:
        _check_device(device)
        trt, cudart = import_tensorrt()
        engine_spec = select_engine(bundle, scale, precision)
        ok, reason = engine_compatible(engine_spec, trt.__version__, *trt_support.current_gpu(cudart, BackendError))
        if not ok:
            raise BackendError(reason)
        path = bundle.path(engine_spec.file)
        self.engine_spec = engine_spec
        runtime, engine = _deserialize(trt, path)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [scale.input_name]:
            raise BundleError(f"{path} has inputs {inputs}, the manifest says {[scale.input_name]}; {REBUILD}")
        missing = [o.name for o in scale.outputs if o.name not in names]
        if missing:
            raise BundleError(f"{path} lacks outputs {missing} the manifest lists; {REBUILD}")
        self._attach(bundle, scale, trt, cudart, (runtime, engine), path, engine_spec.precision)

    @classmethod
    def from_file(cls, path: str | Path, *, device: str = "cuda", threads: int | None = None, **backend_options) -> "TrtBackend":
        """Run the single serialized engine ``path`` (built for this TensorRT and GPU); outputs from the engine.

        ``threads`` is accepted for the common signature and unused; ``backend_options``:
        ``precision`` (a label for :attr:`description`, default "engine").
        """
        precision = backend_options.pop("precision", "engine")
        if backend_options:
            raise BackendError(f"TrtBackend.from_file got unknown options {sorted(backend_options)}; valid: precision")
        _check_device(device)
        trt, cudart = import_tensorrt()
        runtime, engine = _deserialize(trt, Path(path))
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise BackendError(f"{path} has inputs {inputs}; a samplecnn engine takes one waveform input")
        outputs = [(n, tuple(engine.get_tensor_shape(n))) for n in names if n not in inputs]
        scale = graph_scale_spec(path, inputs[0], tuple(engine.get_tensor_shape(inputs[0])), outputs)
        backend = cls.__new__(cls)
        backend._attach(None, scale, trt, cudart, (runtime, engine), Path(path), precision)
        return backend

    def _attach(self, bundle, scale: ScaleSpec, trt, cudart, loaded, path: Path, precision: str) -> None:
        Backend.__init__(self, bundle, scale)
        (self.runtime, engine), self.trt, self.cudart, self.file, self.precision = loaded, trt, cudart, path.name, precision
        self.engine = engine
        not_float = [n for n in (scale.input_name, *self.output_names) if engine.get_tensor_dtype(n) != trt.float32]
        if not_float:
            raise BundleError(f"{path}: tensors {not_float} are not float32 (fp16 and int8 engines keep float32 I/O); {REBUILD}")
        self.context = engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())
        self.capacity = 0
        self.buffers: dict[str, int] = {}

    @property
    def description(self) -> str:
        return f"TensorRT {self.trt.__version__} (CUDA), {self.precision} engine {self.file}"

    def _width(self, name: str) -> int:
        return self.scale.segment_samples if name == self.scale.input_name else next(o.width for o in self.scale.outputs if o.name == name)

    def _ensure_capacity(self, batch: int) -> None:
        if batch <= self.capacity:
            return
        self._free()
        for name in (self.scale.input_name, *self.output_names):
            self.buffers[name] = _check(self.cudart.cudaMalloc(batch * self._width(name) * 4))
        self.capacity = batch

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        cudart = self.cudart
        n = batch.shape[0]
        self._ensure_capacity(n)
        name_in = self.scale.input_name
        if not self.context.set_input_shape(name_in, (n, self.scale.segment_samples)):
            raise BackendError(f"engine {self.file} does not accept batch {n}; {REBUILD} with a larger max batch")
        for name, address in self.buffers.items():
            self.context.set_tensor_address(name, address)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(self.buffers[name_in], batch.ctypes.data, batch.nbytes, h2d, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):  # the binding takes the raw handle
            raise BackendError(f"TensorRT execution of {self.file} failed")
        outputs = {}
        for name in self.output_names:
            out = np.empty((n, self._width(name)), dtype=np.float32)
            _check(cudart.cudaMemcpyAsync(out.ctypes.data, self.buffers[name], out.nbytes, d2h, self.stream))
            outputs[name] = out
        _check(cudart.cudaStreamSynchronize(self.stream))
        return outputs

    def _free(self) -> None:
        for address in self.buffers.values():
            self.cudart.cudaFree(address)
        self.buffers = {}
        self.capacity = 0

    def close(self) -> None:
        if getattr(self, "context", None) is None:
            return
        self._free()
        self.cudart.cudaStreamDestroy(self.stream)
        self.context = self.engine = self.runtime = None
