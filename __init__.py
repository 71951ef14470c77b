"""samplecnn: music auto-tagging with multi-level, multi-scale sample-level CNNs.

The public face; every name is imported on first use, so ``import samplecnn`` never imports
torch (serving needs only numpy + onnxruntime)::

    from samplecnn import Tagger, __version__
    with Tagger() as tagger:                               # the shipped default model
        (song,) = tagger.tag(["song.mp3"])

    samplecnn.train(samplecnn.TrainConfig(manifest="train.csv", scale="3^9"))  # torch
    samplecnn.export_bundle(["runs/3-9/best.safetensors"], "bundle", parity_audio="songs/")
    samplecnn.fit(samplecnn.FitOptions(bundle="bundle", manifest="train.csv", label_column="genre"))

The command line (``samplecnn train | export | fit | infer ...``) wraps exactly these.
"""

from __future__ import annotations

from .runtime._version import __version__

_LAZY = {  # name -> (module, attribute)
    "Tagger": ("runtime.tagger", "Tagger"),
    "SongResult": ("runtime.tagger", "SongResult"),
    "Bundle": ("runtime.bundle", "Bundle"),
    "BundleError": ("runtime.bundle", "BundleError"),
    "BackendError": ("runtime.backends", "BackendError"),
    "AudioError": ("runtime.audio", "AudioError"),
    "train": ("trainer.train", "train"),
    "TrainConfig": ("trainer.train", "TrainConfig"),
    "export_bundle": ("export.bundle_writer", "export_bundle"),
    "ExportError": ("export.errors", "ExportError"),
    "fit": ("trainer.fit_run", "run_fit"),
    "FitOptions": ("trainer.fit_run", "FitOptions"),
    "DatasetSource": ("trainer.sources", "DatasetSource"),
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; it has {__all__}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
