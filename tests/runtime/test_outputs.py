"""Output files: JSON Lines / CSV, durable appends, --resume, --overwrite."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.outputs import OutputError, ResultWriter, done_paths


def run(*args):
    return CliRunner().invoke(app, ["infer", *map(str, args)])


def test_jsonl_with_embeddings_and_segments(tiny_bundle, music_files, tmp_path):
    out = tmp_path / "tags.jsonl"
    result = run("--bundle", tiny_bundle, "--out", out, "--embeddings", "--segments", "-k", 2, music_files["kevin_macleod_vibe_ace"])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(row["top"]["backbone"]) == 2 and row["n_segments"] == {"2^14": 42, "3^9": 23}
    assert len(row["embedding"]) > 0
    assert len(row["segments"]["3^9"]["start"]) == 23 and len(row["segments"]["3^9"]["scores"][0]) == len(row["scores"]["backbone"])


def test_csv_resume_and_overwrite(tiny_bundle, music_files, tmp_path):
    out = tmp_path / "tags.csv"
    a, b = music_files["sorohanro_solo_trumpet_06"], music_files["brahms_hungarian_dance_5"]
    assert run("--bundle", tiny_bundle, "--out", out, a).exit_code == 0
    resumed = run("--bundle", tiny_bundle, "--out", out, "--resume", a, b)
    assert resumed.exit_code == 0 and "resume: 1 songs already in" in resumed.output
    rows = list(csv.DictReader(out.open()))
    assert [r["path"] for r in rows] == [str(a), str(b)]
    assert float(rows[1]["duration"]) == pytest.approx(45.8, abs=0.1) and "backbone:brass" in rows[0]
    again = run("--bundle", tiny_bundle, "--out", out, "--resume", a, b)
    assert again.exit_code == 0 and "0 to go" in again.output
    assert len(list(csv.DictReader(out.open()))) == 2
    replaced = run("--bundle", tiny_bundle, "--out", out, "--overwrite", b)
    assert replaced.exit_code == 0
    assert [r["path"] for r in csv.DictReader(out.open())] == [str(b)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tags.csv"]  # no temporary left


def test_resume_cuts_a_row_left_half_written_by_a_crash(tiny_bundle, music_files, tmp_path):
    out = tmp_path / "tags.jsonl"
    a, b = music_files["sorohanro_solo_trumpet_06"], music_files["brahms_hungarian_dance_5"]
    assert run("--bundle", tiny_bundle, "--out", out, a).exit_code == 0
    good = out.read_text()
    out.write_text(good + '{"path": "' + str(b) + '", "dura')  # the crash
    assert done_paths(out) == {str(a)}
    assert run("--bundle", tiny_bundle, "--out", out, "--resume", a, b).exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == good.strip() and [json.loads(line)["path"] for line in lines] == [str(a), str(b)]


def test_bad_output_options(tmp_path):
    with pytest.raises(OutputError, match="unknown extension '.txt'"):
        ResultWriter(tmp_path / "tags.txt")
    with pytest.raises(OutputError, match="--segments needs a JSON Lines output"):
        ResultWriter(tmp_path / "tags.csv", segments=True)
    with pytest.raises(OutputError, match="contradict"):
        ResultWriter(tmp_path / "tags.csv", resume=True, overwrite=True)


def test_table_on_stdout_without_out(tiny_bundle, music_files):
    result = run("--bundle", tiny_bundle, "-k", 2, music_files["sorohanro_solo_trumpet_06"])
    assert result.exit_code == 0
    assert "sorohanro_solo_trumpet_06.ogg" in result.output and "tagged 1 of 1 songs" in result.output


def test_table_keeps_whole_tag_names():
    from samplecnn.runtime.outputs import format_table
    from samplecnn.runtime.tagger import SongResult

    pairs = [("soothing", 0.91), ("delicate", 0.88), ("melancholic and wistful", 0.8), ("no vocals", 0.7), ("male vocal", 0.6)]
    result = SongResult("songs/a.mp3", 30.0, {"3^9": 11}, {"mood": dict(pairs)}, {"mood": pairs})
    table = format_table([result], width=100)
    assert all(len(line) <= 100 for line in table.splitlines()) and len(table.splitlines()) > 1
    words = " ".join(table.split())
    for label, score in pairs:
        assert f"{label} {score:.2f}" in words
