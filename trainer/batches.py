"""Torch datasets over cached clips: random-offset crops for training, evenly spaced segments
(the runtime's rule, :func:`samplecnn.runtime.segments.segment_starts`) for evaluation.

Crop offsets come from a generator seeded by (seed, epoch, item), not from worker state, so a
run is reproducible whatever the number of DataLoader workers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..runtime.segments import segment_starts
from .cache import CachedClip


def _segment(clip: CachedClip, start: int, segment_samples: int) -> np.ndarray:
    audio = clip.audio()
    out = np.zeros(segment_samples, dtype=np.float32)
    piece = audio[start : start + segment_samples]
    out[: len(piece)] = piece  # shorter clips are zero-padded, as the runtime does
    return out


class CropDataset(Dataset):
    """``crops_per_clip`` random crops per clip per epoch: item -> (waveform (L,), target (K,))."""

    def __init__(self, clips: list[CachedClip], segment_samples: int, crops_per_clip: int = 1, seed: int = 0) -> None:
        if crops_per_clip < 1:
            raise ValueError(f"crops_per_clip = {crops_per_clip}: must be at least 1")
        self.clips = clips
        self.segment_samples = segment_samples
        self.crops_per_clip = crops_per_clip
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New crop offsets each epoch (workers are re-created per epoch and see this)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips) * self.crops_per_clip

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.clips[item // self.crops_per_clip]
        room = max(0, clip.n_samples - self.segment_samples)
        start = int(np.random.default_rng((self.seed, self.epoch, item)).integers(0, room + 1))
        return torch.from_numpy(_segment(clip, start, self.segment_samples)), torch.from_numpy(clip.target)


class SegmentDataset(Dataset):
    """Every evaluation segment of every clip: item -> (waveform (L,), clip index)."""

    def __init__(self, clips: list[CachedClip], segment_samples: int, max_segments: int | None = None) -> None:
        self.clips = clips
        self.segment_samples = segment_samples
        self.index = [
            (c, int(s))
            for c, clip in enumerate(clips)
            for s in segment_starts(clip.n_samples, segment_samples, max_segments)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        c, start = self.index[item]
        return torch.from_numpy(_segment(self.clips[c], start, self.segment_samples)), c


def train_loader(dataset: CropDataset, batch_size: int, workers: int, seed: int, epoch: int, pin: bool) -> DataLoader:
    """Shuffled batches of crops; the order depends only on (seed, epoch)."""
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=generator, num_workers=workers,
        pin_memory=pin, drop_last=len(dataset) > batch_size,
    )  # fmt: skip


def eval_loader(dataset: SegmentDataset, batch_size: int, workers: int, pin: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin)
