"""Smoke tests of the benchmark scripts: they run end to end on tiny real models and real clips
and write their JSON and PNG. No timing is asserted (speed targets live in the benchmark output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.slow
def test_bench_quick_writes_json_and_plot(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "samplecnn.cli", "bench", "--quick", "--songs", "2", "--audio", str(DATA),
               "--workdir", str(tmp_path / "work"), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "bench.json").read_text())
    from samplecnn.benchmarks.backbones import available_engines
    from samplecnn.benchmarks.pipeline_profile import runtime_engines

    engines = {r["engine"] for r in result["backbones"]["rows"]}
    assert engines == set(available_engines()) >= {"torch eager fp32", "ort fp32 conv1d", "ort fp32 conv2d", "ort int8"}
    assert all(r["segments_per_s"] > 0 and r["achieved_gflops"] > 0 for r in result["backbones"]["rows"])
    assert all(r["fraction_of_peak"] > 0 for r in result["backbones"]["rows"])  # each against its own precision's peak
    assert set(result["backbones"]["peak"]) >= {"1"}
    pipelines = {r["pipeline"] for r in result["pipeline"]["speed"]["rows"]}
    assert pipelines == set(runtime_engines()) | {"torch eager fp32"}
    for row in result["pipeline"]["speed"]["rows"]:
        assert row["x_realtime_rounds"]["median"] > 0 and row["x_realtime_rounds"]["spread"] >= 0
    assert result["pipeline"]["speed"]["cold_start"]["ratio"] > 0
    default = result["pipeline"]["default_model"]  # the shipped model is measured without any runs/ folder
    assert {r["pipeline"] for r in default["rows"]} == set(runtime_engines())  # --quick: no torch row for it
    assert all(isinstance(t["met"], (bool, type(None))) for t in result["targets"])
    assert "AMX" in (out / "bench.md").read_text()
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "MET" in done.stdout or "MISSED" in done.stdout


def test_gpu_script_fails_clearly_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the script would run")
    done = subprocess.run([sys.executable, "-m", "samplecnn.benchmarks.gpu", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "no CUDA GPU" in done.stderr
    assert not (tmp_path / "gpu.json").exists()


def test_bench_cli_takes_the_suites_options():
    """`samplecnn bench` parses with the suite's own parser (each option declared once): its help
    lists every suite option, and an unknown option is refused with exit 2, naming it."""
    from samplecnn.benchmarks.suite import add_arguments
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = [a.option_strings[0] for a in parser._actions if a.option_strings and a.option_strings[0] != "-h"]
    shown = subprocess.run([sys.executable, "-m", "samplecnn.cli", "bench", "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: samplecnn bench")
    assert all(option in shown.stdout for option in options) and "--rounds" in options
    refused = subprocess.run([sys.executable, "-m", "samplecnn.cli", "bench", "--no-such-option"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--no-such-option" in refused.stderr
