"""The report's fast paths (runtime/report_data.py, runtime/report.py) read and write what the
plain ones did: orjson rows with the standard module behind it for what orjson refuses,
lean JSON Lines rows against the reference row reader, CSV by pyarrow against the csv
module, catalogue Parquet read ahead and sampled a batch at a time against JSON Lines read a
row at a time, the table's JSON straight from numpy, the PCA sketch without QR, box
statistics against matplotlib's. Small hand-made files; the 100,000-row figures are
benchmarks/report_speed.py's."""

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


# --- the readers' column paths against their row-by-row reference ---------------------------


def same_results(a, b) -> None:
    """Two readings of the same rows: every column, failure, skip count and map sample equal."""
    assert a.paths == b.paths and np.array_equal(a.durations, b.durations, equal_nan=True)
    assert list(a.heads) == list(b.heads) and a.failures == b.failures and a.skipped == b.skipped
    for head in a.heads:
        x, y = a.heads[head], b.heads[head]
        assert x.labels == y.labels and np.array_equal(x.top_index, y.top_index)
        assert (x.scores is None) == (y.scores is None) and (x.scores is None or np.array_equal(x.scores, y.scores, equal_nan=True))
    assert a.n_with_embedding == b.n_with_embedding and (a.embeddings is None) == (b.embeddings is None)
    if a.embeddings is not None:
        assert np.array_equal(a.embedding_rows, b.embedding_rows) and np.array_equal(a.embeddings, b.embeddings)


def odd_jsonl_rows() -> list:
    """Rows the lean JSON Lines path must hand to the reference reader, among plain ones."""
    rows: list = [row(i, embedding=[float(i), 1.0, 2.0]) for i in range(40)]
    rows[3]["scores"]["backbone"]["jazz"] = None  # unknown: NaN
    rows[5]["scores"]["quadrant"]["Q1"] = "0.25"  # numeric text: what float makes of it
    rows[6]["scores"]["quadrant"]["Q2"] = True  # a bool: 1.0
    rows[8]["scores"]["backbone"] = {"calm": 0.1, "rock": 0.2, "jazz": 0.3}  # the same labels in another order
    rows[9]["scores"]["backbone"]["brass"] = 0.5  # one label more: another bundle
    del rows[10]["scores"]["quadrant"]  # a head fewer
    rows[11]["duration"] = "12.5"  # text duration
    rows[12]["duration"] = 10**400  # beyond float: unknown, counted
    rows[13]["duration"] = None
    rows[14]["path"] = ""
    rows[15]["error"] = "decode failed"
    rows[16]["embedding"] = [1.0, float("nan"), 2.0]  # not finite: not on the map, counted
    rows[17]["scores"]["quadrant"]["Q1"] = "high"  # text: the row skipped, its block read row by row
    rows[18]["embedding"] = [1.0, 2.0]  # another width
    rows[21]["duration"] = 7  # an integer
    for r in rows[22:28]:
        r["scores"]["quadrant"] = {label: [v] for label, v in r["scores"]["quadrant"].items()}  # lists: not numbers, a whole block of them
    return rows[:20] + [b"\n", b"not json\n", {"path": "songs/failed.mp3", "error": "no such file"}, b"[1, 2]\n"] + rows[20:]


@pytest.mark.parametrize("flush_rows", [3, 4096])
def test_lean_json_lines_read_odd_rows_as_the_reference_reader(tmp_path, monkeypatch, flush_rows):
    monkeypatch.setattr(report_data._Collector, "FLUSH_ROWS", flush_rows)
    monkeypatch.setattr(report_data, "MAX_MAP_SONGS", 7)  # the reservoir replaces songs within the file
    src = tmp_path / "odd.jsonl"
    write_lines(src, odd_jsonl_rows() + [json.dumps(row(99)).encode()[:50]])  # and a last line cut short
    took, lean_way = [], report_data._JsonLines.lean
    monkeypatch.setattr(report_data._JsonLines, "lean", lambda *args: took.append(lean_way(*args)) or took[-1])
    lean = read_results([src])
    assert 25 < sum(took) < len(took)  # most rows the lean way, the odd ones not
    monkeypatch.setattr(report_data._JsonLines, "lean", lambda self, row, line, slot: False)  # every row the reference way
    reference = read_results([src])
    same_results(lean, reference)
    assert lean.skipped["a last line cut short (a killed run?)"] == 1 and lean.skipped["lines that are not valid JSON"] == 1
    assert "songs/0009.mp3" not in lean.paths and "songs/0017.mp3" not in lean.paths and "songs/0024.mp3" not in lean.paths and "songs/0008.mp3" in lean.paths
    assert lean.heads["backbone"].scores[lean.paths.index("songs/0008.mp3")].tolist() == pytest.approx([0.2, 0.3, 0.1])
    assert lean.failures == [("songs/0015.mp3", "decode failed"), ("songs/failed.mp3", "no such file")]
    assert lean.n_with_embedding == 40 and len(lean.embeddings) <= 7


def _second_half_file(tmp_path, embeddings: bool = False, name: str = "halves.jsonl"):
    """Odd rows in both halves of a file, plain rows between (blocks the worker converts), a
    last line cut short; without ``embeddings`` the odd rows' embeddings are dropped."""
    odd = [r if isinstance(r, bytes) else {k: v for k, v in r.items() if embeddings or k != "embedding"} for r in odd_jsonl_rows()]
    plain = [row(i) for i in range(100, 160)]
    src = tmp_path / name
    write_lines(src, odd + plain + odd[::-1] + plain + [json.dumps(row(99)).encode()[:50]])
    return src


def _ran_in_a_fresh_process(request) -> bool:
    """A worker is forked only from a process without other threads, and a long test session
    has some (Ray, executors). Then this test runs alone in a fresh pytest process (its own
    assertions there) and the caller returns: True. False: fork here."""
    import os
    import subprocess
    import sys

    from samplecnn.runtime import report_parallel

    if report_parallel.can_fork():
        return False
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("a worker is forked only on Linux with two CPUs or more")
    if os.environ.get("SAMPLECNN_TEST_ALONE"):
        pytest.fail(f"other threads run even in a fresh test process: {[t.name for t in __import__('threading').enumerate()]}")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
                         cwd=request.config.rootpath, env={**os.environ, "SAMPLECNN_TEST_ALONE": "1"},
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    return True


@pytest.mark.parametrize("flush_rows", [5, 4096])
def test_a_forked_worker_reads_the_second_half_as_one_process_reads_the_whole(tmp_path, monkeypatch, flush_rows, request):
    from samplecnn.runtime import report_parallel

    if _ran_in_a_fresh_process(request):
        return
    monkeypatch.setattr(report_data._Collector, "FLUSH_ROWS", flush_rows)
    monkeypatch.setattr(report_data, "MAX_MAP_SONGS", 7)
    monkeypatch.setattr(report_data, "JSONL_CHUNK_BYTES", 700)  # the first rows show the heads long before the middle
    src = _second_half_file(tmp_path)
    monkeypatch.setattr(report_parallel, "PARALLEL_MIN_BYTES", 1 << 62)
    one = read_results([src])
    monkeypatch.setattr(report_parallel, "PARALLEL_MIN_BYTES", 0)
    two = read_results([src])
    assert not one.read_workers and [w["status"] for w in two.read_workers] == ["ok"]
    assert src.stat().st_size * 0.3 < two.read_workers[0]["bytes"] < src.stat().st_size * 0.6
    same_results(one, two)
    assert two.skipped["a last line cut short (a killed run?)"] == 1 and two.skipped["lines that are not valid JSON"] == 2
    assert len(two.paths) > 150 and two.heads["quadrant"].scores is not None

    # rows with embeddings after the first rows: the worker stops, its half is read here, the map is the same
    monkeypatch.setattr(report_data, "MAX_MAP_SONGS", 7)
    late = tmp_path / "late.jsonl"
    late.write_bytes(src.read_bytes().replace(b'"path": "songs/0120.mp3",', b'"path": "songs/0120.mp3", "embedding": [1.0, 2.0, 3.0],'))
    monkeypatch.setattr(report_parallel, "PARALLEL_MIN_BYTES", 1 << 62)
    one = read_results([late])
    monkeypatch.setattr(report_parallel, "PARALLEL_MIN_BYTES", 0)
    two = read_results([late])
    same_results(one, two)
    assert [w["status"] for w in two.read_workers] == ["embeddings"] and two.n_with_embedding == 2
    # embeddings in the first rows: no worker at all
    with_embeddings = _second_half_file(tmp_path, embeddings=True, name="emb.jsonl")
    same = read_results([with_embeddings])
    assert not same.read_workers and same.n_with_embedding == 80


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_worker_that_fails_costs_time_not_rows(tmp_path, monkeypatch, how, request):
    import os

    from samplecnn.runtime import report_parallel

    if _ran_in_a_fresh_process(request):
        return
    monkeypatch.setattr(report_data, "JSONL_CHUNK_BYTES", 700)
    src = _second_half_file(tmp_path)
    monkeypatch.setattr(report_parallel, "PARALLEL_MIN_BYTES", 1 << 62)
    one = read_results([src])
    parent, real = os.getpid(), report_parallel.read_range

    def failing(*args):
        if os.getpid() != parent:  # in the worker only
            if how == "dies":
                os._exit(3)  # killed: nothing comes through the pipe
            raise MemoryError("worker out of memory")
        return real(*args)

    monkeypatch.setattr(report_parallel, "read_range", failing)
    monkeypatch.setattr(report_parallel, "PARALLEL_MIN_BYTES", 0)
    two = read_results([src])
    assert [w["status"] for w in two.read_workers] == ["failed"]
    same_results(one, two)


def catalogue_part(path, rows: list, heads=HEADS, row_group_size=None) -> None:
    """A catalogue Parquet part (runtime/catalogue_store's layout) of ``rows`` (row() dicts)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    columns: dict = {"path": [r["path"] for r in rows], "duration": [r["duration"] for r in rows]}
    for head, labels in heads.items():
        columns[f"top_{head}"] = [";".join(label for label, _ in r["top"][head]) for r in rows]
        for label in labels:
            columns[f"{head}:{label}"] = pa.array([r["scores"][head][label] for r in rows], pa.float32())
    columns["embedding"] = pa.array([r.get("embedding") for r in rows], pa.list_(pa.float32()))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)


def test_catalogue_parts_read_ahead_sample_the_map_as_row_by_row_reading(tmp_path, monkeypatch):
    """Several parts, several row groups each (one streamed: larger than PARQUET_BIG_GROUP),
    embeddings sampled a batch at a time: the same songs, scores and map sample as the same
    rows in JSON Lines, read one at a time."""
    monkeypatch.setattr(report_data, "MAX_MAP_SONGS", 7)
    monkeypatch.setattr(report_data, "PARQUET_BIG_GROUP", 12)
    rows = [row(i, embedding=[float(i), 1.0, -1.0]) for i in range(60)]
    for r in rows:  # float32 scores, as a catalogue stores them
        r["scores"] = {h: {label: float(np.float32(v)) for label, v in s.items()} for h, s in r["scores"].items()}
    rows[4]["embedding"] = [0.0, float("nan"), 1.0]
    rows[30]["embedding"] = None
    catalogue_part(tmp_path / "job" / "songs" / "part-0.parquet", rows[:25], row_group_size=10)
    catalogue_part(tmp_path / "job" / "songs" / "part-1.parquet", rows[25:], row_group_size=20)  # the last group: 15 rows, streamed
    parquet = read_results([tmp_path / "job"])
    src = tmp_path / "same.jsonl"
    write_lines(src, rows)
    monkeypatch.setattr(report_data._JsonLines, "lean", lambda self, row, line, slot: False)
    same_results(parquet, read_results([src]))
    assert parquet.n_with_embedding == 59 and len(parquet.embeddings) == 7 and sum(parquet.skipped.values()) == 1


def test_another_bundles_part_is_skipped_and_labels_in_another_order_are_taken(tmp_path):
    catalogue_part(tmp_path / "a" / "part-0.parquet", [row(i) for i in range(5)])
    foreign = {"backbone": ["rock", "jazz", "calm"], "quadrant": ["Q1", "Q3"]}
    rows = [row(i) for i in range(5, 8)]
    for r in rows:
        r["scores"]["quadrant"] = {"Q1": 0.5, "Q3": 0.5}
        r["top"]["quadrant"] = [["Q1", 0.5], ["Q3", 0.5]]
    catalogue_part(tmp_path / "a" / "part-1.parquet", rows, heads=foreign)
    turned = {"backbone": ["calm", "rock", "jazz"], "quadrant": ["Q2", "Q1"]}
    catalogue_part(tmp_path / "a" / "part-2.parquet", [row(i) for i in range(8, 10)], heads=turned)
    got = read_results([tmp_path / "a"])
    assert got.paths == [f"songs/{i:04d}.mp3" for i in [0, 1, 2, 3, 4, 8, 9]]
    assert got.skipped == {"rows whose 'quadrant' labels differ from the first rows' (results of another bundle?)": 3}
    expected = [[row(i)["scores"]["backbone"][label] for label in HEADS["backbone"]] for i in [0, 1, 2, 3, 4, 8, 9]]
    assert np.allclose(got.heads["backbone"].scores, expected, atol=1e-6)


def csv_text(rows: list[list[str]], labels: list[str], embedding: bool = True) -> str:
    return ",".join(["path", "duration", "error"] + labels + (["embedding"] if embedding else [])) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"


def test_csv_read_by_pyarrow_as_the_csv_module_reads_it(tmp_path, monkeypatch):
    """Failures, rows without a path or cut short, empty cells, a quoted path with a comma and
    a newline, "NA" (a text, not a null): the pyarrow reading and the csv module's agree."""
    monkeypatch.setattr(report_data, "MAX_MAP_SONGS", 5)
    labels = [f"{h}:{label}" for h, names in HEADS.items() for label in names]
    rng = np.random.default_rng(2)
    rows = []
    for i in range(30):
        cells = [f"songs/{i:04d}.mp3", f"{30 + i:.3f}", ""] + [f"{v:.6f}" for v in rng.random(len(labels))] + [" ".join(f"{v:.4f}" for v in rng.standard_normal(4))]
        rows.append(cells)
    rows[2][3] = ""  # an empty score: unknown
    rows[3][1] = ""  # an empty duration: unknown
    rows[4][2] = "decode failed: truncated"
    rows[5][0] = ""  # no path
    rows[6][0] = '"songs/a, b\nc.mp3"'  # quoted: a comma and a newline in the path
    rows[7][-1] = ""  # no embedding
    rows[8][-1] = "1 2 x 4"  # an embedding that is not numbers: not on the map, not counted (as before)
    rows[9] = rows[9][:3]  # cut short
    src = tmp_path / "r.csv"
    src.write_text(csv_text(rows, labels) + "songs/last.mp3,1.0,")  # and a last line cut short
    arrow, took = report_data._read_csv_arrow, []
    monkeypatch.setattr(report_data, "_read_csv_arrow", lambda *args: took.append(arrow(*args)) or took[-1])
    fast = read_results([src])
    assert took == [True]  # pyarrow read it
    monkeypatch.setattr(report_data, "_read_csv_arrow", lambda *args: False)  # the csv module's reading
    same_results(fast, read_results([src]))
    assert "songs/a, b\nc.mp3" in fast.paths and fast.failures == [("songs/0004.mp3", "decode failed: truncated")]
    assert fast.skipped == {"rows with a wrong number of cells (cut short?)": 2, "rows without a path": 1}
    assert math.isnan(fast.durations[3]) and math.isnan(fast.heads["backbone"].scores[2, 0]) and fast.n_with_embedding == 28
    rows[10][4] = "NA"
    src.write_text(csv_text(rows, labels))
    monkeypatch.setattr(report_data, "_read_csv_arrow", lambda *args: took.append(arrow(*args)) or took[-1])
    got = read_results([src])
    assert took == [True, False]  # pyarrow refused the file: the csv module read it
    assert got.skipped["rows with non-numeric scores (could not convert string to float: 'NA')"] == 1


def test_csv_of_another_bundle_after_a_first_file_and_labels_in_another_order(tmp_path):
    first, second, third = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    first.write_text(csv_text([["a.mp3", "1", "", "0.1", "0.2"]], ["h:x", "h:y"], embedding=False))
    second.write_text(csv_text([["b.mp3", "2", "", "0.3", "0.4"], ["c.mp3", "3", "", "0.5", "0.6"]], ["h:x", "h:z"], embedding=False))
    third.write_text(csv_text([["d.mp3", "4", "", "0.7", "0.8"]], ["h:y", "h:x"], embedding=False))
    got = read_results([first, second, third])
    assert got.paths == ["a.mp3", "d.mp3"] and np.allclose(got.heads["h"].scores, [[0.1, 0.2], [0.8, 0.7]])
    assert got.skipped == {"rows whose 'h' labels differ from the first rows' (results of another bundle?)": 2}


def test_a_damaged_parquet_file_is_a_clear_error(tmp_path):
    from samplecnn.runtime.report import main

    catalogue_part(tmp_path / "part-0.parquet", [row(i) for i in range(3)])
    damaged = tmp_path / "part-0.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-40])  # a copy cut short
    errors = __import__("io").StringIO()
    assert main([str(damaged)], out=str(tmp_path / "r.html"), stderr=errors) == 2
    assert "not a readable Parquet file" in errors.getvalue() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("big_group", [1000, 2])  # decoded ahead by the worker thread, or streamed
def test_a_parquet_file_with_a_damaged_page_is_a_clear_error(tmp_path, monkeypatch, big_group):
    import pyarrow.parquet as pq

    from samplecnn.runtime.report import main

    monkeypatch.setattr(report_data, "PARQUET_BIG_GROUP", big_group)
    part = tmp_path / "part-0.parquet"
    catalogue_part(part, [row(i) for i in range(3)])
    column = pq.ParquetFile(part).metadata.row_group(0).column(0)  # path
    data = bytearray(part.read_bytes())
    data[column.data_page_offset : column.data_page_offset + 16] = b"\xff" * 16  # the page header: footer intact
    part.write_bytes(bytes(data))
    errors = __import__("io").StringIO()
    assert main([str(part)], out=str(tmp_path / "r.html"), stderr=errors) == 2
    assert "not a readable Parquet file" in errors.getvalue() and not (tmp_path / "r.html").exists()


def test_the_reservoir_takes_the_same_songs_a_block_or_a_song_at_a_time(monkeypatch):
    monkeypatch.setattr(report_data, "MAX_MAP_SONGS", 10)
    one, many = report_data._Collector(seed=3), report_data._Collector(seed=3)
    singles = [one.keep_embedding() for _ in range(500)]
    blocks = np.concatenate([many.reserve(k) for k in (1, 7, 2, 90, 400)])
    assert [-1 if s is None else s for s in singles] == blocks.tolist() and one.n_with_embedding == many.n_with_embedding == 500
    assert 0 < sum(s is not None for s in singles[10:]) < 100  # past the first 10: kept now and then


def test_box_statistics_are_matplotlibs():
    from matplotlib.cbook import boxplot_stats

    from samplecnn.runtime.report import box_stats

    rng = np.random.default_rng(0)
    scores = rng.beta(0.5, 3, (999, 5)).astype(np.float32)
    scores[:, 1] = 0.25  # constant
    scores[5, 2] = np.nan  # a NaN score
    scores[:, 3] = np.r_[rng.random(990), np.full(9, 40.0)].astype(np.float32)  # far outliers
    for mine, theirs in zip(box_stats(scores), boxplot_stats([scores[:, i] for i in range(5)])):
        for key in ("q1", "med", "q3", "whislo", "whishi"):
            assert np.array_equal(mine[key], theirs[key], equal_nan=True), key
    assert len(box_stats(np.zeros((0, 2), np.float32))) == 2


def test_without_pyarrow_a_scored_csv_says_which_extra(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "one.csv"
    src.write_text(csv_text([["a.mp3", "1", "", "0.1", "0.2"]], ["h:x", "h:y"], embedding=False))
    code = ("import sys; sys.modules['pyarrow'] = None\n"  # as if it were not installed
            "from samplecnn.runtime.report import main\n"
            f"sys.exit(main([{str(src)!r}], out={str(tmp_path / 'r.html')!r}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "reading CSV needs pyarrow" in run.stderr and "pip install 'samplecnn[plot]'" in run.stderr, run.stderr
