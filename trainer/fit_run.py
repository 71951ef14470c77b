"""What `samplecnn fit` does, as one function users can call: :func:`run_fit`."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.tagger import Tagger
from .ablation import ablation_rows, best_gain, save_ablation, to_markdown
from .data import Dataset
from .fit import FitError, add_head, check_head_name, cross_validate, fit_head, split_vectors
from .song_classifier import ClassifierConfig
from .sources import DatasetSource, DatasetSourceError


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "samplecnn" / "features"


@dataclass(kw_only=True)
class FitOptions(DatasetSource):
    """Options of `samplecnn fit`: the dataset (:class:`DatasetSource`, declared once) and these."""

    bundle: str
    name: str | None = None  # head name; default: the label column
    scales: list[str] | None = None  # default: every scale of the bundle
    levels: list[int] | None = None  # default: every level of the bundle
    kfold: int = 0  # > 1: also report k-fold cross-validation on train + valid
    group_column: str | None = None  # CSV column keeping a group (artist, piece) in one fold
    ablation: str | None = None  # path prefix for the ablation table (.json, .md)
    write: bool = True  # False: evaluate only, leave the bundle as it is
    cache_dir: str | None = None
    precision: str = "fp32"
    threads: int | None = None
    batch_size: int | None = None
    max_segments: int | None = None
    seed: int = 0
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)


def _dataset(options: FitOptions) -> Dataset:
    try:
        return options.load(seed=options.seed)
    except DatasetSourceError as exc:
        raise FitError(str(exc)) from exc


def read_groups(manifests: list[str | None], column: str) -> dict[Path, str]:
    """{resolved audio path: group} from the ``column`` of CSV manifests."""
    groups: dict[Path, str] = {}
    for manifest in filter(None, manifests):
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if column not in (reader.fieldnames or []):
                raise FitError(f"{manifest}: no group column {column!r}; columns: {reader.fieldnames}")
            for row in reader:
                groups[(Path(manifest).parent / row["path"]).resolve()] = row[column]
    return groups


def _selection(tagger: Tagger, options: FitOptions) -> tuple[list[str], list[int]]:
    names = list(tagger.bundle.spec.song_scales)  # the backbones, then "mel" when the bundle has the spectral level
    scales = options.scales or names
    unknown = [s for s in scales if s not in names]
    if unknown:
        raise FitError(f"scales {unknown} are not in the bundle; it has {names}")
    n_levels = min(len(s.level_outputs) for s in tagger.bundle.scales)
    levels = options.levels or list(range(1, n_levels + 1))
    bad = [lv for lv in levels if not 1 <= lv <= n_levels]
    if bad:
        raise FitError(f"levels {bad} do not exist; the bundle taps levels 1..{n_levels} (1 = last hidden layer)")
    return scales, levels


def run_fit(options: FitOptions, log=print) -> dict:
    """Extract song vectors, fit (and evaluate) a head, optionally k-fold and the ablation.

    Returns {"metrics", "report" (the FitReport), "kfold", "ablation", "head_file", "failed" ({path: why} of
    the files that could not be read and were left out)}; writes the head into the bundle unless
    ``options.write`` is False.
    """
    name = options.name or ("tags" if options.targets else options.label_column)
    check_head_name(name)
    if options.targets and (options.kfold > 1 or options.ablation):
        raise FitError("--kfold and --ablation score hard labels; with --targets (soft teacher targets) use the valid/test agreement")
    dataset = _dataset(options)
    log(dataset.describe())
    cache = options.cache_dir or default_cache_dir()
    with Tagger(options.bundle, precision=options.precision, threads=options.threads,
                batch_size=options.batch_size, max_segments=options.max_segments) as tagger:
        scales, levels = _selection(tagger, options)
        failed: dict[str, str] = {}
        splits = split_vectors(tagger, dataset, cache, log=log, failed=failed)
        available_levels = min(len(s.level_outputs) for s in tagger.bundle.scales)
        all_scales = [s.name for s in tagger.bundle.scales]
        has_spectral = tagger.bundle.spectral is not None
    result: dict = {"failed": failed}
    report = fit_head(splits, dataset, scales, levels, options.classifier)
    result["metrics"] = report.metrics
    result["report"] = report
    for split, m in report.metrics.items():
        log(f"{name} [{'+'.join(scales)} levels {levels}] {split}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    if options.kfold > 1:
        result["kfold"] = _kfold(splits, dataset, scales, levels, options)
        log(f"{options.kfold}-fold: " + ", ".join(f"{k} {v:.4f}" for k, v in result["kfold"].items() if k.endswith("_mean")))
    if options.ablation:
        rows = ablation_rows(splits, dataset, all_scales, available_levels, options.classifier, label="trained", log=log,
                             spectral=has_spectral)
        save_ablation(rows, dataset.task, options.ablation, title=f"{dataset.name} on {options.bundle}")
        result["ablation"] = {"rows": rows, "gain": best_gain(rows, dataset.task)}
        log(to_markdown(rows, dataset.task))
    if options.write:
        extra = {"dataset": dataset.name, "kfold": result.get("kfold")}
        result["head_file"] = str(add_head(options.bundle, report, name, extra))
        log(f"wrote head {name!r} into {options.bundle} ({result['head_file']})")
    return result


def _kfold(splits, dataset: Dataset, scales, levels, options: FitOptions) -> dict:
    """k-fold over train + valid together (the test split stays untouched)."""
    parts = [splits[s] for s in ("train", "valid") if s in splits]
    x = np.concatenate([v.matrix(scales, levels) for v, _ in parts])
    y = np.concatenate([t for _, t in parts])
    groups = None
    if options.group_column:
        by_path = read_groups([options.manifest, options.valid], options.group_column)
        paths = [p.resolve() for v, _ in parts for p, ok in zip(v.paths, v.ok) if ok]
        groups = np.array([by_path.get(p, str(p)) for p in paths])
    return cross_validate(x, y, dataset.task, options.kfold, groups, options.classifier, options.seed)
