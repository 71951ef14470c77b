"""Distillation: train a backbone on a teacher's soft targets (teacher-label files).

The dataset is the audio the label files describe; each random crop's target is the teacher's
overlap-weighted tag probabilities over the windows the crop overlaps (BCE on soft targets).
Optionally the student also regresses the teacher's per-window features (e.g. musicnn's
penultimate layer, or its max+mean pooled mid-level features) from the concatenation of its
multi-level outputs through a linear map (:class:`FeatureHead`, training only: the exported
backbone is unchanged). Teacher features are standardised per dimension with the training
windows' mean and standard deviation, so the MSE weighs every dimension alike.

Evaluation is teacher agreement on held-out songs: macro ROC-AUC / PR-AUC of the student's
song-level scores taking each song's top-5 teacher tags (song mean over windows) as positives,
and the Pearson correlation of student and teacher song-level scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from .batches import _segment as crop_segment
from .cache import CachedClip
from .data import Clip, Dataset
from .metrics import evaluate
from .targets import PROBS, TargetsError, TeacherLabels, check_audio_length, read_teacher_labels

TOP_K_POSITIVES = 5  # song-level positives for teacher agreement: the teacher's 5 highest tags


@dataclass(frozen=True)
class TargetRef:
    """Where a clip's teacher windows live: label file ``labels`` index, file ``index``."""

    labels: int
    index: int


def top_k_target(probs: np.ndarray, k: int = TOP_K_POSITIVES) -> np.ndarray:
    """(K,) 0/1 float32 marking the ``k`` largest teacher probabilities."""
    target = np.zeros(len(probs), dtype=np.float32)
    target[np.argsort(-probs, kind="stable")[:k]] = 1.0
    return target


class TeacherSet:
    """Every teacher-label file of a run: tags, clips per split, crop targets, feature statistics."""

    def __init__(self, train_files: list[str], valid_files: list[str], test_files: list[str]) -> None:
        self.files = {s: [read_teacher_labels(p) for p in paths] for s, paths in
                      (("train", train_files), ("valid", valid_files), ("test", test_files))}  # fmt: skip
        all_labels = [lab for labs in self.files.values() for lab in labs]
        if not self.files["train"]:
            raise TargetsError("distillation needs at least one training teacher-label file (--targets)")
        first = all_labels[0]
        for other in all_labels[1:]:
            if other.tags != first.tags:
                raise TargetsError(f"{other.source}: its tags differ from {first.source}'s; use one teacher's files")
        self.tags = first.tags
        self.teacher = first.teacher
        self.labels: list[TeacherLabels] = all_labels
        self.feature_names = sorted(set.intersection(*(set(lab.feature_names) for lab in all_labels)))

    def dataset(self, soft: bool = False) -> tuple[Dataset, dict[Path, TargetRef]]:
        """A tags Dataset and each clip's teacher windows. Targets: the top-5 teacher tags per
        song, or with ``soft`` the song means of the teacher's probabilities (``samplecnn fit
        --targets``: a song-level head distilled from the teacher)."""
        refs, splits, offset = {}, {}, 0
        for split, labs in self.files.items():
            clips = []
            for labs_index, lab in enumerate(labs, start=offset):
                for index, entry in enumerate(lab.files):
                    path = entry.path
                    if not path.exists():
                        raise TargetsError(f"{lab.source}: labels {path}, which does not exist; "
                                           "fix the path or relabel the corpus")  # fmt: skip
                    if path in refs:
                        raise TargetsError(f"{lab.source}: {path} is also labelled in another teacher-label file")
                    refs[path] = TargetRef(labs_index, index)
                    song = lab.song_target(index).astype(np.float32)
                    clips.append(Clip(path, song if soft else top_k_target(song)))
            offset += len(labs)
            splits[split] = clips
        hours = sum(f.seconds for lab in self.labels for f in lab.files) / 3600
        targets = "song means of the teacher's probabilities" if soft else f"valid/test targets: top-{TOP_K_POSITIVES} teacher tags per song"
        notes = [f"teacher {self.teacher.get('model', self.teacher)}: {len(self.labels)} label files, {hours:.1f} h of audio; {targets}"]
        name = "teacher:" + str(self.teacher.get("model", "?"))
        return Dataset(name, list(self.tags), "tags", splits, notes, soft_targets=soft), refs

    def feature_stats(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) per dimension of features ``names`` (concatenated) over the training windows."""
        means, stds = [], []
        for name in names:
            rows = np.concatenate([lab.arrays[name] for lab in self.files["train"]]).astype(np.float64)
            means.append(rows.mean(axis=0))
            stds.append(np.maximum(rows.std(axis=0), 1e-3))
        return np.concatenate(means).astype(np.float32), np.concatenate(stds).astype(np.float32)

    def check_lengths(self, clips: dict[str, list[CachedClip]], refs: dict[Path, TargetRef], sample_rate: int) -> None:
        """Refuse label files whose audio decodes to another length than they were labelled for."""
        for split_clips in clips.values():
            for clip in split_clips:
                ref = refs[clip.path]
                check_audio_length(self.labels[ref.labels], ref.index, clip.n_samples, sample_rate)

    def song_targets(self, clips: list[CachedClip], refs: dict[Path, TargetRef]) -> np.ndarray:
        """(n_clips, K) teacher song-level probabilities of ``clips``."""
        return np.stack([self.labels[refs[c.path].labels].song_target(refs[c.path].index) for c in clips])


CROP_SECONDS_UNIT = 30.0  # crops_per_clip counts crops per 30 s of audio (an MTAT clip's length)


class DistillCrops(TorchDataset):
    """Random crops with teacher targets: item -> (waveform (L,), probs (K,), features (D,) or (0,)).

    Unlabelled corpora mix 30 s previews with 10-minute game tracks, so a file gets crops in
    proportion to its length: ``crops_per_clip`` per 30 s, at least one.
    """

    def __init__(self, clips: list[CachedClip], refs: dict[Path, TargetRef], teacher: TeacherSet,
                 segment_samples: int, sample_rate: int, crops_per_clip: int, seed: int,
                 features: list[str], feature_stats: tuple[np.ndarray, np.ndarray] | None) -> None:  # fmt: skip
        self.clips, self.refs, self.teacher = clips, refs, teacher
        self.segment_samples, self.sample_rate = segment_samples, sample_rate
        self.seed, self.epoch = seed, 0
        self.features, self.feature_stats = features, feature_stats
        counts = [max(1, round(crops_per_clip * c.n_samples / sample_rate / CROP_SECONDS_UNIT)) for c in clips]
        self.owner = np.repeat(np.arange(len(clips)), counts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, item: int):
        clip = self.clips[int(self.owner[item])]
        room = max(0, clip.n_samples - self.segment_samples)
        start = int(np.random.default_rng((self.seed, self.epoch, item)).integers(0, room + 1))
        out = crop_segment(clip, start, self.segment_samples)  # the trainer's one cropping rule
        ref = self.refs[clip.path]
        labels = self.teacher.labels[ref.labels]
        start_s, length_s = start / self.sample_rate, self.segment_samples / self.sample_rate
        probs = labels.crop_target(ref.index, start_s, length_s, PROBS)
        if not self.features:
            features = np.zeros(0, dtype=np.float32)
        else:
            mean, std = self.feature_stats
            raw = [labels.crop_target(ref.index, start_s, length_s, name) for name in self.features]
            features = (np.concatenate(raw) - mean) / std
        return torch.from_numpy(out), torch.from_numpy(probs), torch.from_numpy(features.astype(np.float32))


class FeatureHead(torch.nn.Module):
    """Linear map from the concatenated levels (B, sum of level widths) to teacher features (B, D)."""

    def __init__(self, level_widths: list[int], feature_width: int) -> None:
        super().__init__()
        self.project = torch.nn.Linear(sum(level_widths), feature_width)

    def forward(self, outputs: dict[str, torch.Tensor], level_names: list[str]) -> torch.Tensor:
        return self.project(torch.cat([outputs[name] for name in level_names], dim=1))


def distill_loss(outputs: dict[str, torch.Tensor], probs: torch.Tensor, features: torch.Tensor,
                 head: FeatureHead | None, level_names: list[str], feature_weight: float) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """BCE on soft targets (+ ``feature_weight`` x MSE of the projected levels); returns (loss, parts)."""
    tag_loss = torch.nn.functional.binary_cross_entropy_with_logits(outputs["logits"].float(), probs)
    if head is None:
        return tag_loss, {"tag_loss": tag_loss.item()}
    feature_loss = torch.nn.functional.mse_loss(head(outputs, level_names).float(), features)
    return tag_loss + feature_weight * feature_loss, {"tag_loss": tag_loss.item(), "feature_loss": feature_loss.item()}


def teacher_agreement(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """Song-level agreement of (n, K) student scores with (n, K) teacher probabilities: macro
    ROC-AUC / PR-AUC taking each song's top-5 teacher tags as its positives, and the score
    correlation (:func:`score_correlation`)."""
    metrics = evaluate(np.stack([top_k_target(t) for t in teacher]), student, "tags")
    return {"roc_auc": metrics["roc_auc"], "pr_auc": metrics["pr_auc"], "n_labels_scored": metrics["n_labels_scored"],
            "teacher_correlation": score_correlation(student, teacher)}


def score_correlation(student: np.ndarray, teacher: np.ndarray) -> float:
    """Pearson correlation of song-level scores, all songs and tags together."""
    a, b = student.ravel() - student.mean(), teacher.ravel() - teacher.mean()
    return float(a @ b / max(np.sqrt((a @ a) * (b @ b)), 1e-12))

