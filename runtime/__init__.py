"""The torch-free serving path: audio decoding, bundles, backends, batched tagging.

``from samplecnn.runtime import Tagger`` is the entry point (see :mod:`.tagger`). Names are
resolved lazily so importing a submodule (e.g. ``runtime.bundle`` from export) stays cheap.
"""

from __future__ import annotations

_LAZY = {
    "Tagger": "tagger",
    "SongResult": "tagger",
    "SongFeatures": "pipeline",
    "Bundle": "bundle",
    "BundleError": "bundle",
    "AudioError": "audio",
    "BackendError": "backends",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
