"""onnxruntime's optimised-graph cache: real sessions on the default model and real music.

A second start loads the stored optimised graph (no rewrite) and gives the same numbers as an
uncached session; a corrupt, truncated or foreign entry is rebuilt, never trusted; a folder
that cannot be written only warns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.backends.compiled_cache import bytes_sha256
from samplecnn.runtime.backends.ort import OrtBackend
from samplecnn.runtime.bundle import Bundle
from samplecnn.runtime.segments import cut_segments

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "runtime" / "default_model"


@pytest.fixture(scope="module")
def default_model() -> Bundle:
    return Bundle.load(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def segments(default_model, music_files) -> dict[str, np.ndarray]:
    """{scale: (6, segment_samples)} of two real clips (the runtime's own decoder)."""
    audio = [load_audio(p, default_model.sample_rate) for p in list(music_files.values())[:2]]
    return {s.name: np.concatenate([cut_segments(a, s.segment_samples)[:3] for a in audio]) for s in default_model.scales}


def _entry(folder: Path) -> tuple[Path, Path]:
    (blob,) = folder.glob("*.blob")
    return blob, blob.with_suffix(".json")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_second_start_is_a_hit_with_the_numbers_of_an_uncached_session(default_model, segments, tmp_path, precision):
    scale = default_model.scale("3^9")
    x = segments[scale.name]
    with OrtBackend(default_model, scale, precision=precision, threads=1, cache=False) as plain:
        assert plain.cache_status == "off"
        expected = plain.infer(x)
    with OrtBackend(default_model, scale, precision=precision, threads=1, cache_dir=tmp_path) as first:
        assert first.cache_status == "miss"
        for name, value in first.infer(x).items():
            np.testing.assert_array_equal(value, expected[name])
    blob, record = _entry(tmp_path)
    meta = json.loads(record.read_text())
    assert meta["graph_sha256"] == default_model.manifest["files"][scale.models[precision]]
    assert meta["blob_sha256"] == bytes_sha256(blob.read_bytes()) and meta["engine"] == "onnxruntime"
    with OrtBackend(default_model, scale, precision=precision, threads=1, cache_dir=tmp_path) as second:
        assert second.cache_status == "hit" and "cache" not in second.description  # descriptions go into manifests
        for name, value in second.infer(x).items():
            np.testing.assert_allclose(value, expected[name], rtol=1e-6, atol=1e-7)


def test_corrupt_truncated_or_refused_entries_are_rebuilt(default_model, segments, tmp_path):
    scale = default_model.scale("5^6")
    x = segments[scale.name][:2]
    with OrtBackend(default_model, scale, threads=1, cache_dir=tmp_path) as first:
        expected = first.infer(x)["logits"]
    blob, record = _entry(tmp_path)
    good = blob.read_bytes()

    data = bytearray(good)
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # flipped bytes: the sha256 no longer matches its record
    blob.write_bytes(bytes(data))
    with OrtBackend(default_model, scale, threads=1, cache_dir=tmp_path) as second:
        assert second.cache_status.startswith("rebuilt") and "sha256" in second.cache_status
        np.testing.assert_array_equal(second.infer(x)["logits"], expected)
    rewritten = blob.read_bytes()  # written back (onnxruntime's serialisation is not byte-stable between builds)
    assert rewritten != bytes(data) and json.loads(record.read_text())["blob_sha256"] == bytes_sha256(rewritten)
    good = rewritten

    blob.write_bytes(good[:100])  # truncated, with a record that matches it: onnxruntime refuses the graph
    meta = json.loads(record.read_text())
    record.write_text(json.dumps({**meta, "blob_sha256": bytes_sha256(good[:100])}))
    with OrtBackend(default_model, scale, threads=1, cache_dir=tmp_path) as third:
        assert third.cache_status.startswith("rebuilt") and "refused by onnxruntime" in third.cache_status
        np.testing.assert_array_equal(third.infer(x)["logits"], expected)

    record.write_text("{not json")
    with OrtBackend(default_model, scale, threads=1, cache_dir=tmp_path) as fourth:
        assert fourth.cache_status.startswith("rebuilt") and "unreadable" in fourth.cache_status
    with OrtBackend(default_model, scale, threads=1, cache_dir=tmp_path) as fifth:
        assert fifth.cache_status == "hit"


def test_the_environment_variable_names_the_folder_and_an_unwritable_one_only_warns(default_model, segments, tmp_path, monkeypatch):
    scale = default_model.scale("2^14")
    monkeypatch.setenv("SAMPLECNN_ONNXRUNTIME_CACHE", str(tmp_path / "env-cache"))
    with OrtBackend(default_model, scale, threads=1) as backend:
        assert backend.cache_status == "miss"
        expected = backend.infer(segments[scale.name][:1])["logits"]
    assert len(list((tmp_path / "env-cache").glob("*.blob"))) == 1
    if os.geteuid() == 0:
        blocker = tmp_path / "file-not-folder"  # root ignores permissions; a file in the way cannot be bypassed
        blocker.write_text("")
        folder = blocker / "cache"
    else:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o500)
    with pytest.warns(RuntimeWarning, match="SAMPLECNN_ONNXRUNTIME_CACHE"):
        backend = OrtBackend(default_model, scale, threads=1, cache_dir=folder)
    with backend:
        assert backend.cache_status.startswith("off")
        np.testing.assert_array_equal(backend.infer(segments[scale.name][:1])["logits"], expected)
