"""One on-disk cache of compiled / optimised graphs, shared by the CPU backends.

Starting a backend rewrites each ONNX graph for this CPU: onnxruntime's graph optimiser
(``ORT_ENABLE_ALL``: fusions and the NCHWc layout for the CPU's vector width), OpenVINO's
compiler. That costs 30-500 ms per graph, every start. The result depends only on the graph,
the library's version, the settings and the CPU, so it is stored once and reused:

    cache = CompiledCache("onnxruntime")              # ~/.cache/samplecnn/onnxruntime
    blob, record = cache.files(stem, key)             # <stem>.<key>.{blob,json}
    data = cache.read(stem, key)                      # bytes, or None (miss); raises CacheRefused
    cache.write(stem, key, data, {"graph": ...})      # atomic; a read-only home only warns

The key (:func:`cache_key`) covers the graph's sha256, the library version, the settings and
the CPU's vector flags, so a different machine, library or graph never reuses an entry. A
blob is used only when its sha256 matches its record; a truncated or corrupt one raises
:class:`CacheRefused`, and the backend rebuilds and rewrites it: never trusted.

Folders: ``$SAMPLECNN_<ENGINE>_CACHE`` (for example ``SAMPLECNN_ONNXRUNTIME_CACHE``,
``SAMPLECNN_OPENVINO_CACHE``), else ``~/.cache/samplecnn/<engine>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from ..atomic import atomic_path


class CacheRefused(ValueError):
    """A cached blob exists but cannot be trusted (unreadable record, sha256 mismatch)."""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (empty set when there is no /proc/cpuinfo)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_key(graph_sha256: str, library_version: str, settings: dict) -> str:
    """24 hex digits naming one compiled form: graph, library version, settings, CPU flags."""
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma")))
    parts = [graph_sha256, library_version, json.dumps(settings, sort_keys=True), ",".join(flags)]
    return bytes_sha256("\n".join(parts).encode())[:24]


class CompiledCache:
    """Blob + JSON record pairs under one folder for one engine (see the module docstring)."""

    def __init__(self, engine: str, folder: str | Path | None = None) -> None:
        self.engine = engine
        self.env = f"SAMPLECNN_{engine.upper()}_CACHE"
        self.folder = Path(folder) if folder is not None else Path(os.environ.get(self.env) or Path.home() / ".cache" / "samplecnn" / engine)

    def files(self, stem: str, key: str) -> tuple[Path, Path]:
        """(blob, record) paths of one entry."""
        return self.folder / f"{stem}.{key}.blob", self.folder / f"{stem}.{key}.json"

    def read(self, stem: str, key: str) -> bytes | None:
        """The entry's bytes; None when there is none; CacheRefused when it is not trustworthy."""
        blob_path, record_path = self.files(stem, key)
        if not blob_path.exists() and not record_path.exists():
            return None
        try:
            record = json.loads(record_path.read_text())
            blob = blob_path.read_bytes()
        except (OSError, ValueError) as exc:
            raise CacheRefused(f"cached {blob_path.name} or its record is unreadable ({exc})") from exc
        if not isinstance(record, dict) or record.get("blob_sha256") != bytes_sha256(blob):
            raise CacheRefused(f"cached {blob_path.name}: its sha256 does not match its record (truncated or corrupt)")
        return blob

    def write(self, stem: str, key: str, blob: bytes, record: dict) -> bool:
        """Store one entry atomically (blob first, then its record). A folder that cannot be
        written only warns (inference goes on; every start then rebuilds) and returns False."""
        blob_path, record_path = self.files(stem, key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(blob_path) as tmp, open(tmp, "wb") as f:
                f.write(blob)
            record = {**record, "engine": self.engine, "blob_sha256": bytes_sha256(blob), "blob_bytes": len(blob)}
            with atomic_path(record_path) as tmp, open(tmp, "w") as f:
                json.dump(record, f, indent=2)
        except OSError as exc:  # a read-only home must not stop inference; say so instead of hiding it
            warnings.warn(f"{self.engine} graph cache not written to {self.folder} ({exc}); every start rebuilds the graphs. "
                          f"Set {self.env} to a writable folder", RuntimeWarning, stacklevel=3)
            return False
        return True
