"""Writing tagging results: a terminal table, JSON Lines or CSV files, and ``--resume``.

Files are written so that nothing already written is lost:

- a new file, or ``resume=True`` on an existing one, is appended to one song at a time, each
  row flushed and fsync'ed before the next song, so a crash loses at most the row being
  written (a partial last line is cut off when the file is resumed);
- ``overwrite=True`` writes a temporary file beside the destination and renames it over the
  old one only when the run finishes, so the old file stays whole until then.

Failed songs are not written to the file (``--resume`` then retries them); they are reported
on stderr by the caller.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from .tagger import SongResult

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


class OutputError(ValueError):
    """An output path or option combination that cannot be written."""


def output_format(path: str | Path) -> str:
    """'jsonl' or 'csv' from the file extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"--out {path}: unknown extension {suffix!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def resume_key(path: str) -> str:
    """Songs are matched across runs by absolute, normalised path."""
    return os.path.normpath(os.path.abspath(path))


def _cut_partial_line(path: Path) -> None:
    """Drop an unterminated last line (a row cut short by a crash) before appending."""
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        back = min(size, 1 << 20)
        f.seek(size - back)
        tail = f.read(back)
        cut = tail.rfind(b"\n")
        f.truncate(size - back + cut + 1 if cut >= 0 else 0)


def done_paths(path: str | Path) -> set[str]:
    """Resume keys of the songs an existing output file already has rows for."""
    path = Path(path)
    if not path.exists():
        return set()
    fmt = output_format(path)
    keys = set()
    with open(path, newline="", encoding="utf-8") as f:
        if fmt == "jsonl":
            for line in f:
                if not line.endswith("\n"):
                    break  # partial last row: not done
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and "path" in row and "error" not in row:
                    keys.add(resume_key(row["path"]))
        else:
            for row in csv.DictReader(f):
                if row.get("path"):
                    keys.add(resume_key(row["path"]))
    return keys


class ResultWriter:
    """Appends one row per successful song to a .jsonl or .csv file (see module docstring).

    CSV columns: path, duration, then per head ``top_<head>`` ("label:score;...") and one
    ``<head>:<label>`` score column per label, then ``embedding`` (space-separated floats)
    when asked for. Per-segment series need JSON Lines.
    """

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False, segments: bool = False) -> None:
        self.path = Path(path)
        self.format = output_format(self.path)
        if resume and overwrite:
            raise OutputError("--resume and --overwrite contradict each other; pass one")
        if segments and self.format == "csv":
            raise OutputError(f"--segments needs a JSON Lines output (--out {self.path.with_suffix('.jsonl')}), not CSV")
        if self.path.exists() and not (resume or overwrite):
            raise OutputError(f"--out {self.path} exists; pass --resume to add the missing songs or --overwrite to replace it")
        if self.path.is_dir():
            raise OutputError(f"--out {self.path} is a directory; give a file ending in {', '.join(FORMATS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns: list[str] | None = None
        self.temp: Path | None = None
        if overwrite:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
            os.close(fd)
            self.temp = Path(tmp)
            target = self.temp
        else:
            target = self.path
            if target.exists():
                _cut_partial_line(target)
                if self.format == "csv":
                    with open(target, newline="", encoding="utf-8") as f:
                        self.columns = next(csv.reader(f), None)
        self.file = open(target, "a", newline="", encoding="utf-8")

    def _csv_row(self, result: SongResult) -> dict:
        row = {"path": result.path, "duration": f"{result.duration:.3f}"}
        for head, pairs in result.top.items():
            row[f"top_{head}"] = ";".join(f"{label}:{score:.4f}" for label, score in pairs)
        for head, scores in result.scores.items():
            row.update({f"{head}:{label}": f"{score:.6f}" for label, score in scores.items()})
        if result.embedding is not None:
            row["embedding"] = " ".join(f"{v:.6g}" for v in result.embedding)
        return row

    def write(self, result: SongResult) -> None:
        """Append ``result`` (a successful song) durably."""
        if not result.ok:
            return
        if self.format == "jsonl":
            self.file.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        else:
            row = self._csv_row(result)
            if self.columns is None:
                self.columns = list(row)
                csv.writer(self.file).writerow(self.columns)
            unknown = set(row) - set(self.columns)
            if unknown:
                raise OutputError(
                    f"{self.path}: existing columns lack {sorted(unknown)[:3]}...; it was written by another "
                    "bundle or with other options: write to a new file"
                )
            csv.DictWriter(self.file, fieldnames=self.columns, restval="").writerow(row)
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self, *, success: bool = True) -> None:
        """Close; with ``overwrite`` publish the temporary file (or drop it when not ``success``)."""
        if self.file.closed:
            return
        self.file.close()
        if self.temp is not None:
            if success:
                os.replace(self.temp, self.path)
            else:
                self.temp.unlink(missing_ok=True)

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(success=exc_type is None)


def format_table(results: list[SongResult], width: int = 110) -> str:
    """Plain-text table: per song a line for each head (path and duration on the first)."""
    lines = []
    for r in results:
        name = r.path if len(r.path) <= 40 else "..." + r.path[-37:]
        if not r.ok:
            lines.append(f"{name:<40} {'':>7}  FAILED: {r.error}")
            continue
        for i, (head, pairs) in enumerate(r.top.items()):
            prefix = f"{name:<40} {r.duration:6.1f}s" if i == 0 else " " * 48
            line = f"{prefix}  {head:<12} "
            indent, first = " " * len(line), True
            for label, score in pairs:  # whole "label score" items: a tag name is never cut
                item = f"{label} {score:.2f}"
                if not first and len(line) + 2 + len(item) > width:
                    lines.append(line)
                    line, first = indent, True
                line += item if first else f"  {item}"
                first = False
            lines.append(line)
    return "\n".join(lines)


def table_header() -> str:
    return f"{'song':<40} {'length':>7}  {'head':<12} top tags (score)"
