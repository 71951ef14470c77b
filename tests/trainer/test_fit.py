"""`samplecnn fit`: song vectors from the runtime, a head written into the bundle, the ablation."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from samplecnn.cli import app
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.bundle import Bundle
from samplecnn.runtime.tagger import Tagger
from samplecnn.trainer.features import bundle_feature_key, extract_song_vectors
from samplecnn.trainer.fit import FitError, cross_validate
from samplecnn.trainer.fit_run import FitOptions, run_fit
from samplecnn.trainer.song_classifier import ClassifierConfig

SOURCES = {  # song -> (labels of the "style" column, tags)
    "brahms_hungarian_dance_5": ("orchestra", "strings;classical"),
    "kevin_macleod_vibe_ace": ("combo", "jazz;drums"),
}
FAST = ClassifierConfig(hidden=32, dropout=0.2, max_epochs=200, patience=30)


@pytest.fixture(scope="module")
def clip_dataset(tmp_path_factory, music_files) -> Path:
    """train/valid/test CSVs of 4 s clips cut from two real songs (WAV, 22.05 kHz)."""
    root = tmp_path_factory.mktemp("clips")
    rows = {"train": [], "valid": [], "test": []}
    for song, (style, tags) in SOURCES.items():
        audio = load_audio(music_files[song], 22050)
        clips = [audio[i * 88200 : (i + 1) * 88200] for i in range(len(audio) // 88200)][:10]
        for i, clip in enumerate(clips):
            split = "test" if i >= 8 else "valid" if i >= 6 else "train"
            name = f"{song}_{i:02d}.wav"
            sf.write(root / name, clip, 22050)
            rows[split].append(f"{name},{tags},{style},{song}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("path,tags,style,piece\n" + "\n".join(lines) + "\n")
    return root


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def test_fit_writes_a_head_the_runtime_reproduces(bundle_copy, clip_dataset, tmp_path):
    options = FitOptions(
        bundle=str(bundle_copy), manifest=str(clip_dataset / "train.csv"), label_column="style",
        cache_dir=str(tmp_path / "cache"), classifier=FAST,
    )  # fmt: skip
    result = run_fit(options, log=lambda *_: None)
    # Two timbrally different songs: even random backbones separate them.
    assert result["metrics"]["test"]["accuracy"] == 1.0
    bundle = Bundle.load(bundle_copy)  # hashes still valid after the in-place update
    (head,) = bundle.heads
    assert head.name == "style" and head.task == "classes" and set(head.labels) == {"orchestra", "combo"}
    # Every backbone scale, then the spectral level the exported bundle has by default.
    assert head.scales == ("2^14", "3^9", "mel") and head.levels == (1, 2, 3)

    from samplecnn.trainer.fit import split_vectors
    from samplecnn.trainer.fit_run import _dataset

    test_files = sorted(clip_dataset.glob("*_0[89].wav"))
    with Tagger(bundle_copy) as tagger:
        songs = list(tagger.tag(test_files, top_k=1))
        dataset = _dataset(options)
        splits = split_vectors(tagger, dataset, tmp_path / "cache", log=lambda *_: None)
    for song in songs:
        expected = "orchestra" if "brahms" in song.path else "combo"
        assert song.top["style"][0][0] == expected
    # The fit step's own predictions on the same files equal the runtime's head scores.
    vectors, _ = splits["test"]
    assert [str(p) for p in vectors.paths] == [str(p) for p in test_files]
    fit_scores = result["report"].classifier.predict(vectors.matrix(["2^14", "3^9", "mel"], [1, 2, 3]))
    runtime_scores = np.array([[s.scores["style"][label] for label in dataset.labels] for s in songs])
    np.testing.assert_allclose(runtime_scores, fit_scores, atol=1e-5)


def test_second_head_kept_and_replaced_by_name(bundle_copy, clip_dataset, tmp_path):
    base = dict(bundle=str(bundle_copy), manifest=str(clip_dataset / "train.csv"), cache_dir=str(tmp_path / "c"), classifier=FAST)
    run_fit(FitOptions(label_column="style", **base), log=lambda *_: None)
    run_fit(FitOptions(label_column="tags", levels=[1], scales=["3^9"], **base), log=lambda *_: None)
    run_fit(FitOptions(label_column="tags", **base), log=lambda *_: None)
    bundle = Bundle.load(bundle_copy)
    assert [h.name for h in bundle.heads] == ["style", "tags"]
    assert bundle.head("tags").task == "tags" and bundle.head("tags").levels == (1, 2, 3)
    assert len(list(bundle_copy.glob("head_*.safetensors"))) == 2  # the replaced head file is gone


def test_cache_is_reused_for_the_same_backbones_and_never_for_others(bundle_copy, make_checkpoint, clip_dataset, tmp_path):
    from samplecnn.export.bundle_writer import write_bundle

    files = sorted(clip_dataset.glob("*.wav"))[:3]
    cache = tmp_path / "cache"
    with Tagger(bundle_copy) as tagger:
        first = extract_song_vectors(tagger, files, cache)
        key = bundle_feature_key(tagger.bundle, "fp32", None)
    assert len(list((cache / key).glob("*.safetensors"))) == 3
    # A head added to the bundle changes the manifest, not the backbones: same key, cache hit.
    run_fit(FitOptions(bundle=str(bundle_copy), manifest=str(clip_dataset / "train.csv"), label_column="style",
                       cache_dir=str(cache), classifier=FAST), log=lambda *_: None)  # fmt: skip
    with Tagger(bundle_copy) as tagger:
        assert bundle_feature_key(tagger.bundle, "fp32", None) == key
    # Another bundle (other weights) gets another key; its vectors differ.
    other_weights = make_checkpoint(tmp_path / "other.safetensors", "2^14", seed=99)
    other = write_bundle([other_weights], tmp_path / "other")
    with Tagger(other) as tagger:
        other_key = bundle_feature_key(tagger.bundle, "fp32", None)
        second = extract_song_vectors(tagger, files, cache)
    assert other_key != key
    assert set(second.levels[0]) == {"2^14", "mel"} and set(first.levels[0]) == {"2^14", "3^9", "mel"}
    assert not np.allclose(second.levels[0]["2^14"][1], first.levels[0]["2^14"][1])
    # The same graphs without the spectral level: another key, and vectors without "mel".
    paper = write_bundle([other_weights], tmp_path / "paper", spectral=False)
    with Tagger(paper) as tagger:
        paper_key = bundle_feature_key(tagger.bundle, "fp32", None)
        third = extract_song_vectors(tagger, files, cache)
    assert paper_key not in (key, other_key) and set(third.levels[0]) == {"2^14"}
    np.testing.assert_array_equal(third.levels[0]["2^14"][1], second.levels[0]["2^14"][1])


def test_ablation_table_and_kfold(bundle_copy, clip_dataset, tmp_path):
    result = run_fit(
        FitOptions(bundle=str(bundle_copy), manifest=str(clip_dataset / "train.csv"), label_column="style",
                   cache_dir=str(tmp_path / "c"), classifier=FAST, ablation=str(tmp_path / "abl"), kfold=2,
                   group_column="piece", write=False),
        log=lambda *_: None,
    )  # fmt: skip
    rows = result["ablation"]["rows"]
    assert [(r["scales"], r["levels"]) for r in rows][:3] == [("2^14", "last"), ("2^14", "last two"), ("2^14", "last three")]
    assert rows[8]["scales"] == "all (2^14+3^9)" and rows[8]["dims"] == 2 * (64 + 64 + 32)
    # The bundle's spectral level: alone, then with every scale's last three levels.
    assert [(r["scales"], r["levels"], r["dims"]) for r in rows[9:]] == [
        ("mel", "spectral", 384), ("all (2^14+3^9) + mel", "last three", 2 * (64 + 64 + 32) + 384)]
    assert [r["spectral"] for r in rows] == [False] * 9 + [True] * 2
    saved = json.loads((tmp_path / "abl.json").read_text())
    assert len(saved["rows"]) == 11 and saved["gain"]["multi_level_multi_scale"] == rows[8]["accuracy"]
    assert "| backbones | scales |" in (tmp_path / "abl.md").read_text()
    assert result["kfold"]["folds"] == 2 and 0.0 <= result["kfold"]["accuracy_mean"] <= 1.0
    assert Bundle.load(bundle_copy).heads == ()  # --no-write leaves the bundle alone


def test_grouped_folds_keep_groups_together():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[:, 0] > 0).astype(int)]
    groups = np.repeat(np.arange(10), 4)
    summary = cross_validate(x, y, "classes", 5, groups, FAST)
    assert summary["accuracy_mean"] > 0.7
    with pytest.raises(FitError, match="groups cannot make"):
        cross_validate(x, y, "classes", 20, groups, FAST)


def test_bad_requests_are_clear_errors(bundle_copy, clip_dataset, tmp_path):
    runner = CliRunner()
    base = [str(bundle_copy), "--dataset", str(clip_dataset / "train.csv"), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, ["fit", *base, "--label-column", "mood"])
    assert result.exit_code == 2 and "no label column 'mood'" in result.output
    result = runner.invoke(app, ["fit", *base, "--label-column", "style", "--scales", "9^9"])
    assert result.exit_code == 2 and "not in the bundle" in result.output
    result = runner.invoke(app, ["fit", *base, "--label-column", "style", "--levels", "1,7"])
    assert result.exit_code == 2 and "levels [7] do not exist" in result.output
    # A dataset whose files all fail.
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.wav", "b.wav"):
        (broken / name).write_text("not audio")
    (broken / "train.csv").write_text("path,style\na.wav,x\nb.wav,y\n")
    result = runner.invoke(app, ["fit", str(bundle_copy), "--dataset", str(broken / "train.csv"), "--label-column", "style",
                                 "--cache-dir", str(tmp_path / "c")])  # fmt: skip
    assert result.exit_code == 2 and "every file of the" in result.output
    assert Bundle.load(bundle_copy).heads == ()


def test_unreadable_songs_are_left_out_and_exit_1(bundle_copy, clip_dataset, tmp_path):
    data = Path(shutil.copytree(clip_dataset, tmp_path / "data"))
    (data / "broken.wav").write_text("not audio")
    with open(data / "train.csv", "a") as f:
        f.write("broken.wav,jazz,combo,none\n")
    result = CliRunner().invoke(app, ["fit", str(bundle_copy), "--dataset", str(data / "train.csv"), "--label-column", "style",
                                      "--hidden", "32", "--cache-dir", str(tmp_path / "c")])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "skipped" in result.output and "broken.wav" in result.output and "1 songs could not be read" in result.output
    assert [h.name for h in Bundle.load(bundle_copy).heads] == ["style"]  # the rest was fitted and written
