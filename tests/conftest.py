"""Shared fixtures: real music clips (tests/data, see LICENSES.txt) and small real models.

The tiny backbones are the real preset architectures at width 0.125 (16..64 channels) with
random weights and randomised BatchNorm statistics, saved and exported through the same code
paths users run; tests that need trained weights train their own.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TINY_SCALES = ("2^14", "3^9")
TINY_LABELS = ["brass", "strings", "jazz", "classical", "loud", "calm"]


def pytest_configure(config):
    """Graph caches of the whole run (and of the subprocesses it starts) go to a private
    folder, never the user's ~/.cache; within the run they are used like a user's would be."""
    import os
    import tempfile

    config._graph_cache_root = root = Path(tempfile.mkdtemp(prefix="samplecnn-test-caches-"))
    for engine in ("ONNXRUNTIME", "OPENVINO"):
        os.environ[f"SAMPLECNN_{engine}_CACHE"] = str(root / engine.lower())


def pytest_unconfigure(config):
    import shutil

    shutil.rmtree(getattr(config, "_graph_cache_root", ""), ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    has_trt = importlib.util.find_spec("tensorrt") is not None
    has_gpu = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_gpu = torch.cuda.is_available()
    for item in items:
        if "requires_trt" in item.keywords and not has_trt:
            item.add_marker(pytest.mark.skip(reason="tensorrt is not installed (pip install 'samplecnn[trt]')"))
        if "requires_gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU on this machine"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def music_files() -> dict[str, Path]:
    """name -> path of the real clips in tests/data."""
    return {p.stem: p for p in sorted(DATA.glob("*.ogg"))}


def make_tiny_checkpoint(path: Path, scale: str, seed: int, labels=TINY_LABELS) -> Path:
    import torch

    from samplecnn.trainer.checkpoint import save_checkpoint
    from samplecnn.trainer.model import SampleCNN, preset

    torch.manual_seed(seed)
    model = SampleCNN(preset(scale, n_tags=len(labels), width=0.125))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.05, 0.05)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return save_checkpoint(path, model.eval(), labels, training={"note": "random weights for tests", "seed": seed})


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> list[Path]:
    """One checkpoint per scale in TINY_SCALES (real architectures, width 0.125, random weights)."""
    root = tmp_path_factory.mktemp("checkpoints")
    return [make_tiny_checkpoint(root / f"{s.replace('^', '-')}.safetensors", s, seed=i) for i, s in enumerate(TINY_SCALES)]


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoints, tmp_path_factory) -> Path:
    """An fp32 bundle exported from ``tiny_checkpoints``. Treat as read-only: copy before changing."""
    from samplecnn.export.bundle_writer import write_bundle

    return write_bundle(tiny_checkpoints, tmp_path_factory.mktemp("bundles") / "tiny", parity_audio=DATA)


@pytest.fixture(scope="session")
def make_checkpoint():
    """``make_checkpoint(path, scale, seed)``: another tiny checkpoint (other weights, same recipe)."""
    return make_tiny_checkpoint
