"""Taggram pictures: a song's backbone tags over time, with its song-level scores per head.

    from samplecnn.runtime import Tagger
    from samplecnn.runtime.plot import Taggrams

    with Tagger() as tagger, Taggrams("plots/") as plots:
        for song in tagger.tag(["a.mp3"], segments=True):
            plots.save(song)                    # plots/a.mp3-<hash>.png

A taggram (as musicnn draws it) is an image of the top-N tags (rows) x time (columns, in
seconds): the per-segment sigmoid scores of the backbone tags (``Tagger.tag(segments=True)``).
Beside it, one bar chart per head shows the song-level top tags. Songs are accepted as
:class:`~samplecnn.runtime.tagger.SongResult` or as its ``to_dict()`` (a JSON Lines row of
``samplecnn infer --segments``).

matplotlib (``pip install 'samplecnn[plot]'``) is imported only when a picture is drawn, with
its non-interactive Agg backend, so the runtime imports without it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from .atomic import atomic_path

DEFAULT_TOP_N = 10  # rows of the taggram: musicnn shows about this many before it gets unreadable
DEFAULT_HEAD_TOP_K = 5  # bars per head beside it
DPI = 100
TAGGRAM_WIDTH_IN, HEADS_WIDTH_IN = 9.0, 4.0
ROW_HEIGHT_IN, MIN_HEIGHT_IN = 0.32, 4.5  # 10 rows + title and axis labels fit in 4.5 in
TIME_LABEL, TAG_LABEL = "time (s)", "tag"
MEAN_OF_SCALES = "mean of scales"


class PlotError(ValueError):
    """A song or option that cannot be drawn (no segments, bad folder, missing matplotlib)."""


def require_matplotlib():
    """matplotlib.pyplot on the Agg backend; PlotError naming the extra when it is missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotError(f"pictures need matplotlib ({exc}); install it with: pip install 'samplecnn[plot]'") from exc
    matplotlib.use("Agg", force=True)  # never a window, never a display server
    import matplotlib.pyplot as plt

    return plt


def _as_dict(song) -> dict:
    return song if isinstance(song, dict) else song.to_dict()


def taggram_series(song, scale: str | None = None) -> tuple[np.ndarray, list[str], np.ndarray, str]:
    """(times (T,) seconds, labels (L,), scores (T, L), what was drawn) of a song's segments.

    ``scale``: one scale's segments (e.g. "3^9"); None = the mean of every scale, each scale
    read at the segment starts of the scale with the most segments (the finest time grid; a
    scale contributes the segment that starts last at or before each time).
    """
    row = _as_dict(song)
    segments = row.get("segments")
    if not segments:
        raise PlotError(f"{row.get('path')}: no per-segment scores; tag with segments=True (samplecnn infer --plot does)")
    if scale is not None and scale not in segments:
        raise PlotError(f"scale {scale!r} is not in {row.get('path')}; it has {sorted(segments)}")
    names = [scale] if scale is not None else [s for s in segments if len(segments[s]["start"])]
    if not names:
        raise PlotError(f"{row.get('path')}: every scale has zero segments")
    labels = list(segments[names[0]]["labels"])
    finest = max(names, key=lambda s: len(segments[s]["start"]))
    times = np.asarray(segments[finest]["start"], np.float64)
    total = np.zeros((len(times), len(labels)), np.float64)
    for name in names:
        starts = np.asarray(segments[name]["start"], np.float64)
        values = np.asarray(segments[name]["scores"], np.float64).reshape(len(starts), -1)
        if list(segments[name]["labels"]) != labels:
            raise PlotError(f"{row.get('path')}: scale {name} has other labels than {names[0]}; draw one scale (scale=...)")
        index = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(starts) - 1)
        total += values[index]
    what = f"scale {scale}" if scale is not None else (f"scale {names[0]}" if len(names) == 1 else MEAN_OF_SCALES)
    return times, labels, total / len(names), what


def taggram_figure(song, *, top_n: int = DEFAULT_TOP_N, head_top_k: int = DEFAULT_HEAD_TOP_K, scale: str | None = None):
    """A matplotlib Figure: taggram (top_n tags x time) left, song-level top tags per head right.

    Rows are the ``top_n`` tags with the highest mean segment score, best first; colour is the
    segment score from 0 to the highest score shown. Size: (TAGGRAM_WIDTH_IN + HEADS_WIDTH_IN) x max(MIN_HEIGHT_IN,
    ROW_HEIGHT_IN * rows + 1.5) inches at DPI. The caller owns the figure (``plt.close(fig)``).
    """
    if not isinstance(top_n, int) or top_n < 1:
        raise PlotError(f"top_n = {top_n!r}: must be a positive integer")
    plt = require_matplotlib()
    row = _as_dict(song)
    times, labels, scores, what = taggram_series(row, scale)
    order = np.argsort(-scores.mean(axis=0), kind="stable")[: min(top_n, len(labels))]
    heads = {h: pairs[:head_top_k] for h, pairs in (row.get("top") or {}).items()}
    n_rows = max(len(order), sum(len(p) + 1 for p in heads.values()) * 0.6)
    height = round(max(MIN_HEIGHT_IN, ROW_HEIGHT_IN * n_rows + 1.5) * DPI) / DPI  # whole pixels
    fig = plt.figure(figsize=(TAGGRAM_WIDTH_IN + HEADS_WIDTH_IN, height), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(max(1, len(heads)), 2, width_ratios=[TAGGRAM_WIDTH_IN, HEADS_WIDTH_IN])
    ax = fig.add_subplot(grid[:, 0])
    step = float(np.median(np.diff(times))) if len(times) > 1 else max(float(row.get("duration") or 1.0), 1e-3)
    end = max(times[-1] + step, float(row.get("duration") or 0.0))
    shown = scores[:, order].T
    # Colour spans 0 .. the highest score shown (the colour bar says what that is): weakly
    # confident models would otherwise draw a uniformly dark picture.
    image = ax.imshow(
        shown, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=max(float(shown.max()), 0.05),
        extent=(float(times[0]), float(end), len(order) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(order)), [labels[i] for i in order])
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel(TAG_LABEL)
    name = os.path.basename(str(row.get("path", "")))
    ax.set_title(f"{name}: backbone tags per segment ({what})", loc="left", fontsize=10)
    fig.colorbar(image, ax=ax, label="segment score", fraction=0.04, pad=0.01)
    for i, (head, pairs) in enumerate(heads.items()):
        bar_ax = fig.add_subplot(grid[i, 1])
        names = [str(p[0]) for p in pairs][::-1]
        values = [float(p[1]) for p in pairs][::-1]
        bar_ax.barh(range(len(values)), values, color="#3b75af")
        bar_ax.set_yticks(range(len(names)), names)
        bar_ax.set_xlim(0.0, 1.0)
        bar_ax.set_title(f"song-level: {head}", loc="left", fontsize=10)
        bar_ax.tick_params(axis="y", labelsize=9)
        if i == len(heads) - 1:
            bar_ax.set_xlabel("score")
    return fig


def umask_mode(path: str | Path) -> None:
    """Give a file made by :func:`atomic_path` (mkstemp: 0600) the mode a plain open() would."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def plot_filename(path: str) -> str:
    """A file name for the picture of the song at ``path``: readable, and unique per path.

    The song's file name (unsafe characters replaced by "_", cut to 80) plus 8 hex digits of
    the SHA-1 of its absolute, normalised path: songs named alike in different folders never
    collide, and the same song gets the same name in every run.
    """
    base = _UNSAFE.sub("_", os.path.basename(path.rstrip("/\\")) or "song").strip("._") or "song"
    key = os.path.normpath(os.path.abspath(path)) if not path.startswith("<") else path
    return f"{base[:80]}-{hashlib.sha1(key.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}.png"


class Taggrams:
    """Writes one taggram PNG per song into ``folder`` (created), each file atomically.

    Raises PlotError at construction when matplotlib is missing or ``folder`` is a file, so a
    command can refuse before any work starts.
    """

    def __init__(self, folder: str | Path, *, top_n: int = DEFAULT_TOP_N, scale: str | None = None) -> None:
        self.plt = require_matplotlib()
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise PlotError(f"--plot {self.folder} is a file; give a folder for the PNGs (it is created if missing)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.top_n, self.scale = top_n, scale
        self.written: list[Path] = []

    def save(self, song) -> Path:
        """Draw ``song`` (a SongResult or JSON row with segments) to ``folder/plot_filename(path)``."""
        row = _as_dict(song)
        fig = taggram_figure(row, top_n=self.top_n, scale=self.scale)
        target = self.folder / plot_filename(str(row.get("path", "song")))
        try:
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format="png", dpi=DPI)
                umask_mode(tmp)
        finally:
            self.plt.close(fig)
        self.written.append(target)
        return target

    def __enter__(self) -> "Taggrams":
        return self

    def __exit__(self, *exc) -> None:
        pass
