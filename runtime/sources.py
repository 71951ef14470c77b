"""Song lists for catalogue jobs: folders, globs, CSV / Parquet path lists, local or any URI.

    songs = list_songs(["songs/", "s3://bucket/catalogue.parquet", "gs://b/music/**/*.mp3"])

A source is

- a local file, folder (walked recursively for audio extensions) or glob, expanded exactly as
  ``samplecnn infer`` does (:func:`samplecnn.runtime.tagger.expand_inputs`);
- a ``.csv`` or ``.parquet`` file (local or URI) with a path column (default ``path``);
  relative paths in it are relative to the list's own folder;
- a URI that pyarrow's filesystems read (``s3://``, ``gs://``, ``hdfs://``, ``file://``,
  ...): a file, a folder (listed recursively) or a glob.

Local songs come back as absolute normalised paths (so ``--resume`` matches them whatever the
working folder), URIs as given; duplicates are dropped, first occurrence wins. A song that does
not exist is still listed: the job reports it as a failed song, like ``infer``. A list file that
cannot be read, or that lacks the path column, is a :class:`SourceError` (a bad option).

:func:`fetch_song` copies one URI song to a local file inside a worker, so decoding stays the
runtime's (soundfile reads files); pyarrow is imported only when a source needs it.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
import shutil
from collections.abc import Iterable

from .audio import AUDIO_EXTENSIONS
from .tagger import expand_inputs

LIST_EXTENSIONS = (".csv", ".parquet")
DEFAULT_PATH_COLUMN = "path"
FETCH_CHUNK_BYTES = 4 << 20


class SourceError(ValueError):
    """A source that cannot be listed (unreadable list file, missing column, bad URI)."""


def is_uri(path: str) -> bool:
    """``scheme://...`` (one-letter schemes are Windows drives, not URIs)."""
    scheme, sep, _ = str(path).partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


def _pyarrow_fs():
    try:
        import pyarrow.fs as pafs
    except ImportError as exc:
        raise SourceError("URI and Parquet sources need pyarrow: pip install 'samplecnn[ray]'") from exc
    return pafs


def _filesystem(uri: str):
    """(pyarrow FileSystem, path inside it) of ``uri``; SourceError naming the URI if none reads it."""
    pafs = _pyarrow_fs()
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid / ArrowNotImplementedError / OSError
        raise SourceError(
            f"no pyarrow filesystem reads {uri!r} ({exc}); valid: local paths and URIs such as s3://, gs://, hdfs://, file://"
        ) from exc


def _uri_of(uri: str, fs_path: str) -> str:
    """Rebuild a URI for ``fs_path`` found by listing inside ``uri``'s filesystem."""
    scheme = uri.split("://", 1)[0]
    return f"{scheme}://{fs_path}" if scheme != "file" else f"file://{fs_path if fs_path.startswith('/') else '/' + fs_path}"


def _is_audio(path: str) -> bool:
    return path.lower().endswith(AUDIO_EXTENSIONS)


def _list_uri(uri: str) -> list[str]:
    pafs = _pyarrow_fs()
    fs, path = _filesystem(uri)
    if glob.has_magic(path):
        base = path
        while glob.has_magic(base):
            base = posixpath.dirname(base)
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        found = sorted(i.path for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, path))
        return [_uri_of(uri, p) for p in found] or [uri]
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return [_uri_of(uri, p) for p in sorted(i.path for i in infos if i.type == pafs.FileType.File and _is_audio(i.path))]
    return [uri]


def _read_list(source: str, column: str) -> list[str]:
    """Paths in the ``column`` of a CSV / Parquet list, resolved against the list's folder."""
    try:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SourceError(f"{source}: reading a path list needs pyarrow: pip install 'samplecnn[ray]'") from exc
    remote = is_uri(source)
    if remote:
        fs, path = _filesystem(source)
    else:
        fs, path = None, os.path.abspath(source)
        if not os.path.isfile(path):
            raise SourceError(f"path list {source} does not exist; pass an existing .csv or .parquet file")
    try:
        if path.lower().endswith(".parquet"):
            table = pq.read_table(path, columns=[column], filesystem=fs)
        elif fs is not None:
            with fs.open_input_stream(path) as f:
                table = pacsv.read_csv(f)
        else:
            table = pacsv.read_csv(path)
    except KeyError as exc:  # parquet: unknown column
        raise SourceError(f"path list {source} has no column {column!r}; pass --path-column NAME") from exc
    except Exception as exc:
        raise SourceError(f"path list {source} cannot be read ({exc}); pass a valid .csv or .parquet file") from exc
    if column not in table.column_names:
        raise SourceError(f"path list {source} has no column {column!r}; it has {table.column_names}; pass --path-column NAME")
    base = posixpath.dirname(source) if remote else os.path.dirname(path)
    out = []
    for value in table.column(column).to_pylist():
        if value is None or str(value).strip() == "":
            continue
        value = str(value).strip()
        if is_uri(value) or os.path.isabs(value):
            out.append(value)
        else:
            out.append(posixpath.join(base, value) if remote else os.path.join(base, value))
    return out


def song_key(path: str) -> str:
    """How a song is named in the outputs and matched by ``--resume``: absolute local path or URI."""
    return path if is_uri(path) else os.path.normpath(os.path.abspath(path))


def list_songs(sources: Iterable[str], *, path_column: str = DEFAULT_PATH_COLUMN) -> list[str]:
    """Every song of ``sources`` (see the module docstring), each once, in source order."""
    songs: list[str] = []
    for source in sources:
        source = str(source)
        if source.lower().endswith(LIST_EXTENSIONS) and not glob.has_magic(source):
            songs += _read_list(source, path_column)
        elif is_uri(source):
            songs += _list_uri(source)
        else:
            songs += expand_inputs([source])
    seen: set[str] = set()
    unique = []
    for song in map(song_key, songs):
        if song not in seen:
            seen.add(song)
            unique.append(song)
    return unique


def fetch_song(uri: str, folder: str, name: str) -> str:
    """Copy the song at ``uri`` to ``folder/name`` + its extension (streamed); returns the local path.

    Raises OSError (with the URI in the message) when it cannot be read.
    """
    fs, path = _filesystem(uri)
    local = os.path.join(folder, name + os.path.splitext(path)[1])
    try:
        with fs.open_input_stream(path) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, FETCH_CHUNK_BYTES)
    except Exception as exc:
        raise OSError(f"cannot read {uri}: {exc}") from exc
    return local
