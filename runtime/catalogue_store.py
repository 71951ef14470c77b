"""The output folder of a catalogue job: row schema, job identity, atomic Parquet parts, resume.

    OUT_DIR/
      catalogue.json              what produced the rows (bundle hash, precision, options)
      songs/part-<run>-<n>.parquet    one row per tagged song
      errors/part-<run>-<n>.parquet   one row per failed song: path, reason

Every part file is written to a temporary name and renamed into place (runtime.atomic), so a
killed job leaves whole files only; ``--resume`` skips every song that has a row in ``songs/``
and retries the failed ones (their old error rows are dropped first), so no song is ever
written twice. Read all rows with ``pyarrow.parquet.read_table("OUT_DIR/songs")``.

Song rows are plain columns (no nested or object columns: Ray's size estimates go wrong on
those): ``path`` (string), ``duration`` (float64, seconds), ``n_segments:<scale>`` (int32),
per head ``top_<head>`` (string, the top-k labels best first, ';'-separated) and one float32
``<head>:<label>`` score column per label, and with embeddings ``embedding``: a
fixed_size_list<float32>[D] (D = the song vector width, every scale and level in bundle order).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from .atomic import atomic_path, write_bytes_atomically
from .bundle import MANIFEST, Bundle, sha256_file
from .tagger import SongResult, result_heads

JOB_FILE = "catalogue.json"
JOB_FORMAT = "samplecnn-catalogue"
JOB_VERSION = 1
SONGS, ERRORS = "songs", "errors"


class StoreError(ValueError):
    """An output folder the job must not write into (holds other files or another job's rows)."""


def head_labels(bundle: Bundle) -> list[tuple[str, tuple[str, ...]]]:
    """(head name, labels) the Tagger scores, in order (see :func:`samplecnn.runtime.tagger.result_heads`)."""
    return result_heads(bundle)


def song_columns(bundle: Bundle, embeddings: bool) -> list[str]:
    """Column names of the ``songs`` table, in order (part of the job identity: a folder whose
    rows have other columns belongs to another job)."""
    names = ["path", "duration"] + [f"n_segments:{s.name}" for s in bundle.scales]
    for head, labels in head_labels(bundle):
        names += [f"top_{head}"] + [f"{head}:{label}" for label in labels]
    return names + (["embedding"] if embeddings else [])


def song_schema(bundle: Bundle, embeddings: bool):
    """pyarrow schema of the ``songs`` table (see the module docstring)."""
    import pyarrow as pa

    fields = [pa.field("path", pa.string()), pa.field("duration", pa.float64())]
    fields += [pa.field(f"n_segments:{s.name}", pa.int32()) for s in bundle.scales]
    for head, labels in head_labels(bundle):
        fields.append(pa.field(f"top_{head}", pa.string()))
        fields += [pa.field(f"{head}:{label}", pa.float32()) for label in labels]
    if embeddings:
        fields.append(pa.field("embedding", pa.list_(pa.float32(), bundle.embedding_width)))
    return pa.schema(fields)


def error_schema():
    import pyarrow as pa

    return pa.schema([pa.field("path", pa.string()), pa.field("reason", pa.string())])


def song_table(results: list[SongResult], schema):
    """Rows of successful ``results`` (one per song) as a pyarrow Table of ``schema``."""
    import numpy as np
    import pyarrow as pa

    columns: dict[str, list] = {name: [] for name in schema.names}
    for r in results:
        columns["path"].append(r.path)
        columns["duration"].append(float(r.duration))
        for name in schema.names:
            if name.startswith("n_segments:"):
                columns[name].append(int(r.n_segments.get(name.split(":", 1)[1], 0)))
        for head, scores in r.scores.items():
            columns[f"top_{head}"].append(";".join(label for label, _ in r.top[head]))
            for label, score in scores.items():
                columns[f"{head}:{label}"].append(score)
    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.name == "embedding":
            width = field.type.list_size
            flat = np.concatenate([np.asarray(r.embedding, np.float32) for r in results]) if results else np.zeros(0, np.float32)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def error_table(rows: list[tuple[str, str]]):
    import pyarrow as pa

    return pa.Table.from_arrays([pa.array([p for p, _ in rows], pa.string()), pa.array([r for _, r in rows], pa.string())], schema=error_schema())


def job_identity(bundle: Bundle, **options) -> dict:
    """What makes two runs' rows interchangeable: the bundle's manifest hash and the tagging options."""
    return {"bundle_manifest_sha256": sha256_file(bundle.root / MANIFEST), **options}


def _part_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def check_out_dir(out: str | Path, identity: dict, *, resume: bool) -> set[str]:
    """Check ``out`` before any work, changing nothing; returns the paths already done.

    StoreError when ``out`` is a file, holds files of something else, holds another job's
    rows (other bundle or options), or holds rows of this job without ``resume``.
    """
    root = Path(out)
    job_path = root / JOB_FILE
    if root.exists() and not root.is_dir():
        raise StoreError(f"--out {out} is a file; pass a folder (new or written by an earlier `samplecnn catalogue`)")
    if root.is_dir() and not job_path.is_file():
        others = sorted(p.name for p in root.iterdir())
        if others:
            raise StoreError(f"--out {out} holds files that are not a catalogue job's ({', '.join(others[:3])}...); pass a new or empty folder")
    if not job_path.is_file():
        return set()
    try:
        stored = json.loads(job_path.read_text())["job"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{job_path} is not a catalogue job file ({exc!r}); pass a new --out folder") from exc
    if stored != identity:
        diff = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        raise StoreError(
            f"--out {out} holds another job's results (it differs in {', '.join(diff)}: "
            + "; ".join(f"{k} {stored.get(k)!r} there, {identity.get(k)!r} now" for k in diff)
            + "); pass a new --out folder, or the same bundle and options to continue it with --resume"
        )
    done = done_songs(root)
    if not resume and (done or _part_files(root / ERRORS)):
        raise StoreError(f"--out {out} already has {len(done)} songs of this job; pass --resume to tag only the rest, or a new --out folder")
    return done


def open_out_dir(out: str | Path, identity: dict, *, bundle_root: str) -> Path:
    """Make ``out`` ready after :func:`check_out_dir`: drop half-written parts of a killed run and
    the old error rows (failed songs are retried), create the folders, write the job file."""
    root = Path(out)
    for folder in (root / SONGS, root / ERRORS):
        for stale in folder.glob(".part-*.tmp") if folder.is_dir() else []:
            stale.unlink()
    for part in _part_files(root / ERRORS):
        part.unlink()
    (root / SONGS).mkdir(parents=True, exist_ok=True)
    (root / ERRORS).mkdir(parents=True, exist_ok=True)
    record = {"format": JOB_FORMAT, "version": JOB_VERSION, "job": identity, "bundle": bundle_root, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_bytes_atomically(root / JOB_FILE, (json.dumps(record, indent=2) + "\n").encode())
    return root


def done_songs(root: str | Path) -> set[str]:
    """Paths of the songs with a row in ``root/songs``."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in _part_files(Path(root) / SONGS):
        done.update(pq.read_table(part, columns=["path"]).column("path").to_pylist())
    return done


class PartWriter:
    """Buffers rows of one table and writes them as whole Parquet part files (atomically).

    ``add(table)`` buffers; a part is written once ``rows_per_file`` rows or ``flush_seconds``
    have accumulated, and by ``flush()``.
    """

    def __init__(self, folder: Path, schema, *, rows_per_file: int, flush_seconds: float) -> None:
        self.folder, self.schema = folder, schema
        self.rows_per_file, self.flush_seconds = rows_per_file, flush_seconds
        self.run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.tables: list = []
        self.buffered = self.parts = self.written = 0
        self.last_flush = time.monotonic()

    def add(self, table) -> None:
        if table.num_rows:
            self.tables.append(table)
            self.buffered += table.num_rows
        if self.buffered >= self.rows_per_file or (self.buffered and time.monotonic() - self.last_flush >= self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.last_flush = time.monotonic()
        if not self.buffered:
            return
        table = pa.concat_tables(self.tables).cast(self.schema)
        name = f"part-{self.run}-{self.parts:05d}.parquet"
        with atomic_path(self.folder / name) as tmp:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        self.parts += 1
        self.written += table.num_rows
        self.tables, self.buffered = [], 0
