"""`samplecnn export` end to end with typer's CliRunner: real checkpoints, real clips.

Exit codes as for every command: 2 = refused before work (bad option, checkpoint, audio source,
missing library), 1 = the export ran and a check failed; nothing is written either way."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.bundle import Bundle


def run(*args):
    result = CliRunner().invoke(app, ["export", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def test_export_writes_bundle_and_prints_summary(tiny_checkpoints, data_dir, tmp_path):
    out = tmp_path / "bundle"
    result = run(*tiny_checkpoints, "--out", out, "--parity-audio", data_dir, "--precision", "fp16")
    assert result.exit_code == 0, result.output
    for text in ("scale_3-9.fp32.onnx", "scale_2-14.fp16.onnx", "level1(64)", "ok max|d|", f"samplecnn infer --bundle {out} songs/"):
        assert text in result.output
    assert Bundle.load(out).precisions == ("fp32", "fp16")


def test_not_a_checkpoint(data_dir, tmp_path):
    result = run(data_dir / "LICENSES.txt", "--out", tmp_path / "b", "--parity-audio", data_dir)
    assert result.exit_code == 2 and "not a safetensors checkpoint" in result.output and "samplecnn train" in result.output


def test_sample_rate_mismatch(tiny_checkpoints, data_dir, tmp_path):
    from samplecnn.trainer.checkpoint import save_checkpoint
    from samplecnn.trainer.model import SampleCNN, preset

    other = save_checkpoint(tmp_path / "16k.safetensors", SampleCNN(preset("5^6", n_tags=6, width=0.125, sample_rate=16000)), ["a", "b", "c", "d", "e", "f"])
    result = run(tiny_checkpoints[0], other, "--out", tmp_path / "b", "--parity-audio", data_dir)
    assert result.exit_code == 2 and "16000 Hz" in result.output and "22050 Hz" in result.output and "retrain" in result.output
    assert not (tmp_path / "b").exists()


def test_empty_calibration_folder(tiny_checkpoints, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(tiny_checkpoints[0], "--out", tmp_path / "b", "--precision", "int8", "--calibration", tmp_path / "empty")
    assert result.exit_code == 2 and "holds no audio files" in result.output


def test_impossible_agreement_is_refused(tiny_checkpoints, data_dir, tmp_path):
    result = run(tiny_checkpoints[1], "--out", tmp_path / "b", "--precision", "int8", "--calibration", data_dir, "--min-agreement", "1.01")
    assert result.exit_code == 1 and "below the required 1.01" in result.output and not (tmp_path / "b").exists()


def test_unknown_precision(tiny_checkpoints, data_dir, tmp_path):
    result = run(tiny_checkpoints[0], "--out", tmp_path / "b", "--parity-audio", data_dir, "--precision", "bf16")
    assert result.exit_code == 2 and "'bf16' is not one of ('fp32', 'fp16', 'int8')" in result.output


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_missing_tensorrt_names_the_extra(tiny_checkpoints, data_dir, tmp_path):
    result = run(tiny_checkpoints[0], "--out", tmp_path / "b", "--parity-audio", data_dir, "--engine", "trt")
    assert result.exit_code == 2 and "pip install 'samplecnn[trt]'" in result.output
