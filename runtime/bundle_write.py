"""Changing a bundle in place: add or replace a song-level head (``samplecnn fit``), name extra files.

Head files are content-addressed (``head_<name>.<sha256[:16]>.safetensors``): the same weights
always get the same file name, so rebuilding a bundle from the same inputs gives the same
manifest. Every change writes the new file first, then replaces manifest.json atomically
(:func:`samplecnn.runtime.bundle.write_manifest`), then removes files nothing names any more:
a reader sees the old bundle or the new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .bundle import Bundle, BundleError, BundleSpec, HeadSpec, sha256_file, write_manifest
from .heads import save_head

CONTENT_HASH_CHARS = 16  # 64 bits of sha256: no collisions among one bundle's files


def content_addressed(root: Path, stem: str, suffix: str, write) -> str:
    """Write a file with ``write(tmp_path)`` and name it ``{stem}.{sha256[:16]}{suffix}`` in ``root``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=root)
    os.close(fd)
    try:
        write(tmp)
        name = f"{stem}.{sha256_file(tmp)[:CONTENT_HASH_CHARS]}{suffix}"
        os.replace(tmp, root / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return name


def update_manifest(root: str | Path, spec: BundleSpec, old: BundleSpec) -> dict:
    """Write ``spec`` as the manifest of ``root``, then delete the files only ``old`` named."""
    root = Path(root)
    manifest = write_manifest(root, spec)
    for relative in set(old.files()) - set(spec.files()):
        (root / relative).unlink(missing_ok=True)
    return manifest


def add_head(
    root: str | Path, head: HeadSpec, mean: np.ndarray, std: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]
) -> Path:
    """Write a head (format of :mod:`samplecnn.runtime.heads`) into the bundle at ``root``; returns its file.

    ``head.file`` is ignored: the file is named by its content. A head of the same name is
    replaced (the new one comes last in the manifest). ``mean``, ``std``: (D,); ``layers``:
    [(W (out, in), b (out,)), ...] with D = ``head.input_width``.
    """
    root = Path(root)
    bundle = Bundle.load(root)  # refuse to extend a bundle that is already broken
    missing = [s for s in head.scales if s not in bundle.spec.song_scales]
    if missing:
        raise BundleError(f"head reads scales {missing} that bundle {root} lacks; it has {list(bundle.spec.song_scales)}")
    if np.shape(mean) != (head.input_width,) or len(head.labels) != np.shape(layers[-1][0])[0]:
        raise BundleError(
            f"head {head.name!r}: weights take {np.shape(mean)} vectors and give {np.shape(layers[-1][0])[0]} scores, "
            f"the spec says {head.input_width} dims and {len(head.labels)} labels"
        )
    name = content_addressed(root, f"head_{head.name}", ".safetensors", lambda tmp: save_head(tmp, mean, std, layers))
    old = bundle.spec
    heads = tuple(h for h in old.heads if h.name != head.name) + (replace(head, file=name),)
    try:
        update_manifest(root, replace(old, heads=heads), old)
    except BaseException:
        if name not in old.files():
            (root / name).unlink(missing_ok=True)
        raise
    return root / name


def add_extra_file(root: str | Path, relative: str) -> dict:
    """List ``relative`` (already written in the bundle, e.g. MODEL_CARD.md) in the manifest and rehash."""
    root = Path(root)
    spec = Bundle.load(root, verify_hashes=False).spec
    extra = spec.extra_files if relative in spec.extra_files else (*spec.extra_files, relative)
    return write_manifest(root, replace(spec, extra_files=extra))
