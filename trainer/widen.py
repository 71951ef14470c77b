"""Function-preserving widening of a backbone (Net2WiderNet, Chen, Goodfellow & Shlens, ICLR 2016).

A narrow trained backbone becomes the starting point of a wider one: every channel of the wider
model is a copy of a channel of the narrow one (new channel j copies old channel j mod C), and
each layer that reads a copied channel splits that channel's weights among the copies, so the
sums are unchanged. With ``noise=0`` the wider model computes the same logits as the narrow one,
in eval and in train mode (batch-norm statistics of copies are equal), and its taps are the
narrow taps repeated. The split fractions are random (seeded), so copies feed the next layer
through different weights and grow apart under training; but that alone is slow near the input
(after 30 Adam steps the stem's copies had moved apart by 2% of their step), so by default the
copies' incoming weights also get Gaussian noise of 1% of the layer's weight std (the originals
stay exact): on real songs the default model's 3^9 logits then move by at most 0.03, and every
layer's copies diverge within a few steps (tests/trainer/test_widen.py). Training starts where
the narrow model stopped instead of from scratch.

Only the width may differ, and no layer may get narrower. New channel j copies old channel
j mod C, so from 0.25 to 0.375 (32 -> 48 channels) half the channels have one copy and half
none; from 0.25 to 0.5 every channel has one.
"""

from __future__ import annotations

import dataclasses

import torch

from .model import BackboneConfig, SampleCNN


class WidenError(ValueError):
    """The two configs are not the same backbone at a narrower and a wider width."""


def widen_check(old: BackboneConfig, new: BackboneConfig) -> None:
    """Raise WidenError unless ``new`` is ``old`` at a width where no layer is narrower."""
    if dataclasses.replace(old, width=new.width) != new:
        raise WidenError(f"only the width may differ: {old} vs {new}")
    for c_old, c_new in zip(old.block_channels, new.block_channels):
        if c_new < c_old:
            raise WidenError(f"width {old.width} -> {new.width}: channels {old.block_channels} -> {new.block_channels} "
                             f"are not all wider")  # fmt: skip


def _split(c_old: int, c_new: int, generator: torch.Generator) -> torch.Tensor:
    """(c_new,) fractions: the copies of each old channel (new j copies old j mod c_old) share it,
    fractions summing to 1 per old channel."""
    raw = 0.5 + torch.rand(c_new, generator=generator, dtype=torch.float64)  # in [0.5, 1.5)
    group = torch.arange(c_new) % c_old
    return raw / torch.zeros(c_old, dtype=torch.float64).index_add_(0, group, raw)[group]


def widen_state(state: dict[str, torch.Tensor], old: BackboneConfig, new: BackboneConfig, seed: int = 0,
                noise: float = 0.01) -> dict[str, torch.Tensor]:
    """The state dict of ``new`` computing the function of ``state`` (of ``old``): exactly with
    ``noise=0``; otherwise the copies' incoming weights get Gaussian noise of ``noise`` x that
    layer's weight std."""
    widen_check(old, new)
    generator = torch.Generator().manual_seed(seed)
    ch_old, ch_new = old.block_channels, new.block_channels
    # (conv weight, batch-norm prefix) of layer 0, blocks 1..n and the 1x1 conv, in order
    layers = [("stem.0.weight", "stem.1")] + [(f"blocks.{i}.conv.weight", f"blocks.{i}.bn") for i in range(old.n)]
    layers.append(("top.0.weight", "top.1"))
    out: dict[str, torch.Tensor] = {}
    fractions = torch.ones(1, dtype=torch.float64)  # of the input channels (layer 0 reads the waveform)
    c_in_old, c_in_new = 1, 1
    for (conv, bn), c_old, c_new in zip(layers, ch_old, ch_new):
        rows = torch.arange(c_new) % c_old
        cols = torch.arange(c_in_new) % c_in_old
        weight = state[conv].double()[rows][:, cols] * fractions[None, :, None]
        if noise:
            copies = weight[c_old:]
            copies += noise * state[conv].double().std() * torch.randn(copies.shape, generator=generator, dtype=torch.float64)
        out[conv] = weight.to(state[conv].dtype)
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{bn}.{name}"] = state[f"{bn}.{name}"][rows].clone()
        out[f"{bn}.num_batches_tracked"] = state[f"{bn}.num_batches_tracked"].clone()
        fractions = _split(c_old, c_new, generator)
        c_in_old, c_in_new = c_old, c_new
    cols = torch.arange(c_in_new) % c_in_old
    out["classifier.weight"] = (state["classifier.weight"].double()[:, cols] * fractions[None, :]).to(state["classifier.weight"].dtype)
    out["classifier.bias"] = state["classifier.bias"].clone()
    expected = SampleCNN(new).state_dict()
    if set(out) != set(expected) or any(out[k].shape != expected[k].shape for k in expected):
        raise WidenError(f"widened state does not match {new}")  # a new layer type this function does not know
    return out
