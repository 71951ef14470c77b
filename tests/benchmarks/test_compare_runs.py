"""compare_runs pairs every ratio of two saved bench runs by name and finds the ones apart."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from samplecnn.benchmarks.compare_runs import compare, figures
from samplecnn.benchmarks.suite import ratio_spreads

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
SAVED = json.loads((RESULTS / "bench.json").read_text())


def test_a_run_agrees_with_itself_on_every_figure():
    got = compare(SAVED, SAVED)
    assert got["agree_on_every_figure"]
    pipeline, backbone = ratio_spreads(SAVED)
    assert got["groups"]["pipeline"]["compared"] == len(pipeline) > 20
    assert got["groups"]["backbone"]["compared"] == len(backbone) > 100
    assert got["groups"]["targets"]["compared"] >= 8  # the judged figures, without the spread targets
    assert not any("spread" in name for name in figures(SAVED)["targets"])


def test_a_ratio_moved_by_more_than_the_tolerance_is_named_with_both_values():
    moved = copy.deepcopy(SAVED)
    pair = "openvino bf16 / onnxruntime fp32"
    ratio = moved["pipeline"]["speed"]["ratios"][pair]
    ratio["median"] *= 1.15
    row = moved["backbones"]["rows"][-1]
    row["fraction_of_peak_rounds"]["median"] *= 0.95  # within 10%: still agrees
    got = compare(SAVED, moved)
    apart = got["groups"]["pipeline"]["apart"]
    assert [r["name"] for r in apart] == [f"full-width {pair}"]
    assert apart[0]["second"] == ratio["median"] and abs(apart[0]["difference"] - 0.15) < 1e-3
    assert not got["groups"]["backbone"]["apart"] and not got["agree_on_every_figure"]


def test_a_backbone_ratio_apart_names_the_term_that_moved():
    # torch eager 25% slower in the second run on one row of the grid; the engines' own times unchanged
    moved = copy.deepcopy(SAVED)
    rows = moved["backbones"]["rows"]
    torch = next(r for r in rows if r["engine"] == "torch eager fp32" and r["threads"] == 2)
    same = [r for r in rows if (r["scale"], r["width"], r["threads"], r["batch"]) == (torch["scale"], torch["width"], torch["threads"], torch["batch"])]
    torch["ms_per_segment"] *= 1.25
    for r in same:
        if r is not torch:
            r["speedup_vs_torch_rounds"]["median"] *= 1.25
    got = compare(SAVED, moved)["groups"]["backbone"]
    assert len(got["apart"]) == len(same) - 1 > 2
    for r in got["apart"]:
        assert r["name"].endswith("speedup_vs_torch")
        assert r["moved"]["torch eager ms"] == pytest.approx(0.25, abs=1e-3) and r["moved"]["engine ms"] == 0
    assert got["apart_with_engine_time_within_tolerance"] == len(got["apart"])


def test_command_compares_the_saved_runs_and_refuses_a_file_that_is_not_a_bench_result(tmp_path):
    out = tmp_path / "compare.json"
    done = subprocess.run([sys.executable, "-m", "samplecnn.benchmarks.compare_runs", str(RESULTS / "bench.json"),
                           str(RESULTS / "bench.json"), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pipeline:" in done.stdout and json.loads(out.read_text())["agree_on_every_figure"]
    other = tmp_path / "other.json"
    other.write_text('{"rows": 3}')
    refused = subprocess.run([sys.executable, "-m", "samplecnn.benchmarks.compare_runs", str(RESULTS / "bench.json"), str(other)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "not a `samplecnn bench` result" in refused.stderr
