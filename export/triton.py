"""A Triton Inference Server model repository made from a bundle (``samplecnn triton BUNDLE REPO``).

Layout (one model per scale plus the python-backend model that tags audio)::

    REPO/README.md                   how to run it with Triton's container
    REPO/scale_3-9/config.pbtxt      platform onnxruntime_onnx (or tensorrt_plan), max_batch_size,
    REPO/scale_3-9/1/model.onnx      dynamic_batching, input waveform [segment_samples],
                                     outputs level1..3 and logits [width], instance_group
    REPO/samplecnn/config.pbtxt      backend "python": audio (TYPE_STRING [1]) or waveform (FP32
    REPO/samplecnn/1/model.py        [-1]) + sample_rate (INT32 [1]) -> the runtime.oip outputs
    REPO/samplecnn/1/bundle/         a verified copy of the bundle (heads, labels, manifest)

The python model (``export/triton_model.py``, copied as ``model.py``) decodes and segments with
``samplecnn.runtime``, runs the segments through the scale models with BLS requests, and pools
and applies the heads with the runtime's code: the same numbers as :class:`Tagger`. The bundle
is read only through :mod:`samplecnn.runtime.bundle`. The repository is written into a
temporary folder beside ``REPO`` and renamed into place when complete.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..runtime.bundle import Bundle, BundleError, ScaleSpec, scale_file_stem
from ..runtime.oip import AUDIO, MODEL_NAME, SAMPLE_RATE, WAVEFORM, output_specs
from .errors import ExportError

PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_model.py")
KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
TRT_PROFILE_MAX_BATCH = 64  # export.tensorrt.DEFAULT_PROFILE[2]: the engines' largest batch
# Dynamic batching waits at most this long for more segments: a 3^9 segment takes ~10 ms on
# one CPU core, so 2 ms costs little latency and lets concurrent songs share batches.
MAX_QUEUE_DELAY_US = 2000
V2_TO_TRITON = {"FP32": "TYPE_FP32", "BYTES": "TYPE_STRING", "INT32": "TYPE_INT32"}
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:<yy.mm>-py3"


class TritonError(ExportError):
    """A repository that cannot be written from this bundle with these options; says why and what to do."""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor(name: str, data_type: str, dims: list[int], optional: bool = False) -> str:
    extra = " optional: true" if optional else ""
    return f"  {{ name: {_quote(name)} data_type: {data_type} dims: [ {', '.join(map(str, dims))} ]{extra} }}"


def _tensors(kind: str, rows: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _parameters(values: dict[str, str]) -> str:
    rows = [f"  {{ key: {_quote(k)} value: {{ string_value: {_quote(v)} }} }}" for k, v in values.items()]
    return _tensors("parameters", rows)


def scale_model_name(scale: ScaleSpec) -> str:
    """Triton model name of a scale: '3^9' -> 'scale_3-9' (Triton names allow no '^')."""
    return scale_file_stem(scale.name)


def scale_config(scale: ScaleSpec, *, platform: str, max_batch_size: int, instances: int, kind: str) -> str:
    """config.pbtxt text of one scale model."""
    preferred = sorted({b for b in (max_batch_size // 2, max_batch_size) if b >= 1})
    return (
        f"name: {_quote(scale_model_name(scale))}\n"
        f"platform: {_quote(platform)}\n"
        f"max_batch_size: {max_batch_size}\n"
        + _tensors("input", [_tensor(scale.input_name, "TYPE_FP32", [scale.segment_samples])])
        + _tensors("output", [_tensor(o.name, "TYPE_FP32", [o.width]) for o in scale.outputs])
        + f"dynamic_batching {{ preferred_batch_size: [ {', '.join(map(str, preferred))} ] max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US} }}\n"
        + f"instance_group [ {{ count: {instances} kind: {KINDS[kind]} }} ]\n"
    )


def python_config(bundle: Bundle, *, max_batch_size: int, max_bytes: int) -> str:
    """config.pbtxt text of the ``samplecnn`` python-backend model (the runtime.oip contract)."""
    inputs = [
        _tensor(AUDIO, "TYPE_STRING", [1], optional=True),
        _tensor(WAVEFORM, "TYPE_FP32", [-1], optional=True),
        _tensor(SAMPLE_RATE, "TYPE_INT32", [1], optional=True),
    ]
    outputs = [_tensor(name, V2_TO_TRITON[datatype], shape) for name, datatype, shape in output_specs(bundle)]
    scale_models = ";".join(f"{s.name}={scale_model_name(s)}" for s in bundle.scales)
    return (
        f"name: {_quote(MODEL_NAME)}\n"
        'backend: "python"\n'
        "max_batch_size: 0\n"
        + _tensors("input", inputs)
        + _tensors("output", outputs)
        + "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
        + _parameters({"scale_models": scale_models, "segment_batch": str(max_batch_size), "max_bytes": str(max_bytes)})
    )


def _scale_file(bundle: Bundle, scale: ScaleSpec, precision: str, engines: bool) -> tuple[Path, str, str]:
    """(source file, platform, file name in the version folder) of one scale."""
    if not engines:
        if precision not in scale.models:
            raise TritonError(
                f"bundle {bundle.root} has no {precision} ONNX graph for scale {scale.name}; it has {sorted(scale.models)}. "
                f"Pass --precision {' or '.join(sorted(scale.models))}"
            )
        return bundle.path(scale.models[precision]), "onnxruntime_onnx", "model.onnx"
    matches = [e for e in scale.engines if e.precision == precision]
    if len(matches) != 1:
        have = [f"{e.precision} on {e.gpu}" for e in scale.engines] or "none"
        raise TritonError(
            f"--engines needs exactly one {precision} TensorRT engine for scale {scale.name}; the bundle has {have}. "
            "Build one with `samplecnn export --engine trt` on the serving GPU, or drop --engines for ONNX"
        )
    return bundle.path(matches[0].file), "tensorrt_plan", "model.plan"


def _readme(bundle: Bundle, platform: str, kind: str) -> str:
    scales = ", ".join(f"`{scale_model_name(s)}` ({s.name}, {s.segment_samples} samples)" for s in bundle.scales)
    gpus = " --gpus=all" if kind == "gpu" or platform == "tensorrt_plan" else ""
    return f"""# samplecnn Triton model repository

Written by `samplecnn triton` from the bundle `{bundle.root}`.

- Scale models ({platform}): {scales}. Input `waveform` (FP32, one segment per row),
  outputs `level1..3` and `logits`; dynamic batching.
- `samplecnn` (python backend, BLS): send an audio file (`audio`, BYTES [1]) or a mono
  `waveform` (FP32 [n]) with its `sample_rate` (INT32 [1]); parameters `top_k`, `embedding`.
  It answers `scores_<head>`, `labels_<head>`, `top_<head>` per head (and `embedding`), the
  same numbers as `samplecnn infer` on this bundle.

The python model imports `samplecnn.runtime` (numpy, onnxruntime, soundfile, soxr; never
torch), so install samplecnn into the container's Python before starting the server:

    docker run --rm{gpus} -p8000:8000 -p8001:8001 -p8002:8002 -v $PWD:/models {TRITON_IMAGE} \\
        bash -c "pip install samplecnn && tritonserver --model-repository=/models"

Then, from Python (`pip install 'samplecnn[serve]'` gives tritonclient):

    import numpy as np, tritonclient.http as http
    client = http.InferenceServerClient("127.0.0.1:8000")
    audio = http.InferInput("audio", [1], "BYTES")
    audio.set_data_from_numpy(np.array([open("song.mp3", "rb").read()], dtype=object))
    result = client.infer("samplecnn", [audio], parameters={{"top_k": 5}})
    print(result.as_numpy("top_backbone"))

Triton's HTTP endpoint takes raw bytes (its binary tensor extension); `samplecnn serve`
(MLServer, JSON only) takes the same request with the file base64-encoded.
"""


def write_repository(
    bundle: str | Path | Bundle,
    repo: str | Path,
    *,
    precision: str = "fp32",
    engines: bool = False,
    max_batch_size: int = 16,
    instances: int = 1,
    kind: str = "cpu",
    max_bytes: int = 64 << 20,
) -> Path:
    """Write the Triton model repository of ``bundle`` to ``repo`` (replaced atomically); returns ``repo``.

    ``precision`` picks each scale's ONNX graph (or TensorRT engine with ``engines``);
    ``max_batch_size`` segments per Triton batch; ``instances`` and ``kind`` ("cpu" | "gpu")
    form each scale's instance_group. Raises TritonError or BundleError.
    """
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    if kind not in KINDS:
        raise TritonError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if engines and kind != "gpu":
        raise TritonError("--engines (tensorrt_plan) runs on GPU instances only; pass --kind gpu")
    for name, value in (("max_batch_size", max_batch_size), ("instances", instances), ("max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TritonError(f"{name} = {value!r}: must be a positive integer")
    if engines and max_batch_size > TRT_PROFILE_MAX_BATCH:
        raise TritonError(f"max_batch_size = {max_batch_size}: the TensorRT engines take at most {TRT_PROFILE_MAX_BATCH}")
    files = {s.name: _scale_file(bundle, s, precision, engines) for s in bundle.scales}
    repo = Path(repo)
    repo.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{repo.name}.staging.", dir=repo.parent))
    try:
        for scale in bundle.scales:
            source, platform, filename = files[scale.name]
            folder = staging / scale_model_name(scale)
            (folder / "1").mkdir(parents=True)
            shutil.copyfile(source, folder / "1" / filename)
            (folder / "config.pbtxt").write_text(scale_config(scale, platform=platform, max_batch_size=max_batch_size, instances=instances, kind=kind))
        python = staging / MODEL_NAME
        (python / "1").mkdir(parents=True)
        shutil.copyfile(PYTHON_MODEL_SOURCE, python / "1" / "model.py")
        shutil.copytree(bundle.root, python / "1" / "bundle")
        Bundle.load(python / "1" / "bundle")  # the copy verifies, or nothing is replaced
        (python / "config.pbtxt").write_text(python_config(bundle, max_batch_size=max_batch_size, max_bytes=max_bytes))
        (staging / "README.md").write_text(_readme(bundle, next(iter(files.values()))[1], kind))
        if repo.exists():
            if not (repo / MODEL_NAME / "config.pbtxt").is_file() and any(repo.iterdir()):
                raise TritonError(f"{repo} exists and is not a samplecnn Triton repository; pick another folder or remove it")
            old = Path(tempfile.mkdtemp(prefix=f".{repo.name}.old.", dir=repo.parent))
            repo.rename(old / repo.name)
            staging.rename(repo)
            shutil.rmtree(old)
        else:
            staging.rename(repo)
    except (OSError, BundleError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, BundleError):
            raise
        raise TritonError(f"could not write {repo} ({exc})") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return repo
