"""Write a model bundle (see ``samplecnn.runtime.bundle`` for the contract) from checkpoints.

Everything is written into a temporary folder beside the destination and renamed into place
only when every file, hash and check is done, so a failed export never leaves half a bundle.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ..runtime._version import __version__ as samplecnn_version
from ..runtime.bundle import (
    FORMAT,
    SCHEMA_VERSION,
    publish_folder_atomically,
    scale_file_stem,
    write_manifest_atomically,
)
from ..trainer.checkpoint import Checkpoint, file_sha256, load_checkpoint
from ..trainer.model import INPUT_NAME, LOGITS_NAME
from .onnx_export import ExportError, export_backbone


def check_compatible(checkpoints: list[tuple[Path, Checkpoint]]) -> None:
    """Scales of one bundle must share sample rate and labels and differ in scale."""
    if not checkpoints:
        raise ExportError("no checkpoints given; pass one checkpoint per scale (e.g. runs/3^9/best.safetensors)")
    first_path, first = checkpoints[0]
    seen: dict[str, Path] = {}
    for path, ckpt in checkpoints:
        if ckpt.config.sample_rate != first.config.sample_rate:
            raise ExportError(
                f"{path} runs at {ckpt.config.sample_rate} Hz but {first_path} at {first.config.sample_rate} Hz; "
                "all scales of a bundle must share one sample rate: retrain one of them"
            )
        if list(ckpt.labels) != list(first.labels):
            raise ExportError(f"{path} was trained on other labels than {first_path}; a bundle's scales must share their labels")
        if ckpt.config.name in seen:
            raise ExportError(f"{path} and {seen[ckpt.config.name]} are both scale {ckpt.config.name}; give one checkpoint per scale")
        seen[ckpt.config.name] = path


def scale_entry(ckpt: Checkpoint, models: dict[str, str]) -> dict:
    config = ckpt.config
    outputs = [{"name": name, "level": int(name[len("level"):]), "width": width} for name, width in config.level_widths.items()]
    outputs.append({"name": LOGITS_NAME, "level": 0, "width": config.n_tags})
    return {
        "name": config.name,
        "segment_samples": config.segment_samples,
        "input_name": INPUT_NAME,
        "config": json.loads(config.to_json()),
        "models": models,
        "engines": [],
        "outputs": outputs,
        "parity": {},
        "quantization": {},
    }


def write_bundle(checkpoint_paths: list[str | Path], out: str | Path, *, training_data: str | None = None) -> Path:
    """Export fp32 ONNX graphs of ``checkpoint_paths`` (one per scale) into a new bundle at ``out``."""
    out = Path(out)
    loaded = [(Path(p), load_checkpoint(p)) for p in checkpoint_paths]
    check_compatible(loaded)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging.", dir=out.parent))
    try:
        scales = []
        for path, ckpt in loaded:
            onnx_name = f"{scale_file_stem(ckpt.config.name)}.fp32.onnx"
            export_backbone(ckpt.build_model(), staging / onnx_name)
            scales.append(scale_entry(ckpt, {"fp32": onnx_name}))
        manifest = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "sample_rate": loaded[0][1].config.sample_rate,
            "pooling": {"segment": "max", "song": "mean"},
            "backbone_labels": list(loaded[0][1].labels),
            "scales": scales,
            "heads": [],
            "provenance": {
                "samplecnn_version": samplecnn_version,
                "checkpoints": {ckpt.config.name: {"file": path.name, "sha256": file_sha256(path), "training": ckpt.training} for path, ckpt in loaded},
                "training_data": training_data,
            },
        }
        write_manifest_atomically(staging, manifest)
        publish_folder_atomically(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out
