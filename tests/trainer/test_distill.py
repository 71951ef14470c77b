"""Distillation: teacher-label files (format, checks) and training on soft targets, on real
music from tests/data. The teacher here is a fixed function of the audio (per-window band
energies through a sigmoid), so targets really depend on what a crop contains. No mocks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.audio import load_audio
from samplecnn.trainer.distill import TeacherSet, score_correlation, top_k_target
from samplecnn.trainer.targets import TargetsError, read_teacher_labels, write_teacher_labels
from samplecnn.trainer.train import TrainConfig, TrainError, train

RATE = 22050
WINDOW, HOP = 3.0, 1.5
TAGS = [f"band{i}" for i in range(8)]
SONGS = ("brahms_hungarian_dance_5", "kevin_macleod_vibe_ace", "sorohanro_solo_trumpet_06")


def band_teacher(audio: np.ndarray) -> dict[str, np.ndarray]:
    """Per-window 'probabilities' (sigmoid of log band energies) and 'features' (the energies)."""
    win, hop = int(WINDOW * RATE), int(HOP * RATE)
    starts = range(0, max(1, len(audio) - win + 1), hop)
    spectra = [np.abs(np.fft.rfft(audio[s : s + win], n=2048)) for s in starts]
    bands = np.stack([[b.mean() for b in np.array_split(x, len(TAGS))] for x in spectra])
    energy = np.log1p(bands).astype(np.float32)
    probs = 1.0 / (1.0 + np.exp(-(energy - energy.mean()) * 3))
    return {"probs": probs.astype(np.float32), "energy": energy}


@pytest.fixture(scope="module")
def corpus(music_files, tmp_path_factory) -> dict:
    """Label files: train (two 20 s excerpts of each of two songs), valid and test (real audio)."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("distill")
    items = {"train": [], "valid": [], "test": []}
    for song in SONGS[:2]:
        audio = load_audio(music_files[song], RATE)
        for i, split in enumerate(("train", "train", "valid", "test")):
            piece = audio[i * 10 * RATE : (i * 10 + 10) * RATE]
            path = root / f"{song}_{i}.wav"
            sf.write(str(path), piece, RATE)
            items[split].append((str(path), len(piece) / RATE, band_teacher(piece)))
    files = {}
    for split, entries in items.items():
        files[split] = write_teacher_labels(root / f"{split}.safetensors", teacher={"model": "band-energy"}, tags=TAGS,
                                            window_seconds=WINDOW, hop_seconds=HOP, items=entries)  # fmt: skip
    return {"root": root, "files": files, "items": items}


def test_round_trip_and_overlap_weighted_crop_target(corpus):
    labels = read_teacher_labels(corpus["files"]["train"])
    path, seconds, arrays = corpus["items"]["train"][0]
    assert labels.tags == TAGS and labels.feature_names == ["energy"] and labels.files[0].path == Path(path)
    np.testing.assert_allclose(labels.windows(0), arrays["probs"])
    np.testing.assert_allclose(labels.windows(0, "energy"), arrays["energy"], rtol=1e-3)  # stored float16
    # A crop [2, 4.5) s overlaps window 0 [0, 3) by 1 s, window 1 [1.5, 4.5) by 2.5 s, window 2 [3, 6) by 1.5 s.
    p = arrays["probs"]
    expected = (1.0 * p[0] + 2.5 * p[1] + 1.5 * p[2]) / 5.0
    np.testing.assert_allclose(labels.crop_target(0, 2.0, 2.5), expected, rtol=1e-6)
    # Past the last window (the teacher drops an incomplete tail): the nearest window.
    last = labels.files[0].n_windows - 1
    np.testing.assert_allclose(labels.crop_target(0, seconds + 5, 1.0), arrays["probs"][last])
    np.testing.assert_allclose(labels.song_target(0), arrays["probs"].mean(axis=0), rtol=1e-6)


def test_top_k_and_correlation():
    assert top_k_target(np.array([0.1, 0.9, 0.5, 0.7]), k=2).tolist() == [0, 1, 0, 1]
    scores = np.random.default_rng(0).random((5, 4))
    assert score_correlation(scores, scores) == pytest.approx(1.0)
    assert score_correlation(scores, -scores) == pytest.approx(-1.0)


def _rewrite(corpus, tmp_path, change) -> Path:
    """A copy of the train label file with one entry changed by ``change(items)``."""
    items = [(p, s, {k: v.copy() for k, v in a.items()}) for p, s, a in corpus["items"]["train"]]
    change(items)
    return write_teacher_labels(tmp_path / "bad.safetensors", teacher={"model": "band-energy"}, tags=TAGS,
                                window_seconds=WINDOW, hop_seconds=HOP, items=items)  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda items: items[1][2]["probs"].__setitem__((0, 0), np.nan), "NaN"),
        (lambda items: items[1][2]["probs"].__setitem__((0, 0), 1.5), "outside [0, 1]"),
        (lambda items: items.__setitem__(1, (items[1][0], items[1][1], {k: v[:2] for k, v in items[1][2].items()})),
         "cover"),
    ],
    ids=["nan", "out-of-range", "windows-short"],
)
def test_bad_label_files_are_refused_naming_the_file(corpus, tmp_path, change, message):
    bad = _rewrite(corpus, tmp_path, change)
    with pytest.raises(TargetsError, match=re.escape(message)) as error:
        read_teacher_labels(bad)
    assert "bad.safetensors" in str(error.value) and corpus["items"]["train"][1][0] in str(error.value)


def test_wrong_tag_count_and_missing_audio_are_refused(corpus, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    source = str(corpus["files"]["train"])
    with safe_open(source, framework="numpy") as f:
        info = json.loads(f.metadata()["teacher_labels"])
    info["tags"] = TAGS[:-1]  # 7 names for 8 columns
    save_file(load_file(source), str(tmp_path / "tags.safetensors"), metadata={"teacher_labels": json.dumps(info)})
    with pytest.raises(TargetsError, match="tags.safetensors: probs has shape .*8.*but 7 tags"):
        read_teacher_labels(tmp_path / "tags.safetensors")
    _, seconds, arrays = corpus["items"]["train"][0]
    gone = tmp_path / "gone.wav"
    missing = write_teacher_labels(tmp_path / "missing.safetensors", teacher={}, tags=TAGS, window_seconds=WINDOW,
                                   hop_seconds=HOP, items=[(str(gone), seconds, arrays)])  # fmt: skip
    with pytest.raises(TargetsError, match="gone.wav, which does not exist"):
        TeacherSet([str(missing)], [], []).dataset()


def distill_config(corpus, out: Path, **overrides) -> TrainConfig:
    files = corpus["files"]
    base = dict(
        targets=[str(files["train"])], valid_targets=[str(files["valid"])], test_targets=[str(files["test"])],
        scale="3^7", width=0.125, optimizer="adam", lr=3e-3, batch_size=8, epochs=2, crops_per_clip=6,
        workers=0, threads=1, seed=3, out=str(out), cache_dir=str(corpus["root"] / "cache"),
    )  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)


def test_distillation_trains_on_soft_targets_and_features_then_resumes(corpus, tmp_path):
    logs = []
    config = distill_config(corpus, tmp_path / "run", distill_features=["energy"], epochs=1)
    train(config, log=logs.append)
    config.epochs = 2
    record = train(config, resume=True, log=logs.append)
    assert record["epochs"] == 2 and record["dataset"] == "teacher:band-energy"
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in lines if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for r in epochs:
        assert r["train_feature_loss"] > 0 and r["train_tag_loss"] > 0
        assert -1 <= r["valid_teacher_correlation"] <= 1
    assert "teacher_correlation" in lines[-1] and lines[-1]["event"] == "test"
    assert (tmp_path / "run" / "last.feature_head.safetensors").is_file()
    assert any("teacher band-energy" in message for message in logs)


def test_init_fine_tunes_from_a_checkpoint_and_refuses_another_backbone(corpus, tmp_path):
    """--init: the run starts from the checkpoint's weights (here: a new distilled feature on
    a trained backbone); a checkpoint of another scale or width, or with other labels, is refused."""
    from samplecnn.trainer.checkpoint import load_checkpoint, save_checkpoint

    train(distill_config(corpus, tmp_path / "base", epochs=1), log=lambda m: None)
    base = tmp_path / "base" / "best.safetensors"
    logs = []
    # lr 1e-9: one epoch of fine-tuning leaves the weights where they started, so they must be the checkpoint's
    config = distill_config(corpus, tmp_path / "tuned", init=str(base), distill_features=["energy"], epochs=1, lr=1e-9)
    record = train(config, log=logs.append)
    assert record["init"] == str(base) and any(f"initialised from {base}" in m for m in logs)
    start, tuned = load_checkpoint(base), load_checkpoint(tmp_path / "tuned" / "last.safetensors")
    for name, tensor in start.state_dict.items():
        if "running" not in name and "num_batches" not in name:  # batch-norm statistics move in train mode
            assert torch.allclose(tensor, tuned.state_dict[name], atol=1e-6), name
    fresh = distill_config(corpus, tmp_path / "fresh", epochs=1, lr=1e-9)
    train(fresh, log=lambda m: None)
    assert not torch.allclose(load_checkpoint(tmp_path / "fresh" / "last.safetensors").state_dict["classifier.weight"],
                              start.state_dict["classifier.weight"], atol=1e-3)  # fmt: skip
    with pytest.raises(TrainError, match="not this run's 3\\^6"):  # another scale
        train(distill_config(corpus, tmp_path / "other-scale", init=str(base), scale="3^6"), log=lambda m: None)
    with pytest.raises(TrainError, match="nor the same backbone at a narrower width"):  # wider than the run
        train(distill_config(corpus, tmp_path / "narrow", init=str(base), width=0.0625), log=lambda m: None)
    relabelled = tmp_path / "relabelled.safetensors"
    save_checkpoint(relabelled, start.build_model(), [f"x{i}" for i in range(len(start.labels))])
    with pytest.raises(TrainError, match="labels differ"):
        train(distill_config(corpus, tmp_path / "other", init=str(relabelled)), log=lambda m: None)
    with pytest.raises(TrainError, match="init .*nope"):
        train(distill_config(corpus, tmp_path / "none", init=str(tmp_path / "nope.safetensors")), log=lambda m: None)


def test_init_from_a_narrower_checkpoint_widens_it(corpus, tmp_path):
    """--init with a narrower checkpoint of the same backbone: the run starts from the widened
    weights (trainer/widen.py, noise drawn from the run's seed), which score the validation songs
    as the narrow model did."""
    from samplecnn.trainer.checkpoint import load_checkpoint
    from samplecnn.trainer.widen import widen_state

    train(distill_config(corpus, tmp_path / "base", epochs=1), log=lambda m: None)
    base = load_checkpoint(tmp_path / "base" / "best.safetensors")
    logs = []
    record = train(distill_config(corpus, tmp_path / "wide", init=str(tmp_path / "base" / "best.safetensors"),
                                  width=0.25, epochs=1, lr=1e-9), log=logs.append)  # fmt: skip
    assert any("width 0.125 widened to 0.25: the same function" in m for m in logs)
    wide = load_checkpoint(tmp_path / "wide" / "last.safetensors")
    assert wide.config.width == 0.25 and wide.config.level_widths["level1"] == 2 * base.config.level_widths["level1"]
    expected = widen_state(base.state_dict, base.config, wide.config, seed=3)
    for name, tensor in expected.items():
        if "running" not in name and "num_batches" not in name:
            assert torch.allclose(tensor, wide.state_dict[name], atol=1e-6), name
    assert abs(record["last"]["valid_loss"] - base.training["last"]["valid_loss"]) < 0.05 * base.training["last"]["valid_loss"]


def test_label_file_that_does_not_match_its_audio_stops_training(corpus, tmp_path):
    path, seconds, arrays = corpus["items"]["train"][0]
    shifted = write_teacher_labels(tmp_path / "long.safetensors", teacher={"model": "band-energy"}, tags=TAGS,
                                   window_seconds=WINDOW, hop_seconds=HOP,
                                   items=[(path, seconds + 2.0, arrays)])  # fmt: skip
    with pytest.raises(TargetsError, match="decodes to 10.00 s but was labelled as 12.00 s"):
        train(distill_config(corpus, tmp_path / "run", targets=[str(shifted)]), log=lambda m: None)


def test_cli_distil_errors_exit_2(corpus, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--targets", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no such teacher-label file" in result.output
    result = runner.invoke(app, ["train", "--targets", str(corpus["files"]["train"]), "--distill-feature", "penultimate",
                                 "--scale", "3^7", "--width", "0.125", "--workers", "0", "--out", str(tmp_path / "r2"),
                                 "--cache-dir", str(corpus["root"] / "cache")])  # fmt: skip
    assert result.exit_code == 2 and "penultimate" in result.output and "energy" in result.output
    with pytest.raises(TrainError, match="needs teacher-label files"):
        TrainConfig(manifest="x.csv", distill_features=["energy"]).validate()


def test_fit_distils_a_song_level_head_from_soft_teacher_targets(corpus, tiny_bundle, tmp_path):
    """`samplecnn fit --targets`: the song means of the teacher's probabilities are the targets
    (not 0/1 labels), the head is judged by its agreement with the teacher, and the runtime
    serves it as head "tags" with the teacher's tag names."""
    import shutil

    from samplecnn.runtime.bundle import Bundle
    from samplecnn.runtime.tagger import Tagger
    from samplecnn.trainer.fit_run import FitOptions, run_fit
    from samplecnn.trainer.song_classifier import ClassifierConfig

    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    files = corpus["files"]
    options = FitOptions(bundle=str(bundle), targets=[str(files["train"])], valid_targets=[str(files["valid"])],
                         test_targets=[str(files["test"])], cache_dir=str(tmp_path / "cache"),
                         classifier=ClassifierConfig(hidden=32, dropout=0.1, max_epochs=50, patience=10))  # fmt: skip
    dataset = options.load()
    assert dataset.soft_targets and dataset.labels == TAGS and dataset.task == "tags"
    path, _, arrays = corpus["items"]["train"][0]
    (clip,) = [c for c in dataset.split("train") if str(c.path) == path]
    np.testing.assert_allclose(clip.target, arrays["probs"].mean(axis=0), rtol=1e-6)  # soft, not top-5 0/1
    assert not np.isin(clip.target, (0.0, 1.0)).all()

    result = run_fit(options, log=lambda *_: None)
    for split in ("train", "valid", "test"):
        metrics = result["metrics"][split]
        assert {"roc_auc", "pr_auc", "teacher_correlation"} <= set(metrics) and -1 <= metrics["teacher_correlation"] <= 1
    (head,) = Bundle.load(bundle).heads
    assert head.name == "tags" and head.task == "tags" and list(head.labels) == TAGS
    test_path = corpus["items"]["test"][0][0]
    with Tagger(bundle) as tagger:
        (song,) = tagger.tag([test_path])
    assert list(song.scores)[:2] == ["backbone", "tags"] and set(song.scores["tags"]) == set(TAGS)
    assert all(0.0 <= v <= 1.0 for v in song.scores["tags"].values())


def test_fit_with_targets_refuses_what_needs_hard_labels(corpus, tiny_bundle, tmp_path):
    runner = CliRunner()
    train_file = str(corpus["files"]["train"])
    result = runner.invoke(app, ["fit", str(tiny_bundle), "--targets", train_file, "--kfold", "3", "--no-write"])
    assert result.exit_code == 2 and "--kfold and --ablation" in result.output
    result = runner.invoke(app, ["fit", str(tiny_bundle), "-d", "x.csv", "--targets", train_file, "--no-write"])
    assert result.exit_code == 2 and "exactly one dataset" in result.output
    result = runner.invoke(app, ["fit", str(tiny_bundle), "-d", "x.csv", "--valid-targets", train_file, "--no-write"])
    assert result.exit_code == 2 and "need --targets" in result.output
    result = runner.invoke(app, ["fit", str(tiny_bundle), "--targets", str(tmp_path / "nope.safetensors"), "--no-write"])
    assert result.exit_code == 2 and "no such teacher-label file" in result.output
