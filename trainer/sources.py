"""Where a labelled dataset comes from: one declaration for every command that reads one.

:class:`DatasetSource` is the dataset part of a command's options (``samplecnn fit`` today;
``train`` can inherit it the same way), and the ``*Option`` aliases below are its typer
options, declared once::

    @app.command()
    def fit(mtat: MtatOption = None, ...):
        source = DatasetSource(mtat=mtat, ...)
        dataset = source.load(seed=0)           # trainer.data.Dataset with train/valid/test

Light on purpose (typer and dataclasses only): ``cli.py`` imports it at start-up, and
``samplecnn infer`` must stay torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Optional

import typer


class DatasetSourceError(ValueError):
    """Not exactly one dataset, or a split list given where it cannot apply."""


@dataclass(kw_only=True)
class DatasetSource:
    """Exactly one of ``manifest`` (CSV ``path,<label_column>[,...]``), ``mtat`` or ``gtzan``,
    plus how to read it. Defaults match the CLI's."""

    manifest: str | None = None  # train split; valid.csv / test.csv beside a train.csv are used
    mtat: str | None = None  # MagnaTagATune folder (annotations_final.csv + 0..f/)
    gtzan: str | None = None  # GTZAN folder (genres/<genre>/<genre>.000NN.wav)
    valid: str | None = None  # manifest of the valid split
    test: str | None = None  # manifest of the test split
    label_column: str = "tags"
    task: str | None = None  # "tags" | "classes" | None: inferred from the column
    tags_file: str | None = None  # MTAT tag list (default: the top 50)
    split_lists: dict[str, str] = field(default_factory=dict)  # MTAT/GTZAN: split -> list file
    valid_fraction: float = 0.1  # held out of train when there is no valid split
    max_clips: int | None = None  # at most this many clips per split
    targets: list[str] = field(default_factory=list)  # teacher-label files of train (soft targets: song means)
    valid_targets: list[str] = field(default_factory=list)
    test_targets: list[str] = field(default_factory=list)

    def check_source(self) -> None:
        given = {k: v for k, v in (("a CSV manifest", self.manifest), ("--mtat", self.mtat), ("--gtzan", self.gtzan),
                                   ("--targets", self.targets)) if v}  # fmt: skip
        if len(given) != 1:
            what = f"got {', '.join(given)}" if given else "got none"
            raise DatasetSourceError(f"give exactly one dataset: a CSV manifest, --mtat DIR, --gtzan DIR or --targets FILE ({what})")
        if (self.valid_targets or self.test_targets) and not self.targets:
            raise DatasetSourceError("--valid-targets / --test-targets need --targets FILE (the training teacher-label files)")
        if self.manifest and self.split_lists:
            raise DatasetSourceError(f"split lists {sorted(self.split_lists)} apply to --mtat / --gtzan; a CSV manifest names its splits with --valid / --test")

    def load(self, seed: int = 0):
        """The :class:`samplecnn.trainer.data.Dataset` this names, with a held-out valid split if it has none."""
        from .data import holdout, limit_clips, read_gtzan, read_manifest_splits, read_mtat, read_tag_list

        self.check_source()
        if self.targets:
            from .distill import TeacherSet
            from .targets import TargetsError

            try:
                dataset = TeacherSet(self.targets, self.valid_targets, self.test_targets).dataset(soft=True)[0]
            except TargetsError as exc:
                raise DatasetSourceError(str(exc)) from exc
        elif self.manifest:
            dataset = read_manifest_splits(self.manifest, self.valid, self.test, self.label_column, self.task)
        elif self.mtat:
            tags = read_tag_list(self.tags_file) if self.tags_file else None
            dataset = read_mtat(self.mtat, split_lists=self.split_lists or None, **({"tags": tags} if tags else {}))
        else:
            dataset = read_gtzan(self.gtzan, split_lists=self.split_lists or None)
        if not dataset.split("valid"):
            dataset = holdout(dataset, self.valid_fraction, seed)
        return limit_clips(dataset, self.max_clips, seed) if self.max_clips else dataset


def split_lists(train: str | None, valid: str | None, test: str | None) -> dict[str, str]:
    """{split: list file} of the ``--train-list`` / ``--valid-list`` / ``--test-list`` options given."""
    return {k: v for k, v in (("train", train), ("valid", valid), ("test", test)) if v}


# typer options of DatasetSource, declared once (help texts say the defaults above).
DatasetOption = Annotated[Optional[str], typer.Option("--dataset", "-d", help="CSV manifest 'path,tags[,...]' of the train split (valid.csv/test.csv beside a train.csv are used).")]
MtatOption = Annotated[Optional[str], typer.Option("--mtat", help="MagnaTagATune folder (annotations_final.csv + 0..f/) instead of a manifest.")]
GtzanOption = Annotated[Optional[str], typer.Option("--gtzan", help="GTZAN folder (genres/<genre>/<genre>.000NN.wav) instead of a manifest.")]
ValidOption = Annotated[Optional[str], typer.Option("--valid", help="Manifest of the valid split (default: valid.csv beside train.csv, else 10% held out).")]
TestOption = Annotated[Optional[str], typer.Option("--test", help="Manifest of the test split (default: test.csv beside train.csv).")]
LabelColumnOption = Annotated[str, typer.Option("--label-column", help="Manifest column holding the labels (';'-separated), e.g. tags, style, quadrant.")]
TaskOption = Annotated[Optional[str], typer.Option("--task", help="tags (multi-label: sigmoid + BCE) or classes (one label: softmax + CE); default: inferred.")]
TagsFileOption = Annotated[Optional[str], typer.Option("--tags-file", help="MTAT: tag list file, one per line (default: the top 50).")]
TrainListOption = Annotated[Optional[str], typer.Option("--train-list", help="MTAT/GTZAN: list file of the train split.")]
ValidListOption = Annotated[Optional[str], typer.Option("--valid-list", help="MTAT/GTZAN: list file of the valid split.")]
TestListOption = Annotated[Optional[str], typer.Option("--test-list", help="MTAT/GTZAN: list file of the test split.")]
TargetsOption = Annotated[Optional[list[str]], typer.Option("--targets", help="Distil: a teacher-label file (repeatable; experiments/teacher_musicnn.py writes them) instead of a labelled dataset.")]
ValidTargetsOption = Annotated[Optional[list[str]], typer.Option("--valid-targets", help="Distil: teacher-label files of the valid split (default: 10% of --targets' files held out).")]
TestTargetsOption = Annotated[Optional[list[str]], typer.Option("--test-targets", help="Distil: teacher-label files of the test split (teacher agreement on songs held out of training).")]
MaxClipsOption = Annotated[Optional[int], typer.Option("--max-clips", help="At most this many clips per split (quick runs).")]
