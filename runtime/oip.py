"""The Open Inference Protocol (KServe V2) contract of model ``samplecnn``: request checks and
response tensors, shared by the MLServer runtime (:mod:`.serve`, ``samplecnn serve``) and the
Triton python-backend model (``export/triton_model.py``), so a client talks to either server
the same way. Needs nothing beyond the runtime (no server library).

Request (model ``samplecnn``), exactly one song:

    audio        BYTES [1]         an encoded audio file (anything the runtime decodes). Over
                                   gRPC the raw bytes; over HTTP/JSON (no binary extension in
                                   MLServer) the file base64-encoded as the string.
    or
    waveform     FP32 [n] | [1, n] mono samples, and
    sample_rate  INT32|INT64 [1]   their rate in Hz
    parameters   top_k (int, default 5), embedding (bool, default false)

Response, for every head h of the bundle ("backbone" when it has none):

    scores_<h>   FP32 [n_labels]   the head's scores (sigmoid for tags, softmax for classes)
    labels_<h>   BYTES [n_labels]  the labels in the same order
    top_<h>      BYTES [k]         the top-k labels, best first
    embedding    FP32 [D]          the song vector, when asked for
    parameters   duration (s), n_segments (JSON {scale: count})

A bad request (unknown, missing or extra tensor; wrong datatype or shape; empty body; over
``max_bytes``; bytes that are not audio; silence; NaN samples) is answered 400 (413 for the size
limit) with a message naming the problem; nothing from it is kept (the bytes go to a private
temporary file that is deleted when the request ends).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_NAME = "samplecnn"
AUDIO, WAVEFORM, SAMPLE_RATE, EMBEDDING = "audio", "waveform", "sample_rate", "embedding"
INPUT_NAMES = (AUDIO, WAVEFORM, SAMPLE_RATE)
DEFAULT_MAX_BYTES = 64 << 20  # 64 MiB: a 6-minute 44.1 kHz stereo 16-bit WAV is ~63 MB
DEFAULT_TOP_K = 5
MAX_SAMPLE_RATE = 768_000


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the HTTP status to answer (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SongInput:
    """One song of a request: encoded ``data`` or a ``waveform`` (n,) float32 at ``rate``."""

    data: bytes | None = None
    waveform: np.ndarray | None = None
    rate: int = 0


def _one_song_shape(name: str, shape: tuple[int, ...]) -> None:
    if tuple(shape) not in ((1,), (1, 1)):
        raise RequestError(f"input {name!r} has shape {list(shape)}; it takes one song per request: shape [1]")


def parse_song(arrays: dict[str, np.ndarray], *, max_bytes: int = DEFAULT_MAX_BYTES) -> SongInput:
    """Check a request's tensors and return its song.

    ``arrays``: {input name: array} with BYTES inputs as object arrays of ``bytes`` (already
    base64-decoded), FP32 as float32, sample rates as int32/int64. Raises RequestError.
    """
    unknown = sorted(set(arrays) - set(INPUT_NAMES))
    if unknown:
        raise RequestError(f"unknown input(s) {unknown}; send {AUDIO!r} (BYTES [1]) or {WAVEFORM!r} (FP32 [n]) + {SAMPLE_RATE!r} (INT32 [1])")
    if AUDIO in arrays and (WAVEFORM in arrays or SAMPLE_RATE in arrays):
        raise RequestError(f"send either {AUDIO!r} or {WAVEFORM!r} + {SAMPLE_RATE!r}, not both")
    if AUDIO in arrays:
        audio = arrays[AUDIO]
        _one_song_shape(AUDIO, audio.shape)
        data = audio.reshape(-1)[0]
        if not isinstance(data, (bytes, bytearray)):
            raise RequestError(f"input {AUDIO!r} must hold bytes (BYTES datatype), got {type(data).__name__}")
        if len(data) == 0:
            raise RequestError(f"input {AUDIO!r} is empty: send the bytes of an audio file")
        if len(data) > max_bytes:
            raise RequestError(f"input {AUDIO!r} is {len(data)} bytes, over the server's limit of {max_bytes} (--max-bytes)", 413)
        return SongInput(data=bytes(data))
    if WAVEFORM not in arrays or SAMPLE_RATE not in arrays:
        raise RequestError(f"missing input: send {AUDIO!r} (BYTES [1], an audio file) or both {WAVEFORM!r} (FP32 [n]) and {SAMPLE_RATE!r} (INT32 [1])")
    wave, rate = arrays[WAVEFORM], arrays[SAMPLE_RATE]
    if wave.dtype != np.float32:
        raise RequestError(f"input {WAVEFORM!r} has datatype {wave.dtype}; it must be FP32")
    if wave.ndim == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if wave.ndim != 1 or wave.size == 0:
        raise RequestError(f"input {WAVEFORM!r} has shape {list(wave.shape)}; it takes one mono song: shape [n] or [1, n], n >= 1")
    if wave.nbytes > max_bytes:
        raise RequestError(f"input {WAVEFORM!r} is {wave.nbytes} bytes, over the server's limit of {max_bytes} (--max-bytes)", 413)
    if rate.dtype not in (np.int32, np.int64):
        raise RequestError(f"input {SAMPLE_RATE!r} has datatype {rate.dtype}; it must be INT32 or INT64")
    _one_song_shape(SAMPLE_RATE, rate.shape)
    hz = int(rate.reshape(-1)[0])
    if not 0 < hz <= MAX_SAMPLE_RATE:
        raise RequestError(f"input {SAMPLE_RATE!r} = {hz}: must be a rate in Hz between 1 and {MAX_SAMPLE_RATE}")
    return SongInput(waveform=np.ascontiguousarray(wave), rate=hz)


@contextmanager
def song_item(song: SongInput, tmp_dir: str | None = None):
    """What Tagger takes for ``song``: a private temporary file for bytes (deleted on exit), else (waveform, rate)."""
    if song.data is None:
        yield (song.waveform, song.rate)
        return
    fd, path = tempfile.mkstemp(prefix="samplecnn-request-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(song.data)
        yield path
    finally:
        os.unlink(path)


def song_error(result, song: SongInput) -> str:
    """The client's message for a song Tagger could not tag (the temp path replaced by the input name)."""
    where = f"input {AUDIO!r}" if song.data is not None else f"input {WAVEFORM!r}"
    return f"{where}: {result.error}"


def head_labels(bundle) -> dict[str, tuple[str, ...]]:
    """{head name: labels} of the response, in order (see :func:`samplecnn.runtime.tagger.result_heads`)."""
    from .tagger import result_heads

    return dict(result_heads(bundle))


def output_specs(bundle) -> list[tuple[str, str, list[int]]]:
    """(name, V2 datatype, shape) of every response tensor (-1: depends on top_k)."""
    specs = []
    for head, labels in head_labels(bundle).items():
        specs += [(f"scores_{head}", "FP32", [len(labels)]), (f"labels_{head}", "BYTES", [len(labels)]), (f"top_{head}", "BYTES", [-1])]
    return specs + [(EMBEDDING, "FP32", [bundle.embedding_width])]


def result_tensors(result, top_k: int, embedding: bool) -> list[tuple[str, str, np.ndarray]]:
    """(name, V2 datatype, array) of a tagged song's response; BYTES as object arrays of bytes."""
    out = []
    for head, scores in result.scores.items():
        labels = list(scores)
        best = sorted(labels, key=lambda label: -scores[label])[:top_k]
        out.append((f"scores_{head}", "FP32", np.array([scores[label] for label in labels], np.float32)))
        out.append((f"labels_{head}", "BYTES", np.array([label.encode() for label in labels], dtype=object)))
        out.append((f"top_{head}", "BYTES", np.array([label.encode() for label in best], dtype=object)))
    if embedding:
        out.append((EMBEDDING, "FP32", np.asarray(result.embedding, np.float32)))
    return out


def request_options(parameters: dict | None) -> tuple[int, bool]:
    """(top_k, embedding) from the request parameters; RequestError when invalid."""
    parameters = parameters or {}
    top_k, embedding = parameters.get("top_k", DEFAULT_TOP_K), parameters.get("embedding", False)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise RequestError(f"parameter top_k = {top_k!r}: must be a positive integer")
    if not isinstance(embedding, bool):
        raise RequestError(f"parameter embedding = {embedding!r}: must be true or false")
    return top_k, embedding


_EXPECTED_DATATYPES = {AUDIO: ("BYTES",), WAVEFORM: ("FP32",), SAMPLE_RATE: ("INT32", "INT64")}
_NUMPY = {"FP32": np.float32, "INT32": np.int32, "INT64": np.int64}


def _bytes_item(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)  # gRPC: raw bytes
    if isinstance(value, str):  # HTTP/JSON carries binary only as text: base64
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"input {AUDIO!r} came as a JSON string that is not base64; over HTTP send the file base64-encoded") from None
    raise RequestError(f"input {AUDIO!r} holds a {type(value).__name__}; send the bytes of an audio file")


def request_array(name: str, datatype: str, shape: list[int], data) -> np.ndarray:
    """One V2 request tensor (as MLServer parsed it) -> numpy, checking name, datatype and shape."""
    if name not in _EXPECTED_DATATYPES:
        raise RequestError(f"unknown input {name!r}; send {AUDIO!r} (BYTES [1]) or {WAVEFORM!r} (FP32 [n]) + {SAMPLE_RATE!r} (INT32 [1])")
    if datatype not in _EXPECTED_DATATYPES[name]:
        raise RequestError(f"input {name!r} has datatype {datatype}; it must be {' or '.join(_EXPECTED_DATATYPES[name])}")
    if not isinstance(shape, list) or any(not isinstance(d, int) or d < 0 for d in shape):
        raise RequestError(f"input {name!r} has shape {shape!r}; a shape is a list of non-negative integers")
    values = data.root if hasattr(data, "root") else data
    values = values if isinstance(values, list) else [values]
    try:
        if datatype == "BYTES":
            array = np.empty(len(values), dtype=object)
            array[:] = [_bytes_item(v) for v in values]
        else:
            array = np.asarray(values, dtype=_NUMPY[datatype]).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RequestError(f"input {name!r}: data are not {datatype} values ({exc})") from None
    if array.size != int(np.prod(shape)):
        raise RequestError(f"input {name!r} declares shape {shape} ({int(np.prod(shape))} values) but carries {array.size}")
    return array.reshape(shape)
