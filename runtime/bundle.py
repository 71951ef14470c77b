"""The model bundle: the contract between ``samplecnn.export`` (writer) and the runtime (reader).

A bundle is a folder::

    manifest.json                 schema below; sha256 of every other file
    scale_3-9.fp32.onnx           one graph per scale and precision
    scale_3-9.int8.onnx
    scale_3-9.fp16.plan           optional TensorRT engines (tagged with TRT version and GPU)
    head_tags.safetensors         song-level classifier heads (numpy-applied)
    MODEL_CARD.md                 optional

manifest.json (schema_version 1), typed by :class:`BundleSpec` (``from_dict`` / ``to_dict``)::

    {
      "format": "samplecnn-bundle", "schema_version": 1,
      "sample_rate": 22050,
      "pooling": {"segment": "max", "song": "mean"},   # Pooling; the only pooling the runtime does
      "spectral": {"name": "mel", "n_fft": 1024, "hop": 1024, "n_mels": 96, "f_max": 7000.0, ...},  # optional SpectralSpec
      "backbone_labels": [...],            # the pre-training tags behind each scale's logits
      "scales": [{                         # ScaleSpec
          "name": "3^9", "segment_samples": 59049, "input_name": "waveform",
          "config": {...BackboneConfig...},
          "models": {"fp32": "scale_3-9.fp32.onnx", "int8": "scale_3-9.int8.onnx"},
          "graph": {"fp32": "conv2d", "int8": "conv2d"},
          "extra_graphs": {"int8_trt": "scale_3-9.int8-trt.onnx"},   # optional: engine sources
          "engines": [{"file": "...plan", "precision": "fp16", "tensorrt_version": "10.9.0",   # EngineSpec
                       "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
                       "onnx": "scale_3-9.fp16.onnx", "build": {"profile": ..., ...}}],
          "outputs": [{"name": "level1", "level": 1, "width": 512}, ...,
                      {"name": "logits", "level": 0, "width": 60}],
          "parity": {...}, "quantization": {...}
      }],
      "heads": [{"name": "tags", "task": "tags"|"classes", "labels": [...],            # HeadSpec
                 "file": "head_tags.<sha256[:16]>.safetensors", "scales": ["3^9", ...], "levels": [1, 2, 3],
                 "input_width": 3840, "metrics": {...}}],
      "provenance": {"samplecnn_version": "...", "checkpoints": {...}, "training_data": ..., "metrics": ...},
      "extra_files": ["MODEL_CARD.md"],
      "files": {"scale_3-9.fp32.onnx": "<sha256>", ...}
    }

:func:`write_manifest` is the only writer (export, fit and the model card use it, with
:mod:`.bundle_write` for heads); the same spec and files always give the same bytes.
The song vector a head reads is the concatenation, for each scale in ``head.scales`` (in that
order) and each level in ``head.levels`` (in that order), of that level's segment-mean vector;
the scale ``"mel"`` (only in a bundle with a ``spectral`` entry, see runtime/spectral.py) gives
its one vector of log-mel statistics whatever the levels.
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
from .spectral import SPECTRAL, MelBands, SpectralError, SpectralSpec

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


def sha256_files(paths: list[Path]) -> list[str]:
    """sha256 of each file, in order, hashed by one thread per CPU (hashlib releases the GIL:
    the 29 MB of a full-width bundle take 0.028 s in one thread, about half in two; part of
    every start)."""
    if len(paths) < 2:
        return [sha256_file(p) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1), thread_name_prefix="samplecnn-hash") as pool:
        return list(pool.map(sha256_file, paths))


def scale_file_stem(scale_name: str) -> str:
    """'3^9' -> 'scale_3-9' ('^' is awkward in file names)."""
    return "scale_" + scale_name.replace("^", "-")


@dataclass(frozen=True)
class OutputSpec:
    """One graph output: ``name`` (B, ``width``) float32; ``level`` 1 = last hidden layer, 0 = logits."""

    name: str
    level: int
    width: int

    def to_dict(self) -> dict:
        return {"name": self.name, "level": self.level, "width": self.width}

    @classmethod
    def from_dict(cls, d: dict) -> "OutputSpec":
        return cls(d["name"], int(d["level"]), int(d["width"]))


@dataclass(frozen=True)
class EngineSpec:
    """A TensorRT engine: runs only on ``tensorrt_version`` and ``gpu`` (see trt_support).

    ``onnx``: the graph it was built from; ``build``: profile, flags and build time.
    """

    file: str
    precision: str
    tensorrt_version: str
    gpu: str
    compute_capability: str
    onnx: str = ""
    build: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"file": self.file, "precision": self.precision, "tensorrt_version": self.tensorrt_version, "gpu": self.gpu,
                "compute_capability": self.compute_capability, "onnx": self.onnx, "build": dict(self.build)}

    @classmethod
    def from_dict(cls, d: dict) -> "EngineSpec":
        return cls(d["file"], d["precision"], str(d["tensorrt_version"]), d["gpu"], str(d["compute_capability"]),
                   d.get("onnx", ""), dict(d.get("build", {})))


@dataclass(frozen=True)
class ScaleSpec:
    """One backbone scale: input ``input_name`` (B, ``segment_samples``), one ONNX file per precision.

    ``graph``: precision -> graph kind ("conv2d" lowered or "conv1d"); ``extra_graphs``: other
    ONNX files engines were built from (e.g. the TensorRT int8 QDQ graph), name -> file.
    """

    name: str
    segment_samples: int
    input_name: str
    models: dict[str, str]  # precision -> ONNX file
    outputs: tuple[OutputSpec, ...]
    config: dict = field(default_factory=dict)
    engines: tuple[EngineSpec, ...] = ()
    parity: dict = field(default_factory=dict)
    quantization: dict = field(default_factory=dict)
    graph: dict = field(default_factory=dict)
    extra_graphs: dict = field(default_factory=dict)

    @property
    def level_outputs(self) -> tuple[OutputSpec, ...]:
        return tuple(o for o in self.outputs if o.level >= 1)

    def output(self, level: int) -> OutputSpec:
        for o in self.outputs:
            if o.level == level:
                return o
        raise BundleError(f"scale {self.name} has no level {level}; it has {[o.level for o in self.level_outputs]}")

    def to_dict(self) -> dict:
        d = {
            "name": self.name, "segment_samples": self.segment_samples, "input_name": self.input_name,
            "config": dict(self.config), "models": dict(self.models), "graph": dict(self.graph),
            "engines": [e.to_dict() for e in self.engines], "outputs": [o.to_dict() for o in self.outputs],
            "parity": dict(self.parity), "quantization": dict(self.quantization),
        }  # fmt: skip
        if self.extra_graphs:
            d["extra_graphs"] = dict(self.extra_graphs)
        return d

    @classmethod
    def from_dict(cls, s: dict) -> "ScaleSpec":
        return cls(
            name=s["name"], segment_samples=int(s["segment_samples"]), input_name=s["input_name"], models=dict(s["models"]),
            outputs=tuple(OutputSpec.from_dict(o) for o in s["outputs"]), config=dict(s.get("config", {})),
            engines=tuple(EngineSpec.from_dict(e) for e in s.get("engines", [])), parity=dict(s.get("parity", {})),
            quantization=dict(s.get("quantization", {})), graph=dict(s.get("graph", {})), extra_graphs=dict(s.get("extra_graphs", {})),
        )  # fmt: skip


@dataclass(frozen=True)
class HeadSpec:
    """A song-level classifier head (runtime/heads.py) reading ``scales`` x ``levels`` song vectors."""

    name: str
    task: str
    labels: tuple[str, ...]
    file: str
    scales: tuple[str, ...]
    levels: tuple[int, ...]
    input_width: int
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "task": self.task, "labels": list(self.labels), "file": self.file, "scales": list(self.scales),
                "levels": list(self.levels), "input_width": self.input_width, "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, h: dict) -> "HeadSpec":
        return cls(h["name"], h["task"], tuple(h["labels"]), h["file"], tuple(h["scales"]), tuple(int(v) for v in h["levels"]),
                   int(h["input_width"]), dict(h.get("metrics", {})))


@dataclass(frozen=True)
class Pooling:
    """How segment outputs become song vectors: max over time inside a segment, mean over segments."""

    segment: str = "max"
    song: str = "mean"

    def to_dict(self) -> dict:
        return {"segment": self.segment, "song": self.song}

    @classmethod
    def from_dict(cls, d: dict) -> "Pooling":
        pooling = cls(**d)
        if pooling != cls():
            raise BundleError(f"pooling {d} is not supported; this samplecnn pools {cls().to_dict()}: re-export the bundle")
        return pooling


@dataclass(frozen=True)
class BundleSpec:
    """Everything manifest.json says except the file hashes, typed both ways (``from_dict`` / ``to_dict``).

    ``extra_files``: other files the manifest hashes (e.g. MODEL_CARD.md).
    """

    sample_rate: int
    scales: tuple[ScaleSpec, ...]
    heads: tuple[HeadSpec, ...] = ()
    backbone_labels: tuple[str, ...] = ()
    pooling: Pooling = Pooling()
    provenance: dict = field(default_factory=dict)
    extra_files: tuple[str, ...] = ()
    spectral: SpectralSpec | None = None  # the "mel" level of the song vector (runtime/spectral.py); None: backbones only

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "schema_version": SCHEMA_VERSION, "sample_rate": self.sample_rate, "pooling": self.pooling.to_dict(),
            **({"spectral": self.spectral.to_dict()} if self.spectral is not None else {}),
            "backbone_labels": list(self.backbone_labels), "scales": [s.to_dict() for s in self.scales],
            "heads": [h.to_dict() for h in self.heads], "provenance": dict(self.provenance), "extra_files": list(self.extra_files),
        }  # fmt: skip

    @property
    def song_scales(self) -> tuple[str, ...]:
        """Every scale a song vector can read: the backbones', then "mel" when the bundle has the spectral level."""
        return tuple(s.name for s in self.scales) + ((SPECTRAL,) if self.spectral is not None else ())

    @classmethod
    def from_dict(cls, manifest: dict, where: str | Path = MANIFEST) -> "BundleSpec":
        """Parse and check a manifest dict; BundleError naming ``where`` when it is malformed."""
        try:
            spec = cls(
                sample_rate=int(manifest["sample_rate"]),
                scales=tuple(ScaleSpec.from_dict(s) for s in manifest["scales"]),
                heads=tuple(HeadSpec.from_dict(h) for h in manifest.get("heads", [])),
                backbone_labels=tuple(manifest.get("backbone_labels", [])),
                pooling=Pooling.from_dict(manifest.get("pooling", {})),
                provenance=dict(manifest.get("provenance", {})),
                extra_files=tuple(manifest.get("extra_files", [])),
                spectral=SpectralSpec.from_dict(manifest["spectral"]) if "spectral" in manifest else None,
            )
        except BundleError:
            raise
        except SpectralError as exc:
            raise BundleError(f"{where}: {exc}; re-export the bundle with this samplecnn") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: malformed manifest ({exc!r}); re-export the bundle with `samplecnn export`") from exc
        spec.check(where)
        return spec

    def check(self, where: str | Path = MANIFEST) -> None:
        if not self.scales:
            raise BundleError(f"{where}: no scales; re-export the bundle with `samplecnn export`")
        if self.spectral is not None:
            try:
                MelBands.of(self.spectral, self.sample_rate)  # what the Engine will use: built once, here
            except SpectralError as exc:
                raise BundleError(f"{where}: spectral level: {exc}; re-export the bundle") from exc
        if any(s.name == SPECTRAL for s in self.scales):
            raise BundleError(f"{where}: a scale is named {SPECTRAL!r}, the name of the spectral level; re-export the bundle")
        for h in self.heads:
            if h.task not in TASKS:
                raise BundleError(f"{where}: head {h.name!r} has task {h.task!r}; valid: {TASKS}")
            unknown = set(h.scales) - set(self.song_scales)
            if unknown:
                raise BundleError(f"{where}: head {h.name!r} reads scales {sorted(unknown)} the bundle lacks")

    def files(self) -> list[str]:
        """Every file the manifest names (graphs, engines, heads, extra files), in manifest order."""
        names = []
        for s in self.scales:
            names += list(s.models.values()) + list(s.extra_graphs.values()) + [e.file for e in s.engines]
        names += [h.file for h in self.heads] + list(self.extra_files)
        return list(dict.fromkeys(names))


@dataclass
class Bundle:
    """A verified bundle: ``Bundle.load(path)`` checks schema, files and hashes.

    ``manifest`` is the raw dict (with ``files``: name -> sha256); ``spec`` the typed view.
    """

    root: Path
    manifest: dict
    sample_rate: int
    scales: tuple[ScaleSpec, ...]
    heads: tuple[HeadSpec, ...]
    backbone_labels: tuple[str, ...]
    spec: BundleSpec | None = None

    def path(self, relative: str) -> Path:
        return self.root / relative

    @property
    def spectral(self) -> SpectralSpec | None:
        return self.spec.spectral if self.spec is not None else None

    @property
    def embedding_parts(self) -> list[tuple[str, int, int]]:
        """(scale, level, width) in the order a song embedding concatenates them: every level of every
        backbone scale (level 1 first), then the spectral level when the bundle has one."""
        parts = [(s.name, o.level, o.width) for s in self.scales for o in sorted(s.level_outputs, key=lambda o: o.level)]
        return parts + ([(SPECTRAL, 1, self.spectral.width)] if self.spectral is not None else [])

    @property
    def embedding_width(self) -> int:
        return sum(width for _, _, width in self.embedding_parts)

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
        spec = BundleSpec.from_dict(manifest, root / MANIFEST)
        if verify_hashes:
            verify_files(root, manifest, spec)
        return cls(root, manifest, spec.sample_rate, spec.scales, spec.heads, spec.backbone_labels, spec)


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


def verify_files(root: Path, manifest: dict, spec: BundleSpec | None = None) -> None:
    """Every file the manifest lists exists with its sha256; every file the manifest names is listed."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{root / MANIFEST}: no file hashes; re-export the bundle with `samplecnn export`")
    problems = []
    present = [relative for relative in sorted(files) if (root / relative).is_file()]
    digests = dict(zip(present, sha256_files([root / relative for relative in present])))
    for relative, expected in sorted(files.items()):
        if relative not in digests:
            problems.append(f"missing file {relative}")
        elif digests[relative] != expected:
            problems.append(f"{relative} does not match its sha256 in the manifest (modified or corrupted)")
    for relative in (spec or BundleSpec.from_dict(manifest, root / MANIFEST)).files():
        if relative not in files:
            problems.append(f"{relative} is referenced but has no hash")
    if problems:
        raise BundleError(
            f"bundle {root} failed verification: " + "; ".join(problems)
            + ". Re-export it with `samplecnn export` (or re-fit heads with `samplecnn fit`); do not edit bundle files by hand."
        )


def write_manifest(root: str | Path, spec: BundleSpec) -> dict:
    """The one manifest writer: hash every file ``spec`` names, replace manifest.json atomically.

    Same spec and same files -> byte-identical manifest.json. Returns the manifest dict.
    """
    root = Path(root)
    spec.check(root / MANIFEST)
    manifest = spec.to_dict()
    missing = [rel for rel in spec.files() if not (root / rel).is_file()]
    if missing:
        raise BundleError(f"cannot write {root / MANIFEST}: it names files that are not there: {missing}")
    names = sorted(spec.files())
    manifest["files"] = dict(zip(names, sha256_files([root / rel for rel in names])))
    with atomic_path(root / MANIFEST) as tmp, open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")
    return manifest


def write_manifest_atomically(root: Path, manifest: dict) -> dict:
    """Parse ``manifest`` (a dict, e.g. edited by hand in a test) and write it with :func:`write_manifest`."""
    return write_manifest(root, BundleSpec.from_dict(manifest, Path(root) / MANIFEST))


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
