"""torch -> ONNX: one graph per scale, one input (``waveform``, dynamic batch) and one named
output per tapped level plus the logits; BatchNorm folded into the convolutions; weights inside
the file."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..trainer.model import INPUT_NAME, SampleCNN
from .errors import ExportError

# Opset 18: onnxruntime >= 1.14 and TensorRT 10/11's ONNX parser both take it, and it is the
# lowest opset the torch.export-based exporter emits without a version conversion pass.
OPSET = 18


# Loggers whose records are the exporter's own chatter (e.g. "torchvision is not installed.
# Skipping torchvision::nms" at WARNING), not problems with the user's model.
QUIET_LOGGERS = ("torch.onnx._internal.exporter._registration",)


@contextlib.contextmanager
def quiet_exporter(loggers: tuple[str, ...] = QUIET_LOGGERS):
    """Raise ``loggers`` to ERROR while the block runs, then restore their levels."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    try:
        for name in loggers:
            logging.getLogger(name).setLevel(logging.ERROR)
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def fold_batchnorm(model: SampleCNN) -> SampleCNN:
    """An eval-mode copy of ``model`` with every Conv+BN pair fused into one biased Conv."""
    folded = copy.deepcopy(model).eval()
    folded.stem[0] = fuse_conv_bn_eval(folded.stem[0], folded.stem[1])
    folded.stem[1] = nn.Identity()
    for block in folded.blocks:
        block.conv = fuse_conv_bn_eval(block.conv, block.bn)
        block.bn = nn.Identity()
    folded.top[0] = fuse_conv_bn_eval(folded.top[0], folded.top[1])
    folded.top[1] = nn.Identity()
    return folded


class OrderedOutputs(nn.Module):
    """Wraps a module returning a dict so the graph's outputs come in ``names`` order."""

    def __init__(self, module: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.module = module
        self.names = names

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.module(waveform)
        return tuple(outputs[name] for name in self.names)


def export_onnx(module: nn.Module, path: str | Path, *, segment_samples: int, output_names: tuple[str, ...], opset: int = OPSET) -> Path:
    """Write ``module`` (waveform -> dict of outputs) to ``path`` with a dynamic batch axis.

    Traced at batch 2 (so no dimension is specialised to 1); validate at other batch sizes.
    """
    path = Path(path)
    wrapped = OrderedOutputs(module.eval(), output_names).eval()
    example = torch.zeros(2, segment_samples)
    batch = torch.export.Dim("batch", min=1, max=4096)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad(), quiet_exporter():
            warnings.simplefilter("ignore")  # the exporter's progress chatter, not user-facing problems
            program = torch.onnx.export(
                wrapped,
                (example,),
                input_names=[INPUT_NAME],
                output_names=list(output_names),
                dynamic_shapes={"waveform": {0: batch}},
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            program.save(tmp, external_data=False)
        os.replace(tmp, path)
    except Exception as exc:  # the exporter raises many types; one typed error for the caller
        raise ExportError(f"ONNX export to {path} failed: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def export_backbone(model: SampleCNN, path: str | Path, *, graph: str = "conv1d", opset: int = OPSET) -> Path:
    """Fold BatchNorm and export ``model`` as ``graph``: "conv1d" (as trained) or "conv2d"
    (the 1 x k lowering of :mod:`samplecnn.export.lowering`, faster on onnxruntime CPU).

    The graph maps ``waveform: (B, segment_samples)`` to ``level1..levelK: (B, C_k)`` and
    ``logits: (B, n_tags)``, B dynamic.
    """
    from .lowering import GRAPHS, LoweredSampleCNN

    if graph not in GRAPHS:
        raise ExportError(f"graph {graph!r} is not one of {GRAPHS}; use 'conv2d' for onnxruntime CPU, 'conv1d' for the graph as trained")
    folded = fold_batchnorm(model)
    module = LoweredSampleCNN(folded) if graph == "conv2d" else folded
    return export_onnx(module, path, segment_samples=model.config.segment_samples, output_names=model.output_names, opset=opset)
