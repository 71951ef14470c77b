"""Dataset readers: a CSV manifest, the MagnaTagATune layout and the GTZAN layout.

Every reader returns a :class:`Dataset`: label names, the task ("tags": multi-label, sigmoid +
BCE; "classes": one label per clip, softmax + CE) and lists of :class:`Clip` (path, target
vector) per split. Readers only parse text and list files; audio is decoded later, once, by
:mod:`samplecnn.trainer.cache` through the runtime's decoder, where unreadable files are
reported and skipped. A malformed manifest or annotation row is a :class:`ManifestError`
naming the file and line: a broken label file is a mistake to fix, not a file to skip.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

TASKS = ("tags", "classes")
SPLITS = ("train", "valid", "test")
TAG_SEPARATOR = ";"

# The standard MagnaTagATune 50-tag subset (most frequent tags; same list as
# ../shared/data/formats/mtat_top50_tags.txt), in the customary order.
MTAT_TOP50 = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
# Without split lists, MTAT is split by its 16 audio folders, the usual convention
# (Dieleman & Schrauwen 2014): 0-b train, c valid, d-f test.
MTAT_FOLDER_SPLITS = {"train": "0123456789ab", "valid": "c", "test": "def"}
GTZAN_AUDIO_SUFFIXES = (".wav", ".au", ".flac", ".ogg", ".mp3")
_GTZAN_NAME = re.compile(r"^(?P<genre>[A-Za-z_-]+)/(?P=genre)\.(?P<number>\d{5})(\.[A-Za-z0-9]+)?$")


class ManifestError(ValueError):
    """A malformed manifest, annotation or split-list row. ``path`` and ``line`` say where."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Clip:
    """One labelled audio file. ``target``: (n_labels,) float32 of 0/1."""

    path: Path
    target: np.ndarray


@dataclass
class Dataset:
    """Label names, task and clips per split ("train", "valid", "test"; a split may be empty)."""

    name: str
    labels: list[str]
    task: str
    splits: dict[str, list[Clip]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the reader decided, for the log
    soft_targets: bool = False  # targets are probabilities (a teacher's), not 0/1 labels

    def split(self, name: str) -> list[Clip]:
        return self.splits.get(name, [])

    def describe(self) -> str:
        sizes = ", ".join(f"{s} {len(self.split(s))}" for s in SPLITS if self.split(s))
        return f"{self.name}: {len(self.labels)} {self.task} ({sizes})"


def _target(indices: list[int], n_labels: int) -> np.ndarray:
    target = np.zeros(n_labels, dtype=np.float32)
    target[indices] = 1.0
    return target


def _check_task(task: str | None) -> None:
    if task is not None and task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)} (or None to infer it)")


# --- CSV manifest ----------------------------------------------------------------------------


def _manifest_rows(path: Path, label_column: str) -> list[tuple[int, str, list[str]]]:
    """(line number, audio path, label values) per data row of a manifest."""
    if not path.is_file():
        raise ManifestError(path, None, "no such manifest file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ManifestError(path, 1, "empty manifest; expected a header such as 'path,tags'")
        header = [h.strip() for h in header]
        if "path" not in header:
            raise ManifestError(path, 1, f"no 'path' column in header {header}")
        if label_column not in header:
            others = [h for h in header if h != "path"]
            raise ManifestError(
                path, 1, f"no label column {label_column!r}; columns: {others} (choose one with --label-column)"
            )
        path_at, label_at = header.index("path"), header.index(label_column)
        rows = []
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise ManifestError(path, line, f"{len(values)} fields, header has {len(header)} ({header})")
            audio = values[path_at].strip()
            if not audio:
                raise ManifestError(path, line, "empty 'path'")
            labels = [t.strip() for t in values[label_at].split(TAG_SEPARATOR) if t.strip()]
            rows.append((line, audio, labels))
    return rows


def read_manifest(
    path: str | Path, label_column: str = "tags", *, labels: list[str] | None = None, task: str | None = None
) -> Dataset:
    """Read a CSV manifest ``path,<label_column>[,...]`` into a one-split Dataset ("train").

    Labels are ``;``-separated; audio paths are relative to the CSV's folder (or absolute).
    ``labels`` fixes the vocabulary (pass the training split's labels when reading valid/test;
    unknown labels are then dropped and noted). ``task`` None infers it: "classes" when every
    row has exactly one label, else "tags".
    """
    _check_task(task)
    path = Path(path)
    rows = _manifest_rows(path, label_column)
    if not rows:
        raise ManifestError(path, None, "no data rows")
    if task is None:
        task = "classes" if all(len(r[2]) == 1 for r in rows) else "tags"
    if task == "classes":
        for line, _, values in rows:
            if len(values) != 1:
                raise ManifestError(path, line, f"{len(values)} labels {values} in single-label column {label_column!r}")
    vocabulary = sorted({t for _, _, values in rows for t in values}) if labels is None else list(labels)
    index = {t: i for i, t in enumerate(vocabulary)}
    clips, unknown = [], set()
    for _, audio, values in rows:
        unknown.update(t for t in values if t not in index)
        clips.append(Clip((path.parent / audio).resolve(), _target([index[t] for t in values if t in index], len(vocabulary))))
    notes = [f"{path.name}: labels not in the training vocabulary, ignored: {sorted(unknown)}"] if unknown else []
    return Dataset(f"{path} [{label_column}]", vocabulary, task, {"train": clips}, notes)


def read_manifest_splits(
    train: str | Path,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    label_column: str = "tags",
    task: str | None = None,
) -> Dataset:
    """Train/valid/test manifests sharing the training manifest's labels and task.

    With ``valid``/``test`` None, ``valid.csv``/``test.csv`` next to a manifest named
    ``train.csv`` are used when they exist.
    """
    train = Path(train)
    if train.name == "train.csv":
        valid = valid if valid is not None else _sibling(train, "valid.csv")
        test = test if test is not None else _sibling(train, "test.csv")
    dataset = read_manifest(train, label_column, task=task)
    for split, manifest in (("valid", valid), ("test", test)):
        if manifest is not None:
            part = read_manifest(manifest, label_column, labels=dataset.labels, task=dataset.task)
            dataset.splits[split] = part.splits["train"]
            dataset.notes += part.notes + [f"{split} split: {manifest}"]
    return dataset


def _sibling(path: Path, name: str) -> Path | None:
    candidate = path.parent / name
    return candidate if candidate.is_file() else None


# --- MagnaTagATune ---------------------------------------------------------------------------


def read_tag_list(path: str | Path) -> list[str]:
    """One tag per line (blank lines and '#' comments ignored), e.g. mtat_top50_tags.txt."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, None, "no such tag list file")
    tags = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [t for t in tags if t and not t.startswith("#")]


def _mtat_rows(path: Path, tags: list[str]) -> list[tuple[str, str, list[int]]]:
    """(clip_id, mp3_path, tag indices) per row of annotations_final.csv."""
    if not path.is_file():
        raise ManifestError(path, None, "no such annotation file (expected MagnaTagATune's annotations_final.csv)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quotechar='"')
        header = next(reader, None) or []
        for required in ("clip_id", "mp3_path"):
            if required not in header:
                raise ManifestError(path, 1, f"no {required!r} column; is this a tab-separated annotations_final.csv?")
        missing = [t for t in tags if t not in header]
        if missing:
            raise ManifestError(path, 1, f"tags {missing} are not columns of this file; check the tag list")
        columns = [header.index(t) for t in tags]
        id_at, mp3_at = header.index("clip_id"), header.index("mp3_path")
        rows = []
        for values in reader:
            line = reader.line_num
            if not values:
                continue
            if len(values) != len(header):
                raise ManifestError(path, line, f"{len(values)} fields, header has {len(header)}")
            flags = [values[c].strip() for c in columns]
            bad = [(tags[i], v) for i, v in enumerate(flags) if v not in ("0", "1")]
            if bad:
                raise ManifestError(path, line, f"tag values must be 0 or 1, got {bad[:3]}")
            if not values[mp3_at].strip():
                raise ManifestError(path, line, "empty mp3_path")
            rows.append((values[id_at].strip(), values[mp3_at].strip(), [i for i, v in enumerate(flags) if v == "1"]))
    return rows


def _read_split_list(path: Path) -> list[str]:
    if not path.is_file():
        raise ManifestError(path, None, "no such split list file")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_mtat(
    root: str | Path,
    *,
    tags: list[str] | tuple[str, ...] = MTAT_TOP50,
    split_lists: dict[str, str | Path] | None = None,
) -> Dataset:
    """MagnaTagATune: ``root/annotations_final.csv`` and audio under ``root/<0..f>/``.

    ``tags``: the label columns (default the top 50). ``split_lists``: split name -> file
    with one ``mp3_path`` or ``clip_id`` per line; without it, clips are split by folder
    (:data:`MTAT_FOLDER_SPLITS`). Clips with none of the tags are kept (as in the papers).
    """
    root = Path(root)
    annotations = root / "annotations_final.csv"
    rows = _mtat_rows(annotations, list(tags))
    if split_lists:
        membership = {}
        for split, list_path in split_lists.items():
            membership.update((key, split) for key in _read_split_list(Path(list_path)))
        split_of = lambda clip_id, mp3: membership.get(mp3, membership.get(clip_id))  # noqa: E731
        notes = [f"{s} split: {p}" for s, p in split_lists.items()]
    else:
        folder_split = {c: s for s, folders in MTAT_FOLDER_SPLITS.items() for c in folders}
        split_of = lambda clip_id, mp3: folder_split.get(mp3.split("/", 1)[0])  # noqa: E731
        notes = ["splits by folder: 0-b train, c valid, d-f test"]
    splits: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for clip_id, mp3, indices in rows:
        split = split_of(clip_id, mp3)
        if split is not None:
            splits.setdefault(split, []).append(Clip(root / mp3, _target(indices, len(tags))))
    return Dataset(f"MagnaTagATune {root}", list(tags), "tags", splits, notes)


# --- GTZAN -----------------------------------------------------------------------------------


def _gtzan_genres_dir(root: Path) -> Path:
    genres = root / "genres" if (root / "genres").is_dir() else root
    if not genres.is_dir():
        raise ManifestError(root, None, "no such GTZAN folder (expected genres/<genre>/<genre>.000NN.wav)")
    return genres


def _gtzan_files(genres: Path) -> dict[str, Path]:
    """'genre/genre.000NN' -> audio file, for every audio file in the layout."""
    files = {}
    for audio in sorted(genres.glob("*/*")):
        if audio.suffix.lower() in GTZAN_AUDIO_SUFFIXES and audio.stem.startswith(audio.parent.name + "."):
            files[f"{audio.parent.name}/{audio.stem}"] = audio
    return files


def _gtzan_split_keys(path: Path) -> list[tuple[int, str]]:
    keys = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = _GTZAN_NAME.match(line)
        if not match:
            raise ManifestError(path, line_no, f"{line!r} is not of the form genre/genre.000NN.wav")
        keys.append((line_no, f"{match['genre']}/{match['genre']}.{match['number']}"))
    return keys


def read_gtzan(root: str | Path, *, split_lists: dict[str, str | Path] | None = None) -> Dataset:
    """GTZAN: ``root[/genres]/<genre>/<genre>.000NN.{wav,au,...}``, one genre per clip.

    ``split_lists``: split name -> file of ``genre/genre.000NN.wav`` lines (e.g. the
    fault-filtered split); an entry matches the file whatever its extension. An entry with
    no audio file stays in the split and is reported as missing when decoded. Without split
    lists every file goes to "train" (hold out a validation split with :func:`holdout`).
    """
    root = Path(root)
    genres_dir = _gtzan_genres_dir(root)
    files = _gtzan_files(genres_dir)
    if not files and not split_lists:
        raise ManifestError(genres_dir, None, "no <genre>/<genre>.000NN audio files found")
    keyed: dict[str, list[str]] = {}
    if split_lists:
        for split, list_path in split_lists.items():
            list_path = Path(list_path)
            if not list_path.is_file():
                raise ManifestError(list_path, None, "no such split list file")
            keyed[split] = [key for _, key in _gtzan_split_keys(list_path)]
    else:
        keyed["train"] = list(files)
    genres = sorted({key.split("/")[0] for keys in keyed.values() for key in keys})
    index = {g: i for i, g in enumerate(genres)}
    splits = {
        split: [
            Clip(files.get(key, genres_dir / f"{key}.wav"), _target([index[key.split('/')[0]]], len(genres)))
            for key in keys
        ]
        for split, keys in keyed.items()
    }
    notes = [f"{s} split: {p}" for s, p in (split_lists or {}).items()]
    return Dataset(f"GTZAN {root}", genres, "classes", splits, notes)


# --- helpers ---------------------------------------------------------------------------------


def holdout(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """Move a seeded random ``fraction`` of "train" into an empty "valid" split."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction {fraction}: must be between 0 and 1, e.g. 0.1")
    train = dataset.split("train")
    order = np.random.default_rng(seed).permutation(len(train))
    n_valid = max(1, int(round(fraction * len(train))))
    splits = dict(dataset.splits)
    splits["valid"] = [train[i] for i in sorted(order[:n_valid])]
    splits["train"] = [train[i] for i in sorted(order[n_valid:])]
    notes = dataset.notes + [f"valid split: {n_valid} clips held out of train (fraction {fraction}, seed {seed})"]
    return replace(dataset, splits=splits, notes=notes)


def limit_clips(dataset: Dataset, max_clips: int, seed: int) -> Dataset:
    """At most ``max_clips`` clips per split (a seeded random subset, in original order)."""
    splits = {}
    for name, clips in dataset.splits.items():
        if len(clips) > max_clips:
            keep = np.sort(np.random.default_rng(seed).permutation(len(clips))[:max_clips])
            clips = [clips[i] for i in keep]
        splits[name] = clips
    return replace(dataset, splits=splits, notes=dataset.notes + [f"at most {max_clips} clips per split"])
