"""The spectral level of the song vector (runtime/spectral.py): log-mel statistics of real music,
streamed block by block, in the Tagger's features, embeddings and heads, and in the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from samplecnn.runtime import Tagger
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.bundle import Bundle, BundleError
from samplecnn.runtime.heads import song_vector
from samplecnn.runtime.spectral import SPECTRAL, SpectralSpec, SpectralStats, spectral_vector

RATE = 22050


def reference_vector(audio: np.ndarray, spec: SpectralSpec, rate: int) -> np.ndarray:
    """The documented formula, written out frame by frame in float64 (an independent reading)."""
    n_fft, hop, n_mels = spec.n_fft, spec.hop, spec.n_mels
    if len(audio) < n_fft:
        audio = np.concatenate([audio, np.zeros(n_fft - len(audio))])
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(0, mel(min(spec.f_max, rate / 2)), n_mels + 2) / 2595) - 1)
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    bank = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            bank[m, k] = max(0.0, min((f - lo) / (c - lo), (hi - f) / (hi - c)))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / (n_fft - 1))
    rows = []
    for start in range(0, len(audio) - n_fft + 1, hop):
        power = np.abs(np.fft.rfft(audio[start : start + n_fft] * window)) ** 2
        rows.append(np.log10(1 + 10000 * bank @ power))
    logmel = np.array(rows)
    delta = np.diff(logmel, axis=0)
    if len(delta) == 0:
        delta = np.zeros((1, n_mels))
    return np.concatenate([logmel.mean(0), logmel.std(0), np.abs(delta).mean(0), delta.std(0)])


@pytest.fixture(scope="module")
def vibe(music_files) -> np.ndarray:
    return load_audio(music_files["kevin_macleod_vibe_ace"], RATE, max_seconds=20)


def test_statistics_follow_the_documented_formula_on_real_music(vibe):
    spec = SpectralSpec()
    got = spectral_vector(vibe, spec, RATE)
    assert got.shape == (spec.width,) == (4 * spec.n_mels,) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_vector(vibe.astype(np.float64), spec, RATE), rtol=2e-4, atol=2e-4)
    # Music is not flat: every statistic varies over the bands, and std and delta are positive.
    assert all(part.std() > 0 for part in got.reshape(4, spec.n_mels))
    assert (got[spec.n_mels :] > 0).mean() > 0.9


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_in_any_blocks_gives_the_whole_song_statistics(vibe, seed):
    spec = SpectralSpec()
    whole = spectral_vector(vibe, spec, RATE)
    stats, rng, start = SpectralStats(spec, RATE), np.random.default_rng(seed), 0
    while start < len(vibe):  # blocks shorter and longer than a frame, split anywhere
        size = int(rng.choice([1, 7, 300, 1023, 1024, 1025, 5000, 44100]))
        stats.push(vibe[start : start + size])
        start += size
    np.testing.assert_allclose(stats.finish(), whole, rtol=1e-5, atol=1e-6)


def test_short_and_silent_songs_give_finite_statistics(vibe):
    spec = SpectralSpec()
    short = spectral_vector(vibe[:300], spec, RATE)  # one zero-padded frame: no delta
    np.testing.assert_allclose(short, reference_vector(vibe[:300].astype(np.float64), spec, RATE), rtol=2e-4, atol=2e-4)
    assert np.all(short[2 * spec.n_mels :] == 0) and np.isfinite(short).all()
    silent = spectral_vector(np.zeros(RATE * 3, np.float32), spec, RATE)
    assert np.all(silent == 0)


def test_tagger_features_embeddings_and_heads_carry_the_spectral_level(tiny_bundle, music_files):
    bundle = Bundle.load(tiny_bundle)
    assert bundle.spectral == SpectralSpec() and bundle.spec.song_scales == ("2^14", "3^9", SPECTRAL)
    path = music_files["kevin_macleod_vibe_ace"]
    with Tagger(tiny_bundle) as tagger:
        (features,) = tagger.features([path])
        (result,) = tagger.tag([path], embeddings=True)
    # The runtime's decode, then the statistics of the whole song.
    expected = spectral_vector(load_audio(path, RATE), SpectralSpec(), RATE)
    np.testing.assert_allclose(features.levels[SPECTRAL][1], expected, rtol=1e-5, atol=1e-6)
    width = SpectralSpec().width
    assert result.embedding.shape == (bundle.embedding_width,)
    np.testing.assert_array_equal(result.embedding[-width:], features.levels[SPECTRAL][1])
    # A head that reads "mel" gets its one vector whatever levels it names.
    vector = song_vector(features.levels, ["3^9", SPECTRAL], [1, 2])
    np.testing.assert_array_equal(vector[-width:], features.levels[SPECTRAL][1])
    np.testing.assert_array_equal(vector[:-width], np.concatenate([features.levels["3^9"][1], features.levels["3^9"][2]]))


def test_a_bundle_without_the_spectral_level_keeps_the_backbone_vectors(tiny_checkpoints, tiny_bundle, music_files, tmp_path):
    from samplecnn.export.bundle_writer import write_bundle

    paper = write_bundle(tiny_checkpoints, tmp_path / "paper", spectral=False)
    assert "spectral" not in json.loads((paper / "manifest.json").read_text())
    path = music_files["sorohanro_solo_trumpet_06"]
    with Tagger(paper) as plain, Tagger(tiny_bundle) as spectral:
        (a,), (b,) = plain.features([path]), spectral.features([path])
        assert plain.bundle.embedding_width + SpectralSpec().width == spectral.bundle.embedding_width
    assert set(a.levels) == {"2^14", "3^9"} and set(b.levels) == {"2^14", "3^9", SPECTRAL}
    for scale in a.levels:
        for level, vector in a.levels[scale].items():
            np.testing.assert_array_equal(vector, b.levels[scale][level])


def _edit_manifest(bundle: Path, tmp_path: Path, edit) -> Path:
    from samplecnn.runtime.bundle import sha256_file

    copy = Path(shutil.copytree(bundle, tmp_path / "edited"))
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert sha256_file(copy / "manifest.json")  # written
    return copy


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["spectral"].update(stats=["mean"]), "this samplecnn computes"),
        (lambda m: m["spectral"].update(log="ln(x)"), "this samplecnn computes"),
        (lambda m: m["spectral"].update(n_fft=4), "n_fft must be"),
        (lambda m: m["spectral"].update(n_fft=256, hop=256), "too narrow"),
        (lambda m: m["spectral"].pop("n_mels"), "malformed manifest"),
        (lambda m: m["scales"][0].update(name="mel"), "named 'mel'"),
    ],
)
def test_a_spectral_entry_this_runtime_cannot_compute_is_refused(tiny_bundle, tmp_path, edit, message):
    edited = _edit_manifest(tiny_bundle, tmp_path, edit)
    with pytest.raises(BundleError, match=message):
        Bundle.load(edited, verify_hashes=False)


def test_a_head_reading_mel_needs_the_spectral_level(tiny_bundle, tmp_path):
    def drop_spectral_keep_a_mel_head(manifest):
        manifest.pop("spectral")
        manifest["heads"] = [{"name": "h", "task": "tags", "labels": ["a"], "file": "h.safetensors", "scales": ["3^9", "mel"],
                              "levels": [1], "input_width": 400, "metrics": {}}]

    edited = _edit_manifest(tiny_bundle, tmp_path, drop_spectral_keep_a_mel_head)
    with pytest.raises(BundleError, match=r"reads scales \['mel'\] the bundle lacks"):
        Bundle.load(edited, verify_hashes=False)


def test_a_16_khz_copy_of_a_song_gives_nearly_the_same_statistics(vibe, tmp_path):
    """Datasets come at 16 kHz (MagnaTagATune, many previews) or higher: bands up to f_max (7 kHz)
    exist in both, so the statistics do not flag the source's rate (bands up to 11 kHz did:
    a 16 kHz file has nothing above 8 kHz, and its z-scores under a head fitted on 44.1 kHz music
    were in the millions)."""
    import soundfile as sf
    import soxr

    path = tmp_path / "vibe_16k.wav"
    sf.write(str(path), soxr.resample(vibe, RATE, 16000), 16000, subtype="FLOAT")
    spec = SpectralSpec()
    native = spectral_vector(vibe, spec, RATE)
    from_16k = spectral_vector(load_audio(path, RATE), spec, RATE)
    n = spec.n_mels
    assert np.abs(from_16k[:n] - native[:n]).max() < 0.1  # log10 band means, 0.5-3.5 on this clip
    assert np.abs(from_16k - native).max() < 0.25
    # The same comparison with bands up to the 22.05 kHz Nyquist frequency fails by far.
    wide = SpectralSpec(f_max=RATE / 2)
    assert np.abs(spectral_vector(load_audio(path, RATE), wide, RATE)[:n] - spectral_vector(vibe, wide, RATE)[:n]).max() > 0.5
