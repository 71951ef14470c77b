"""OpenVINO backend: real OpenVINO against real onnxruntime on real clips, the shipped default
model (trained weights, so tag agreement means something), and a real compiled-model cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'samplecnn[openvino]')")

from samplecnn.cli import app  # noqa: E402
from samplecnn.runtime.backends import BackendError, resolve_backend  # noqa: E402
from samplecnn.runtime.backends.openvino import (BF16_MIN_AGREEMENT, OpenVinoBackend, check_native_bf16,  # noqa: E402
                                                 cpu_flags)
from samplecnn.runtime.backends.ort import OrtBackend  # noqa: E402
from samplecnn.runtime.bundle import Bundle  # noqa: E402
from samplecnn.runtime.tagger import DEFAULT_MODEL, Tagger  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NATIVE_BF16 = any(f in cpu_flags() for f in ("avx512_bf16", "amx_bf16"))
needs_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16 (avx512_bf16 / amx_bf16)")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test compiles into its own cache folder (never the user's ~/.cache)."""
    monkeypatch.setenv("SAMPLECNN_OPENVINO_CACHE", str(tmp_path / "ov-cache"))
    return tmp_path / "ov-cache"


@pytest.fixture(scope="module")
def default_model() -> Bundle:
    return Bundle.load(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def songs(music_files) -> list[str]:
    """Real songs: the test clips and the four CC examples."""
    return [str(p) for p in music_files.values()] + [str(p) for p in sorted(EXAMPLES.glob("*.ogg"))]


@pytest.fixture(scope="module")
def real_segments(default_model, songs) -> dict[str, np.ndarray]:
    """{scale: (N, segment_samples)} cut from the real songs (the runtime's own decoder)."""
    from samplecnn.runtime.audio import load_audio
    from samplecnn.runtime.segments import cut_segments

    audio = [load_audio(p, default_model.sample_rate) for p in songs[:4]]
    return {s.name: np.concatenate([cut_segments(a, s.segment_samples)[:3] for a in audio]) for s in default_model.scales}


def _relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.abs(reference - candidate).max() / max(np.abs(reference).max(), 1e-12))


def test_fp32_matches_onnxruntime_and_pins_the_f32_hint(default_model, real_segments, private_cache):
    for scale in default_model.scales:
        x = real_segments[scale.name]
        with OrtBackend(default_model, scale, precision="fp32", threads=2) as ort, OpenVinoBackend(default_model, scale, precision="fp32") as ov:
            hint = ov.compiled.get_property("INFERENCE_PRECISION_HINT")
            assert "float32" in str(hint), f"fp32 must never run as {hint}"
            reference, candidate = ort.infer(x), ov.infer(x)
            assert set(candidate) == {o.name for o in scale.outputs}
            for name in reference:
                assert candidate[name].shape == reference[name].shape and candidate[name].dtype == np.float32
                assert _relative_error(reference[name], candidate[name]) < 1e-4, (scale.name, name)
            assert "inference precision f32" in ov.description


def _top5(results) -> dict[str, set[str]]:
    return {r.path: {label for label, _ in r.top["backbone"]} for r in results}  # the backbones' own tags


@pytest.mark.parametrize("precision", [pytest.param("bf16", marks=needs_bf16), "int8"])
def test_bf16_and_int8_pass_the_agreement_gate_on_real_songs(default_model, songs, precision):
    with Tagger(default_model, backend="ort", precision="fp32") as reference:
        expected = _top5(reference.tag(songs, top_k=5))
    with Tagger(default_model, backend="openvino", precision=precision) as tagger:
        assert f"{precision} (inference precision" in tagger.description
        got = _top5(tagger.tag(songs, top_k=5))
    agreement = [len(expected[p] & got[p]) / 5 for p in songs]
    assert np.mean(agreement) >= BF16_MIN_AGREEMENT, agreement


def test_cache_is_reused_on_a_second_start_and_rebuilt_when_corrupt(default_model, real_segments, private_cache):
    scale = default_model.scale("3^9")
    x = real_segments[scale.name][:2]
    with OpenVinoBackend(default_model, scale, precision="fp32") as first:
        assert first.cache_status == "miss"
        blob, record = first.cache_files()
        expected = first.infer(x)
    assert blob.stat().st_size > 0 and json.loads(record.read_text())["precision"] == "fp32"
    with OpenVinoBackend(default_model, scale, precision="fp32") as second:
        assert second.cache_status == "hit" and "cache hit" in second.description
        np.testing.assert_array_equal(second.infer(x)["logits"], expected["logits"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # flipped bytes in the middle
    blob.write_bytes(bytes(data))
    with OpenVinoBackend(default_model, scale, precision="fp32") as third:
        assert third.cache_status.startswith("rebuilt") and "sha256" in third.cache_status
        np.testing.assert_array_equal(third.infer(x)["logits"], expected["logits"])
    blob.write_bytes(blob.read_bytes()[:100])  # truncated, and its record rewritten to match: OpenVINO refuses it
    rec = json.loads(record.read_text())
    import hashlib

    rec["blob_sha256"] = hashlib.sha256(blob.read_bytes()).hexdigest()
    record.write_text(json.dumps(rec))
    with OpenVinoBackend(default_model, scale, precision="fp32") as fourth:
        assert fourth.cache_status.startswith("rebuilt")
        np.testing.assert_array_equal(fourth.infer(x)["logits"], expected["logits"])
    with OpenVinoBackend(default_model, scale, precision="fp32") as fifth:
        assert fifth.cache_status == "hit"  # the rebuilt blob was written back


def test_from_file_reads_inputs_and_outputs_from_the_graph(default_model, real_segments):
    scale = default_model.scale("2^14")
    x = real_segments[scale.name][:3]
    with OpenVinoBackend.from_file(default_model.path(scale.models["fp32"]), threads=1) as backend:
        assert backend.scale.segment_samples == scale.segment_samples and backend.bundle is None
        assert {o.name: o.level for o in backend.scale.outputs} == {o.name: o.level for o in scale.outputs}
        with OrtBackend(default_model, scale, threads=1) as ort:
            assert _relative_error(ort.infer(x)["level1"], backend.infer(x)["level1"]) < 1e-4
    with pytest.raises(BackendError, match="QDQ int8.*precision='int8'"):
        OpenVinoBackend.from_file(default_model.path(scale.models["int8"]), precision="fp32")
    with pytest.raises(BackendError, match="no such graph file"):
        OpenVinoBackend.from_file("missing.onnx")


def test_bf16_without_native_bf16_is_an_error_not_an_emulation():
    with pytest.raises(BackendError, match="avx512_bf16 or amx_bf16.*--precision fp32"):
        check_native_bf16({"avx2", "fma", "avx512f"})
    check_native_bf16({"avx512f", "avx512_bf16"})


def test_auto_says_what_it_chose_and_bf16_needs_openvino(default_model):
    from samplecnn.runtime.backends import CPU_ORDER

    for precision in ("fp32", "bf16", "int8", "fp16"):
        name, why = resolve_backend(default_model, "auto", "cpu", precision)
        assert name == CPU_ORDER[precision][0] and why.startswith("auto: ")
        assert ("OpenVINO" if name == "openvino" else "onnxruntime") in why
    assert resolve_backend(default_model, "auto", "cpu", "bf16")[0] == "openvino"
    with pytest.raises(BackendError, match="bf16 runs on --backend openvino only"):
        resolve_backend(default_model, "ort", "cpu", "bf16")
    with pytest.raises(BackendError, match="cpu only"):
        OpenVinoBackend(default_model, default_model.scales[0], device="cuda")


def test_cli_bad_backend_precision_exits_2_before_work(music_files):
    song = str(next(iter(music_files.values())))
    done = CliRunner().invoke(app, ["infer", "--backend", "ort", "--precision", "bf16", "--no-progress", song])
    assert done.exit_code == 2, done.output
    assert "bf16 runs on --backend openvino only" in done.output


_WITHOUT_OPENVINO = """
import sys, warnings
sys.modules["openvino"] = None  # as if the package were not installed
warnings.simplefilter("error")
import samplecnn.runtime
from samplecnn.runtime.backends import BackendError, resolve_backend
from samplecnn.runtime.bundle import Bundle
from samplecnn.runtime.tagger import DEFAULT_MODEL, Tagger
bundle = Bundle.load(DEFAULT_MODEL)
print("AUTO", resolve_backend(bundle, "auto", "cpu", "fp32"))
for precision, backend in (("fp32", "openvino"), ("bf16", "auto")):
    try:
        Tagger(bundle, backend=backend, precision=precision)
    except BackendError as exc:
        print("ERROR", exc)
"""


def test_without_openvino_named_backend_errors_with_the_extra_and_auto_says_why():
    done = subprocess.run([sys.executable, "-c", _WITHOUT_OPENVINO], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    auto = next(line for line in lines if line.startswith("AUTO"))
    assert "'ort'" in auto and "onnxruntime" in auto
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 2 and all("samplecnn[openvino]" in line for line in errors)
