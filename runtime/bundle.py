"""The model bundle: the contract between ``samplecnn.export`` (writer) and the runtime (reader).

A bundle is a folder::

    manifest.json                 schema below; sha256 of every other file
    scale_3-9.fp32.onnx           one graph per scale and precision
    scale_3-9.int8.onnx
    scale_3-9.fp16.plan           optional TensorRT engines (tagged with TRT version and GPU)
    head_tags.safetensors         song-level classifier heads (numpy-applied)
    MODEL_CARD.md                 optional

manifest.json (schema_version 1)::

    {
      "format": "samplecnn-bundle", "schema_version": 1,
      "sample_rate": 22050,
      "pooling": {"segment": "max", "song": "mean"},
      "backbone_labels": [...],            # the pre-training tags behind each scale's logits
      "scales": [{
          "name": "3^9", "segment_samples": 59049, "input_name": "waveform",
          "config": {...BackboneConfig...},
          "models": {"fp32": "scale_3-9.fp32.onnx", "int8": "scale_3-9.int8.onnx"},
          "engines": [{"file": "...plan", "precision": "fp16", "tensorrt_version": "10.9.0",
                       "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}],
          "outputs": [{"name": "level1", "level": 1, "width": 512}, ...,
                      {"name": "logits", "level": 0, "width": 60}],
          "parity": {...}, "quantization": {...}
      }],
      "heads": [{"name": "tags", "task": "tags"|"classes", "labels": [...],
                 "file": "head_tags.safetensors", "scales": ["3^9", ...], "levels": [1, 2, 3],
                 "input_width": 3840, "metrics": {...}}],
      "files": {"scale_3-9.fp32.onnx": "<sha256>", ...},
      "provenance": {"samplecnn_version": "...", "checkpoints": {...}, "training_data": ..., "metrics": ...}
    }

The song vector a head reads is the concatenation, for each scale in ``head.scales`` (in that
order) and each level in ``head.levels`` (in that order), of that level's segment-mean vector.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_path

FORMAT = "samplecnn-bundle"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")
TASKS = ("tags", "classes")


class BundleError(ValueError):
    """A bundle the runtime refuses: missing files, wrong hashes, unknown schema. Says what to do."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scale_file_stem(scale_name: str) -> str:
    """'3^9' -> 'scale_3-9' ('^' is awkward in file names)."""
    return "scale_" + scale_name.replace("^", "-")


@dataclass(frozen=True)
class OutputSpec:
    name: str
    level: int  # 1 = last hidden layer; 0 = logits
    width: int


@dataclass(frozen=True)
class EngineSpec:
    file: str
    precision: str
    tensorrt_version: str
    gpu: str
    compute_capability: str


@dataclass(frozen=True)
class ScaleSpec:
    name: str
    segment_samples: int
    input_name: str
    models: dict[str, str]  # precision -> ONNX file
    outputs: tuple[OutputSpec, ...]
    config: dict = field(default_factory=dict)
    engines: tuple[EngineSpec, ...] = ()
    parity: dict = field(default_factory=dict)
    quantization: dict = field(default_factory=dict)

    @property
    def level_outputs(self) -> tuple[OutputSpec, ...]:
        return tuple(o for o in self.outputs if o.level >= 1)

    def output(self, level: int) -> OutputSpec:
        for o in self.outputs:
            if o.level == level:
                return o
        raise BundleError(f"scale {self.name} has no level {level}; it has {[o.level for o in self.level_outputs]}")


@dataclass(frozen=True)
class HeadSpec:
    name: str
    task: str
    labels: tuple[str, ...]
    file: str
    scales: tuple[str, ...]
    levels: tuple[int, ...]
    input_width: int
    metrics: dict = field(default_factory=dict)


@dataclass
class Bundle:
    """A verified bundle: ``Bundle.load(path)`` checks schema, files and hashes."""

    root: Path
    manifest: dict
    sample_rate: int
    scales: tuple[ScaleSpec, ...]
    heads: tuple[HeadSpec, ...]
    backbone_labels: tuple[str, ...]

    def path(self, relative: str) -> Path:
        return self.root / relative

    def scale(self, name: str) -> ScaleSpec:
        for s in self.scales:
            if s.name == name:
                return s
        raise BundleError(f"bundle {self.root} has no scale {name!r}; it has {[s.name for s in self.scales]}")

    def head(self, name: str) -> HeadSpec:
        for h in self.heads:
            if h.name == name:
                return h
        raise BundleError(f"bundle {self.root} has no head {name!r}; it has {[h.name for h in self.heads]}")

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions every scale has an ONNX graph for."""
        return tuple(p for p in PRECISIONS if all(p in s.models for s in self.scales))

    @classmethod
    def load(cls, root: str | Path, *, verify_hashes: bool = True) -> "Bundle":
        root = Path(root)
        manifest = read_manifest(root)
        if verify_hashes:
            verify_files(root, manifest)
        return cls._from_manifest(root, manifest)

    @classmethod
    def _from_manifest(cls, root: Path, manifest: dict) -> "Bundle":
        where = root / MANIFEST
        try:
            scales = tuple(
                ScaleSpec(
                    name=s["name"],
                    segment_samples=int(s["segment_samples"]),
                    input_name=s["input_name"],
                    models=dict(s["models"]),
                    outputs=tuple(OutputSpec(o["name"], int(o["level"]), int(o["width"])) for o in s["outputs"]),
                    config=dict(s.get("config", {})),
                    engines=tuple(EngineSpec(**e) for e in s.get("engines", [])),
                    parity=dict(s.get("parity", {})),
                    quantization=dict(s.get("quantization", {})),
                )
                for s in manifest["scales"]
            )
            heads = tuple(
                HeadSpec(
                    name=h["name"],
                    task=h["task"],
                    labels=tuple(h["labels"]),
                    file=h["file"],
                    scales=tuple(h["scales"]),
                    levels=tuple(int(v) for v in h["levels"]),
                    input_width=int(h["input_width"]),
                    metrics=dict(h.get("metrics", {})),
                )
                for h in manifest.get("heads", [])
            )
            sample_rate = int(manifest["sample_rate"])
            labels = tuple(manifest.get("backbone_labels", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: malformed manifest ({exc!r}); re-export the bundle with `samplecnn export`") from exc
        if not scales:
            raise BundleError(f"{where}: no scales; re-export the bundle with `samplecnn export`")
        for h in heads:
            if h.task not in TASKS:
                raise BundleError(f"{where}: head {h.name!r} has task {h.task!r}; valid: {TASKS}")
            unknown = set(h.scales) - {s.name for s in scales}
            if unknown:
                raise BundleError(f"{where}: head {h.name!r} reads scales {sorted(unknown)} the bundle lacks")
        return cls(root, manifest, sample_rate, scales, heads, labels)


def read_manifest(root: Path) -> dict:
    where = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle folder; pass the folder written by `samplecnn export --out`")
    if not where.is_file():
        raise BundleError(f"{root}: no {MANIFEST}; pass the folder written by `samplecnn export --out`")
    try:
        manifest = json.loads(where.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{where}: not valid JSON ({exc}); re-export the bundle with `samplecnn export`") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{where}: not a samplecnn bundle manifest (format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{where}: schema_version {version!r}, this samplecnn reads {SCHEMA_VERSION}; "
            + ("upgrade samplecnn" if isinstance(version, int) and version > SCHEMA_VERSION else "re-export the bundle with this samplecnn's `samplecnn export`")
        )
    return manifest


def verify_files(root: Path, manifest: dict) -> None:
    """Every file the manifest lists exists with its sha256; every file the manifest names is listed."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{root / MANIFEST}: no file hashes; re-export the bundle with `samplecnn export`")
    problems = []
    for relative, expected in sorted(files.items()):
        path = root / relative
        if not path.is_file():
            problems.append(f"missing file {relative}")
        elif sha256_file(path) != expected:
            problems.append(f"{relative} does not match its sha256 in the manifest (modified or corrupted)")
    for relative in referenced_files(manifest):
        if relative not in files:
            problems.append(f"{relative} is referenced but has no hash")
    if problems:
        raise BundleError(
            f"bundle {root} failed verification: " + "; ".join(problems)
            + ". Re-export it with `samplecnn export` (or re-fit heads with `samplecnn fit`); do not edit bundle files by hand."
        )


def referenced_files(manifest: dict) -> list[str]:
    names = []
    for s in manifest.get("scales", []):
        names += list(s.get("models", {}).values()) + [e["file"] for e in s.get("engines", [])]
    names += [h["file"] for h in manifest.get("heads", [])]
    return names


def write_manifest_atomically(root: Path, manifest: dict) -> None:
    """Recompute every hash, then replace manifest.json atomically (for in-place updates)."""
    manifest = dict(manifest)
    manifest["files"] = {rel: sha256_file(root / rel) for rel in sorted(set(referenced_files(manifest)) | set(manifest.get("extra_files", [])))}
    with atomic_path(root / MANIFEST) as tmp, open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")


def publish_folder_atomically(staging: Path, destination: Path) -> None:
    """Move a fully written staging folder to ``destination``, replacing an old bundle only at the end."""
    destination = Path(destination)
    if destination.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        os.replace(destination, backup / destination.name)
        try:
            os.replace(staging, destination)
        except OSError:
            os.replace(backup / destination.name, destination)
            raise
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(staging, destination)
