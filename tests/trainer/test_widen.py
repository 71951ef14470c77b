"""Function-preserving widening (trainer/widen.py): the wider backbone computes what the narrow one did."""

import dataclasses

import pytest
import torch

from samplecnn.trainer.model import SampleCNN, preset
from samplecnn.trainer.widen import WidenError, widen_state


def trained_like(config, seed=0):
    """A backbone with non-trivial batch-norm statistics and affine parameters, as after training."""
    torch.manual_seed(seed)
    model = SampleCNN(config)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("scale,width,wider", [("3^5", 0.125, 0.25), ("2^7", 0.125, 0.375), ("5^3", 0.25, 0.5), ("3^5", 0.25, 0.375)])
def test_widened_backbone_computes_the_same_function(scale, width, wider):
    narrow_config = preset(scale, n_tags=5, width=width)
    wide_config = dataclasses.replace(narrow_config, width=wider)
    narrow = trained_like(narrow_config)
    wide = SampleCNN(wide_config)
    wide.load_state_dict(widen_state(narrow.state_dict(), narrow_config, wide_config, seed=1, noise=0))
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in narrow.parameters())  # 0.25 -> 0.375: 2.25x
    # computed in float64, so the kernels' summation order cannot matter (in float32 it took a tap
    # 1.3e-5 off on an AVX2-only CPU, over the 1e-5 allowed); what is left is the float32 rounding
    # of the split weights themselves (up to 1e-6 on the taps, 4e-9 on the logits), under the same bounds
    narrow, wide = narrow.double(), wide.double()
    x = torch.randn(6, narrow_config.segment_samples, dtype=torch.float64) * 0.3
    for mode in ("eval", "train"):  # train: batch statistics (copies have equal ones); dropout off for the logits
        narrow.train(mode == "train"), wide.train(mode == "train")
        narrow.dropout.eval(), wide.dropout.eval()
        with torch.no_grad():
            a, b = narrow(x), wide(x)
        torch.testing.assert_close(b["logits"], a["logits"], rtol=1e-4, atol=1e-5)
        for name, tap in a.items():
            if name != "logits":  # wide channel j is narrow channel j mod C
                assert b[name].shape[1] >= 1.5 * tap.shape[1]
                copied = tap[:, torch.arange(b[name].shape[1]) % tap.shape[1]]
                torch.testing.assert_close(b[name], copied, rtol=1e-4, atol=1e-5)


def test_default_noise_keeps_the_function_close_and_copies_grow_apart_in_every_layer():
    """Without noise the stem's copies part slowly (random split fractions only); with the default
    noise the logits stay within 2% and after three Adam steps (dropout off) channel j and its
    copy j + C have moved differently in every layer, so the new channels are not dead weight."""
    narrow_config = preset("3^5", n_tags=5, width=0.125)
    wide_config = dataclasses.replace(narrow_config, width=0.25)
    narrow = trained_like(narrow_config).eval()
    x = torch.randn(8, wide_config.segment_samples) * 0.3
    parted = {}
    for noise in (0.0, 0.01):
        wide = SampleCNN(wide_config)
        wide.load_state_dict(widen_state(narrow.state_dict(), narrow_config, wide_config, noise=noise))
        with torch.no_grad():
            a, b = narrow(x)["logits"], wide.eval()(x)["logits"]
        assert (b - a).abs().max() <= 0.02 * a.abs().max()
        wide.train(), wide.dropout.eval()  # dropout alone would also break the tie, from the top layer down
        before = {k: v.clone() for k, v in wide.state_dict().items()}
        optimizer = torch.optim.Adam(wide.parameters(), lr=1e-3)
        for step in range(3):
            optimizer.zero_grad()
            wide(torch.randn(8, wide_config.segment_samples) * 0.3)["logits"].square().mean().backward()
            optimizer.step()
        parted[noise] = {}
        for key in ["stem.0.weight"] + [f"blocks.{i}.conv.weight" for i in range(5)] + ["top.0.weight"]:
            moved = wide.state_dict()[key] - before[key]
            half = moved.shape[0] // 2
            parted[noise][key] = ((moved[:half] - moved[half:]).abs().max() / moved.abs().max()).item()
    assert parted[0.0]["stem.0.weight"] < 0.05
    assert min(parted[0.01].values()) > 0.05, parted[0.01]


def test_widening_refuses_what_it_cannot_preserve():
    narrow = preset("3^5", n_tags=5, width=0.25)
    state = SampleCNN(narrow).state_dict()
    with pytest.raises(WidenError, match="not all wider"):
        widen_state(state, narrow, dataclasses.replace(narrow, width=0.125))
    with pytest.raises(WidenError, match="only the width"):
        widen_state(state, narrow, dataclasses.replace(narrow, width=0.5, n_tags=6))
