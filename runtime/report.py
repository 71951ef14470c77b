"""A catalogue report: one self-contained static HTML page from a results file.

    samplecnn report results.jsonl --out report.html
    from samplecnn.runtime.report import write_report
    write_report(["results.parquet"], "report.html")

Sections (element ids): ``summary`` (songs, hours, failures, skipped rows), ``failures`` (path
and reason), ``tags`` (per head: how often each label is a song's top tag, and the score
distribution of the most frequent labels), ``durations`` (histogram), ``map`` (2-D PCA of the
song embeddings coloured by top tag, when the results hold embeddings) and ``songs`` (a
sortable, filterable table of every song with its top tags per head and how atypical its
scores are). Pictures are PNGs inside the page (data: URLs), the table is drawn by a small
inline script from JSON inside the page; a Content-Security-Policy forbids every network
request, so the page works offline, from a file, forever.

Reading is :mod:`.report_data` (orjson for JSON Lines, pyarrow for CSV score columns and
Parquet); drawing needs matplotlib and the page's JSON orjson (all in ``pip install
'samplecnn[plot]'``). Charts are bare matplotlib Figures drawn by Agg with margins computed
from label widths; matplotlib is imported while the files are read.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import sys
import time
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .plot import PlotError, require_matplotlib, umask_mode
from .report_data import FORMATS, Results, ReportError, expand, read_results

MAX_BARS = 20  # labels per frequency chart
MAX_BOXES = 12  # labels per score-distribution chart
MAX_MAP_COLOURS = 9  # top tags coloured on the map; the rest are grey "other"
MAX_FAILURES_LISTED = 1000
TABLE_TOP = 3  # top tags per head in the songs table
DPI = 100
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


PNG_COMPRESSION = 3  # zlib level of the embedded PNGs: Pillow's default 6 took ~1.5x the time for ~4% smaller files


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESSION})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=None)
def _text_measure():
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(1, 1, 72)


def _text_inches(texts, size: float = 10.0) -> float:
    """Width in inches of the widest of ``texts`` in matplotlib's default font at ``size`` pt."""
    from matplotlib.font_manager import FontProperties

    renderer, prop = _text_measure(), FontProperties(size=size)
    return max((renderer.get_text_width_height_descent(str(t), prop, ismath=False)[0] / 72 for t in texts), default=0.0)


def _figure(width: float, height: float, *, left: list, ylabel: bool = False, right: float = 0.25):
    """(figure, axes) with margins set from the widest y tick label ``left`` (+ a y-axis
    label): constrained layout measured every artist of every chart twice, ~40% of the
    drawing time of a report. A bare Figure (no pyplot figure manager to create and close);
    savefig draws it on the Agg canvas."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    margin = _text_inches(left) + 0.15 + (0.25 if ylabel else 0.0)  # + tick and padding (+ the rotated label)
    fig.subplots_adjust(left=margin / width, right=1 - right / width, bottom=0.55 / height, top=1 - 0.35 / height)
    return fig, ax


def box_stats(scores: np.ndarray, whis: float = 1.5) -> list[dict]:
    """matplotlib.cbook.boxplot_stats of each column of ``scores`` (n, k), as it computes
    them (quartiles by np.percentile in the scores' dtype, whiskers at the most extreme
    scores within ``whis`` IQR), for all columns at once and without the mean, notch and
    fliers it also computes (Axes.boxplot: ~0.15 s a chart on 100,000 songs, profiled)."""
    if not len(scores):
        nan = np.full(scores.shape[1], np.nan)
        q1 = med = q3 = low = high = nan
    else:
        q1, med, q3 = np.percentile(scores, [25, 50, 75], axis=0)
        iqr = q3 - q1
        reach = scores <= q3 + whis * iqr
        high = np.where(reach.any(axis=0), np.where(reach, scores, -np.inf).max(axis=0), q3)
        high = np.where(high < q3, q3, high)  # none within reach, or all below q3: q3
        reach = scores >= q1 - whis * iqr
        low = np.where(reach.any(axis=0), np.where(reach, scores, np.inf).min(axis=0), q1)
        low = np.where(low > q1, q1, low)
    return [{"med": med[i], "q1": q1[i], "q3": q3[i], "whislo": low[i], "whishi": high[i], "fliers": np.array([])} for i in range(scores.shape[1])]


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def head_figures(results: Results, head: str) -> tuple[str, str]:
    """(top-tag frequency chart, score distribution chart) of one head, as data URLs."""
    columns = results.heads[head]
    top1 = columns.top_index[:, 0]
    counts = np.bincount(top1[top1 >= 0], minlength=len(columns.labels))
    order = [i for i in np.argsort(-counts, kind="stable")[:MAX_BARS] if counts[i] > 0]
    fig, ax = _figure(6.2, 0.28 * max(len(order), 4) + 1.2, left=[columns.labels[i] for i in order])
    ax.barh(range(len(order)), counts[order][::-1] if order else [], color="#3b75af")
    ax.set_yticks(range(len(order)), [columns.labels[i] for i in order][::-1])
    ax.xaxis.get_major_locator().set_params(integer=True)  # counts of songs
    ax.set_xlabel("songs whose top tag it is")
    ax.set_title(f"{head}: top tag of each song ({len(top1):,} songs)", loc="left", fontsize=10)
    frequency = _png(fig)
    full = columns.scores is not None and order
    ticks = [columns.labels[i] for i in order[:MAX_BOXES]] if full else [f"{len(top1):,}"]
    fig, ax = _figure(6.2, 0.28 * max(len(order[:MAX_BOXES]), 4) + 1.2, left=ticks, ylabel=not full)
    if full:
        shown = order[:MAX_BOXES][::-1]
        boxes = box_stats(columns.scores[:, shown])
        try:
            ax.bxp(boxes, orientation="horizontal", showfliers=False, widths=0.6)
        except TypeError:  # matplotlib < 3.10 names it vert=False
            ax.bxp(boxes, vert=False, showfliers=False, widths=0.6)
        ax.set_yticks(range(1, len(shown) + 1), [columns.labels[i] for i in shown])
        ax.set_xlabel("score (box: quartiles; whiskers: 1.5 IQR)")
        ax.set_title(f"{head}: scores of the most frequent top tags", loc="left", fontsize=10)
    else:
        values = columns.top_score[:, 0]
        ax.hist(values[np.isfinite(values)], bins=40, color="#3b75af")
        ax.set_xlabel("score of the top tag")
        ax.set_ylabel("songs")
        ax.set_title(f"{head}: top-tag scores (the file has no full scores)", loc="left", fontsize=10)
    return frequency, _png(fig)


def duration_figure(results: Results) -> str | None:
    values = results.durations[np.isfinite(results.durations)]
    if not len(values):
        return None
    minutes = values.max() > 600
    fig, ax = _figure(6.2, 3.2, left=[f"{len(values):,}"], ylabel=True)
    ax.hist(values / 60 if minutes else values, bins=40, color="#3b75af")
    ax.set_xlabel("duration (min)" if minutes else "duration (s)")
    ax.set_ylabel("songs")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"song durations ({len(values):,} songs)", loc="left", fontsize=10)
    return _png(fig)


def pca_2d(x: np.ndarray, iterations: int = 6, seed: int = 0) -> np.ndarray:
    """(m, D) -> (m, 2): the songs on the two principal axes of the centred sample.

    Randomized range finding with power iterations (Halko et al. 2011) on a 12-column
    sketch: a few (m, D) x (D, 12) products instead of a full SVD, which took 37 s for
    3,000 x 960 on the loaded 2-core dev machine (the sketch: well under a second). The
    sketch is orthonormalised through its (12, 12) Gram matrix, not a QR of the (m, 12)
    sketch: LAPACK's threaded QR of a tall, thin matrix spun 1-2 CPU s per map on the loaded
    2-core machine (0.2 s with one thread); the 12 x 12 eigenproblem never threads.
    float32 input stays float32 (the products read the sample 14 times: half the memory
    traffic of float64; the small eigen- and singular-value problems are float64).
    """
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    centred = np.asarray(x - x.mean(axis=0, dtype=np.float64), dtype)
    sketch = min(12, *centred.shape)
    basis = _orthonormal(centred @ np.random.default_rng(seed).standard_normal((centred.shape[1], sketch)).astype(dtype))
    for _ in range(iterations):
        basis = _orthonormal(centred @ (centred.T @ basis))
    _, _, vt = np.linalg.svd(np.asarray(basis.T @ centred, np.float64), full_matrices=False)
    points = np.asarray(centred @ vt[:2].T.astype(dtype), np.float64)
    return points if points.shape[1] == 2 else np.c_[points, np.zeros(len(x))]


def _orthonormal(b: np.ndarray) -> np.ndarray:
    """(m, k) -> (m, r): an orthonormal basis of b's columns (r <= k: directions whose
    energy is below 1e-10 of the largest are dropped), via the eigenvectors of b^T b."""
    b = b / max(float(np.abs(b).max()), np.finfo(np.float64).tiny)  # no overflow in b^T b after power steps
    w, v = np.linalg.eigh(np.asarray(b.T @ b, np.float64))
    keep = w > w[-1] * (1e-10 if b.dtype == np.float64 else 1e-6) if w[-1] > 0 else np.zeros(len(w), bool)
    q = b @ (v[:, keep] / np.sqrt(w[keep])).astype(b.dtype)
    return q if q.shape[1] else np.zeros((len(b), 1), b.dtype)


def map_figure(results: Results, head: str | None) -> str | None:
    """2-D PCA of the sampled embeddings, coloured by top tag of ``head`` (None: not coloured)."""
    if results.embeddings is None or len(results.embeddings) < 3:
        return None
    points = pca_2d(results.embeddings)
    ticks = ["\u22120.00", f"{np.abs(points).max():.0f}\u2212.0"]  # the widest y tick label it can have, about
    if head is None:
        fig, ax = _figure(8.5, 5.5, left=ticks, ylabel=True)
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6)
    else:
        columns = results.heads[head]
        tags = columns.top_index[results.embedding_rows, 0]
        common = [int(t) for t in np.argsort(-np.bincount(tags[tags >= 0], minlength=len(columns.labels)), kind="stable")[:MAX_MAP_COLOURS]]
        common = [t for t in common if np.any(tags == t)]
        other = ~np.isin(tags, common)
        legend = max(_text_inches([columns.labels[t] for t in common] + ["other"], 9) + 0.6, _text_inches([f"top tag ({head})"]) + 0.25)
        fig, ax = _figure(8.5, 5.5, left=ticks, ylabel=True, right=legend + 0.25)
        if other.any():
            ax.scatter(points[other, 0], points[other, 1], s=6, c="#bbbbbb", label="other", alpha=0.6)
        from matplotlib import colormaps

        tab10 = colormaps["tab10"]
        colours = [tab10(i) for i in range(10) if i != 7]  # tab10's 7 is the grey of "other"
        for i, t in enumerate(common):
            chosen = tags == t
            ax.scatter(points[chosen, 0], points[chosen, 1], s=8, color=colours[i], label=columns.labels[t], alpha=0.8)
        ax.legend(title=f"top tag ({head})", loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, markerscale=2)
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    shown = f"{len(points):,} of {results.n_with_embedding:,} songs" if len(points) < results.n_with_embedding else f"{len(points):,} songs"
    ax.set_title(f"song embeddings, PCA ({shown})", loc="left", fontsize=10)
    return _png(fig)


def atypicality(results: Results) -> np.ndarray | None:
    """(n,) root-mean-square z-score of each song's scores over every label of every head:
    large = unlike the rest of the catalogue. None when the file holds only top tags."""
    blocks = [c.scores for c in results.heads.values() if c.scores is not None and c.scores.shape[1]]
    if not blocks or len(results.paths) < 2:
        return None
    z_squared = np.zeros(len(results.paths), np.float64)
    total = 0
    for scores in blocks:
        mean, std = scores.mean(axis=0), scores.std(axis=0) + 1e-6
        z_squared += (((scores - mean) / std) ** 2).sum(axis=1)
        total += scores.shape[1]
    return np.sqrt(z_squared / total)


def table_data(results: Results, atypical: np.ndarray | None) -> dict:
    """Columns of the songs table (label indices, not repeated label strings): ``path``
    (n,) strings, ``duration`` (n,) float64 (NaN: unknown), per head ``labels``, ``top``
    (n, 3) int32 (-1: none) and ``score`` (n, 3) float32 (-1: none), ``atypical`` (n,) or
    None. Arrays stay numpy arrays: :func:`table_json` writes them without Python floats."""
    data: dict = {"path": results.paths, "duration": np.round(results.durations, 1)}
    data["heads"] = {}
    for head, c in results.heads.items():
        index = np.ascontiguousarray(c.top_index[:, :TABLE_TOP], np.int32)
        top = c.top_score[:, :TABLE_TOP]
        score = np.where(np.isfinite(top), np.round(top, 3), np.float32(-1)).astype(np.float32)
        data["heads"][head] = {"labels": c.labels, "top": index, "score": score}
    data["atypical"] = None if atypical is None else np.round(atypical, 2)
    return data


def table_json(data: dict) -> str:
    """The table's JSON for a <script> element: NaN and infinities are null, "</" is escaped.

    orjson writes the numpy columns directly (float32 scores as their shortest text, "0.123",
    not 0.12300000339746475): 100,000 songs in ~0.1 s instead of ~2 s through lists and json.
    """
    try:
        import orjson
    except ImportError as exc:
        raise ReportError(f"the report page needs orjson ({exc}); install it: pip install 'samplecnn[plot]'") from exc
    try:
        text = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:  # a lone surrogate (a "\\udc80" escape in the file) is no UTF-8
        text = orjson.dumps(_valid_text(data), option=orjson.OPT_SERIALIZE_NUMPY)
    return text.decode("utf-8").replace("</", "<\\/")


def _valid_text(value):
    """``value`` with every string made valid UTF-8 (lone surrogates -> "?")."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_valid_text(v) for v in value]
    return value


def _summary_html(results: Results, atypical: np.ndarray | None) -> str:
    durations = results.durations[np.isfinite(results.durations)]
    rows = [
        ("songs tagged", f"{len(results.paths):,}"),
        ("hours of audio", f"{durations.sum() / 3600:,.2f}" + (f" ({len(results.paths) - len(durations):,} songs without a duration)" if len(durations) < len(results.paths) else "")),
        ("failed songs", f"{len(results.failures):,}" + ("" if results.failures else " recorded (samplecnn infer lists failures on stderr, not in --out; a catalogue run writes an errors table)")),
        ("heads", ", ".join(f"{h} ({len(c.labels)} labels{'' if c.scores is not None else ', top tags only'})" for h, c in results.heads.items()) or "none: no tags in the file"),
        ("embeddings", f"{results.n_with_embedding:,} songs" if results.n_with_embedding else "none in the file (no map)"),
        ("read from", ", ".join(results.sources)),
    ]
    body = "".join(f"<tr><th scope=row>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    out = f'<table class="kv">{body}</table>'
    if results.skipped:
        items = "".join(f"<li>{n:,} {html.escape(reason)}</li>" for reason, n in results.skipped.most_common())
        out += f'<div class="warn" id="skipped"><b>Skipped while reading:</b><ul>{items}</ul></div>'
    if atypical is not None:
        worst = np.argsort(-atypical, kind="stable")[:5]
        items = "".join(f"<li>{html.escape(results.paths[i])} <span class=dim>({atypical[i]:.2f})</span></li>" for i in worst)
        out += f"<p><b>Most atypical songs</b> (scores furthest from the catalogue's, in standard deviations; sort the table by 'atypical' for more):</p><ol>{items}</ol>"
    return out


def _failures_html(results: Results) -> str:
    if not results.failures:
        return "<p>No failures recorded.</p>"
    reasons: dict[str, int] = {}
    for _, reason in results.failures:
        key = reason.split(":")[0][:80]
        reasons[key] = reasons.get(key, 0) + 1
    grouped = "".join(f"<tr><td>{n:,}</td><td>{html.escape(r)}</td></tr>" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    listed = "".join(f"<tr><td>{html.escape(p)}</td><td>{html.escape(r)}</td></tr>" for p, r in results.failures[:MAX_FAILURES_LISTED])
    more = f"<p>First {MAX_FAILURES_LISTED:,} of {len(results.failures):,} listed.</p>" if len(results.failures) > MAX_FAILURES_LISTED else ""
    return (f"<table><thead><tr><th>songs</th><th>reason</th></tr></thead><tbody>{grouped}</tbody></table>"
            f"<details><summary>every failed song</summary><table><thead><tr><th>path</th><th>reason</th></tr></thead><tbody>{listed}</tbody></table>{more}</details>")


def render(results: Results, title: str, stages: dict | None = None) -> str:
    """The whole page as a string. ``stages``: filled with the seconds each stage took
    (summarise, charts, table), for benchmarks/report_speed.py."""
    require_matplotlib()  # PlotError naming the extra when it is missing
    stages = {} if stages is None else stages
    clock = time.perf_counter()
    atypical = atypicality(results)
    sections = [("summary", "Run summary", _summary_html(results, atypical)), ("failures", "Failures", _failures_html(results))]
    stages["summarise"] = time.perf_counter() - clock
    clock = time.perf_counter()
    tag_parts = []
    for head in results.heads:
        frequency, distribution = head_figures(results, head)
        tag_parts.append(f'<h3>{html.escape(head)}</h3><div class="row">{_img(frequency, f"{head} tag frequency")}{_img(distribution, f"{head} score distribution")}</div>')
    sections.append(("tags", "Tags and scores per head", "".join(tag_parts) or "<p>The file has no tags.</p>"))
    duration = duration_figure(results)
    sections.append(("durations", "Durations", _img(duration, "duration histogram") if duration else "<p>The file has no durations.</p>"))
    colour_head = next((h for h, c in results.heads.items() if len(c.labels) > 4), next(iter(results.heads), None))
    song_map = map_figure(results, colour_head)
    if song_map:
        sections.append(("map", "Map of the songs", _img(song_map, "PCA map of song embeddings")))
    stages["charts"] = time.perf_counter() - clock
    clock = time.perf_counter()
    table = ('<p><input id="filter" type="search" placeholder="filter by path or tag" aria-label="filter">'
             ' <span id="count"></span> <button id="prev" type="button">previous</button> <button id="next" type="button">next</button></p>'
             '<table id="songs-table"><thead><tr id="songs-head"></tr></thead><tbody id="songs-body"></tbody></table>')
    sections.append(("songs", "Songs", table))
    data = table_json(table_data(results, atypical))
    body = "".join(f'<section id="{sid}"><h2>{html.escape(name)}</h2>{content}</section>' for sid, name, content in sections)
    page = PAGE.format(title=html.escape(title), csp=CSP, body=body, data=data, script=SCRIPT, style=STYLE)
    stages["table"] = time.perf_counter() - clock
    return page


def write_report(results_paths: list[str | Path], out: str | Path, *, errors: list[str | Path] = (), title: str | None = None,
                 stages: dict | None = None) -> Results:
    """Read ``results_paths`` (+ failure tables ``errors``) and write the page to ``out``
    atomically. For CSV and Parquet, matplotlib is imported by a worker thread while the
    files are read (pyarrow reads them without the GIL; the import takes ~0.6 s); JSON Lines
    are decoded by orjson, which holds the GIL: nothing to overlap. ``stages``: filled with
    the seconds of each stage (read, summarise, charts, table, write)."""
    if Path(out).is_dir():
        raise ReportError(f"--out {out} is a folder; give a file name such as {Path(out) / 'report.html'}")
    stages = {} if stages is None else stages
    drawing, files = None, expand(list(results_paths))
    if any(FORMATS.get(f.suffix.lower()) != "jsonl" for f in files):
        from concurrent.futures import ThreadPoolExecutor

        importer = ThreadPoolExecutor(1, thread_name_prefix="report-import")
        drawing = importer.submit(require_matplotlib)
        importer.shutdown(wait=False)
    clock = time.perf_counter()
    results = read_results(files, list(errors))
    stages["read"] = time.perf_counter() - clock
    if drawing is not None:
        drawing.result()  # its PlotError, if any, here
    page = render(results, title or f"samplecnn report: {', '.join(Path(p).name for p in results_paths)}", stages)
    clock = time.perf_counter()
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8", errors="replace")  # lone surrogates in paths -> "?"
        umask_mode(tmp)
    stages["write"] = time.perf_counter() - clock
    return results


def main(results_paths: list[str], *, out: str, errors: list[str] = (), title: str | None = None, stderr=None) -> int:
    """``samplecnn report``: 0 done; 1 done but rows were skipped; 2 nothing could be reported."""
    stderr = stderr or sys.stderr
    try:
        results = write_report(results_paths, out, errors=errors, title=title)
    except (ReportError, PlotError, OSError) as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    skipped = sum(results.skipped.values())
    print(f"wrote {out}: {len(results.paths):,} songs, {len(results.failures):,} failures"
          + (f", skipped {skipped:,} rows or values (" + "; ".join(f"{n:,} {r}" for r, n in results.skipped.most_common()) + ")" if skipped else ""), file=stderr)
    return 1 if skipped else 0


STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1320px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
table.kv th{font-weight:600;white-space:nowrap}.row{display:flex;flex-wrap:wrap;gap:12px}img{max-width:100%;height:auto}
.warn{background:#fff6e0;border:1px solid #e8c66a;padding:.4em .8em;margin:.8em 0}.dim{color:#777}
#songs-table th{cursor:pointer;user-select:none;background:#f4f4f4;position:sticky;top:0}
#songs-table td.num{text-align:right;font-variant-numeric:tabular-nums}#songs-table td.path{max-width:420px;overflow-wrap:anywhere}"""

SCRIPT = r"""(function(){
"use strict";
const data=JSON.parse(document.getElementById("songs-data").textContent);
const heads=Object.keys(data.heads);const n=data.path.length;const PAGE=100;
const cols=[{key:"path",name:"path"},{key:"duration",name:"duration (s)",num:true}];
heads.forEach(h=>cols.push({key:"head:"+h,name:h+": top tags",head:h}));
if(data.atypical)cols.push({key:"atypical",name:"atypical",num:true});
function text(i,c){if(c.head){const d=data.heads[c.head];return d.top[i].filter(t=>t>=0).map((t,j)=>d.labels[t]+" "+(d.score[i][j]>=0?d.score[i][j].toFixed(2):"")).join(", ");}
const v=data[c.key][i];return v===null||v===undefined?"":(c.num?v.toString():v);}
function key(i,c){if(c.head){const d=data.heads[c.head];const t=d.top[i][0];return t>=0?d.labels[t]:"";}const v=data[c.key][i];return v===null?-Infinity:v;}
let order=[...Array(n).keys()];let shown=order;let page=0;let sortCol=-1;let desc=false;
const headRow=document.getElementById("songs-head");
cols.forEach((c,k)=>{const th=document.createElement("th");th.textContent=c.name;th.dataset.key=c.key;th.addEventListener("click",()=>sortBy(k));headRow.appendChild(th);});
function sortBy(k){desc=(sortCol===k)?!desc:!!cols[k].num;sortCol=k;const c=cols[k];
order.sort((a,b)=>{const x=key(a,c),y=key(b,c);const r=x<y?-1:x>y?1:a-b;return desc?-r:r;});
headRow.querySelectorAll("th").forEach((th,j)=>{th.setAttribute("aria-sort",j===k?(desc?"descending":"ascending"):"none");});applyFilter();}
function applyFilter(){const q=document.getElementById("filter").value.toLowerCase();
shown=q?order.filter(i=>cols.some(c=>text(i,c).toLowerCase().includes(q))):order;page=Math.min(page,Math.max(0,Math.ceil(shown.length/PAGE)-1));draw();}
function draw(){const body=document.getElementById("songs-body");body.textContent="";
shown.slice(page*PAGE,(page+1)*PAGE).forEach(i=>{const tr=document.createElement("tr");
cols.forEach(c=>{const td=document.createElement("td");td.textContent=text(i,c);td.className=c.num?"num":(c.key==="path"?"path":"");tr.appendChild(td);});body.appendChild(tr);});
document.getElementById("count").textContent=shown.length?`songs ${page*PAGE+1}-${Math.min(shown.length,(page+1)*PAGE)} of ${shown.length}`+(shown.length<n?` (filtered from ${n})`:""):"no songs match";}
document.getElementById("filter").addEventListener("input",()=>{page=0;applyFilter();});
document.getElementById("prev").addEventListener("click",()=>{if(page>0){page--;draw();}});
document.getElementById("next").addEventListener("click",()=>{if((page+1)*PAGE<shown.length){page++;draw();}});
draw();
})();"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
{body}
<script type="application/json" id="songs-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
