"""Reading tagging results (JSON Lines, CSV, Parquet) into columns for :mod:`.report`.

Readers go by column names, not by who wrote the file, so one reader takes:

- ``samplecnn infer --out x.jsonl``: rows ``{path, duration, n_segments, top: {head: [[label,
  score]]}, scores: {head: {label: score}}, embedding?, segments?}``, failed rows ``{path,
  error}``;
- ``samplecnn infer --out x.csv``: ``path, duration, top_<head>`` ("label:score;..."),
  ``<head>:<label>`` score columns, ``embedding`` (space-separated);
- catalogue Parquet (runtime/catalogue_store):
  ``OUT_DIR/songs/part-*.parquet`` with ``path``, ``duration``, ``n_segments:<scale>``, per
  head ``top_<head>`` and ``<head>:<label>`` score columns, ``embedding`` (fixed-size float32
  list), and ``OUT_DIR/errors/part-*.parquet`` (``path``, ``reason``). Also tolerated: top
  tags alone (``top_<head>`` as "a;b", "a:0.9;b:0.8", [label, score] pairs or a label list
  with scores in ``top_scores_<head>``), a ``scores`` map, failures as rows with ``error``.

Speed (benchmarks/report_speed.py, 100,000 rows): JSON Lines are decoded by orjson (the
standard json module reads what orjson refuses, so both accept the same lines) and rows of
the first scored row's heads and labels take a lean path: scores wait as flat lists and a
block of rows is one float conversion (:class:`_JsonLines`), and in a large file a forked
worker decodes the second half meanwhile (:mod:`.report_parallel`); CSV score columns are read by
pyarrow.csv (:func:`_read_csv_arrow`; the csv module reads what pyarrow refuses); catalogue
Parquet column by column, the next row group decoded by a worker thread while one is added
(:func:`read_parquets`); embeddings only for the songs the reservoir keeps, a batch at a
time. orjson and pyarrow come with samplecnn[plot] and are imported when a file needs them.

Bad rows never stop a report: an unparseable line, a row cut short by a killed run, a row
whose heads or labels differ from the first row's (another bundle), a row without a path:
each is skipped and counted in :attr:`Results.skipped`. A file with no usable row at all is a
:class:`ReportError` that says why.
"""

from __future__ import annotations

import csv
import json
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
    read_workers: list[dict] = field(default_factory=list)  # forked JSON Lines readers: bytes, peak RSS (MB), status


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
        self.embeddings: np.ndarray | None = None  # (MAX_MAP_SONGS, D) float32 once D is known
        self.embedding_rows = np.full(MAX_MAP_SONGS, -1, np.int64)
        self.embedding_kept = np.zeros(MAX_MAP_SONGS, bool)
        self.embedding_dim: int | None = None
        self.n_with_embedding = 0
        self.failures: list[tuple[str, str]] = []
        self.skipped: Counter = Counter()
        self.rng = np.random.default_rng(seed)
        self.workers: list[dict] = []  # forked JSON Lines readers: bytes, peak RSS, status (ok / embeddings / failed)

    def keep_embedding(self) -> int | None:
        """Reservoir sampling (algorithm R): the slot for the next song's embedding, or None
        (not kept). Past the first MAX_MAP_SONGS songs each song takes one uniform draw, so
        :meth:`reserve` of a block gives the same slots as one call per song."""
        seen = self.n_with_embedding
        self.n_with_embedding += 1
        if seen < MAX_MAP_SONGS:
            return seen
        slot = min(int(self.rng.random() * (seen + 1)), seen)
        return slot if slot < MAX_MAP_SONGS else None

    def reserve(self, k: int) -> np.ndarray:
        """:meth:`keep_embedding` for the next ``k`` songs at once: (k,) slots, -1 = not kept."""
        index = np.arange(self.n_with_embedding, self.n_with_embedding + k, dtype=np.int64)
        self.n_with_embedding += k
        slots = index.copy()
        late = index >= MAX_MAP_SONGS
        if late.any():
            seen = index[late]
            drawn = np.minimum((self.rng.random(len(seen)) * (seen + 1)).astype(np.int64), seen)
            slots[late] = np.where(drawn < MAX_MAP_SONGS, drawn, -1)
        return slots

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
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float range
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
        order = {}  # head -> columns in the first rows' label order (None: already in it)
        for head, (labels, _) in scores.items():
            known = self.labels[head]
            if not known:
                known.extend(labels)
                self.index[head].update((label, i) for i, label in enumerate(labels))
            if list(labels) == known:
                order[head] = None
            elif len(labels) == len(known) and set(labels) == set(known):  # the same labels in another order, as _scores_row takes them
                where = {label: i for i, label in enumerate(labels)}
                order[head] = [where[label] for label in known]
            else:
                raise _Skip(f"rows whose '{head}' labels differ from the first rows' (results of another bundle?)")
        for head, (_, values) in scores.items():
            values = np.asarray(values, np.float32)
            self.scores[head].append(values if order[head] is None else values[:, order[head]])
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
        try:
            vector = np.array(embedding, np.float32).ravel()  # a copy: a view would pin its whole Arrow batch
        except (TypeError, ValueError):  # text, ragged lists
            vector = None
        if self.embedding_dim is None and vector is not None:
            self._embedding_width(vector.size)
        if vector is None or vector.size != self.embedding_dim or not np.all(np.isfinite(vector)):
            self.skipped[self._bad_embedding()] += 1
            return
        self.embeddings[slot], self.embedding_rows[slot], self.embedding_kept[slot] = vector, row, True

    def _embedding_width(self, width: int) -> None:
        self.embedding_dim = width
        self.embeddings = np.zeros((MAX_MAP_SONGS, width), np.float32)

    def _bad_embedding(self) -> str:
        return f"embeddings not of {self.embedding_dim} finite values (song kept, not on the map)"

    def add_embeddings(self, slots: np.ndarray, rows: np.ndarray, flat: np.ndarray, lengths: np.ndarray) -> None:
        """Many songs' embeddings at once, in file order: song i has slot ``slots[i]`` (>= 0),
        results row ``rows[i]`` and the values ``flat[sum(lengths[:i]) :][: lengths[i]]``.
        The same as :meth:`_add_embedding` one song at a time: a later song in the same slot
        replaces an earlier one, a song whose vector is unusable is counted and replaces none."""
        if not len(slots):
            return
        if self.embedding_dim is None:
            self._embedding_width(int(lengths[0]))
        flat = np.asarray(flat, np.float32)
        if np.all(lengths == self.embedding_dim):  # a fixed-size list column: no gather
            right, vectors = np.arange(len(slots)), flat.reshape(len(slots), self.embedding_dim)
        else:
            starts = np.cumsum(lengths) - lengths
            right = np.flatnonzero(lengths == self.embedding_dim)
            vectors = flat[starts[right, None] + np.arange(self.embedding_dim)]
        finite = np.isfinite(vectors).all(axis=1)
        usable, vectors = right[finite], vectors[finite]
        if len(usable) < len(slots):
            self.skipped[self._bad_embedding()] += len(slots) - len(usable)
        last = len(usable) - 1 - np.unique(slots[usable][::-1], return_index=True)[1]  # the last song per slot
        chosen = slots[usable][last]
        self.embeddings[chosen], self.embedding_rows[chosen], self.embedding_kept[chosen] = vectors[last], rows[usable][last], True

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
        kept = self.embedding_kept.any()
        return Results(
            sources, self.paths, np.frombuffer(self.durations, np.float64).copy(), heads,
            self.embeddings[self.embedding_kept] if kept else None, self.embedding_rows[self.embedding_kept] if kept else None,
            self.n_with_embedding, self.failures, self.skipped, self.workers,
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
    """JSON Lines: row by row (:class:`_JsonLines`); in a large file without embeddings, once
    the first rows have shown the heads and labels, a forked worker reads the second half
    meanwhile (:mod:`.report_parallel`) and its records are added after the first half's rows."""
    from .report_parallel import start_worker

    rows = _JsonLines(collector)
    size, embeddings_before = path.stat().st_size, collector.n_with_embedding
    worker = None
    try:
        with open(path, "rb") as f:  # bytes: orjson reads them without a decoded copy of each line
            tail, stop, more = b"", size, True
            while more:
                tail, more = _feed(rows.line, f, tail, stop)
                if more and worker is None and stop == size and rows.heads is not None and collector.n_with_embedding == embeddings_before:
                    worker = start_worker(path, f.tell(), size, rows.heads, rows.labels)
                    if worker is not None:
                        stop = worker.start  # a line start: this half ends with a whole line
            if worker is not None:
                records = worker.records()
                collector.workers.append({"bytes": worker.stop - worker.start, "peak_rss_mb": worker.peak_rss_mb, "status": worker.status})
                if records is not None:
                    rows.replay(records)
                else:  # the worker failed or met an embedding: its half read here, as without it
                    f.seek(worker.start)
                    more = True
                    while more:
                        tail, more = _feed(rows.line, f, tail, size)
        rows.flush()
        if tail.strip():
            rows.line(tail, truncated=True)  # a last line without its newline: a killed run's, or just unterminated
        rows.flush()
    finally:
        if worker is not None:
            worker.close()


def _feed(line_of, f, tail: bytes, stop: int) -> tuple[bytes, bool]:
    """Read the next chunk of ``f`` (not past byte ``stop``) and give each whole line to
    ``line_of``: (the unfinished last line, whether anything was read)."""
    want = min(JSONL_CHUNK_BYTES, stop - f.tell())
    block = f.read(want) if want > 0 else b""
    if not block:
        return tail, False
    lines = (tail + block).split(b"\n")
    tail = lines.pop()
    for line in lines:
        line_of(line)
    return tail, True


JSONL_CHUNK_BYTES = 1 << 20  # bytes read at a time (8 MB: +20 MB peak, no faster)


class _JsonLines:
    """Reads JSON Lines row by row with orjson, in two ways that keep, skip and count every
    row alike. :meth:`reference` takes any row. Once a row with a ``scores`` map of maps
    (``samplecnn infer``'s nested rows) has shown the heads and labels, rows with exactly
    those (in that order), a path, no error and a float or missing duration take the lean
    way: their scores wait as flat lists, a block (``_Collector.FLUSH_ROWS`` rows) is one
    numpy conversion and one :meth:`_Collector.add_block`. A block whose scores are not all
    numbers goes through :meth:`reference` row by row. Every other row flushes the block and
    goes through :meth:`reference`, so rows stay in file order."""

    def __init__(self, collector: _Collector) -> None:
        self.loads = _require_orjson()
        self.collector = collector
        self.first = True
        self.plan: _FlatPlan | None = None  # flat rows (top_<head> columns, ...): the reference way for all
        self.heads: list[str] | None = None  # the lean way's heads and labels, once known
        self.labels: list[list[str]] = []
        self.waiting: _LeanRows | None = None  # the lean rows waiting, each with (line, reservoir slot, embedding)

    def line(self, line: bytes, truncated: bool = False) -> None:
        if not line.strip():
            return
        slot = None
        if _EMBEDDING_KEY in line:
            slot = self.collector.keep_embedding()
            if slot is None:
                line, _ = _strip_embedding(line)
        try:
            row = _loads(line, self.loads)
        except json.JSONDecodeError:
            self.flush()
            reason = "a last line cut short (a killed run?)" if truncated else "lines that are not valid JSON"
            self.collector.skipped[reason] += 1
            return
        if self.heads is None or not self.lean(row, line, slot):
            self.flush()
            self.reference(row, slot)

    def lean(self, row, line: bytes, slot: int | None) -> bool:
        """Take ``row`` the lean way if it has the known heads and labels in their order, a
        path, no error and a float or no duration; False: the caller reads it the reference way."""
        if not self.waiting.add(row, (line, slot, None if slot is None else row.get("embedding"))):
            return False
        if len(self.waiting) >= _Collector.FLUSH_ROWS:
            self.flush()
        return True

    def reference(self, row, slot) -> None:
        """One parsed row, the way any row is read (:func:`_add`)."""
        collector = self.collector
        try:
            if not isinstance(row, dict):
                raise _Skip("lines that are not JSON objects")
            if self.first:
                self.first = False
                if "scores" not in row and "top" not in row and "error" not in row:
                    self.plan = _FlatPlan(list(row))
            _add(collector, self.plan, row, row.get("embedding"), slot)
        except _Skip as skip:
            collector.skipped[str(skip)] += 1
        if self.heads is None and self.plan is None and isinstance(row, dict) and collector.has_scores:
            scores = row.get("scores")
            if isinstance(scores, dict) and scores and all(isinstance(v, dict) for v in scores.values()):
                self.heads, self.labels = list(scores), [list(v) for v in scores.values()]
                self.waiting = _LeanRows(self.heads, self.labels)

    def flush(self) -> None:
        """The waiting lean rows: one block, or row by row when a score is not a number."""
        if self.waiting is None or not len(self.waiting):
            return
        paths, durations, scores, kept = self.waiting.take()
        if scores is None:
            for line, slot, _ in kept:
                self.reference(_loads(line, self.loads), slot)
            return
        first_row = _add_block(self.collector, paths, durations, scores)
        if first_row is None:
            return
        for k, (_, slot, embedding) in enumerate(kept):
            if embedding is not None:
                self.collector._add_embedding(embedding, slot, first_row + k)

    def replay(self, records: list[tuple]) -> None:
        """A worker's reading of the rest of the file (:mod:`.report_parallel`), in file order:
        blocks of lean rows it already converted, and lines it left to the reference way."""
        for record in records:
            if record[0] == "line":
                self.line(record[1], truncated=record[2])
            else:
                self.flush()
                _, paths, durations, scores = record
                _add_block(self.collector, paths, durations, scores)


class _LeanRows:
    """Rows taken the lean way (:class:`_JsonLines`, and the forked reader of
    :mod:`.report_parallel`), waiting to become one block: paths, durations, every head's
    scores as one flat list, and what the caller keeps of each row (its line, ...)."""

    def __init__(self, heads: list[str], labels: list[list[str]]) -> None:
        self.heads, self.labels = heads, labels
        self.paths: list[str] = []
        self.durations: list[float] = []
        self.pending: list[list] = [[] for _ in heads]
        self.kept: list = []  # no parsed rows: the GC would walk them

    def __len__(self) -> int:
        return len(self.kept)

    def add(self, row, kept) -> bool:
        """Take ``row`` if it has the known heads and labels in their order, a path, no error
        and a float or no duration; False (nothing taken) otherwise."""
        if type(row) is not dict:
            return False
        scores, path, duration = row.get("scores"), row.get("path"), row.get("duration")
        if not (type(scores) is dict and list(scores) == self.heads and type(path) is str and path
                and (duration is None or type(duration) is float) and row.get("error") in (None, "")):
            return False
        values = list(scores.values())
        if not all(type(v) is dict and list(v) == head_labels for v, head_labels in zip(values, self.labels)):
            return False
        for flat, v in zip(self.pending, values):
            flat.extend(v.values())
        self.paths.append(path)
        self.durations.append(np.nan if duration is None else duration)
        self.kept.append(kept)
        return True

    def take(self) -> tuple[list[str], np.ndarray, dict | None, list]:
        """(paths, durations (n,), {head: (labels, (n, L) float64)} or None when a score is not
        a number (the rows are then read row by row), what was kept of each row); empties."""
        n, scores = len(self.kept), {}
        for head, head_labels, flat in zip(self.heads, self.labels, self.pending):
            try:
                values = np.array(flat, np.float64)  # None -> NaN, numeric text and bools -> numbers, as _scores_row reads them
            except (TypeError, ValueError, OverflowError):
                scores = None
                break
            if values.ndim != 1:  # every score a list of one number
                scores = None
                break
            scores[head] = (head_labels, values.reshape(n, len(head_labels)))
        taken = (self.paths, np.array(self.durations, np.float64), scores, self.kept)
        self.paths, self.durations, self.kept = [], [], []
        for flat in self.pending:
            flat.clear()
        return taken


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
        if by_blocks and _read_csv_arrow(path, header, plan, collector):
            return
        block: list[list[str]] = []
        for values in reader:
            if not values:
                continue
            if len(values) != n:
                collector.skipped[_WRONG_CELLS] += 1
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


_WRONG_CELLS = "rows with a wrong number of cells (cut short?)"


def _read_csv_arrow(path: Path, header: list[str], plan: _FlatPlan, collector: _Collector) -> bool:
    """A CSV with ``<head>:<label>`` score columns read by pyarrow.csv (a block of rows at a
    time, conversion in C++), as :func:`_csv_block` reads it: rows with a wrong number of
    cells skipped and counted, an ``error`` cell a failure, an empty path skipped, an empty
    score or duration unknown (NaN), scores in float64 then float32. Only ``""`` is a null
    (not pyarrow's "NA", "null", ...). False, with the collector untouched, when pyarrow
    refuses the file (a cell that is not a plain number, bytes that are not UTF-8, repeated
    column names): then the csv module reads it, odd rows and all."""
    if len(set(header)) != len(header):
        return False
    _require_pyarrow("CSV")
    import pyarrow as pa
    import pyarrow.csv as pacsv

    score_columns = [c for cols in plan.scores.values() for c, _ in cols]
    columns = ["path"] + [c for c in (plan.duration, plan.error) if c] + score_columns
    types = {c: pa.float64() for c in score_columns} | {"path": pa.string()}
    if plan.duration:
        types[plan.duration] = pa.float64()
    if plan.error:
        types[plan.error] = pa.string()
    wrong = [0]

    def wrong_cells(row) -> str:
        wrong[0] += 1
        return "skip"

    def options(include: list[str], column_types: dict) -> dict:
        return {
            "read_options": pacsv.ReadOptions(use_threads=True, block_size=1 << 20),
            "parse_options": pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=wrong_cells),
            "convert_options": pacsv.ConvertOptions(include_columns=include, column_types=column_types, null_values=[""],
                                                    strings_can_be_null=False, quoted_strings_can_be_null=True),
        }

    failures, pathless, songs, batches = [], 0, 0, []  # batches: (paths, durations, {head: (labels, scores)})
    kept_rows = []  # per batch: the results row of each file row (counted from this file's first song), -1 = not a song
    try:
        reader = pacsv.open_csv(path, **options(columns, types))
        if reader.schema.names != columns:
            return False
        for batch in reader:
            batch_paths = batch.column("path").to_pylist()
            errors = batch.column(plan.error).to_pylist() if plan.error else [""] * len(batch_paths)
            good = np.zeros(len(batch_paths), bool)
            for i, (p, e) in enumerate(zip(batch_paths, errors)):
                if e:
                    failures.append((p, e))
                elif not p:
                    pathless += 1
                else:
                    good[i] = True
            keep = np.flatnonzero(good)
            rows = np.full(len(batch_paths), -1, np.int64)
            rows[keep] = np.arange(songs, songs + len(keep))
            kept_rows.append(rows)
            songs += len(keep)
            durations = np.asarray(batch.column(plan.duration).fill_null(np.nan))[keep] if plan.duration else np.full(len(keep), np.nan)
            scores = {}
            for head, cols in plan.scores.items():
                block = np.empty((len(keep), len(cols)), np.float32)
                for j, (c, _) in enumerate(cols):
                    block[:, j] = np.asarray(batch.column(c).fill_null(np.nan))[keep]
                scores[head] = (plan.labels[head], block)
            batches.append(([batch_paths[i] for i in keep], durations, scores))
    except pa.ArrowException:
        return False
    finally:
        pa.default_memory_pool().release_unused()  # the parsed blocks' buffers back to the system
    if wrong[0]:
        collector.skipped[_WRONG_CELLS] += wrong[0]
    collector.failures += failures
    if pathless:
        collector.skipped["rows without a path"] += pathless
    firsts = [_add_block(collector, *batch) for batch in batches if batch[0]]  # the same heads and labels: all added or all skipped
    if plan.embedding:
        first_row = firsts[0] if firsts and all(f is not None for f in firsts) else None
        _csv_embeddings(path, options(["embedding"], {"embedding": pa.binary()}), np.concatenate(kept_rows) if kept_rows else np.zeros(0, np.int64), first_row, collector)
    return True


def _csv_embeddings(path: Path, options: dict, rows: np.ndarray, first_row: int | None, collector: _Collector) -> None:
    """The embedding cells of a CSV read by :func:`_read_csv_arrow`: the reservoir is asked
    for every row with a non-empty cell, in file order (as :func:`_csv_block` does), and the
    cells it keeps are parsed; ``rows``: each file row's results row (-1: not a song),
    ``first_row`` None when the songs were skipped."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    done = 0
    for batch in pacsv.open_csv(path, **options):
        cells = batch.column("embedding")
        present = np.flatnonzero(np.asarray(pc.binary_length(cells).fill_null(0)) > 0)
        slots = collector.reserve(len(present))
        if first_row is not None:
            for i, slot in zip(present[slots >= 0].tolist(), slots[slots >= 0].tolist()):
                row = rows[done + i]
                if row >= 0:
                    try:
                        vector = np.array(cells[i].as_py().decode("utf-8", errors="replace").split(), np.float32)
                    except ValueError:
                        continue
                    collector._add_embedding(vector, slot, first_row + row)
        done += batch.num_rows


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


def _require_pyarrow(what: str):
    """pyarrow.parquet (reading any format in columns: samplecnn[plot] brings pyarrow)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ReportError(f"reading {what} needs pyarrow ({exc}); install it: pip install 'samplecnn[plot]'") from exc
    return pq


def read_parquet(path: Path, collector: _Collector) -> None:
    read_parquets([path], collector)


PARQUET_AHEAD = 2  # row groups in hand: the one being added and the next, decoded meanwhile by a worker thread
PARQUET_BIG_GROUP = 65536  # rows: a larger row group is streamed in batches, not decoded whole ahead


def read_parquets(paths: list[Path], collector: _Collector) -> None:
    """Parquet files, in order. Catalogue row groups (one float column per head:label) are
    decoded by two worker threads a few row groups ahead (pyarrow decodes without the GIL:
    the embedding column is most of the work and one column decodes on one thread), then
    added a batch at a time (:func:`_parquet_batch`); other layouts row by row."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pq = _require_pyarrow("Parquet")
    import pyarrow

    def units():
        for path in paths:
            try:
                parquet = pq.ParquetFile(path)
            except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a damaged file
                raise ReportError(f"{path}: not a readable Parquet file ({exc})") from exc
            plan = _FlatPlan(parquet.schema_arrow.names)
            if not plan.scores or plan.nested_top:
                yield path, parquet, plan, None, None
                continue
            needed = ["path"] + [c for c in (plan.duration, plan.error, plan.embedding) if c] + [c for cols in plan.scores.values() for c, _ in cols]
            for group in range(parquet.metadata.num_row_groups):
                yield path, parquet, plan, group, needed  # not the top_<head> text

    def decode(path, group, needed):
        return pq.ParquetFile(path).read_row_group(group, columns=needed, use_threads=False)  # a reader per thread

    todo, window = units(), deque()
    with ThreadPoolExecutor(1, thread_name_prefix="report-parquet") as pool:
        def fill():
            while len(window) < max(PARQUET_AHEAD, 1):
                unit = next(todo, None)
                if unit is None:
                    return
                path, parquet, _, group, needed = unit
                small = group is not None and parquet.metadata.row_group(group).num_rows <= PARQUET_BIG_GROUP
                window.append((unit, pool.submit(decode, path, group, needed) if small and PARQUET_AHEAD > 1 else None))

        fill()
        while window:
            (path, parquet, plan, group, needed), future = window.popleft()
            try:
                if group is None:
                    _read_parquet_rows(parquet, plan, collector)
                else:
                    batches = future.result().to_batches() if future else parquet.iter_batches(batch_size=4096, row_groups=[group], columns=needed, use_threads=False)
                    for batch in batches:
                        _parquet_batch(batch, plan, collector)
                    del batches
            except (pyarrow.ArrowException, OSError) as exc:  # a damaged page: its footer was readable
                raise ReportError(f"{path}: not a readable Parquet file ({exc})") from exc
            fill()
            # Hand freed decode buffers back: without this the allocator keeps every part's
            # (100,000 catalogue rows with 960-float embeddings: 820 -> 290 MB peak RSS).
            pyarrow.default_memory_pool().release_unused()


def _read_parquet_rows(parquet, plan: _FlatPlan, collector: _Collector) -> None:
    """Parquet of any other layout (top tags only, failures tables), row by row."""
    rest = [c for c in parquet.schema_arrow.names if c != "embedding"]
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


def _parquet_batch(batch, plan: _FlatPlan, collector: _Collector) -> None:
    """Catalogue rows (one float column per head:label) read column-wise, not row by row."""

    def floats(name):
        return np.asarray(batch.column(name).to_numpy(zero_copy_only=False), np.float64)

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
        return
    try:
        durations = floats(plan.duration)[keep] if plan.duration else np.full(len(keep), np.nan)
    except (TypeError, ValueError):
        durations = np.full(len(keep), np.nan)
        collector.skipped["batches with unreadable durations (songs kept, durations unknown)"] += 1
    scores = {}
    for h, cols in plan.scores.items():
        scores[h] = (plan.labels[h], np.empty((len(keep), len(cols)), np.float32))
        for j, (c, _) in enumerate(cols):
            scores[h][1][:, j] = floats(c)[keep]
    first_row = _add_block(collector, [paths[i] for i in keep], durations, scores)
    if first_row is not None and plan.embedding:
        _sample_embeddings(batch.column("embedding"), keep, first_row, collector)


def _sample_embeddings(vectors, keep: np.ndarray, first_row: int, collector: _Collector) -> None:
    """The reservoir's picks among this batch's rows ``keep`` (their songs are rows
    first_row.. of the results): one reservoir draw for the batch, one Arrow take of the
    picks, one numpy copy into the sample (:meth:`_Collector.add_embeddings`)."""
    import pyarrow.compute as pc

    valid = np.flatnonzero(np.asarray(vectors.is_valid().to_numpy(zero_copy_only=False), bool)[keep])  # songs with an embedding
    slots = collector.reserve(len(valid))
    picked = slots >= 0
    if not picked.any():
        return
    chosen = vectors.take(keep[valid[picked]])
    lengths = np.asarray(pc.list_value_length(chosen).to_numpy(zero_copy_only=False), np.int64)
    flat = np.asarray(chosen.flatten().to_numpy(zero_copy_only=False))
    collector.add_embeddings(slots[picked], first_row + valid[picked], flat, lengths)


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
    i = 0
    while i < len(files):  # consecutive Parquet files (a catalogue's parts) read as one stream
        j = i + 1
        while FORMATS.get(files[i].suffix.lower()) == "parquet" and j < len(files) and FORMATS.get(files[j].suffix.lower()) == "parquet":
            j += 1
        if j > i + 1:
            read_parquets(files[i:j], collector)
        else:
            _read_one(files[i], collector)
        i = j
    for f in error_files:
        read_errors(f, collector)
    if not collector.paths and not collector.failures:
        why = "; ".join(f"{n} {reason}" for reason, n in collector.skipped.most_common(3)) or "no rows"
        raise ReportError(f"{', '.join(map(str, files))}: no usable rows ({why})")
    return collector.results([str(f) for f in files + error_files])
