"""The m^n-DCNN backbone family of Lee et al. (SMC 2017), with multi-level taps (Lee & Nam 2017).

"m^n" means m**n frames after the first (strided) layer, so a segment is m**(n+1) samples:

    layer 0   Conv1d(k=m, stride=m, C0) + BN + ReLU
    block i   Conv1d(k=m, stride=1, same padding) + BN + ReLU + MaxPool(m)     i = 1..n
    top       Conv1d(k=1, C_top) + BN + ReLU, dropout, Linear(C_top, n_tags)

After n blocks of MaxPool(m) the time axis is exactly one frame. Channel schedule (paper):
128 for layer 0 and blocks 1-2, 256 for blocks 3..n-1, 512 for block n and the 1x1 conv,
each multiplied by ``width``.

The forward returns the multi-level taps and the logits under the stable names in
``OUTPUT_NAMES``; export writes the same names into every ONNX graph and the runtime reads
them from the bundle manifest. ``level1`` is the last hidden layer (the 1x1 conv), ``level2``
the one below it, and so on; each tap is max-pooled over the segment's time axis.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

import torch
from torch import nn

SAMPLE_RATE = 22050  # Hz, the papers' rate for every preset
INPUT_NAME = "waveform"  # (batch, segment_samples) float32
LOGITS_NAME = "logits"  # (batch, n_tags), before the sigmoid


def level_name(level: int) -> str:
    """Stable output name of tap ``level`` (1 = last hidden layer)."""
    return f"level{level}"


# The paper's scale set: m^n with the segment lengths the SMC 2017 table reports.
PRESETS: dict[str, tuple[int, int]] = {
    "2^14": (2, 14),  # 32768 samples, 1.49 s
    "3^9": (3, 9),  # 59049 samples, 2.68 s
    "5^6": (5, 6),  # 78125 samples, 3.54 s
}
_SCALE_RE = re.compile(r"^(\d+)\^(\d+)$")


def _scaled(channels: int, width: float) -> int:
    # Multiples of 8 keep the oneDNN / TensorRT kernels on their fast paths.
    return max(8, int(round(channels * width / 8)) * 8)


@dataclass(frozen=True)
class BackboneConfig:
    """Everything needed to rebuild a backbone; stored inside every checkpoint and bundle."""

    m: int
    n: int
    n_tags: int
    sample_rate: int = SAMPLE_RATE
    width: float = 1.0
    dropout: float = 0.5
    n_levels: int = 3  # taps: the last ``n_levels`` hidden layers

    def __post_init__(self) -> None:
        if self.m < 2 or self.n < 3:
            raise ValueError(f"m^n = {self.m}^{self.n}: need m >= 2 and n >= 3")
        if self.n_tags < 1:
            raise ValueError(f"n_tags = {self.n_tags}: need at least one tag")
        if not 1 <= self.n_levels <= self.n + 1:
            raise ValueError(f"n_levels = {self.n_levels}: must be in 1..{self.n + 1}")
        if self.width <= 0:
            raise ValueError(f"width = {self.width}: must be positive")

    @property
    def name(self) -> str:
        return f"{self.m}^{self.n}"

    @property
    def segment_samples(self) -> int:
        return self.m ** (self.n + 1)

    @property
    def segment_seconds(self) -> float:
        return self.segment_samples / self.sample_rate

    @property
    def block_channels(self) -> tuple[int, ...]:
        """Output channels of layer 0, blocks 1..n and the 1x1 conv (n + 2 entries)."""
        raw = [128] + [128 if i <= 2 else 256 for i in range(1, self.n)] + [512, 512]
        return tuple(_scaled(c, self.width) for c in raw)

    @property
    def level_widths(self) -> dict[str, int]:
        """Channels of each tap, keyed by output name (level1 = last hidden layer)."""
        ch = self.block_channels
        return {level_name(k): ch[-k] for k in range(1, self.n_levels + 1)}

    def flops_per_segment(self) -> int:
        """Multiply-adds x 2 of convolutions and the linear layer for one segment."""
        ch = self.block_channels
        frames = self.m**self.n
        macs = frames * self.m * ch[0]  # layer 0: one input channel
        for i in range(1, self.n + 1):
            macs += frames * self.m * ch[i - 1] * ch[i]
            frames //= self.m
        macs += ch[-2] * ch[-1] + ch[-1] * self.n_tags  # 1x1 conv on one frame, linear
        return 2 * macs

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "BackboneConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown backbone config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def parse_scale(scale: str) -> tuple[int, int]:
    """'3^9' -> (3, 9). Accepts any m^n, not only the presets."""
    match = _SCALE_RE.match(scale.strip())
    if not match:
        raise ValueError(f"scale {scale!r} is not of the form m^n; presets: {', '.join(PRESETS)}")
    return int(match.group(1)), int(match.group(2))


def preset(scale: str, n_tags: int, *, width: float = 1.0, **kwargs) -> BackboneConfig:
    """Config of a preset (or any m^n) scale, e.g. ``preset('3^9', n_tags=50)``."""
    m, n = parse_scale(scale)
    return BackboneConfig(m=m, n=n, n_tags=n_tags, width=width, **kwargs)


def _same_padding(k: int) -> tuple[int, int]:
    # Even kernels (m = 2) pad one more on the right, as torch's padding="same" does.
    left = (k - 1) // 2
    return left, k - 1 - left


class ConvBlock(nn.Module):
    """Conv1d(k, stride 1, same) + BN + ReLU + MaxPool(k)."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.pad = _same_padding(k)
        self.conv = nn.Conv1d(c_in, c_out, k, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.pool = nn.MaxPool1d(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, self.pad)
        return self.pool(torch.relu(self.bn(self.conv(x))))


class SampleCNN(nn.Module):
    """m^n-DCNN. ``forward(waveform: (B, m**(n+1))) -> {level1..levelK: (B, C_k), logits: (B, n_tags)}``."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        m, ch = config.m, config.block_channels
        self.stem = nn.Sequential(
            nn.Conv1d(1, ch[0], m, stride=m, bias=False), nn.BatchNorm1d(ch[0]), nn.ReLU()
        )
        self.blocks = nn.ModuleList(ConvBlock(ch[i - 1], ch[i], m) for i in range(1, config.n + 1))
        self.top = nn.Sequential(nn.Conv1d(ch[-2], ch[-1], 1, bias=False), nn.BatchNorm1d(ch[-1]), nn.ReLU())
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(ch[-1], config.n_tags)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of ``forward``'s outputs in graph order: level1..levelK, then logits."""
        return tuple(level_name(k) for k in range(1, self.config.n_levels + 1)) + (LOGITS_NAME,)

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        if waveform.dim() != 2 or waveform.shape[1] != self.config.segment_samples:
            raise ValueError(
                f"expected waveform of shape (batch, {self.config.segment_samples}) for "
                f"{self.config.name}, got {tuple(waveform.shape)}"
            )
        hidden = [self.stem(waveform.unsqueeze(1))]
        for block in self.blocks:
            hidden.append(block(hidden[-1]))
        hidden.append(self.top(hidden[-1]))
        # hidden[-1] is the last hidden layer (level1); each tap is max-pooled over time.
        outputs = {level_name(k): hidden[-k].amax(dim=2) for k in range(1, self.config.n_levels + 1)}
        outputs[LOGITS_NAME] = self.classifier(self.dropout(hidden[-1].squeeze(2)))
        return outputs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summary(scales: list[str] | None = None, n_tags: int = 50, width: float = 1.0) -> list[dict]:
    """One row per scale: parameters, segment samples and seconds, GFLOP per segment, tap widths."""
    rows = []
    for scale in scales or list(PRESETS):
        config = preset(scale, n_tags=n_tags, width=width)
        rows.append(
            {
                "scale": config.name,
                "params": count_parameters(SampleCNN(config)),
                "segment_samples": config.segment_samples,
                "segment_seconds": round(config.segment_seconds, 3),
                "gflop_per_segment": round(config.flops_per_segment() / 1e9, 3),
                "gflop_per_audio_second": round(config.flops_per_segment() / 1e9 / config.segment_seconds, 3),
                "levels": config.level_widths,
            }
        )
    return rows


def format_summary(rows: list[dict]) -> str:
    header = f"{'scale':>6} {'params':>10} {'samples':>8} {'seconds':>7} {'GFLOP/seg':>9} {'GFLOP/s':>8}  levels"
    lines = [header]
    for r in rows:
        levels = " ".join(f"{k}={v}" for k, v in r["levels"].items())
        lines.append(
            f"{r['scale']:>6} {r['params']:>10,} {r['segment_samples']:>8} {r['segment_seconds']:>7.2f} "
            f"{r['gflop_per_segment']:>9.2f} {r['gflop_per_audio_second']:>8.2f}  {levels}"
        )
    return "\n".join(lines)

