"""Triton python-backend model ``samplecnn``: tags from audio with BLS calls to the scale models.

``samplecnn triton`` copies this file to ``REPO/samplecnn/1/model.py`` next to a copy of the
bundle (``1/bundle``). Triton calls ``initialize`` / ``execute`` / ``finalize``; ``execute``
takes one song per request in the :mod:`samplecnn.runtime.oip` contract (``audio`` bytes, or
``waveform`` + ``sample_rate``) and answers its outputs, or a per-request error for a bad one.

Everything but running the backbones is the runtime's own code: decoding and segmenting
(``Tagger``'s engine), pooling and the heads (``Tagger.tag``). Only the backbones run through
Triton: :class:`BlsBackend` is a runtime backend whose ``infer`` is a BLS request to the scale
model, so the dynamic batcher there can merge segments from concurrent songs.

Needs ``samplecnn`` (runtime only: numpy, onnxruntime, soundfile, soxr) in Triton's Python;
``triton_python_backend_utils`` exists only inside Triton and is imported when Triton loads
the model.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from samplecnn.runtime.backends import Backend
from samplecnn.runtime.bundle import Bundle, ScaleSpec
from samplecnn.runtime.heads import Head
from samplecnn.runtime.oip import (
    DEFAULT_MAX_BYTES, INPUT_NAMES, RequestError, head_labels, parse_song, request_options, result_tensors, song_error, song_item,
)
from samplecnn.runtime.pipeline import Engine
from samplecnn.runtime.tagger import Tagger

DEFAULT_SEGMENT_BATCH = 16  # segments per BLS request when the config does not say


def _pb_utils():
    import triton_python_backend_utils as pb_utils  # provided by Triton's python backend

    return pb_utils


class BlsBackend(Backend):
    """A runtime backend that runs one scale by a BLS request to its Triton model."""

    name = "triton-bls"

    def __init__(self, bundle: Bundle, scale: ScaleSpec, model_name: str) -> None:
        super().__init__(bundle, scale)
        self.model_name = model_name

    @property
    def description(self) -> str:
        return f"Triton BLS -> {self.model_name}"

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        pb_utils = _pb_utils()
        options = {}
        if hasattr(pb_utils, "PreferredMemory"):  # outputs in CPU memory even from GPU instances
            options["preferred_memory"] = pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)
        request = pb_utils.InferenceRequest(
            model_name=self.model_name,
            requested_output_names=list(self.output_names),
            inputs=[pb_utils.Tensor(self.scale.input_name, batch)],
            **options,
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"scale model {self.model_name} failed: {response.error().message()}")
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in self.output_names}


class BlsTagger(Tagger):
    """A :class:`Tagger` whose backbones are Triton scale models (no onnxruntime sessions here).

    Sets the attributes ``Tagger.__init__`` would, with :class:`BlsBackend` backends, so
    ``tag`` (decode, segment, pool, heads) is Tagger's own.
    """

    def __init__(self, bundle: Bundle, model_names: dict[str, str], segment_batch: int) -> None:
        self.bundle = bundle
        self.backend_name, self.backend_choice = "triton-bls", "Triton scale models via BLS"
        self.device, self.precision, self.threads = "cpu", "fp32", 1
        self.batch_sizes = {s.name: segment_batch for s in bundle.scales}
        self.heads = [Head.load(bundle.path(h.file), h) for h in bundle.heads]
        self.backends = {s.name: BlsBackend(bundle, s, model_names[s.name]) for s in bundle.scales}
        self.engine = Engine(bundle, self.backends, batch_sizes=self.batch_sizes, decode_workers=1)


def _parameter(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    """Triton's python-backend entry point."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        bundle = Bundle.load(Path(args["model_repository"]) / str(args["model_version"]) / "bundle")
        pairs = [p.split("=", 1) for p in _parameter(config, "scale_models", "").split(";") if p]
        model_names = {scale: model for scale, model in pairs}
        missing = [s.name for s in bundle.scales if s.name not in model_names]
        if missing:
            raise ValueError(f"config parameter scale_models lacks scales {missing}; rewrite the repository with `samplecnn triton`")
        self.max_bytes = int(_parameter(config, "max_bytes", str(DEFAULT_MAX_BYTES)))
        self.tagger = BlsTagger(bundle, model_names, int(_parameter(config, "segment_batch", str(DEFAULT_SEGMENT_BATCH))))

    def _request_song(self, request):
        pb_utils = _pb_utils()
        arrays = {}
        for name in INPUT_NAMES:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                arrays[name] = tensor.as_numpy()
        parameters = request.parameters() if hasattr(request, "parameters") else "{}"
        top_k, embedding = request_options(json.loads(parameters) if isinstance(parameters, str) else parameters)
        return parse_song(arrays, max_bytes=self.max_bytes), top_k, embedding

    def execute(self, requests: list) -> list:
        """One response per request, in order: the song's tensors, or an error naming the problem."""
        pb_utils = _pb_utils()
        responses: list = [None] * len(requests)
        good = []
        for i, request in enumerate(requests):
            try:
                good.append((i, *self._request_song(request)))
            except RequestError as exc:
                responses[i] = _error_response(pb_utils, str(exc))
        if good:
            with ExitStack() as temporary_files:  # request bytes live in private temp files until tagged
                items = [temporary_files.enter_context(song_item(song)) for _, song, _, _ in good]
                results = list(self.tagger.tag(items, top_k=max(len(labels) for labels in head_labels(self.tagger.bundle).values()), embeddings=True))
            for (i, song, top_k, embedding), result in zip(good, results):
                if not result.ok:
                    responses[i] = _error_response(pb_utils, song_error(result, song))
                    continue
                tensors = [pb_utils.Tensor(name, array) for name, _, array in result_tensors(result, top_k, embedding)]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses

    def finalize(self) -> None:
        self.tagger.close()


def _error_response(pb_utils, message: str):
    error = pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG) if hasattr(pb_utils.TritonError, "INVALID_ARG") else pb_utils.TritonError(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)
