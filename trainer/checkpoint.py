"""Checkpoints: one safetensors file holding the weights, with the config, labels and training
record as JSON in its metadata, so a model is rebuilt from the file alone (no pickles)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from ..runtime.atomic import atomic_path
from .model import BackboneConfig, SampleCNN

FORMAT = "samplecnn-backbone"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a samplecnn backbone checkpoint, or one this version cannot read."""


@dataclass
class Checkpoint:
    """A backbone with its labels and the record of how it was trained."""

    config: BackboneConfig
    labels: list[str]
    state_dict: dict[str, torch.Tensor]
    training: dict = field(default_factory=dict)  # dataset, epochs, metrics, seed, ...

    def build_model(self) -> SampleCNN:
        """A SampleCNN in eval mode with these weights."""
        model = SampleCNN(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(path: str | Path, model: SampleCNN, labels: list[str], training: dict | None = None) -> Path:
    """Write ``model`` atomically to ``path`` (a .safetensors file)."""
    path = Path(path)
    if len(labels) != model.config.n_tags:
        raise ValueError(f"{len(labels)} labels for a model with {model.config.n_tags} tags")
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": model.config.to_json(),
        "labels": json.dumps(list(labels)),
        "training": json.dumps(training or {}, sort_keys=True),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({exc}); pass a file written by `samplecnn train`") from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: safetensors file without samplecnn backbone metadata; pass a file written by `samplecnn train`")
    if int(metadata.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {metadata['format_version']} is newer than this samplecnn "
            f"reads ({FORMAT_VERSION}); upgrade samplecnn"
        )
    return metadata


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; raises CheckpointError if it is not one."""
    metadata = read_metadata(path)
    config = BackboneConfig.from_dict(json.loads(metadata["config"]))
    return Checkpoint(
        config=config,
        labels=json.loads(metadata["labels"]),
        state_dict=load_file(str(path)),
        training=json.loads(metadata.get("training", "{}")),
    )

