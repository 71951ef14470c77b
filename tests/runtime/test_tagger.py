"""Song-level outputs of the runtime equal the torch reference on real music in many formats."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf

from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.bundle import Bundle, BundleError, write_manifest_atomically
from samplecnn.runtime.heads import Head, head_input, save_head
from samplecnn.runtime.tagger import Tagger, expand_inputs

RTOL, ATOL = 1e-3, 2e-5  # fp32 ONNX (BatchNorm folded) vs torch, averaged over segments


def assert_matches_reference(features, checkpoints, audio, torch_reference):
    reference = torch_reference(checkpoints, audio)
    for scale, levels in reference.items():
        for level, expected in levels.items():
            if level == 0:
                continue
            np.testing.assert_allclose(features.levels[scale][level], expected, rtol=RTOL, atol=ATOL, err_msg=f"{features.path} {scale} level{level}")
    expected_scores = np.mean([levels[0] for levels in reference.values()], axis=0)
    np.testing.assert_allclose(features.backbone_scores, expected_scores, rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def tagger(tiny_bundle):
    with Tagger(tiny_bundle, batch_size=4) as t:
        yield t


def test_formats_rates_and_channels_match_torch_reference(tagger, tiny_checkpoints, derived_audio, torch_reference):
    names = sorted(derived_audio)
    results = list(tagger.features([derived_audio[n] for n in names]))
    assert [r.path for r in results] == [str(derived_audio[n]) for n in names]
    for name, features in zip(names, results):
        assert features.ok, (name, features.error)
        audio = load_audio(derived_audio[name], tagger.bundle.sample_rate)
        assert features.duration == pytest.approx(len(audio) / 22050)
        for scale in tagger.bundle.scales:
            assert features.n_segments[scale.name] == max(1, math.ceil(len(audio) / scale.segment_samples))
        assert_matches_reference(features, tiny_checkpoints, audio, torch_reference)


def test_long_song_many_segments_and_batches_across_songs(tiny_bundle, tiny_checkpoints, music_files, torch_reference):
    # batch 3 and two songs: batches mix segments of both, and songs end mid-batch
    paths = [music_files["kevin_macleod_vibe_ace"], music_files["sorohanro_solo_trumpet_06"]]
    with Tagger(tiny_bundle, batch_size=3, decode_workers=2) as t:
        results = list(t.features(paths))
    for path, features in zip(paths, results):
        assert features.ok
        assert_matches_reference(features, tiny_checkpoints, load_audio(path, 22050), torch_reference)
    assert results[0].n_segments == {"2^14": 42, "3^9": 23}


def test_array_inputs_match_file_inputs(tagger, trumpet, music_files):
    audio, rate = trumpet
    stereo44, rate44 = sf.read(str(music_files["sorohanro_solo_trumpet_06.44k_stereo"]), dtype="float32")
    from_file, from_array, from_stereo = tagger.features([music_files["sorohanro_solo_trumpet_06"], (audio, rate), (stereo44, rate44)])
    assert from_array.path == "<array 1>" and from_array.ok and from_stereo.ok
    for scale, levels in from_file.levels.items():
        for level, vector in levels.items():
            np.testing.assert_array_equal(from_array.levels[scale][level], vector)
    int16 = (audio * 32767).astype(np.int16)
    (from_int,) = tagger.features([(int16, rate)])
    np.testing.assert_allclose(from_int.levels["3^9"][1], from_file.levels["3^9"][1], rtol=1e-2, atol=1e-3)


def test_song_shorter_than_a_segment_is_zero_padded(tagger, tiny_checkpoints, trumpet, torch_reference):
    audio, rate = trumpet
    short = audio[: rate // 2]
    (features,) = tagger.features([(short, rate)])
    assert features.n_segments == {"2^14": 1, "3^9": 1}
    assert_matches_reference(features, tiny_checkpoints, short, torch_reference)


def test_tag_results_top_k_embedding_and_segment_series(tagger, music_files):
    (result,) = tagger.tag([music_files["kevin_macleod_vibe_ace"]], top_k=3, embeddings=True, segments=True)
    assert result.ok and list(result.scores) == ["backbone"]
    scores = result.scores["backbone"]
    assert list(scores) == list(tagger.bundle.backbone_labels)
    assert [label for label, _ in result.top["backbone"]] == sorted(scores, key=scores.get, reverse=True)[:3]
    widths = sum(w for _, _, w in tagger.bundle.embedding_parts)
    assert result.embedding.shape == (widths,)
    series = result.segments["2^14"]
    assert series["scores"].shape == (42, len(tagger.bundle.backbone_labels))
    assert np.all(np.diff(series["start"]) > 0)
    # the song's score is the mean over scales of the mean over that scale's segments
    mean = np.mean([result.segments[s]["scores"].mean(0) for s in result.segments], axis=0)
    np.testing.assert_allclose(list(scores.values()), mean, rtol=1e-5, atol=1e-6)
    json.dumps(result.to_dict())


def test_heads_read_the_documented_song_vector(tiny_bundle, tmp_path, music_files, tagger):
    bundle_dir = tmp_path / "with_head"
    shutil.copytree(tiny_bundle, bundle_dir)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    scales, levels = ["3^9", "2^14"], [2, 1]
    width = sum(o["width"] for s in manifest["scales"] if s["name"] in scales for o in s["outputs"] if o["level"] in levels)
    rng = np.random.default_rng(0)
    save_head(bundle_dir / "head_genre.safetensors", rng.normal(size=width), np.full(width, 2.0),
              [(rng.normal(size=(16, width)), rng.normal(size=16)), (rng.normal(size=(3, 16)), rng.normal(size=3))])
    manifest["heads"] = [{"name": "genre", "task": "classes", "labels": ["a", "b", "c"], "file": "head_genre.safetensors",
                          "scales": scales, "levels": levels, "input_width": width}]
    write_manifest_atomically(bundle_dir, manifest)
    bundle = Bundle.load(bundle_dir)
    with Tagger(bundle) as t:
        (features,) = t.features([music_files["sorohanro_solo_trumpet_06"]])
        (result,) = t.tag([music_files["sorohanro_solo_trumpet_06"]], top_k=2)
    vector = np.concatenate([features.levels[s][lv] for s in scales for lv in levels])
    np.testing.assert_array_equal(head_input(features.levels, bundle.heads[0]), vector)
    expected = Head.load(bundle_dir / "head_genre.safetensors", bundle.heads[0])(vector[None])[0]
    assert list(result.scores) == ["backbone", "genre"]  # the backbone's own tags come first
    np.testing.assert_allclose(list(result.scores["genre"].values()), expected, rtol=1e-6)
    assert sum(result.scores["genre"].values()) == pytest.approx(1.0, abs=1e-5)


def test_max_segments_caps_segments(tiny_bundle, music_files):
    with Tagger(tiny_bundle, max_segments=5) as t:
        (features,) = t.features([music_files["kevin_macleod_vibe_ace"]])
    assert features.n_segments == {"2^14": 5, "3^9": 5}


def test_bad_options_name_the_value(tiny_bundle):
    with pytest.raises(ValueError, match="batch_size = 0"):
        Tagger(tiny_bundle, batch_size=0)
    with pytest.raises(BundleError, match="no int8 graph.*fp32"):
        Tagger(tiny_bundle, precision="int8")


def test_missing_default_model_says_how_to_pass_a_bundle():
    from samplecnn.runtime import tagger as tagger_module

    if (tagger_module.DEFAULT_MODEL / "manifest.json").exists():
        pytest.skip("a default model is installed")
    with pytest.raises(BundleError, match="--bundle"):
        Tagger()


def test_expand_inputs_walks_directories_and_globs(tmp_path, music_files):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(music_files["sorohanro_solo_trumpet_06"], tmp_path / "a" / "b" / "x.ogg")
    shutil.copy(music_files["sorohanro_solo_trumpet_06"], tmp_path / "a" / "y.OGG")
    (tmp_path / "a" / "notes.txt").write_text("no")
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / "a" / "y.OGG"), str(tmp_path / "a" / "b" / "x.ogg")]
    assert expand_inputs([str(tmp_path / "a" / "*.OGG"), "missing.wav"]) == [str(tmp_path / "a" / "y.OGG"), "missing.wav"]


def test_default_batch_size_keeps_activations_in_budget(tiny_bundle):
    from dataclasses import replace

    from samplecnn.runtime.tagger import ACTIVATION_BUDGET_BYTES, GPU_BATCH, MAX_CPU_BATCH, default_batch_size

    scale = Bundle.load(tiny_bundle).scale("3^9")  # width 0.125: small activations
    assert default_batch_size(scale, "fp32", "cpu") == MAX_CPU_BATCH
    full = replace(scale, config={**scale.config, "width": 1.0})  # 19683 frames x 128 channels
    assert default_batch_size(full, "fp32", "cpu") == 1
    assert default_batch_size(full, "int8", "cpu") == 1  # its stem is float: activations as large as fp32's
    width_quarter = replace(scale, config={**scale.config, "width": 0.25})  # the default model: 32 channels
    assert default_batch_size(width_quarter, "int8", "cpu") == default_batch_size(width_quarter, "fp32", "cpu") == ACTIVATION_BUDGET_BYTES // (19683 * 32 * 20) == 4
    assert default_batch_size(full, "fp32", "cuda") == GPU_BATCH


def test_stopping_early_shuts_the_decoders_down(tiny_bundle, music_files):
    import threading
    import time

    with Tagger(tiny_bundle, decode_workers=2) as t:
        results = t.tag([music_files["kevin_macleod_vibe_ace"]] * 8)
        assert next(results).ok
        started = time.perf_counter()
        results.close()
        assert time.perf_counter() - started < 10
    assert not [th for th in threading.enumerate() if th.name.startswith("samplecnn-decode")]


def test_package_face_is_lazy_and_torch_free(tiny_bundle, music_files):
    import subprocess
    import sys

    script = (
        "import sys, warnings; warnings.simplefilter('error')\n"
        "import samplecnn\n"
        "from samplecnn import Tagger, __version__\n"
        f"with Tagger({str(tiny_bundle)!r}) as t: (song,) = t.tag([{str(music_files['sorohanro_solo_trumpet_06'])!r}])\n"
        "assert song.ok and __version__ and {'train', 'export_bundle', 'fit'} <= set(samplecnn.__all__)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
        "assert callable(samplecnn.fit) and callable(samplecnn.train) and callable(samplecnn.export_bundle)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # torch only once a training entry point is used


@pytest.mark.parametrize("broken", [("2^14", "3^9"), ("3^9",)])
def test_a_scale_that_cannot_open_stops_the_tagger_with_the_first_failing_scale_named(tiny_bundle, tmp_path, monkeypatch, broken):
    # The scales open concurrently on cpu; the error is still the first failing scale's, in
    # bundle order, and the tagger's other sessions are closed (a new tagger opens normally).
    from samplecnn.runtime.backends import BackendError

    monkeypatch.setenv("SAMPLECNN_ONNXRUNTIME_CACHE", str(tmp_path / "cache"))
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle_dir)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    for scale in manifest["scales"]:
        if scale["name"] in broken:
            (bundle_dir / scale["models"]["fp32"]).write_bytes(b"not an onnx graph" * 100)
    write_manifest_atomically(bundle_dir, manifest)  # hashes match: only the graphs are bad
    first = "scale_" + broken[0].replace("^", "-")
    for _ in range(3):
        with pytest.raises(BackendError, match=rf"could not load .*{first}\.fp32\.onnx"):
            Tagger(bundle_dir)
    with Tagger(tiny_bundle) as tagger:
        assert sorted(tagger.backends) == ["2^14", "3^9"]


def test_a_bad_top_k_is_refused_at_the_call_before_any_song_is_decoded(tagger, music_files):
    with pytest.raises(ValueError, match="top_k"):
        tagger.tag([music_files["sorohanro_solo_trumpet_06"]], top_k=0)  # not iterated: refused at the call
