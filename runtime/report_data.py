"""Reading tagging results (JSON Lines, CSV, Parquet) into columns for :mod:`.report`.

Readers go by column names, not by who wrote the file, so one reader takes:

- ``samplecnn infer --out x.jsonl``: rows ``{path, duration, n_segments, top: {head: [[label,
  score]]}, scores: {head: {label: score}}, embedding?, segments?}``, failed rows ``{path,
  error}``;
- ``samplecnn infer --out x.csv``: ``path, duration, top_<head>`` ("label:score;..."),
  ``<head>:<label>`` score columns, ``embedding`` (space-separated);
- catalogue Parquet (runtime/catalogue_store; pyarrow is imported only for .parquet):
  ``OUT_DIR/songs/part-*.parquet`` with ``path``, ``duration``, ``n_segments:<scale>``, per
  head ``top_<head>`` and ``<head>:<label>`` score columns, ``embedding`` (fixed-size float32
  list), and ``OUT_DIR/errors/part-*.parquet`` (``path``, ``reason``). Also tolerated: top
  tags alone (``top_<head>`` as "a;b", "a:0.9;b:0.8", [label, score] pairs or a label list
  with scores in ``top_scores_<head>``), a ``scores`` map, failures as rows with ``error``.

Speed (benchmarks/report_speed.py): JSON Lines are decoded by orjson (samplecnn[plot]; the
standard json module reads what orjson refuses, so both accept the same lines), scores are
collected as flat lists and converted to float32 a block of rows at a time, CSV score cells a
block at a time, catalogue Parquet column by column.

Bad rows never stop a report: an unparseable line, a row cut short by a killed run, a row
whose heads or labels differ from the first row's (another bundle), a row without a path:
each is skipped and counted in :attr:`Results.skipped`. A file with no usable row at all is a
:class:`ReportError` that says why.
"""

from __future__ import annotations

import csv
import json
import random
import re
import sys
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TOP_K = 5  # top tags kept per song and head (the table shows 3)
MAX_MAP_SONGS = 5000  # embeddings kept for the 2-D map: a uniform random sample (seeded)
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
DURATION_COLUMNS = ("duration", "duration_s", "seconds")
ERROR_COLUMNS = ("error", "reason")
_EMBEDDING_KEY = b'"embedding": ['  # as json.dumps writes it (outputs.ResultWriter)
_SCORE_COLUMN = re.compile(r"^(?P<head>[^:]+):(?P<label>.+)$")
_TOP_COLUMN = re.compile(r"^top_(?:tags_|labels_)?(?P<head>.+)$")


class ReportError(ValueError):
    """A results file that cannot be reported on at all (missing, empty, no usable rows)."""


class _Skip(Exception):
    """This row is skipped; the message is the reason (counted, not raised to the user)."""


@dataclass
class HeadColumns:
    """One head's values: ``labels`` (L,), ``scores`` (n, L) float32 or None when the file
    holds only top tags, ``top_index`` (n, TOP_K) int32 into labels (-1 = none) and
    ``top_score`` (n, TOP_K) float32, best first."""

    labels: list[str]
    scores: np.ndarray | None
    top_index: np.ndarray
    top_score: np.ndarray


@dataclass
class Results:
    """Columns of the songs that were read (n rows) and what was not.

    ``durations`` (n,) seconds (NaN when unknown); ``embeddings`` (m, D) float32 of a seeded
    random sample of at most MAX_MAP_SONGS songs, rows ``embedding_rows`` (m,);
    ``failures``: (path, reason) of failed songs; ``skipped``: reason -> rows skipped.
    """

    sources: list[str]
    paths: list[str]
    durations: np.ndarray
    heads: dict[str, HeadColumns]
    embeddings: np.ndarray | None = None
    embedding_rows: np.ndarray | None = None
    n_with_embedding: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


class _Collector:
    """Accumulates rows compactly (float32 arrays, not Python objects): 100,000 songs x 65
    scores stay near 30 MB. Row by row scores wait in flat lists of numbers (``pending``,
    one list per head) and become float32 blocks every FLUSH_ROWS rows: one conversion per
    block instead of one small array per row and head."""

    FLUSH_ROWS = 4096

    def __init__(self, seed: int = 0) -> None:
        self.paths: list[str] = []
        self.durations = array("d")
        self.labels: dict[str, list[str]] = {}
        self.index: dict[str, dict[str, int]] = {}
        self.scores: dict[str, list[np.ndarray]] = {}
        self.pending: dict[str, list] = {}
        self.pending_rows = 0
        self.top_index: dict[str, array] = {}
        self.top_score: dict[str, array] = {}
        self.heads: tuple[str, ...] | None = None
        self.has_scores: bool | None = None
        self.embeddings: list[np.ndarray] = []
        self.embedding_rows: list[int] = []
        self.embedding_dim: int | None = None
        self.n_with_embedding = 0
        self.failures: list[tuple[str, str]] = []
        self.skipped: Counter = Counter()
        self.rng = random.Random(seed)

    def keep_embedding(self) -> int | None:
        """Reservoir sampling: the slot for the next song's embedding, or None (not kept)."""
        seen = self.n_with_embedding
        self.n_with_embedding += 1
        if seen < MAX_MAP_SONGS:
            return seen
        slot = self.rng.randrange(seen + 1)
        return slot if slot < MAX_MAP_SONGS else None

    def _check_heads(self, heads: tuple[str, ...]) -> None:
        if self.heads is None:
            self.heads = heads
            for h in heads:
                self.labels[h], self.index[h], self.scores[h], self.pending[h] = [], {}, [], []
                self.top_index[h], self.top_score[h] = array("i"), array("f")
        elif heads != self.heads:
            raise _Skip(f"heads {list(heads)} differ from the first rows' {list(self.heads)} (results of another bundle?)")

    def add(self, path, duration, scores: dict | None, top: dict | None, embedding=None, slot: int | None = None) -> None:
        """One song. ``scores``: {head: {label: score}}; ``top``: {head: [(label, score)]}."""
        if not isinstance(path, str) or not path:
            raise _Skip("rows without a path")
        if self.has_scores is None and (scores or top):
            self.has_scores = bool(scores)  # the first rows decide: full scores, or top tags only
        if self.has_scores and not scores:
            raise _Skip("rows without scores (the first rows have them)")
        source = scores if self.has_scores else top
        if not source:
            if self.heads:
                raise _Skip("rows without tags (the first rows have them)")
            source = {}
        if not isinstance(source, dict):
            raise _Skip(f"rows whose {'scores' if self.has_scores else 'top tags'} are not a head -> labels map")
        heads = tuple(source)
        if heads and heads != self.heads:
            self._check_heads(heads)
        if self.has_scores:
            rows = [self._scores_row(head, source[head]) for head in heads]  # every head checked before any is kept
            for head, values in zip(heads, rows):
                self.pending[head].extend(values)
            if heads:
                self.pending_rows += 1
                if self.pending_rows >= self.FLUSH_ROWS:
                    self.flush()
        else:
            for head, (ids, values) in [(head, self._top_row(head, source[head])) for head in heads]:
                self.top_index[head].extend(ids)
                self.top_score[head].extend(values)
        self.paths.append(path)
        try:
            self.durations.append(float(duration) if duration not in (None, "") else float("nan"))
        except (TypeError, ValueError):
            self.durations.append(float("nan"))
            self.skipped["unreadable durations (song kept, duration unknown)"] += 1
        if embedding is not None and slot is not None:
            self._add_embedding(embedding, slot, len(self.paths) - 1)

    def flush(self) -> None:
        """Pending row-by-row scores -> one (rows, L) float32 block per head."""
        if not self.pending_rows:
            return
        for head, values in self.pending.items():
            self.scores[head].append(np.array(values, np.float32).reshape(self.pending_rows, len(self.labels[head])))
            values.clear()
        self.pending_rows = 0

    def add_block(self, paths: list[str], durations: np.ndarray, scores: dict[str, tuple[list[str], np.ndarray]]) -> None:
        """Many songs at once (a Parquet batch): ``scores`` = {head: (labels, (n, L) array)}."""
        self.flush()  # rows added one by one before this block come first
        if self.has_scores is None:
            self.has_scores = True
        if not self.has_scores:
            raise _Skip("rows with full scores after rows with top tags only")
        self._check_heads(tuple(scores))
        for head, (labels, _) in scores.items():
            if not self.labels[head]:
                self.labels[head].extend(labels)
                self.index[head].update((label, i) for i, label in enumerate(labels))
            elif labels != self.labels[head]:
                raise _Skip(f"rows whose '{head}' labels differ from the first rows' (results of another bundle?)")
        for head, (_, values) in scores.items():
            self.scores[head].append(np.asarray(values, np.float32))
        self.paths += paths
        self.durations.extend(np.asarray(durations, np.float64).tolist())

    def _scores_row(self, head: str, scores) -> list:
        """The row's scores of ``head`` in the first rows' label order, as numbers."""
        if not isinstance(scores, dict):
            raise _Skip(f"rows whose '{head}' scores are not a label -> score map")
        labels, known = list(scores), self.labels[head]
        if not known:
            known.extend(labels)
            self.index[head].update((label, i) for i, label in enumerate(labels))
        if labels == known:
            values = list(scores.values())
        elif set(labels) == set(known):
            values = [scores[label] for label in known]
        else:
            raise _Skip(f"rows whose '{head}' labels differ from the first rows' (results of another bundle?)")
        try:  # cheap check that every value is a float: their sum is one (None, text, lists raise)
            if type(sum(values)) is float:
                return values
        except (TypeError, OverflowError):
            pass
        try:  # ints, bools, numeric text: what float32 makes of them
            return np.fromiter(values, np.float64, len(values)).tolist()
        except (TypeError, ValueError, OverflowError):
            raise _Skip(f"rows whose '{head}' scores are not all numbers") from None

    def _top_row(self, head: str, pairs) -> tuple[list[int], list[float]]:
        index, labels = self.index[head], self.labels[head]
        ids, values = [-1] * TOP_K, [float("nan")] * TOP_K
        try:
            pairs = [(str(label), float(score)) for label, score in pairs[:TOP_K]]
        except (TypeError, ValueError):
            raise _Skip(f"rows whose '{head}' top tags are not [label, score] pairs") from None
        for i, (label, score) in enumerate(pairs):
            if label not in index:
                index[label] = len(labels)
                labels.append(label)
            ids[i], values[i] = index[label], float(score)
        return ids, values

    def _add_embedding(self, embedding, slot: int, row: int) -> None:
        vector = np.array(embedding, np.float32).ravel()  # a copy: a view would pin its whole Arrow batch
        if self.embedding_dim is None:
            self.embedding_dim = vector.size
        if vector.size != self.embedding_dim or not np.all(np.isfinite(vector)):
            self.skipped[f"embeddings not of {self.embedding_dim} finite values (song kept, not on the map)"] += 1
            return
        if slot < len(self.embeddings):
            self.embeddings[slot], self.embedding_rows[slot] = vector, row
        else:
            self.embeddings.append(vector)
            self.embedding_rows.append(row)

    def results(self, sources: list[str]) -> Results:
        self.flush()
        heads = {}
        for h in self.heads or ():
            if self.has_scores:
                scores = np.concatenate(self.scores[h]) if self.scores[h] else np.zeros((0, len(self.labels[h])), np.float32)
                k = min(TOP_K, scores.shape[1])
                order = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(np.arange(k), (len(scores), 1))
                order = np.take_along_axis(order, np.argsort(-np.take_along_axis(scores, order, axis=1), axis=1, kind="stable"), axis=1)
                top_index = np.full((len(scores), TOP_K), -1, np.int32)
                top_score = np.full((len(scores), TOP_K), np.nan, np.float32)
                top_index[:, :k], top_score[:, :k] = order, np.take_along_axis(scores, order, axis=1)
            else:
                scores = None
                top_index = np.frombuffer(self.top_index[h], np.int32).reshape(-1, TOP_K)
                top_score = np.frombuffer(self.top_score[h], np.float32).reshape(-1, TOP_K)
            heads[h] = HeadColumns(self.labels[h], scores, top_index, top_score)
        embeddings = np.stack(self.embeddings) if self.embeddings else None
        return Results(
            sources, self.paths, np.frombuffer(self.durations, np.float64).copy(), heads, embeddings,
            np.array(self.embedding_rows, np.int64) if self.embeddings else None, self.n_with_embedding,
            self.failures, self.skipped,
        )



def _add_block(collector, paths, durations, blocks):
    """Add a block of rows; the index of its first row, or None when the whole block was
    skipped (counted under the reason)."""
    first_row = len(collector.paths)
    try:
        collector.add_block(paths, durations, blocks)
    except _Skip as skip:
        collector.skipped[str(skip)] += len(paths)
        return None
    return first_row

def _pairs(value, scores=None) -> list[tuple[str, float]]:
    """Top tags from "a:0.9;b:0.8", [[a, 0.9]], [{"label": a, "score": 0.9}] or [a, b] + scores."""
    if value is None:
        return []
    if isinstance(value, str):
        out = []
        for item in filter(None, value.split(";")):
            label, _, score = item.rpartition(":")
            out.append((label, float(score)) if label else (item, float("nan")))
        return out
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            label = item.get("label", item.get("tag", item.get("name")))
            out.append((label, float(item.get("score", item.get("value", float("nan"))))))
        elif isinstance(item, (list, tuple)):
            out.append((item[0], float(item[1])))
        else:
            out.append((item, float(scores[i]) if scores is not None and i < len(scores) else float("nan")))
    return out


class _FlatPlan:
    """How to read rows of a flat table (CSV, Parquet, JSON rows with flat keys), from its
    column names alone, computed once per file."""

    def __init__(self, columns: list[str]) -> None:
        names = set(columns)
        if "path" not in names:
            raise ReportError(f"no 'path' column; the columns are {columns[:12]}{'...' if len(columns) > 12 else ''}")
        self.duration = next((c for c in DURATION_COLUMNS if c in names), None)
        self.error = next((c for c in ERROR_COLUMNS if c in names), None)
        self.embedding = "embedding" if "embedding" in names else None
        self.scores: dict[str, list[tuple[str, str]]] = {}
        for c in columns:
            m = _SCORE_COLUMN.match(c)
            if m and m["head"] != "n_segments":  # the catalogue's n_segments:<scale> counts
                self.scores.setdefault(m["head"], []).append((c, m["label"]))
        self.labels = {h: [label for _, label in cols] for h, cols in self.scores.items()}
        self.nested_scores = "scores" if "scores" in names and not self.scores else None
        self.nested_top = "top" if "top" in names else None
        self.top: dict[str, tuple[str, str | None]] = {}
        for c in columns:
            m = _TOP_COLUMN.match(c)
            if m and not c.startswith("top_scores_") and not c.endswith("_scores"):
                head = m["head"]
                companion = next((s for s in (f"top_scores_{head}", f"{c}_scores", f"scores_{head}") if s in names), None)
                self.top[head] = (c, companion)

    def read(self, row: dict) -> tuple:
        """(path, duration, scores, top, error) of one row (a dict of column -> value)."""
        error = row.get(self.error) if self.error else next((row[c] for c in ERROR_COLUMNS if row.get(c)), None)
        scores = top = None
        if self.scores:
            scores = {}
            for head, cols in self.scores.items():
                values = [row.get(c) for c, _ in cols]
                try:
                    scores[head] = dict(zip(self.labels[head], (float(v) if v not in (None, "") else float("nan") for v in values)))
                except ValueError as exc:
                    raise _Skip(f"rows with non-numeric scores ({exc})") from None
        elif self.nested_scores:
            scores = _maybe_json(row.get(self.nested_scores))
        if self.nested_top:
            top = _maybe_json(row.get(self.nested_top))
        elif self.top:
            top = {h: _pairs(_maybe_json(row.get(c)), row.get(s) if s else None) for h, (c, s) in self.top.items()}
            top = top if any(top.values()) else None
        return row.get("path"), row.get(self.duration) if self.duration else None, scores, top, error


def _maybe_json(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _Skip("rows with unreadable JSON cells") from None
    return value


def _add(collector: _Collector, plan: _FlatPlan | None, row: dict, embedding=None, slot=None) -> None:
    if plan is None:  # samplecnn infer's nested rows
        path, duration, scores, top, error = row.get("path"), row.get("duration"), row.get("scores"), row.get("top"), row.get("error")
    else:
        path, duration, scores, top, error = plan.read(row)
    if error not in (None, ""):
        collector.failures.append((str(path), str(error)))
        return
    collector.add(path, duration, scores, top, embedding, slot)


def _strip_embedding(line: bytes) -> tuple[bytes, bool]:
    """The line without its embedding list (cheap: parsing a 960-float list costs ~10x the rest)."""
    cut = line.find(_EMBEDDING_KEY)
    if cut < 0:
        return line, False
    end = line.find(b"]", cut)
    if end < 0:
        return line, True
    head, rest = line[:cut], line[end + 1 :].lstrip()
    if rest.startswith(b","):
        rest = rest[1:].lstrip()
    else:
        head = head.rstrip().rstrip(b",")
    return head + rest, True


def _require_orjson():
    """orjson.loads: 4-5x the standard json module's speed on result rows (the bulk of a
    JSON Lines report's time); it comes with samplecnn[plot], like the drawing."""
    try:
        import orjson
    except ImportError as exc:
        raise ReportError(f"reading JSON Lines needs orjson ({exc}); install it: pip install 'samplecnn[plot]'") from exc
    return orjson.loads


def _loads(line: bytes, fast):
    """One JSON line: orjson first; what it refuses but the standard module reads (NaN and
    Infinity as json.dumps writes them, integers beyond 64 bits, bytes that are not UTF-8,
    read as U+FFFD) goes through json.loads, so both read the same lines."""
    try:
        return fast(line)
    except json.JSONDecodeError:  # orjson.JSONDecodeError is one
        return json.loads(line.decode("utf-8", errors="replace"))


def read_jsonl(path: Path, collector: _Collector) -> None:
    fast = _require_orjson()
    plan: _FlatPlan | None = None
    first = True
    with open(path, "rb") as f:  # bytes: orjson reads them without a decoded copy of each line
        for line in f:
            if not line.strip():
                continue
            truncated = not line.endswith(b"\n")
            slot = None
            if _EMBEDDING_KEY in line:
                slot = collector.keep_embedding()
                if slot is None:
                    line, _ = _strip_embedding(line)
            try:
                row = _loads(line, fast)
                if not isinstance(row, dict):
                    raise _Skip("lines that are not JSON objects")
                if first:
                    first = False
                    if "scores" not in row and "top" not in row and "error" not in row:
                        plan = _FlatPlan(list(row))
                _add(collector, plan, row, row.get("embedding"), slot)
            except json.JSONDecodeError:
                reason = "a last line cut short (a killed run?)" if truncated else "lines that are not valid JSON"
                collector.skipped[reason] += 1
            except _Skip as skip:
                collector.skipped[str(skip)] += 1


def read_csv(path: Path, collector: _Collector) -> None:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # embeddings make long cells
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        plan = _FlatPlan(header)
        n = len(header)
        emb = header.index("embedding") if plan.embedding else -1
        by_blocks = bool(plan.scores) and not plan.nested_top
        block: list[list[str]] = []
        for values in reader:
            if not values:
                continue
            if len(values) != n:
                collector.skipped["rows with a wrong number of cells (cut short?)"] += 1
                continue
            if not by_blocks:
                _csv_row(values, header, plan, emb, collector)
                continue
            block.append(values)
            if len(block) == _Collector.FLUSH_ROWS:
                _csv_block(block, header, plan, emb, collector)
                block = []
        if block:
            _csv_block(block, header, plan, emb, collector)


def _csv_row(values: list[str], header: list[str], plan: _FlatPlan, emb: int, collector: _Collector) -> None:
    """One CSV row, read through the plan (any layout; errors skip the row, counted)."""
    row = dict(zip(header, values))
    embedding = slot = None
    if emb >= 0 and values[emb]:
        slot = collector.keep_embedding()
        if slot is not None:
            try:
                embedding = np.array(values[emb].split(), np.float32)
            except ValueError:
                embedding = None
    try:
        _add(collector, plan, row, embedding, slot)
    except (_Skip, ValueError) as skip:
        collector.skipped[str(skip) if isinstance(skip, _Skip) else "rows with unreadable cells"] += 1


def _csv_block(block: list[list[str]], header: list[str], plan: _FlatPlan, emb: int, collector: _Collector) -> None:
    """Rows of a CSV with ``<head>:<label>`` score columns, converted a block at a time (one
    numpy conversion for every score cell of the block instead of a dict and a float() per
    cell). A block with any cell that is not a plain number (an empty score, text) is read
    row by row instead (:func:`_csv_row`), so odd rows are kept, skipped and counted as ever.
    The scores decide the top tags: ``top_<head>`` cells are not read."""
    where = {c: i for i, c in enumerate(header)}
    path_at = where["path"]
    error_at = where[plan.error] if plan.error else -1
    duration_at = where[plan.duration] if plan.duration else -1
    score_at = [where[c] for cols in plan.scores.values() for c, _ in cols]
    failures, good = [], []
    pathless = 0
    for values in block:
        if error_at >= 0 and values[error_at]:
            failures.append((values[path_at], values[error_at]))
        elif not values[path_at]:
            pathless += 1
        else:
            good.append(values)
    try:
        scores = np.array([values[i] for values in good for i in score_at], np.float64).reshape(len(good), len(score_at))
        durations = np.array([values[duration_at] for values in good], np.float64) if duration_at >= 0 else np.full(len(good), np.nan)
    except ValueError:
        for values in block:
            _csv_row(values, header, plan, emb, collector)
        return
    collector.failures += failures
    if pathless:
        collector.skipped["rows without a path"] += pathless
    slots = []  # the reservoir is asked for every row with an embedding, in file order, as _csv_row does
    if emb >= 0:
        kept = set(map(id, good))
        for values in block:
            if values[emb]:
                slot = collector.keep_embedding()
                if slot is not None and id(values) in kept:
                    slots.append((values, slot))
    if not good:
        return
    start, blocks = 0, {}
    for head, cols in plan.scores.items():
        blocks[head] = (plan.labels[head], scores[:, start : start + len(cols)])
        start += len(cols)
    first_row = _add_block(collector, [values[path_at] for values in good], durations, blocks)
    if first_row is None:
        return
    rows = {id(values): first_row + k for k, values in enumerate(good)}
    for values, slot in slots:
        try:
            vector = np.array(values[emb].split(), np.float32)
        except ValueError:
            continue
        collector._add_embedding(vector, slot, rows[id(values)])


def _require_pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ReportError(f"reading Parquet needs pyarrow ({exc}); install it: pip install pyarrow (samplecnn[ray] brings it)") from exc
    return pq


def read_parquet(path: Path, collector: _Collector) -> None:
    pq = _require_pyarrow()
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a damaged file
        raise ReportError(f"{path}: not a readable Parquet file ({exc})") from exc
    columns = parquet.schema_arrow.names
    plan = _FlatPlan(columns)
    if plan.scores and not plan.nested_top:
        _read_parquet_columns(parquet, plan, collector)
        # Hand freed decode buffers back: without this the allocator keeps every part's
        # (100,000 catalogue rows with 960-float embeddings: 820 -> 290 MB peak RSS).
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
        return
    rest = [c for c in columns if c != "embedding"]
    for batch in parquet.iter_batches(batch_size=8192):
        rows = batch.select(rest).to_pylist()
        vectors = batch.column("embedding") if plan.embedding else None
        for i, row in enumerate(rows):
            embedding = slot = None
            if vectors is not None and vectors[i].is_valid:
                slot = collector.keep_embedding()
                if slot is not None:
                    embedding = vectors[i].values.to_numpy(zero_copy_only=False)
            try:
                _add(collector, plan, row, embedding, slot)
            except _Skip as skip:
                collector.skipped[str(skip)] += 1


def _read_parquet_columns(parquet, plan: _FlatPlan, collector: _Collector) -> None:
    """The catalogue layout (one float column per head:label) read column-wise, not row by
    row: 100,000 songs x 74 scores in about a second instead of a minute."""

    def floats(batch, name):
        return np.asarray(batch.column(name).to_numpy(zero_copy_only=False), np.float64)

    needed = ["path"] + [c for c in (plan.duration, plan.error, plan.embedding) if c] + [c for cols in plan.scores.values() for c, _ in cols]
    for batch in parquet.iter_batches(batch_size=4096, use_threads=False, columns=needed):  # not the top_<head> text
        n = batch.num_rows
        paths = batch.column("path").to_pylist()
        errors = batch.column(plan.error).to_pylist() if plan.error else [None] * n
        ok = [isinstance(p, str) and bool(p) and e in (None, "") for p, e in zip(paths, errors)]
        for p, e, good in zip(paths, errors, ok):
            if not good:
                if e not in (None, ""):
                    collector.failures.append((str(p), str(e)))
                else:
                    collector.skipped["rows without a path"] += 1
        keep = np.flatnonzero(ok)
        if not len(keep):
            continue
        try:
            durations = floats(batch, plan.duration)[keep] if plan.duration else np.full(len(keep), np.nan)
        except (TypeError, ValueError):
            durations = np.full(len(keep), np.nan)
            collector.skipped["batches with unreadable durations (songs kept, durations unknown)"] += 1
        scores = {h: (plan.labels[h], np.column_stack([floats(batch, c) for c, _ in cols])[keep]) for h, cols in plan.scores.items()}
        first_row = _add_block(collector, [paths[i] for i in keep], durations, scores)
        if first_row is None:
            continue
        if plan.embedding:
            _sample_embeddings(batch.column("embedding"), keep, first_row, collector)


def _sample_embeddings(vectors, keep: np.ndarray, first_row: int, collector: _Collector) -> None:
    """The reservoir's picks among this batch's rows ``keep`` (their songs are rows
    first_row.. of the results), copied out of Arrow in one take: reading 100,000 list
    scalars one by one cost more than the rest of the Parquet reading."""
    import pyarrow.compute as pc

    valid = np.asarray(vectors.is_valid().to_numpy(zero_copy_only=False), bool)[keep]
    picks = []  # (batch row, reservoir slot, results row), in row order like the other readers
    for row in np.flatnonzero(valid).tolist():
        slot = collector.keep_embedding()
        if slot is not None:
            picks.append((int(keep[row]), slot, first_row + row))
    if not picks:
        return
    chosen = vectors.take(np.array([i for i, _, _ in picks], np.int64))
    lengths = np.asarray(pc.list_value_length(chosen).to_numpy(zero_copy_only=False), np.int64)
    flat = np.asarray(chosen.flatten().to_numpy(zero_copy_only=False))
    for (_, slot, row), vector in zip(picks, np.split(flat, np.cumsum(lengths)[:-1])):
        collector._add_embedding(vector, slot, row)


def read_errors(path: Path, collector: _Collector) -> None:
    """A table of failed songs: every row is a failure (path, reason/error)."""
    probe = _Collector()
    _read_one(path, probe)
    collector.failures += probe.failures
    for p in probe.paths:  # a row without a reason is still a failure
        collector.failures.append((p, "(no reason given)"))
    collector.skipped.update(probe.skipped)


_READERS = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet}


def _read_one(path: Path, collector: _Collector) -> None:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ReportError(f"{path}: unknown extension {path.suffix!r}; results files end in {', '.join(FORMATS)}")
    _READERS[fmt](path, collector)


def expand(paths: list[str | Path]) -> list[Path]:
    """Files from files and folders (a folder: its results files, sorted, recursively)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in FORMATS)
            if not found:
                raise ReportError(f"{p}: a folder without results files ({', '.join(FORMATS)})")
            out += found
        elif not p.is_file():
            raise ReportError(f"{p}: no such file; pass the file written by samplecnn infer --out or a catalogue run")
        else:
            out.append(p)
    return out


def is_errors_table(path: Path) -> bool:
    """Catalogue runs write failed songs to a table named errors*/failures* (or in such a folder)."""
    return any(part.lower().startswith(("errors", "failures", "failed")) for part in path.parts[-2:])


def read_results(paths: list[str | Path], errors: list[str | Path] = ()) -> Results:
    """Read results files (and failure tables) into :class:`Results`; ReportError if none is usable."""
    files = expand(paths)
    error_files = expand(errors) + [f for f in files if is_errors_table(f)]
    files = [f for f in files if not is_errors_table(f)]
    collector = _Collector()
    for f in files:
        if f.stat().st_size == 0:
            raise ReportError(f"{f} is empty: no rows (was the run killed before its first song?)")
        _read_one(f, collector)
    for f in error_files:
        read_errors(f, collector)
    if not collector.paths and not collector.failures:
        why = "; ".join(f"{n} {reason}" for reason, n in collector.skipped.most_common(3)) or "no rows"
        raise ReportError(f"{', '.join(map(str, files))}: no usable rows ({why})")
    return collector.results([str(f) for f in files + error_files])
