"""Judge a distilled default model: teacher agreement and transfer, against the old model and musicnn.

1. Teacher agreement on songs held out of training (mer4q test, 208 songs): macro ROC-AUC of
   the student's song-level scores taking each song's top-5 teacher tags as its positives, and
   the Pearson correlation of student and teacher song-level scores. Scores: the backbones'
   own (mean over scales), and the ``tags`` head when the bundle has one.
2. Transfer on the same k-fold splits for every feature set: mer4q ``quadrant`` (900 songs,
   folds grouped by artist), mer4q ``genre`` (the 458 songs with exactly one of the genre tags
   in GENRES, grouped by artist: the nearest this project has to the genre sets it is judged
   on) and synthtags ``style`` (2,326 clips, grouped by source piece):
   standardise + multinomial logistic regression, repeated stratified group 5-fold x 3
   (the protocol the project is measured with on genre sets it never sees). Feature sets:
   each bundle's multi-level multi-scale song vector, every single scale and level of the new
   bundle, and musicnn's features (song means of the teacher-label files: MTT_musicnn's
   penultimate and taggram, and MSD_musicnn's penultimate when its label files exist).

Song vectors come from ``Tagger.features`` (the runtime, exactly what users get).
Usage: python experiments/distill_eval.py --bundle NEW --baseline OLD --labels LABEL_DIR --out experiments/results/distill
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FOLDS, REPEATS = 5, 3
GENRES = ("pop/rock", "jazz", "electronic", "r&b", "country", "blues", "rap", "latin", "folk", "reggae", "new age",
          "international", "vocal")  # mer4q's genre tags with 40+ songs that name a style of music (not holiday, comedy/spoken, ...)


def read_rows(dataset: str) -> list[dict]:
    rows = []
    for split in ("train", "valid", "test"):
        with open(DATA / dataset / f"{split}.csv", newline="") as f:
            rows += [dict(r, split=split, path=str(DATA / dataset / r["path"])) for r in csv.DictReader(f)]
    return rows


def genre_rows(rows: list[dict]) -> list[dict]:
    """The mer4q songs with exactly one genre tag of GENRES, that tag as ``genre``."""
    out = []
    for r in rows:
        genres = [t for t in r["tags"].split(";") if t in GENRES]
        if len(genres) == 1:
            out.append(dict(r, genre=genres[0]))
    return out


# Heads fitted on a teacher's song-level probabilities (experiments/default_model.sh), and the
# teacher-label folder (a sibling of --labels) they are judged against; the backbones' own tags
# ("backbone") are MTT_musicnn's.
TEACHER_HEADS = {"tags": "MTT_musicnn", "msd": "MSD_musicnn"}


def song_features(bundle: str, paths: list[str], scored: np.ndarray, cache_dir: str | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """{"all" | "backbones" | "<scale>/L<k>" | "<scale>": (n, D)} song vectors ("mel": the spectral level, and
    "backbones": all but it, when the bundle has it) (through `samplecnn fit`'s song-vector
    cache, so vectors fit already extracted are reused) and, for the songs where ``scored`` is
    True, {"backbone" | head: (m, K)} song scores: the backbones' own (mean over scales), and
    each of the bundle's heads distilled from a teacher (:data:`TEACHER_HEADS`) that it has."""
    from samplecnn.runtime import Tagger
    from samplecnn.runtime.spectral import SPECTRAL
    from samplecnn.trainer.features import extract_song_vectors

    vectors, scores = {}, []
    with Tagger(bundle) as tagger:
        songs = extract_song_vectors(tagger, paths, cache_dir, desc="song vectors")
        if songs.errors:
            raise SystemExit(f"unreadable songs: {list(songs.errors.items())[:3]}")
        heads = [h for h in tagger.heads if h.spec.name in TEACHER_HEADS]
        head_scores = {h.spec.name: [] for h in heads}
        for levels_of in songs.levels:
            parts, backbone_parts = [], []
            for scale, levels in levels_of.items():
                for level, vector in sorted(levels.items()):
                    if scale != SPECTRAL:  # its one level is the "mel" row
                        vectors.setdefault(f"{scale}/L{level}", []).append(vector)
                        backbone_parts.append(vector)
                    parts.append(vector)
                vectors.setdefault(scale, []).append(np.concatenate([levels[k] for k in sorted(levels)]))
            vectors.setdefault("all", []).append(np.concatenate(parts))
            if SPECTRAL in levels_of:  # the backbones' levels alone: the paper's song vector
                vectors.setdefault("backbones", []).append(np.concatenate(backbone_parts))
        for f in tagger.features([p for p, keep in zip(paths, scored) if keep]):
            if not f.ok:
                raise SystemExit(f"{f.path}: {f.error}")
            scores.append(f.backbone_scores)
            for h in heads:
                head_scores[h.spec.name].append(h.song(f.levels))
    song_scores = {"backbone": np.stack(scores) if scores else None, **{k: np.stack(v) for k, v in head_scores.items() if v}}
    return {k: np.stack(v) for k, v in vectors.items()}, song_scores


def teacher_song_arrays(label_dir: Path, corpora: list[str], paths: list[str], name: str) -> np.ndarray:
    """(n, D) song means of teacher array ``name`` for ``paths`` (from the teacher-label files)."""
    from samplecnn.trainer.targets import read_teacher_labels

    by_path = {}
    for corpus in corpora:
        labels = read_teacher_labels(label_dir / f"{corpus}.safetensors")
        for i, entry in enumerate(labels.files):
            by_path[str(entry.path)] = labels.song_target(i, name)
    return np.stack([by_path[p] for p in paths])


def transfer_tasks() -> dict[str, tuple[list[dict], str, str, list[str]]]:
    """{task: (rows, label column, fold-group column, teacher-label corpora)}: the transfer tasks,
    shared by this script and the probes in experiments/probes/."""
    mer4q, synth = read_rows("mer4q"), read_rows("synthtags")
    corpora = ["mer4q-train", "mer4q-valid", "mer4q-test"]
    return {"mer4q_quadrant": (mer4q, "quadrant", "artist", corpora), "mer4q_genre": (genre_rows(mer4q), "genre", "artist", corpora),
            "synthtags_style": (synth, "style", "source", ["synthtags"])}


def probe_tasks(extract, bundle: str, cache_dir: str | None):
    """For the probes: per transfer task, (task, [extract(path) per song], the bundle's song
    vectors 'all', labels, fold groups); ``extract`` runs once per song across tasks."""
    memo = {}
    for task, (rows, column, group_column, _) in transfer_tasks().items():
        paths = [r["path"] for r in rows]
        started = time.time()
        for path in paths:
            if path not in memo:
                memo[path] = extract(path)
        print(f"{task}: {extract.__name__} of {len(paths)} songs, {time.time() - started:.1f} s", flush=True)
        vectors, _ = song_features(bundle, paths, np.zeros(len(paths), bool), cache_dir)
        yield task, [memo[p] for p in paths], vectors["all"], np.array([r[column] for r in rows]), [r[group_column] for r in rows]


def group_folds(labels: np.ndarray, groups: list[str], seed: int) -> np.ndarray:
    """Fold index per item: whole groups to folds, each group to the fold with fewest of its class."""
    rng = np.random.default_rng(seed)
    unique = sorted(set(groups))
    rng.shuffle(unique)
    classes = sorted(set(labels))
    counts = np.zeros((FOLDS, len(classes)))
    fold_of = {}
    by_group = {}
    for item, group in enumerate(groups):
        by_group.setdefault(group, []).append(item)
    for group in sorted(unique, key=lambda g: -len(by_group[g])):  # big groups first, ties in shuffled order
        members = by_group[group]
        # the group's most frequent class; ties go to the first class in sorted order (iterating
        # a set of strings instead followed PYTHONHASHSEED, so folds changed between processes)
        cls = classes.index(max(sorted(set(labels[members])), key=list(labels[members]).count))
        fold = int(np.argmin(counts[:, cls] + 1e-3 * counts.sum(axis=1)))
        fold_of[group] = fold
        counts[fold, cls] += len(members)
    return np.array([fold_of[g] for g in groups])


def logistic_accuracy(x: np.ndarray, y: np.ndarray, folds: np.ndarray, l2: float = 1e-2) -> float:
    """Accuracy over the folds of standardise + multinomial logistic regression (LBFGS)."""
    import torch

    torch.set_num_threads(1)
    classes = sorted(set(y))
    target = torch.tensor([classes.index(v) for v in y])
    correct = 0
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        mean, std = x[train].mean(0), x[train].std(0) + 1e-6
        xt = torch.tensor((x[train] - mean) / std, dtype=torch.float64)
        xv = torch.tensor((x[test] - mean) / std, dtype=torch.float64)
        w = torch.zeros(x.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
        b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xt @ w + b, target[train]) + l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            correct += int(((xv @ w + b).argmax(1) == target[test]).sum())
    return correct / len(y)


def transfer(features: dict[str, np.ndarray], y: np.ndarray, groups: list[str]) -> dict[str, dict]:
    out = {}
    for name, x in features.items():
        scores = [logistic_accuracy(x, y, group_folds(y, groups, seed)) for seed in range(REPEATS)]
        out[name] = {"accuracy": float(np.mean(scores)), "std": float(np.std(scores)), "dims": int(x.shape[1])}
        print(f"  {name:28s} {out[name]['accuracy']:.4f} +- {out[name]['std']:.4f} ({x.shape[1]} dims)", flush=True)
    return out


def agreement(student: np.ndarray, teacher: np.ndarray) -> dict:
    from samplecnn.trainer.distill import teacher_agreement

    m = teacher_agreement(student, teacher)
    return {"top5_roc_auc": m["roc_auc"], "top5_pr_auc": m["pr_auc"], "correlation": m["teacher_correlation"], "songs": len(student)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="the distilled bundle")
    parser.add_argument("--baseline", action="append", default=[], help="NAME=BUNDLE to compare (repeatable)")
    parser.add_argument("--labels", required=True, help="teacher-label folder (MTT_musicnn/<corpus>.safetensors)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cache-dir", default=None, help="song-vector cache shared with `samplecnn fit` (default: none)")
    parser.add_argument("--import-row", action="append", default=[],
                        help="'NAME=RESULT.json#ROW': a transfer row of an earlier run of this script (same protocol and folds), "
                             "e.g. a previous model's 'student all' (repeatable)")
    args = parser.parse_args()
    label_dir = Path(args.labels)
    started = time.time()
    result = {"bundle": args.bundle, "protocol": f"standardise + logistic regression, stratified group {FOLDS}-fold x {REPEATS}"}
    tasks = transfer_tasks()
    bundles = {"student": args.bundle, **dict(b.split("=", 1) for b in args.baseline)}
    for task, (rows, column, group_column, corpora) in tasks.items():
        paths = [r["path"] for r in rows]
        y = np.array([r[column] for r in rows])
        groups = [r[group_column] for r in rows]
        features, probs = {}, {}

        def probs_of(folder: Path) -> np.ndarray:  # a teacher's song-mean probabilities, read once per task
            if folder not in probs:
                probs[folder] = teacher_song_arrays(folder, corpora, paths, "probs")
            return probs[folder]

        test = np.array([r["split"] == "test" for r in rows]) if task == "mer4q_quadrant" else np.zeros(len(rows), bool)
        for name, bundle in bundles.items():
            vectors, scores = song_features(bundle, paths, test if name == "student" else np.zeros(len(rows), bool), args.cache_dir)
            if name == "student":
                features.update({f"student {k}": v for k, v in vectors.items()})
                if test.any():
                    for head, values in scores.items():  # "backbone" (mean over scales) and the teacher heads
                        teacher = probs_of(label_dir.parent / TEACHER_HEADS.get(head, label_dir.name))
                        key = "teacher_agreement_mer4q_test" + ("" if head == "backbone" else f"_{head}_head")
                        result[key] = agreement(values, teacher[test])
                        print(f"teacher agreement (mer4q test, {head}):", result[key], flush=True)
            else:
                features[f"{name} all"] = vectors["all"]
        features["musicnn penultimate"] = teacher_song_arrays(label_dir, corpora, paths, "penultimate")
        features["musicnn taggram"] = probs_of(label_dir)
        msd = label_dir.parent / TEACHER_HEADS["msd"]
        if all((msd / f"{c}.safetensors").exists() for c in corpora):
            features["musicnn MSD penultimate"] = teacher_song_arrays(msd, corpora, paths, "penultimate")
        print(f"{task} ({len(rows)} songs, {len(set(y))} classes):", flush=True)
        result[task] = transfer(features, y, groups)
        for spec in args.import_row:
            name, _, source = spec.partition("=")
            file, _, row = source.partition("#")
            earlier = json.loads(Path(file).read_text()).get(task, {})
            if row in earlier:  # an earlier run may not have had this task
                result[task][name] = {**earlier[row], "imported_from": f"{file}#{row}"}
    result["seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
