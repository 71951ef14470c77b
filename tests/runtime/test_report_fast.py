"""The report's fast paths (runtime/report_data.py, runtime/report.py) read and write what the
plain ones did: orjson rows with the standard module behind it for what orjson refuses,
scores kept in blocks, the table's JSON straight from numpy, the PCA sketch without QR.
Small hand-made files; the 100,000-row figures are benchmarks/report_speed.py's."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from samplecnn.runtime import report_data
from samplecnn.runtime.report import pca_2d, table_data, table_json, write_report
from samplecnn.runtime.report_data import read_results

pytest.importorskip("matplotlib", reason="the report draws with matplotlib (pip install 'samplecnn[plot]')")
pytest.importorskip("orjson", reason="the report reads and writes JSON with orjson (pip install 'samplecnn[plot]')")

HEADS = {"backbone": ["rock", "jazz", "calm"], "quadrant": ["Q1", "Q2"]}


def row(i: int, **changes) -> dict:
    rng = np.random.default_rng(i)
    scores = {h: {label: round(float(v), 6) for label, v in zip(labels, rng.random(len(labels)))} for h, labels in HEADS.items()}
    top = {h: sorted(([label, v] for label, v in s.items()), key=lambda p: -p[1]) for h, s in scores.items()}
    out = {"path": f"songs/{i:04d}.mp3", "duration": 30.0 + i, "n_segments": {"3^9": 4}, "top": top, "scores": scores}
    out.update(changes)
    return out


def write_lines(path, lines: list) -> None:
    path.write_bytes(b"".join(line if isinstance(line, bytes) else (json.dumps(line) + "\n").encode() for line in lines))


def test_what_orjson_refuses_is_read_as_json_reads_it(tmp_path):
    nan_row = row(1)
    nan_row["scores"]["backbone"]["jazz"] = float("nan")  # json.dumps writes NaN, which orjson refuses
    big = json.dumps(row(2)).replace('"duration": 32.0', '"duration": 123456789012345678901234567890').encode() + b"\n"
    latin1 = json.dumps(row(3)).replace("songs/0003.mp3", "songs/caf\u00e9.mp3").encode("utf-8").replace(b"\xc3\xa9", b"\xe9") + b"\n"
    src = tmp_path / "odd.jsonl"
    write_lines(src, [row(0), nan_row, big, latin1])
    got = read_results([src])
    assert got.paths == ["songs/0000.mp3", "songs/0001.mp3", "songs/0002.mp3", "songs/caf\ufffd.mp3"] and not got.skipped
    assert math.isnan(got.heads["backbone"].scores[1, 1]) and got.durations[2] == pytest.approx(1.2345678901234568e29)
    assert got.heads["quadrant"].scores[0].tolist() == pytest.approx(list(row(0)["scores"]["quadrant"].values()), abs=1e-6)


def test_rows_with_scores_that_are_not_numbers_are_skipped_and_said(tmp_path):
    null_score, text_score, int_scores = row(1), row(2), row(3)
    null_score["scores"]["backbone"]["rock"] = None  # unknown: NaN, as the plain reader made it
    text_score["scores"]["quadrant"]["Q2"] = "high"
    int_scores["scores"]["quadrant"] = {"Q1": 1, "Q2": 0}  # whole numbers are numbers
    src = tmp_path / "mixed.jsonl"
    write_lines(src, [row(0), null_score, text_score, int_scores])
    got = read_results([src])
    assert got.paths == ["songs/0000.mp3", "songs/0001.mp3", "songs/0003.mp3"]
    assert got.skipped == {"rows whose 'quadrant' scores are not all numbers": 1}
    assert math.isnan(got.heads["backbone"].scores[1, 0]) and got.heads["quadrant"].scores[2].tolist() == [1.0, 0.0]


def test_scores_kept_in_blocks_stay_in_row_order_with_skipped_rows_between(tmp_path, monkeypatch):
    monkeypatch.setattr(report_data._Collector, "FLUSH_ROWS", 4)  # several blocks from a small file
    rows = [row(i) for i in range(23)]
    foreign = row(99)
    foreign["scores"]["quadrant"] = {"Q1": 0.5, "Q3": 0.5}
    lines = rows[:6] + [foreign, b"not json\n"] + rows[6:17] + [{"path": "songs/bad.mp3", "error": "decode failed"}] + rows[17:]
    src = tmp_path / "many.jsonl"
    write_lines(src, lines + [json.dumps(row(100)).encode()[:40]])  # a last line cut short
    got = read_results([src])
    assert got.paths == [r["path"] for r in rows] and got.failures == [("songs/bad.mp3", "decode failed")]
    assert sum(got.skipped.values()) == 3 and got.skipped["a last line cut short (a killed run?)"] == 1
    for head, labels in HEADS.items():
        expected = np.array([[r["scores"][head][label] for label in labels] for r in rows], np.float32)
        assert got.heads[head].labels == labels and np.array_equal(got.heads[head].scores, expected)
        assert got.heads[head].top_index[:, 0].tolist() == expected.argmax(axis=1).tolist()


def test_table_json_is_the_table_as_json_with_null_for_unknown_values(tmp_path):
    songs = [row(0), row(1, duration=None), row(2)]
    src = tmp_path / "three.jsonl"
    write_lines(src, songs)
    data = json.loads(table_json(table_data(read_results([src]), np.array([0.5, np.nan, 1.23456]))))
    assert data["path"] == [r["path"] for r in songs] and data["duration"] == [30.0, None, 32.0] and data["atypical"] == [0.5, None, 1.23]
    for head, labels in HEADS.items():
        scores = np.array([[r["scores"][head][label] for label in labels] for r in songs], np.float32)
        k = min(3, len(labels))  # quadrant has 2 labels: its third column is -1
        top, score = np.full((3, 3), -1), np.full((3, 3), -1.0)
        top[:, :k] = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        score[:, :k] = np.round(np.take_along_axis(scores, top[:, :k], axis=1), 3)
        assert data["heads"][head]["labels"] == labels and data["heads"][head]["top"] == top.tolist()
        assert np.allclose(data["heads"][head]["score"], score, atol=1e-6)
    assert all(len(str(v)) <= 6 for head in data["heads"].values() for s in head["score"] for v in s)  # "0.123", not float32 noise


def test_paths_that_are_not_valid_text_still_make_a_page(tmp_path):
    src = tmp_path / "surrogate.jsonl"
    src.write_text(json.dumps(row(0)) + "\n" + json.dumps(row(1)).replace("songs/0001.mp3", "songs/\\udc80</script>.mp3") + "\n")
    out = tmp_path / "r.html"
    got = write_report([src], out)
    assert got.paths[1] == "songs/\udc80</script>.mp3"
    text = out.read_text(encoding="utf-8")
    start = text.index('id="songs-data">') + len('id="songs-data">')
    data = json.loads(text[start : text.index("</script>", start)].replace("<\\/", "</"))
    assert data["path"] == ["songs/0000.mp3", "songs/?</script>.mp3"]


def test_pca_2d_finds_the_two_principal_axes():
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.standard_normal((64, 2)))[0]
    x = rng.standard_normal((3000, 2)) * [9.0, 4.0] @ axes.T + rng.standard_normal((3000, 64)) * 0.3 + 5.0
    got = pca_2d(x)
    centred = x - x.mean(axis=0)
    exact = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    for k in range(2):
        assert abs(np.corrcoef(got[:, k], exact[:, k])[0, 1]) > 0.9999
    assert pca_2d(np.ones((5, 8))).shape == (5, 2) and np.all(np.isfinite(pca_2d(np.ones((5, 8)))))
    assert pca_2d(rng.standard_normal((4, 1))).shape == (4, 2)


def test_csv_read_in_blocks_keeps_odd_rows_as_the_row_reader_did(tmp_path, monkeypatch):
    monkeypatch.setattr(report_data._Collector, "FLUSH_ROWS", 4)  # several blocks, some with odd rows
    labels = [f"{h}:{label}" for h, names in HEADS.items() for label in names]
    rng = np.random.default_rng(1)
    scores = np.round(rng.random((14, len(labels))), 6)
    vectors = np.round(rng.standard_normal((14, 8)), 4)
    lines = []
    for i in range(14):
        cells = [f"songs/{i:04d}.mp3", f"{30 + i:.3f}", ""] + [f"{v:.6f}" for v in scores[i]] + [" ".join(f"{v:.4f}" for v in vectors[i])]
        if i == 5:
            cells[3] = ""  # an empty score: unknown (NaN), the song kept
        if i == 9:
            cells[4] = "high"  # text: the row skipped
        lines.append(",".join(cells))
    lines.insert(2, "songs/failed.mp3,,decode failed: truncated" + "," * (len(labels) + 1))
    lines.insert(7, ",12.0,," + ",".join(["0.5"] * len(labels)) + ",1 2 3 4 5 6 7 8")  # no path
    lines.insert(11, "songs/cut.mp3,12.0,")  # cut short
    src = tmp_path / "blocks.csv"
    src.write_text(",".join(["path", "duration", "error"] + labels + ["embedding"]) + "\n" + "\n".join(lines) + "\n")
    got = read_results([src])
    kept = [i for i in range(14) if i != 9]
    assert got.paths == [f"songs/{i:04d}.mp3" for i in kept] and got.failures == [("songs/failed.mp3", "decode failed: truncated")]
    assert got.skipped == {"rows without a path": 1, "rows with a wrong number of cells (cut short?)": 1,
                           "rows with non-numeric scores (could not convert string to float: 'high')": 1}
    assert got.durations.tolist() == [30.0 + i for i in kept]
    expected = scores[kept].astype(np.float32)
    expected[kept.index(5), 0] = np.nan
    assert np.array_equal(np.concatenate([got.heads[h].scores for h in HEADS], axis=1), expected, equal_nan=True)
    assert got.n_with_embedding == 15 and got.embeddings.shape == (13, 8)  # every row with an embedding cell is counted, as before
    assert np.allclose(got.embeddings, vectors[kept][got.embedding_rows], atol=1e-4)


def test_rows_whose_tags_have_the_wrong_shape_are_skipped_and_said(tmp_path):
    rows = [{"path": "a.mp3", "top": {"tags": [["jazz", 0.9], ["calm", 0.4]]}}, {"path": "b.mp3", "top": {"tags": [["rock"]]}},
            {"path": "c.mp3", "top": {"tags": None}}, {"path": "d.mp3", "top": ["jazz"]}, {"path": "e.mp3", "top": {"tags": [["rock", 0.7]]}}]
    src = tmp_path / "shapes.jsonl"
    write_lines(src, rows)
    got = read_results([src])
    assert got.paths == ["a.mp3", "e.mp3"] and got.heads["tags"].labels == ["jazz", "calm", "rock"]
    assert got.skipped == {"rows whose 'tags' top tags are not [label, score] pairs": 2, "rows whose top tags are not a head -> labels map": 1}


def test_without_orjson_the_error_names_the_extra(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "one.jsonl"
    write_lines(src, [row(0)])
    code = ("import sys; sys.modules['orjson'] = None\n"  # as if it were not installed
            "from samplecnn.runtime.report import main\n"
            f"sys.exit(main([{str(src)!r}], out={str(tmp_path / 'r.html')!r}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "reading JSON Lines needs orjson" in run.stderr and "pip install 'samplecnn[plot]'" in run.stderr, run.stderr
    assert not (tmp_path / "r.html").exists()
