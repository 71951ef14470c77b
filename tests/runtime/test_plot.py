"""Taggram pictures (runtime/plot.py, `samplecnn infer --plot`) on real clips with the default model."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.plot import DPI, TAG_LABEL, TIME_LABEL, PlotError, Taggrams, plot_filename, taggram_figure, taggram_series

plt = pytest.importorskip("matplotlib.pyplot", reason="pictures need matplotlib (pip install 'samplecnn[plot]')")

FAST = ["--backend", "ort", "--precision", "int8", "--max-segments", "6"]


def png_size(path) -> tuple[int, int]:
    """(width, height) from the PNG header (IHDR), not from pixels."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def plotted(tmp_path_factory, music_files):
    """`samplecnn infer --plot` on real clips: two songs share a file name in different folders,
    and one input does not exist."""
    root = tmp_path_factory.mktemp("plot")
    for folder in ("a", "b"):
        (root / folder).mkdir()
        shutil.copy(music_files["sorohanro_solo_trumpet_06"], root / folder / "take.ogg")
    songs = [music_files["kevin_macleod_vibe_ace"], root / "a" / "take.ogg", root / "b" / "take.ogg", root / "missing.ogg"]
    out, plots = root / "tags.jsonl", root / "plots"
    result = CliRunner().invoke(app, ["infer", *FAST, "--out", str(out), "--plot", str(plots), *map(str, songs)])
    return result, out, plots, songs


def test_infer_plot_writes_one_png_per_song_without_collisions(plotted):
    result, out, plots, songs = plotted
    assert result.exit_code == 1, result.output  # the missing song failed, the rest went on
    assert "FAILED" in result.output and "missing.ogg" in result.output
    names = sorted(p.name for p in plots.iterdir())
    assert names == sorted(plot_filename(str(s)) for s in songs[:3])
    assert len(set(names)) == 3 and sum(n.startswith("take.ogg-") for n in names) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all("segments" not in r for r in rows)  # drawn, not asked for in --out


def test_png_size_matches_the_figure(plotted, music_files):
    _, _, plots, songs = plotted
    png = plots / plot_filename(str(songs[0]))
    width, height = png_size(png)
    assert width == 1300 and height >= 450  # (9 + 4) in x >= 4.5 in at 100 dpi
    with Taggrams(plots.parent / "again") as again:
        from samplecnn.runtime import Tagger

        with Tagger(backend="ort", precision="int8", max_segments=6) as tagger:
            (song,) = tagger.tag([songs[0]], segments=True)
        fig = taggram_figure(song)
        expected = tuple(round(v * DPI) for v in fig.get_size_inches())
        plt.close(fig)
        assert png_size(again.save(song)) == expected == (width, height)


def test_figure_axes_labels_and_whole_tag_names(music_files):
    from samplecnn.runtime import Tagger

    with Tagger(backend="ort", precision="int8", max_segments=6) as tagger:
        (song,) = tagger.tag([music_files["brahms_hungarian_dance_5"]], segments=True)
    fig = taggram_figure(song, top_n=8)
    try:
        taggram, *head_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        assert taggram.get_xlabel() == TIME_LABEL and taggram.get_ylabel() == TAG_LABEL
        times, labels, scores, what = taggram_series(song)
        assert what == "mean of scales" and scores.shape == (len(times), len(labels))
        ticks = [t.get_text() for t in taggram.get_yticklabels()]
        assert len(ticks) == 8 and set(ticks) <= set(labels)  # whole names, never cut
        mean = scores.mean(axis=0)
        assert ticks[0] == labels[int(mean.argmax())]
        left, right = taggram.get_xlim()
        assert left == pytest.approx(0.0) and right >= song.duration - 1e-6  # seconds, the whole song
        titles = [ax.get_title(loc="left") for ax in head_axes if ax.get_title(loc="left")]
        assert titles == [f"song-level: {h}" for h in song.top]
        for ax, head in zip(head_axes, song.top):
            assert [t.get_text() for t in ax.get_yticklabels()] == [label for label, _ in song.top[head]][::-1]
        assert head_axes[-1].get_xlabel() == "score"
    finally:
        plt.close(fig)


def test_from_a_jsonl_row_and_one_scale(plotted, tmp_path, music_files):
    out = tmp_path / "seg.jsonl"
    result = CliRunner().invoke(app, ["infer", *FAST, "--out", str(out), "--segments", str(music_files["sorohanro_solo_trumpet_06"])])
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())
    times, labels, scores, what = taggram_series(row, scale="3^9")
    assert what == "scale 3^9" and list(times) == row["segments"]["3^9"]["start"]
    with pytest.raises(PlotError, match="scale '7\\^7' is not in .*it has \\['2\\^14', '3\\^9', '5\\^6'\\]"):
        taggram_series(row, scale="7^7")
    del row["segments"]
    with pytest.raises(PlotError, match="no per-segment scores; tag with segments=True"):
        taggram_figure(row)
    with pytest.raises(PlotError, match="top_n = 0: must be a positive integer"):
        taggram_figure(row, top_n=0)


def test_plot_into_a_file_is_refused_before_any_work(tmp_path, music_files):
    target = tmp_path / "not_a_folder.png"
    target.write_bytes(b"x")
    result = CliRunner().invoke(app, ["infer", *FAST, "--plot", str(target), str(music_files["sorohanro_solo_trumpet_06"])])
    assert result.exit_code == 2 and "is a file; give a folder" in result.output


def test_plot_filename_is_stable_and_safe():
    assert plot_filename("a/song one?.mp3") == plot_filename("a/song one?.mp3")
    assert plot_filename("a/x.mp3") != plot_filename("b/x.mp3") != plot_filename("a/x.flac")
    name = plot_filename("dir/Ünïcode & spaces/" + "long" * 40 + ".flac")
    assert name.endswith(".png") and "/" not in name and " " not in name and len(name) < 100


def test_runtime_imports_without_matplotlib_and_the_error_names_the_extra(tmp_path):
    """A real interpreter where matplotlib cannot be imported (as on an install without [plot])."""
    code = (
        "import sys, warnings; warnings.simplefilter('error'); sys.modules['matplotlib'] = None\n"
        "import samplecnn.runtime.plot as p, samplecnn.runtime.report as r, samplecnn.runtime.report_data\n"
        f"try:\n    p.Taggrams({str(tmp_path / 'x')!r})\nexcept p.PlotError as e:\n    print('ERR', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ERR pictures need matplotlib" in done.stdout and "pip install 'samplecnn[plot]'" in done.stdout
    assert done.stderr == ""
