"""The actor of a catalogue job: one :class:`~.tagger.Tagger` per Ray actor, built once.

Ray Data calls :class:`TagActor` with batches of song paths; it fetches URI songs to a local
temporary file (:func:`~.sources.fetch_song`), tags them with the runtime exactly as
``samplecnn infer`` does, and returns plain Arrow rows. Nothing here imports Ray at module level.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from .bundle import MANIFEST, Bundle, BundleError
from .catalogue_store import song_schema, song_table
from .procinfo import peak_rss_mb
from .sources import fetch_song, is_uri
from .tagger import SongResult, Tagger


def bundle_files(bundle: Bundle) -> dict[str, bytes]:
    """{relative path: bytes} of the manifest and every file it hashes: the bundle for actors."""
    names = [MANIFEST] + sorted(bundle.manifest.get("files", {}))
    return {name: bundle.path(name).read_bytes() for name in names}


def materialise_bundle(files: dict[str, bytes]) -> str:
    """Write a shipped bundle once per node: ``$TMPDIR/samplecnn-bundles/<manifest sha256>``.

    Actors (and later jobs) with the same bundle reuse the folder; a half-written copy is never
    seen (written beside it, then renamed). The Tagger still verifies every hash on load.
    """
    import hashlib
    import shutil

    cache = Path(tempfile.gettempdir()) / "samplecnn-bundles"
    target = cache / hashlib.sha256(files[MANIFEST]).hexdigest()
    if not target.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache))
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        try:
            os.replace(staging, target)
        except OSError:  # another actor on this node won the race
            shutil.rmtree(staging, ignore_errors=True)
    return str(target)


class TagActor:
    """One Ray actor: a Tagger built once, then ``__call__`` per batch of paths.

    In: {"path": (n,) str}. Out: a pyarrow Table, one row per path: the song columns of
    :func:`~.catalogue_store.song_schema` (null for failed songs), ``error`` (null when tagged)
    and, for the job summary, the actor's Ray node id, host name, pid and peak RSS (MB) (plain
    columns, dropped before the rows are written).
    """

    def __init__(self, files_ref: list, tagger_options: dict, top_k: int, embeddings: bool) -> None:
        import ray

        files = ray.get(files_ref[0])
        self.node_id = ray.get_runtime_context().get_node_id()  # where this actor runs: the job records it per actor
        self.host = socket.gethostname()
        self.folder = materialise_bundle(files)
        try:
            self.tagger = Tagger(self.folder, **tagger_options)
        except BundleError:  # the node's cached copy was altered since: write it afresh, once
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)
            self.tagger = Tagger(materialise_bundle(files), **tagger_options)
        self.schema = song_schema(self.tagger.bundle, embeddings)
        self.top_k, self.embeddings = top_k, embeddings

    def _tag(self, inputs: list[str]) -> list:
        try:
            return list(self.tagger.tag(inputs, top_k=self.top_k, embeddings=self.embeddings))
        except Exception:  # a bug on one song must not fail the batch: isolate it
            if len(inputs) == 1:
                raise
            return [r for path in inputs for r in self._tag_one(path)]

    def _tag_one(self, path: str) -> list:
        try:
            return self._tag([path])
        except Exception as exc:
            return [SongResult(path, 0.0, {}, {}, {}, error=f"internal error: {type(exc).__name__}: {exc}")]

    def __call__(self, batch: dict):
        import pyarrow as pa

        paths = [str(p) for p in batch["path"]]
        failed: list[tuple[str, str]] = []
        ok = []
        with tempfile.TemporaryDirectory(prefix="samplecnn-fetch-") as scratch:
            inputs: list[tuple[str, str]] = []
            for i, path in enumerate(paths):
                try:
                    inputs.append((path, fetch_song(path, scratch, str(i)) if is_uri(path) else path))
                except OSError as exc:
                    failed.append((path, str(exc)))
            for (path, _), result in zip(inputs, self._tag([local for _, local in inputs])):
                result.path = path
                (ok.append(result) if result.ok else failed.append((path, result.error)))
        songs = song_table(ok, self.schema)
        failed_paths = pa.array([p for p, _ in failed], pa.string())
        nulls = [failed_paths if f.name == "path" else pa.nulls(len(failed), f.type) for f in self.schema]
        table = pa.concat_tables([songs, pa.Table.from_arrays(nulls, schema=self.schema)])
        peak_mb = peak_rss_mb()
        n = table.num_rows
        return (
            table.append_column("error", pa.array([None] * len(ok) + [r for _, r in failed], pa.string()))
            .append_column("_node_id", pa.array([self.node_id] * n, pa.string()))
            .append_column("_host", pa.array([self.host] * n, pa.string()))
            .append_column("_pid", pa.array([os.getpid()] * n, pa.int64()))
            .append_column("_peak_rss_mb", pa.array([peak_mb] * n, pa.float64()))
        )
