"""``samplecnn serve``: an Open Inference Protocol (KServe V2) model server around :class:`Tagger`.

Built on MLServer (``pip install 'samplecnn[serve]'``): :func:`runtime_class` is an MLServer
custom runtime (``load()`` builds one Tagger, ``predict()`` tags one song per request; the
request/response contract is :mod:`.oip`'s), :func:`serve` runs it over HTTP/REST and gRPC,
and :class:`ServerProcess` starts it as a child process on 127.0.0.1 (tests, benchmarks).

Requests arriving together are tagged together (:class:`SongBatcher`): their segments share
backend batches, and a bad song fails only its own request (MLServer's adaptive batching
would fail every request of the batch, so it is not used).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .oip import (
    AUDIO, DEFAULT_MAX_BYTES, MODEL_NAME, SAMPLE_RATE, WAVEFORM, RequestError, head_labels, output_specs,
    parse_song, request_array, request_options, result_tensors, song_error, song_item,
)

DEFAULT_MAX_BATCH_SONGS = 8  # songs tagged together; the backends batch their segments
DEFAULT_MAX_BATCH_WAIT = 0.005  # seconds a song waits for others to join its batch
SERVE_EXTRA = "pip install 'samplecnn[serve]'"
_PRELOADED: dict[str, object] = {}  # Taggers built by serve() before the server starts (errors exit 2 early)
_RUNTIME_CLASS = None


class SongBatcher:
    """Tags songs from concurrent requests together, in one worker thread.

    ``await submit(item)`` -> SongResult. Songs arriving within ``max_wait`` seconds of each
    other (up to ``max_songs``) go through one ``tagger.tag`` call, so their segments share
    backend batches; each song's result (or error) goes back to its own request only.
    """

    def __init__(self, tagger, *, max_songs: int = DEFAULT_MAX_BATCH_SONGS, max_wait: float = DEFAULT_MAX_BATCH_WAIT) -> None:
        self.tagger, self.max_songs, self.max_wait = tagger, max_songs, max_wait
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def submit(self, item):
        if self.task is None or self.task.done():
            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(self._loop())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((item, future))
        return await future

    def _tag(self, items: list) -> list:
        top_k = max(len(labels) for labels in head_labels(self.tagger.bundle).values())
        return list(self.tagger.tag(items, top_k=top_k, embeddings=True))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_songs:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time())))
                except asyncio.TimeoutError:
                    break
            try:
                results = await asyncio.to_thread(self._tag, [item for item, _ in batch])
            except Exception as exc:  # a bug or backend failure: every waiting request hears of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()


# --- MLServer runtime -------------------------------------------------------------------------

def _import_mlserver():
    try:
        import mlserver
    except ImportError as exc:
        raise ImportError(f"samplecnn serve needs MLServer, which is not installed: {SERVE_EXTRA}") from exc
    return mlserver


def runtime_class():
    """The MLServer custom runtime (``MLModel`` subclass) around Tagger; imports MLServer."""
    global _RUNTIME_CLASS
    if _RUNTIME_CLASS is not None:
        return _RUNTIME_CLASS
    mlserver = _import_mlserver()
    from mlserver.errors import MLServerError
    from mlserver.types import InferenceResponse, MetadataTensor, Parameters, ResponseOutput

    class SampleCNNRuntime(mlserver.MLModel):
        """Loads one Tagger (``parameters.uri`` = bundle, ``extra`` = server options); one song per request."""

        async def load(self) -> bool:
            parameters = self.settings.parameters
            extra = (parameters.extra if parameters else None) or {}
            tagger = _PRELOADED.pop(extra.get("preloaded", ""), None)
            if tagger is None:
                from .tagger import Tagger

                tagger = Tagger(parameters.uri if parameters and parameters.uri else None, precision=extra.get("precision", "fp32"), threads=extra.get("threads"))
            self.tagger = tagger
            self.max_bytes = int(extra.get("max_bytes", DEFAULT_MAX_BYTES))
            self.batcher = SongBatcher(tagger, max_songs=int(extra.get("max_batch_songs", DEFAULT_MAX_BATCH_SONGS)), max_wait=float(extra.get("max_batch_wait", DEFAULT_MAX_BATCH_WAIT)))
            self.inputs = [
                MetadataTensor(name=AUDIO, datatype="BYTES", shape=[1]),
                MetadataTensor(name=WAVEFORM, datatype="FP32", shape=[-1]),
                MetadataTensor(name=SAMPLE_RATE, datatype="INT32", shape=[1]),
            ]
            self.outputs = [MetadataTensor(name=n, datatype=d, shape=s) for n, d, s in output_specs(tagger.bundle)]
            return True

        async def predict(self, payload):
            try:
                names = [i.name for i in payload.inputs]
                if len(set(names)) != len(names):
                    raise RequestError(f"inputs {names}: each input may appear once")
                arrays = {i.name: request_array(i.name, i.datatype.value if hasattr(i.datatype, "value") else str(i.datatype), i.shape, i.data) for i in payload.inputs}
                top_k, embedding = request_options(payload.parameters.model_dump() if payload.parameters else None)
                song = parse_song(arrays, max_bytes=self.max_bytes)
            except RequestError as exc:
                raise MLServerError(str(exc), exc.status) from None
            with song_item(song) as item:
                result = await self.batcher.submit(item)
            if not result.ok:
                raise MLServerError(song_error(result, song), 400)
            outputs = [
                ResponseOutput(name=n, datatype=d, shape=list(a.shape), data=[v.decode() for v in a] if d == "BYTES" else a.tolist())
                for n, d, a in result_tensors(result, top_k, embedding)
            ]
            details = Parameters(duration=round(result.duration, 3), n_segments=json.dumps(result.n_segments))
            return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs, parameters=details)

        async def unload(self) -> bool:
            self.batcher.close()
            self.tagger.close()
            return True

    _RUNTIME_CLASS = SampleCNNRuntime
    return SampleCNNRuntime


def __getattr__(name: str):
    # MLServer imports its runtime by dotted path (samplecnn.runtime.serve.SampleCNNRuntime);
    # building the class on first access keeps this module importable without MLServer.
    if name == "SampleCNNRuntime":
        return runtime_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def serve(
    bundle: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    grpc_port: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    precision: str = "fp32",
    threads: int | None = None,
    max_batch_songs: int = DEFAULT_MAX_BATCH_SONGS,
    max_batch_wait: float = DEFAULT_MAX_BATCH_WAIT,
) -> None:
    """Run the server until interrupted: HTTP on ``port``, gRPC on ``grpc_port`` (default port + 1).

    The Tagger is built first, so a bad bundle, precision or missing MLServer raises
    (BundleError, BackendError, ImportError) before any port is opened.
    """
    for name, value in (("port", port), ("max_bytes", max_bytes), ("max_batch_songs", max_batch_songs)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} = {value!r}: must be a positive integer")
    _import_mlserver()
    from mlserver import MLServer
    from mlserver.settings import ModelParameters, ModelSettings, Settings

    from .tagger import Tagger

    tagger = Tagger(bundle, precision=precision, threads=threads)
    key = f"tagger-{id(tagger)}"
    _PRELOADED[key] = tagger
    settings = Settings(
        host=host, http_port=port, grpc_port=grpc_port or port + 1, metrics_endpoint=None, parallel_workers=0,
        debug=False, load_models_at_startup=False, model_repository_root=str(tagger.bundle.root),
    )
    extra = {"preloaded": key, "max_bytes": max_bytes, "precision": precision, "threads": threads,
             "max_batch_songs": max_batch_songs, "max_batch_wait": max_batch_wait}
    model = ModelSettings(name=MODEL_NAME, implementation=runtime_class(),
                          parameters=ModelParameters(uri=str(tagger.bundle.root), extra=extra))

    async def run() -> None:
        await MLServer(settings).start([model])

    asyncio.run(run())


# --- a server process on 127.0.0.1 (tests, benchmarks) ---------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``samplecnn serve`` as a child process in its own process group on 127.0.0.1.

    ``ServerProcess.start(bundle, extra_args)`` waits (bounded) until the model answers ready
    on ``/v2/models/samplecnn/ready`` and raises RuntimeError with the server's log otherwise;
    ``stop()`` (or leaving the ``with`` block) kills the whole group. ``url`` is
    ``127.0.0.1:PORT`` as tritonclient.http wants it.
    """

    def __init__(self, process: subprocess.Popen, port: int, grpc_port: int, log_path: str) -> None:
        self.process, self.port, self.grpc_port, self.log_path = process, port, grpc_port, log_path

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(
        cls, bundle: str | Path | None = None, extra_args: tuple[str, ...] = (), *, env: dict[str, str] | None = None, ready_timeout: float = 120.0
    ) -> "ServerProcess":
        """Start ``samplecnn serve`` on free ports; ``env`` adds environment variables (e.g. TMPDIR)."""
        port, grpc_port = free_port(), free_port()
        command = [sys.executable, "-m", "samplecnn.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]
        command += (["--bundle", str(bundle)] if bundle is not None else []) + list(extra_args)
        fd, log_path = tempfile.mkstemp(prefix="samplecnn-serve-", suffix=".log")
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, **(env or {})}, start_new_session=True)
        server = cls(process, port, grpc_port, log_path)
        try:
            server.wait_ready(ready_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/v2/models/{MODEL_NAME}/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"samplecnn serve exited with code {self.process.returncode} before it was ready:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"samplecnn serve was not ready within {timeout:.0f} s:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds. Idempotent."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
