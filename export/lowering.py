"""CPU-speed lowering: the folded backbone rewritten with 2-D (1 x k) convolutions and pools.

onnxruntime's CPU provider runs Conv2d/MaxPool2d on oneDNN-style blocked (NCHWc) AVX-512
kernels, but sends 1-D Conv/MaxPool through a slower generic path. Writing every 1-D op as
its 2-D twin on a (B, C, 1, T) tensor computes exactly the same numbers (same weights, a
height-1 kernel) and is measured faster (``benchmarks/export_speed.py``). The graph keeps the
input ``waveform: (B, segment_samples)`` and the outputs of :class:`SampleCNN`, so a bundle
can swap it in without the runtime noticing; the manifest records which graph each file is.
"""

from __future__ import annotations

import torch
from torch import nn

from ..trainer.model import LOGITS_NAME, SampleCNN, level_name

GRAPHS = ("conv2d", "conv1d")  # "conv2d" = this lowering; "conv1d" = the model as trained


def conv1d_to_2d(conv: nn.Conv1d) -> nn.Conv2d:
    """A Conv2d with a (1, k) kernel that computes ``conv`` on (B, C, 1, T) input."""
    if conv.groups != 1 or conv.dilation[0] != 1 or conv.padding[0] != 0:
        raise ValueError(
            f"cannot lower {conv}: only ungrouped, undilated, unpadded Conv1d layers are supported "
            "(SampleCNN pads explicitly); export with lowering=False to keep the Conv1d graph"
        )
    lowered = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=(1, conv.kernel_size[0]),
        stride=(1, conv.stride[0]),
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        lowered.weight.copy_(conv.weight.unsqueeze(2))  # (O, I, k) -> (O, I, 1, k)
        if conv.bias is not None:
            lowered.bias.copy_(conv.bias)
    return lowered


class LoweredBlock(nn.Module):
    """pad(left, right) + Conv2d(1 x m) + ReLU + MaxPool2d(1 x m) on (B, C, 1, T)."""

    def __init__(self, conv: nn.Conv1d, pad: tuple[int, int], pool: int) -> None:
        super().__init__()
        self.pad = pad
        self.conv = conv1d_to_2d(conv)
        self.pool = nn.MaxPool2d(kernel_size=(1, pool), stride=(1, pool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, self.pad)  # pads the last (time) axis only
        return self.pool(torch.relu(self.conv(x)))


class LoweredSampleCNN(nn.Module):
    """``forward(waveform: (B, L)) -> {level1..levelK: (B, C_k), logits: (B, n_tags)}``.

    Built from a BatchNorm-folded :class:`SampleCNN` (``fold_batchnorm``); eval only.
    """

    def __init__(self, folded: SampleCNN) -> None:
        super().__init__()
        for bn in (folded.stem[1], folded.top[1], *(b.bn for b in folded.blocks)):
            if not isinstance(bn, nn.Identity):
                raise ValueError("LoweredSampleCNN needs a BatchNorm-folded model; call fold_batchnorm(model) first")
        self.config = folded.config
        self.stem = conv1d_to_2d(folded.stem[0])
        self.blocks = nn.ModuleList(LoweredBlock(b.conv, b.pad, b.pool.kernel_size) for b in folded.blocks)
        self.top = conv1d_to_2d(folded.top[0])
        self.classifier = nn.Linear(folded.classifier.in_features, folded.classifier.out_features)
        with torch.no_grad():
            self.classifier.weight.copy_(folded.classifier.weight)
            self.classifier.bias.copy_(folded.classifier.bias)
        self.eval()

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(level_name(k) for k in range(1, self.config.n_levels + 1)) + (LOGITS_NAME,)

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = waveform.shape[0]
        hidden = [torch.relu(self.stem(waveform.reshape(batch, 1, 1, self.config.segment_samples)))]
        for block in self.blocks:
            hidden.append(block(hidden[-1]))
        hidden.append(torch.relu(self.top(hidden[-1])))
        # (B, C, 1, T) -> (B, C): max over the (height-1) frequency and the time axis.
        outputs = {level_name(k): hidden[-k].amax(dim=(2, 3)) for k in range(1, self.config.n_levels + 1)}
        outputs[LOGITS_NAME] = self.classifier(hidden[-1].flatten(1))
        return outputs
