"""Resumable training state: the plateau schedule and the optimizer, stored as safetensors
(tensors) + JSON metadata (param groups, scalars, schedule, history, config); no pickles."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

STATE_FORMAT = "samplecnn-train-state"


class StateError(ValueError):
    """A missing or foreign training-state file."""


@dataclass
class PlateauSchedule:
    """lr / factor after ``patience`` epochs without a lower valid loss; stop after ``max_plateaus``."""

    lr: float
    patience: int = 3
    factor: float = 5.0
    max_plateaus: int = 4
    best_loss: float = math.inf
    bad_epochs: int = 0
    plateaus: int = 0
    stopped: bool = False

    def step(self, valid_loss: float) -> str | None:
        """Record one epoch's valid loss; returns "decay", "stop" or None."""
        if valid_loss < self.best_loss:
            self.best_loss, self.bad_epochs = valid_loss, 0
            return None
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return None
        self.bad_epochs = 0
        self.plateaus += 1
        if self.plateaus >= self.max_plateaus:
            self.stopped = True
            return "stop"
        self.lr /= self.factor
        return "decay"


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{param_id}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict, device: str) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = value if key == "step" else value.to(device)
    for name, value in meta["scalars"].items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_state(path: Path, optimizer, schedule: PlateauSchedule, epoch: int, history: list, best: dict,
               config) -> None:  # fmt: skip
    """Everything ``--resume`` needs besides the weights (in last.safetensors); atomic."""
    tensors, optimizer_meta = optimizer_tensors(optimizer)
    metadata = {
        "format": STATE_FORMAT,
        "optimizer": json.dumps(optimizer_meta),
        "schedule": json.dumps(dataclasses.asdict(schedule)),
        "epoch": str(epoch),
        "history": json.dumps(history),
        "best": json.dumps(best),
        "config": json.dumps(dataclasses.asdict(config)),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors or {"empty": torch.zeros(0)}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if not path.is_file():
        raise StateError(f"{path}: no training state to resume; run without --resume to start this run")
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "empty"}
    if metadata.get("format") != STATE_FORMAT:
        raise StateError(f"{path}: not a samplecnn training state file")
    return tensors, metadata
