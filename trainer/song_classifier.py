"""The song-level classifier of Lee & Nam (2017): a small fully connected network on the
standardised multi-level, multi-scale song vector.

Trained here with torch; the result is a list of (weight, bias) arrays plus the
standardisation statistics, which ``samplecnn.runtime.heads`` applies with numpy.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

STD_EPS = 1e-6  # floor for a feature's std: constant features (dead ReLUs) stay finite


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters of the song-level classifier (stored in the bundle's head metrics)."""

    hidden: int = 512
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 20  # epochs without a better validation loss before stopping
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FittedClassifier:
    """Numpy weights in the runtime's head format (see samplecnn.runtime.heads)."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    layers: list[tuple[np.ndarray, np.ndarray]]  # [(W (out, in), b (out,)), ...]
    task: str
    best_epoch: int
    best_valid_loss: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, D) song vectors -> (n, C) scores: sigmoid for tags, softmax for classes."""
        from ..runtime.heads import sigmoid, softmax

        h = (np.asarray(x, np.float32) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return sigmoid(h) if self.task == "tags" else softmax(h)


def _network(d_in: int, n_out: int, config: ClassifierConfig) -> nn.Sequential:
    # Two hidden layers, ReLU, dropout (the paper's song-level MLP).
    return nn.Sequential(
        nn.Dropout(config.dropout / 2),
        nn.Linear(d_in, config.hidden),
        nn.ReLU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden, config.hidden),
        nn.ReLU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden, n_out),
    )


def _loss_fn(task: str):
    if task == "tags":
        return nn.BCEWithLogitsLoss()
    if task == "classes":
        return nn.CrossEntropyLoss()
    raise ValueError(f"task {task!r}: valid tasks are 'tags' and 'classes'")


def _targets(y: np.ndarray, task: str) -> torch.Tensor:
    """Tags: (n, C) 0/1 floats. Classes: (n, C) one-hot or (n,) indices -> (n,) int64."""
    y = np.asarray(y)
    if task == "tags":
        return torch.from_numpy(y.astype(np.float32))
    return torch.from_numpy((y.argmax(axis=1) if y.ndim == 2 else y).astype(np.int64))


def fit_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    task: str,
    config: ClassifierConfig = ClassifierConfig(),
) -> FittedClassifier:
    """Train on (n, D) song vectors and (n, C) labels; early stopping on the validation loss.

    Standardisation statistics come from ``x_train`` only. Runs single-threaded: the network
    is tiny, and torch's thread pool only spin-waits against other work on a busy machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(x_train, y_train, x_valid, y_valid, task, config)
    finally:
        torch.set_num_threads(threads)


def _fit(x_train, y_train, x_valid, y_valid, task: str, config: ClassifierConfig) -> FittedClassifier:
    if len(x_train) == 0 or len(x_valid) == 0:
        raise ValueError(f"empty split: {len(x_train)} training and {len(x_valid)} validation songs; both need at least one")
    loss_fn = _loss_fn(task)
    n_out = y_train.shape[1] if np.ndim(y_train) == 2 else int(max(y_train.max(), y_valid.max())) + 1
    mean = x_train.mean(axis=0).astype(np.float32)
    std = np.maximum(x_train.std(axis=0), STD_EPS).astype(np.float32)
    xt = torch.from_numpy(((x_train - mean) / std).astype(np.float32))
    xv = torch.from_numpy(((x_valid - mean) / std).astype(np.float32))
    yt, yv = _targets(y_train, task), _targets(y_valid, task)

    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    net = _network(xt.shape[1], n_out, config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best_loss, best_state, best_epoch, stale = float("inf"), copy.deepcopy(net.state_dict()), 0, 0
    for epoch in range(1, config.max_epochs + 1):
        net.train()
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), config.batch_size):
            idx = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            valid_loss = float(loss_fn(net(xv), yv))
        if valid_loss < best_loss - 1e-5:
            best_loss, best_state, best_epoch, stale = valid_loss, copy.deepcopy(net.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    net.load_state_dict(best_state)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    layers = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears]
    return FittedClassifier(mean, std, layers, task, best_epoch, best_loss)
