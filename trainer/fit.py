"""`samplecnn fit`: song-level classifier heads on multi-level, multi-scale song vectors.

    vectors = split_vectors(tagger, dataset, cache_dir)       # runtime features, cached
    report = fit_head(vectors, dataset, scales, levels, ...)  # train + evaluate one head
    add_head(bundle_root, report, name="quadrant")            # write it into the bundle

This is also the transfer-learning step of Lee & Nam (2017): backbones pre-trained on one
dataset's tags, the classifier trained on another label (or dataset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.bundle import HeadSpec
from ..runtime.bundle_write import add_head as write_head
from .data import Dataset
from .features import FeatureError, SongVectors, extract_song_vectors
from .metrics import evaluate
from .song_classifier import ClassifierConfig, FittedClassifier, fit_classifier

HEAD_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class FitError(ValueError):
    """A fit request that cannot run: labels, splits or classes that do not fit."""


@dataclass
class FitReport:
    """One fitted head and how well it does."""

    task: str
    labels: list[str]
    scales: list[str]
    levels: list[int]
    classifier: FittedClassifier
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> metric -> value
    n_songs: dict[str, int] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def input_width(self) -> int:
        return int(self.classifier.mean.shape[0])


def split_vectors(
    tagger, dataset: Dataset, cache_dir: str | Path | None, log=print, failed: dict | None = None
) -> dict[str, tuple[SongVectors, np.ndarray]]:
    """{split: (vectors, targets of the songs that succeeded)} for every non-empty split.

    Failed files are logged, added to ``failed`` ({path: why}) and left out; a split where
    every file fails is a FeatureError.
    """
    out = {}
    for split, clips in dataset.splits.items():
        if not clips:
            continue
        vectors = extract_song_vectors(tagger, [c.path for c in clips], cache_dir, desc=f"features {split}")
        for path, error in vectors.errors.items():
            log(f"skipped {path}: {error}")
            if failed is not None:
                failed[str(path)] = str(error)
        if not vectors.ok.any():
            raise FeatureError(f"every file of the {split} split failed ({len(clips)} files); first: {list(vectors.errors.items())[:2]}")
        targets = np.stack([c.target for c, ok in zip(clips, vectors.ok) if ok])
        out[split] = (vectors, targets)
    return out


def check_labels(dataset: Dataset, splits: dict[str, tuple[SongVectors, np.ndarray]]) -> None:
    """Refuse splits a classifier cannot learn from or be judged on."""
    for needed in ("train", "valid"):
        if needed not in splits:
            raise FitError(f"the {needed} split is empty; give a {needed} manifest or let fit hold out part of train")
    counts = splits["train"][1].sum(axis=0)
    if dataset.task == "classes":
        missing = [label for label, n in zip(dataset.labels, counts) if n == 0]
        if missing:
            raise FitError(f"classes with no training example: {missing}; drop them from the label column or add songs")
    elif counts.sum() == 0:
        raise FitError("no training song has any tag; check --label-column")


def fit_head(
    splits: dict[str, tuple[SongVectors, np.ndarray]],
    dataset: Dataset,
    scales: list[str],
    levels: list[int],
    config: ClassifierConfig = ClassifierConfig(),
) -> FitReport:
    """Train on "train", stop early on "valid", report metrics on every split present."""
    check_labels(dataset, splits)
    x = {s: v.matrix(scales, levels) for s, (v, _) in splits.items()}
    y = {s: t for s, (_, t) in splits.items()}
    classifier = fit_classifier(x["train"], y["train"], x["valid"], y["valid"], dataset.task, config)
    if dataset.soft_targets:  # a head distilled from a teacher: judged by its agreement with the teacher
        from .distill import teacher_agreement

        metrics = {s: teacher_agreement(classifier.predict(x[s]), y[s]) for s in x}
    else:
        metrics = {s: evaluate(y[s], classifier.predict(x[s]), dataset.task) for s in x}
    return FitReport(
        dataset.task, list(dataset.labels), list(scales), list(levels), classifier, metrics,
        {s: int(len(t)) for s, t in y.items()}, config.to_dict(),
    )


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    k: int,
    groups: np.ndarray | None = None,
    config: ClassifierConfig = ClassifierConfig(),
    seed: int = 0,
) -> dict[str, float]:
    """k-fold cross-validation (grouped: no group in two folds). Returns mean and std of each metric.

    Within each training fold a tenth (by group) is held out for early stopping.
    """
    if k < 2:
        raise FitError(f"k = {k}: cross-validation needs at least 2 folds")
    keys = np.asarray(groups) if groups is not None else np.arange(len(x))
    unique = np.unique(keys)
    if len(unique) < k:
        raise FitError(f"{len(unique)} groups cannot make {k} folds")
    rng = np.random.default_rng(seed)
    fold_of_group = dict(zip(rng.permutation(unique), np.arange(len(unique)) % k))
    fold = np.array([fold_of_group[g] for g in keys])
    results = []
    for f in range(k):
        test = fold == f
        train_groups = np.unique(keys[~test])
        inner_valid = set(rng.permutation(train_groups)[: max(1, len(train_groups) // 10)])
        valid = ~test & np.isin(keys, list(inner_valid))
        train = ~test & ~valid
        classifier = fit_classifier(x[train], y[train], x[valid], y[valid], task, config)
        results.append(evaluate(y[test], classifier.predict(x[test]), task))
    names = [n for n in results[0] if isinstance(results[0][n], float)]
    summary = {f"{n}_mean": float(np.nanmean([r[n] for r in results])) for n in names}
    summary.update({f"{n}_std": float(np.nanstd([r[n] for r in results])) for n in names})
    summary["folds"] = k
    return summary


def check_head_name(name: str) -> None:
    if not name or set(name) - HEAD_NAME_CHARS:
        raise FitError(f"head name {name!r}: use lower-case letters, digits, '-' and '_' (e.g. 'tags', 'genre')")


def add_head(bundle_root: str | Path, report: FitReport, name: str, extra: dict | None = None) -> Path:
    """Write ``report``'s classifier into the bundle as head ``name`` (replacing one of that name).

    :func:`samplecnn.runtime.bundle_write.add_head` does the writing: a content-addressed head
    file, then the manifest (every hash) replaced atomically, then the old file removed.
    """
    check_head_name(name)
    c = report.classifier
    spec = HeadSpec(
        name=name, task=report.task, labels=tuple(report.labels), file="", scales=tuple(report.scales),
        levels=tuple(report.levels), input_width=report.input_width,
        metrics={"splits": report.metrics, "n_songs": report.n_songs, "classifier": report.config, **(extra or {})},
    )  # fmt: skip
    return write_head(bundle_root, spec, c.mean, c.std, c.layers)
