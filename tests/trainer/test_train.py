"""End-to-end training on real music: 2 s clips cut from the songs in tests/data, labelled by
song, a small real backbone (3^7 at width 0.125: 0.3 s segments). No mocks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.audio import load_audio
from samplecnn.trainer.checkpoint import load_checkpoint
from samplecnn.trainer.train import PlateauSchedule, TrainConfig, TrainError, resume_config, train

RATE = 22050
CLIP_SECONDS = 2
SONGS = {  # song -> (file stem, clips)
    "brahms": ("brahms_hungarian_dance_5", 9),
    "vibe": ("kevin_macleod_vibe_ace", 9),
    "trumpet": ("sorohanro_solo_trumpet_06", 2),
}


@pytest.fixture(scope="module")
def dataset_dir(music_files, tmp_path_factory) -> Path:
    """train.csv / valid.csv / test.csv of 2 s wav clips; every third clip of a song is held out."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("songs")
    rows = {"train": [], "valid": [], "test": []}
    for song, (stem, count) in SONGS.items():
        audio = load_audio(music_files[stem], RATE)
        for i in range(count):
            path = root / "audio" / f"{song}_{i}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(str(path), audio[i * CLIP_SECONDS * RATE : (i + 1) * CLIP_SECONDS * RATE], RATE)
            split = "train" if i % 3 != 2 else ("valid" if i % 2 else "test")
            family = "orchestra" if song == "brahms" else "band" if song == "vibe" else "solo"
            rows[split].append(f"audio/{path.name},{song};{family},{song}")
    (root / "audio" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    rows["train"].append("audio/corrupt.wav,brahms;orchestra,brahms")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("path,tags,song\n" + "\n".join(lines) + "\n")
    return root


def config(dataset_dir: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(
        manifest=str(dataset_dir / "train.csv"), scale="3^7", width=0.125, optimizer="adam", lr=3e-3,
        batch_size=8, epochs=3, crops_per_clip=3, workers=0, threads=1, seed=7, out=str(out),
        cache_dir=str(dataset_dir / "cache"),
    )  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)


def quiet(message: str) -> None:
    pass


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_lowers_the_loss_and_writes_a_complete_run(dataset_dir, tmp_path):
    out = tmp_path / "run"
    record = train(config(dataset_dir, out, epochs=5), log=quiet)
    epochs = [r for r in records(out) if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5]
    assert epochs[-1]["train_loss"] < 0.8 * epochs[0]["train_loss"]
    assert record["best"]["roc_auc"] > 0.6  # three real songs are easy to tell apart
    assert all(r["segments_per_second"] > 0 and r["epoch_seconds"] > 0 for r in epochs)
    test = records(out)[-1]
    assert test["event"] == "test" and 0 <= test["roc_auc"] <= 1

    best = load_checkpoint(out / "best.safetensors")
    assert best.labels == ["band", "brahms", "orchestra", "solo", "trumpet", "vibe"]
    assert best.config.name == "3^7" and best.config.width == 0.125
    training = best.training
    assert training["test"]["roc_auc"] == pytest.approx(test["roc_auc"])
    assert training["seed"] == 7 and training["device"] == "cpu" and training["task"] == "tags"
    assert training["skipped_files"] == 1 and training["clips"]["train"] == 14
    assert any("valid.csv" in note for note in training["dataset_notes"])
    skipped = json.loads((out / "skipped.json").read_text())
    assert [Path(s["path"]).name for s in skipped] == ["corrupt.wav"] and skipped[0]["reason"]
    assert sorted(p.name for p in out.iterdir()) == [
        "best.safetensors", "last.safetensors", "last.state.safetensors", "metrics.jsonl", "skipped.json"]  # fmt: skip

    # The checkpoint alone rebuilds the model; its predictions separate the songs.
    model = best.build_model()
    with torch.no_grad():
        seg = best.config.segment_samples
        clip = torch.from_numpy(load_audio(dataset_dir / "audio" / "brahms_0.wav", RATE)[: 4 * seg].reshape(4, seg))
        assert model(clip)["logits"].shape == (4, 6)


def test_seeded_runs_are_identical_whatever_the_worker_count(dataset_dir, tmp_path):
    a = train(config(dataset_dir, tmp_path / "a", epochs=2, workers=0), log=quiet)
    b = train(config(dataset_dir, tmp_path / "b", epochs=2, workers=2), log=quiet)
    c = train(config(dataset_dir, tmp_path / "c", epochs=2, seed=8), log=quiet)
    weights = [load_file(str(tmp_path / r / "last.safetensors")) for r in "abc"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert a["last"]["train_loss"] == b["last"]["train_loss"] != c["last"]["train_loss"]


def test_resume_continues_exactly_where_it_stopped(dataset_dir, tmp_path):
    train(config(dataset_dir, tmp_path / "straight", epochs=3, optimizer="sgd", lr=0.01), log=quiet)
    train(config(dataset_dir, tmp_path / "split", epochs=1, optimizer="sgd", lr=0.01), log=quiet)
    with pytest.raises(TrainError, match="already holds a run; pass --resume"):
        train(config(dataset_dir, tmp_path / "split", epochs=3), log=quiet)
    resumed = resume_config(tmp_path / "split", epochs=3)
    assert resumed.optimizer == "sgd" and resumed.epochs == 3
    train(resumed, resume=True, log=quiet)
    straight = load_file(str(tmp_path / "straight" / "last.safetensors"))
    split = load_file(str(tmp_path / "split" / "last.safetensors"))
    assert all(torch.equal(straight[k], split[k]) for k in straight)
    losses = lambda run: [r["train_loss"] for r in records(tmp_path / run) if r["event"] == "epoch"]  # noqa: E731
    assert losses("split") == losses("straight")


def test_single_label_column_trains_with_softmax_and_reports_accuracy(dataset_dir, tmp_path):
    record = train(config(dataset_dir, tmp_path / "song", label_column="song", epochs=1), log=quiet)
    assert record["task"] == "classes" and record["label_column"] == "song"
    epoch = records(tmp_path / "song")[0]
    assert 0 <= epoch["valid_accuracy"] <= 1 and "valid_macro_f1" in epoch
    assert load_checkpoint(tmp_path / "song" / "best.safetensors").labels == ["brahms", "trumpet", "vibe"]


def test_plateau_schedule_divides_the_rate_then_stops():
    schedule = PlateauSchedule(lr=0.01, patience=2, factor=5, max_plateaus=2)
    actions = [schedule.step(loss) for loss in [1.0, 0.9, 0.95, 0.91, 0.8, 0.85, 0.85]]
    assert actions == [None, None, None, "decay", None, None, "stop"]
    assert schedule.lr == pytest.approx(0.002) and schedule.stopped
    restored = PlateauSchedule(**dataclasses.asdict(schedule))
    assert restored == schedule


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"optimizer": "rmsprop"}, "'rmsprop' is not one of sgd, adam"),
        ({"device": "tpu"}, "'tpu' is not one of cpu, cuda"),
        ({"batch_size": 1}, "batch-size must be at least 2"),
        ({"manifest": None}, "exactly one dataset"),
        ({"scale": "3x9"}, "not of the form m^n"),
    ],
)
def test_bad_options_are_errors_that_name_the_value(dataset_dir, tmp_path, overrides, words):
    with pytest.raises(ValueError, match=words.replace("^", r"\^")):
        train(config(dataset_dir, tmp_path / "bad", **overrides), log=quiet)


def test_cli_train_runs_and_help_lists_the_options(dataset_dir, tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(app, ["train", "--help"], terminal_width=200).output
    for option in ("--mtat", "--gtzan", "--label-column", "--scale", "--optimizer", "--resume", "--seed", "--device"):
        assert option in help_text
    out = tmp_path / "cli"
    args = [str(dataset_dir / "train.csv"), "--scale", "3^7", "--width", "0.125", "--epochs", "1", "--batch-size", "8",
            "--workers", "0", "--threads", "1", "--out", str(out), "--cache-dir", str(dataset_dir / "cache")]  # fmt: skip
    result = runner.invoke(app, ["train", *args])
    # The run completes; exit 1 says an input failed (the corrupt clip of the dataset), as for infer.
    assert result.exit_code == 1, result.output
    assert "best epoch 1: valid ROC-AUC" in result.output and "1 unusable audio files were skipped" in result.output
    assert load_checkpoint(out / "best.safetensors").training["command"].startswith("samplecnn")
    bad = runner.invoke(app, ["train", str(dataset_dir / "train.csv"), "--label-column", "mood", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no label column 'mood'" in bad.output


def test_time_budget_stops_before_an_epoch_that_would_overrun(dataset_dir, tmp_path):
    from samplecnn.trainer.train import out_of_time

    assert out_of_time(TrainConfig(max_minutes=1.0), elapsed=40, epoch_seconds=30)
    assert not out_of_time(TrainConfig(max_minutes=1.0), elapsed=20, epoch_seconds=30)
    assert not out_of_time(TrainConfig(), elapsed=1e9, epoch_seconds=1e9)
    record = train(config(dataset_dir, tmp_path / "budget", epochs=5, max_minutes=1e-4), log=quiet)
    assert record["epochs"] == 1  # stopped, resumable
    resumed = train(resume_config(tmp_path / "budget", max_minutes=60.0), resume=True, log=quiet)
    assert resumed["epochs"] == 5
