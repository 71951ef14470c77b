"""Dataset readers on fixtures written in the real MTAT, GTZAN and manifest formats, and the
decode cache on real and broken audio files."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samplecnn.runtime.audio import load_audio
from samplecnn.trainer.cache import AudioCache
from samplecnn.trainer.data import (
    MTAT_TOP50,
    ManifestError,
    holdout,
    read_gtzan,
    read_manifest,
    read_manifest_splits,
    read_mtat,
    read_tag_list,
)

SHARED_FORMATS = Path(__file__).resolve().parents[2] / "trainer" / "formats"  # copies of shared/data/formats
RATE = 22050


@pytest.fixture(scope="module")
def song(music_files) -> np.ndarray:
    """Real music: 20 s of the Brahms recording at 22.05 kHz."""
    return load_audio(music_files["brahms_hungarian_dance_5"], RATE, max_seconds=20)


def write_clip(path: Path, audio: np.ndarray, rate: int = RATE, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, **kwargs)
    return path


# --- manifest --------------------------------------------------------------------------------


def test_manifest_tags_and_single_label_column(tmp_path, song):
    write_clip(tmp_path / "audio" / "a.wav", song[:RATE * 2])
    write_clip(tmp_path / "audio" / "b.wav", song[RATE * 2 : RATE * 4])
    (tmp_path / "train.csv").write_text(
        "path,tags,style\naudio/a.wav,piano;loud,bach\n\naudio/b.wav,strings,folk\n", encoding="utf-8"
    )
    tags = read_manifest(tmp_path / "train.csv")
    assert tags.task == "tags" and tags.labels == ["loud", "piano", "strings"]
    clips = tags.split("train")
    assert clips[0].path == (tmp_path / "audio" / "a.wav").resolve()
    assert clips[0].target.tolist() == [1, 1, 0] and clips[1].target.tolist() == [0, 0, 1]
    style = read_manifest(tmp_path / "train.csv", label_column="style")
    assert style.task == "classes" and style.labels == ["bach", "folk"]


def test_manifest_splits_share_training_vocabulary(tmp_path):
    (tmp_path / "train.csv").write_text("path,tags\na.wav,piano\nb.wav,organ;drums\n")
    (tmp_path / "valid.csv").write_text("path,tags\nc.wav,piano;theremin\n")
    dataset = read_manifest_splits(tmp_path / "train.csv")
    assert dataset.labels == ["drums", "organ", "piano"]
    assert dataset.split("valid")[0].target.tolist() == [0, 0, 1]
    assert any("theremin" in note for note in dataset.notes)
    assert dataset.split("test") == []


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("path,tags\na.wav,piano\nb.wav,piano,extra\n", 3, "3 fields"),
        ("path,tags\na.wav,piano\n,organ\n", 3, "empty 'path'"),
        ("file,tags\na.wav,piano\n", 1, "no 'path' column"),
    ],
)
def test_malformed_manifest_row_names_file_and_line(tmp_path, text, line, words):
    manifest = tmp_path / "bad.csv"
    manifest.write_text(text)
    with pytest.raises(ManifestError) as info:
        read_manifest(manifest)
    assert info.value.line == line and words in str(info.value) and str(manifest) in str(info.value)


def test_unknown_label_column_lists_the_columns(tmp_path):
    (tmp_path / "m.csv").write_text("path,tags,style\na.wav,piano,bach\n")
    with pytest.raises(ManifestError, match=r"'mood'.*\['tags', 'style'\].*--label-column"):
        read_manifest(tmp_path / "m.csv", label_column="mood")


def test_multiple_labels_in_a_classes_column_is_an_error(tmp_path):
    (tmp_path / "m.csv").write_text("path,style\na.wav,bach\nb.wav,bach;folk\n")
    with pytest.raises(ManifestError, match="m.csv:3: 2 labels"):
        read_manifest(tmp_path / "m.csv", label_column="style", task="classes")


def test_holdout_is_seeded_and_disjoint(tmp_path):
    (tmp_path / "m.csv").write_text("path,tags\n" + "".join(f"{i}.wav,t{i % 3}\n" for i in range(20)))
    a = holdout(read_manifest(tmp_path / "m.csv"), 0.25, seed=3)
    b = holdout(read_manifest(tmp_path / "m.csv"), 0.25, seed=3)
    assert [c.path for c in a.split("valid")] == [c.path for c in b.split("valid")]
    assert len(a.split("valid")) == 5 and len(a.split("train")) == 15
    assert not {c.path for c in a.split("valid")} & {c.path for c in a.split("train")}


# --- MagnaTagATune ---------------------------------------------------------------------------

# The real file has 188 tag columns; the fixture has the top 50 plus three others (55 columns).
MTAT_EXTRA_TAGS = ["baroque", "funky", "orchestra"]


def write_mtat(root: Path, rows: list[tuple[str, str, set[str]]], song: np.ndarray) -> Path:
    """annotations_final.csv exactly as MTAT ships it: tab-separated, every value double-quoted."""
    tags = list(MTAT_TOP50[:25]) + MTAT_EXTRA_TAGS + list(MTAT_TOP50[25:])
    lines = ["\t".join(f'"{v}"' for v in ["clip_id", *tags, "mp3_path"])]
    for clip_id, mp3_path, on in rows:
        lines.append("\t".join(f'"{v}"' for v in [clip_id, *("1" if t in on else "0" for t in tags), mp3_path]))
    (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")
    for i, (_, mp3_path, _) in enumerate(rows):
        # MTAT audio is 16 kHz mono MP3; write real music in that form.
        start = 16000 * i
        write_clip(root / mp3_path, song[::2][start : start + 16000 * 5].copy(), 16000, format="MP3")
    return root


MTAT_ROWS = [
    ("2", "0/artist-album-01-track-0-29.mp3", {"guitar", "rock", "funky"}),
    ("6", "c/artist-album-02-track-30-58.mp3", {"classical", "violin"}),
    ("10", "d/artist-album-03-track-0-29.mp3", set()),
    ("11", "f/artist-album-03-track-30-58.mp3", {"choral", "male vocal"}),
]


def test_mtat_reads_quoted_tab_separated_annotations_and_folder_splits(tmp_path, song):
    write_mtat(tmp_path, MTAT_ROWS, song)
    dataset = read_mtat(tmp_path)
    assert dataset.task == "tags" and dataset.labels == list(MTAT_TOP50)
    assert [len(dataset.split(s)) for s in ("train", "valid", "test")] == [1, 1, 2]
    train = dataset.split("train")[0]
    assert train.path == tmp_path / "0" / "artist-album-01-track-0-29.mp3"
    assert {MTAT_TOP50[i] for i in np.nonzero(train.target)[0]} == {"guitar", "rock"}
    assert dataset.split("test")[0].target.sum() == 0  # a clip without top-50 tags is kept


def test_mtat_top50_constant_matches_the_shared_list():
    assert read_tag_list(SHARED_FORMATS / "mtat_top50_tags.txt") == list(MTAT_TOP50)


def test_mtat_split_lists_by_path_or_clip_id(tmp_path, song):
    write_mtat(tmp_path, MTAT_ROWS, song)
    (tmp_path / "train.txt").write_text("0/artist-album-01-track-0-29.mp3\n6\n")
    (tmp_path / "test.txt").write_text("11\n")
    dataset = read_mtat(tmp_path, tags=["rock", "violin", "choral"], split_lists={
        "train": tmp_path / "train.txt", "test": tmp_path / "test.txt"})  # fmt: skip
    assert [c.target.tolist() for c in dataset.split("train")] == [[1, 0, 0], [0, 1, 0]]
    assert [c.target.tolist() for c in dataset.split("test")] == [[0, 0, 1]]
    assert dataset.split("valid") == []


def test_mtat_malformed_rows_name_file_and_line(tmp_path, song):
    write_mtat(tmp_path, MTAT_ROWS, song)
    annotations = tmp_path / "annotations_final.csv"
    lines = annotations.read_text().splitlines()
    lines[2] = lines[2].replace('"0"', '"2"', 1)
    annotations.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"annotations_final.csv:3: tag values must be 0 or 1"):
        read_mtat(tmp_path)
    lines[2] = lines[2].rsplit("\t", 1)[0]  # a row that lost its last field
    annotations.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"annotations_final.csv:3: 54 fields, header has 55"):
        read_mtat(tmp_path)


def test_mtat_unknown_tag_and_missing_annotations(tmp_path, song):
    write_mtat(tmp_path, MTAT_ROWS, song)
    with pytest.raises(ManifestError, match="'kazoo'"):
        read_mtat(tmp_path, tags=["rock", "kazoo"])
    with pytest.raises(ManifestError, match="no such annotation file"):
        read_mtat(tmp_path / "elsewhere")


def test_mtat_mp3_decodes_through_the_cache(tmp_path, song):
    write_mtat(tmp_path, MTAT_ROWS, song)
    dataset = read_mtat(tmp_path)
    kept, skipped = AudioCache(tmp_path / "cache", RATE).prepare(dataset.split("test"))
    assert skipped == [] and len(kept) == 2
    assert abs(kept[0].n_samples - 5 * RATE) < 0.02 * RATE


# --- GTZAN -----------------------------------------------------------------------------------


def write_gtzan(root: Path, song: np.ndarray) -> Path:
    """genres/<genre>/<genre>.000NN.{wav,au}: blues as .wav, jazz as Sun .au like the original."""
    for i in range(3):
        clip = song[i * 2 * RATE : (i + 1) * 2 * RATE]
        write_clip(root / "genres" / "blues" / f"blues.{i:05d}.wav", clip)
        write_clip(root / "genres" / "jazz" / f"jazz.{i:05d}.au", clip[::-1].copy(), format="AU", subtype="PCM_16")
    return root


def test_gtzan_layout_wav_and_au(tmp_path, song):
    write_gtzan(tmp_path, song)
    dataset = read_gtzan(tmp_path)
    assert dataset.task == "classes" and dataset.labels == ["blues", "jazz"]
    clips = dataset.split("train")
    assert len(clips) == 6
    assert {c.path.suffix for c in clips} == {".wav", ".au"}
    kept, skipped = AudioCache(tmp_path / "cache", RATE).prepare(clips)
    assert skipped == [] and all(abs(c.n_samples - 2 * RATE) <= 1 for c in kept)


def test_gtzan_split_lists_match_any_extension_and_report_missing_files(tmp_path, song):
    write_gtzan(tmp_path, song)
    (tmp_path / "train.txt").write_text("blues/blues.00000.wav\njazz/jazz.00000.wav\njazz/jazz.00001.wav\n")
    (tmp_path / "test.txt").write_text("blues/blues.00002.wav\njazz/jazz.00042.wav\n")
    dataset = read_gtzan(tmp_path / "genres", split_lists={"train": tmp_path / "train.txt", "test": tmp_path / "test.txt"})
    assert [c.path.name for c in dataset.split("train")] == ["blues.00000.wav", "jazz.00000.au", "jazz.00001.au"]
    kept, skipped = AudioCache(tmp_path / "cache", RATE).prepare(dataset.split("test"))
    assert len(kept) == 1 and [(s.path.name, s.reason) for s in skipped] == [("jazz.00042.wav", "no such file")]


def test_gtzan_malformed_split_line(tmp_path, song):
    write_gtzan(tmp_path, song)
    (tmp_path / "train.txt").write_text("blues/blues.00000.wav\nblues/jazz.00001.wav\n")
    with pytest.raises(ManifestError, match=r"train.txt:2: 'blues/jazz.00001.wav' is not of the form"):
        read_gtzan(tmp_path, split_lists={"train": tmp_path / "train.txt"})


def test_gtzan_real_fault_filtered_list_parses():
    path = SHARED_FORMATS / "gtzan_fault_filtered_train.txt"
    from samplecnn.trainer.data import _gtzan_split_keys

    assert len(_gtzan_split_keys(path)) == 443


# --- bad audio -------------------------------------------------------------------------------


def test_bad_files_are_skipped_with_reasons_and_counted(tmp_path, song):
    good = write_clip(tmp_path / "good.wav", song[: 3 * RATE])
    full = write_clip(tmp_path / "full.mp3", song[: 4 * RATE], format="MP3").read_bytes()
    (tmp_path / "truncated.mp3").write_bytes(full[: len(full) // 2])  # an interrupted download
    (tmp_path / "garbage.mp3").write_bytes(os.urandom(3000))
    (tmp_path / "empty.wav").write_bytes(b"")
    silent = write_clip(tmp_path / "silent.wav", np.zeros(3 * RATE, dtype=np.float32))
    short = write_clip(tmp_path / "short.wav", song[: RATE // 2])
    names = ["good.wav", "truncated.mp3", "garbage.mp3", "empty.wav", "silent.wav", "short.wav", "missing.wav"]
    with open(tmp_path / "m.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "tags"], *[[n, "x"] for n in names]])
    clips = read_manifest(tmp_path / "m.csv").split("train")
    cache = AudioCache(tmp_path / "cache", RATE)
    kept, skipped = cache.prepare(clips, min_samples=RATE, workers=2)
    assert [c.path for c in kept] == [good.resolve()]
    reasons = {s.path.name: s.reason for s in skipped}
    assert set(reasons) == set(names) - {"good.wav"}
    assert "truncated" in reasons["truncated.mp3"]
    assert "not a readable audio file" in reasons["garbage.mp3"]
    assert "silent" in reasons["silent.wav"] and reasons["missing.wav"] == "no such file"
    assert reasons["short.wav"].startswith("too short: 0.50 s")
    # A second pass answers from the cache (bad files included) with the same verdicts.
    kept2, skipped2 = cache.prepare(clips, min_samples=RATE)
    assert [c.file for c in kept2] == [c.file for c in kept]
    assert {s.path.name: s.reason for s in skipped2} == reasons
    assert silent.exists() and short.exists()


def test_cache_round_trip_and_invalidation(tmp_path, music_files):
    source = music_files["sorohanro_solo_trumpet_06.44k_stereo"]
    clip = tmp_path / "clip.ogg"
    clip.write_bytes(source.read_bytes())
    cache = AudioCache(tmp_path / "cache", RATE)
    file, n = cache.fetch(clip)
    cached = np.load(file, mmap_mode="r")
    assert cached.dtype == np.float16 and isinstance(cached, np.memmap)
    np.testing.assert_allclose(cached, load_audio(clip, RATE), atol=2e-3)
    assert cache.fetch(clip) == (file, n)
    assert AudioCache(tmp_path / "cache", 16000).fetch(clip)[0] != file  # other rate, other entry
    os.utime(clip, ns=(0, 10**18))
    assert cache.fetch(clip)[0] != file  # a changed file is decoded again
    assert not list((tmp_path / "cache").rglob("*.tmp"))
