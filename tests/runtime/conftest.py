"""Runtime test fixtures: real clips re-encoded to other formats, rates and channel counts,
deliberately broken files, and the torch reference the runtime must match."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr


@pytest.fixture(scope="session")
def trumpet(music_files) -> tuple[np.ndarray, int]:
    """The 5 s trumpet clip: (samples,) float32 at 22050 Hz."""
    audio, rate = sf.read(str(music_files["sorohanro_solo_trumpet_06"]), dtype="float32")
    return audio, rate


@pytest.fixture(scope="session")
def derived_audio(tmp_path_factory, music_files, trumpet) -> dict[str, Path]:
    """Real music in several formats, sample rates and channel counts (written with soundfile)."""
    root = tmp_path_factory.mktemp("derived")
    audio, rate = trumpet
    stereo, stereo_rate = sf.read(str(music_files["sorohanro_solo_trumpet_06.44k_stereo"]), dtype="float32")
    vibe, vibe_rate = sf.read(str(music_files["kevin_macleod_vibe_ace"]), dtype="float32", frames=22050 * 12)
    out = {
        "ogg_22k_mono": music_files["sorohanro_solo_trumpet_06"],
        "ogg_44k_stereo": music_files["sorohanro_solo_trumpet_06.44k_stereo"],
    }
    specs = {
        "wav_int16_16k_mono": ("wav", "PCM_16", soxr.resample(audio, rate, 16000), 16000),
        "wav_float_22k_mono": ("wav", "FLOAT", audio, rate),
        "flac_44k_stereo": ("flac", "PCM_16", stereo, stereo_rate),
        "flac_48k_3ch": ("flac", "PCM_24", np.stack([audio, 0.5 * audio, -audio], axis=1) * 0.9, rate),
        "mp3_22k_mono": ("mp3", None, vibe, vibe_rate),
        "mp3_44k_stereo": ("mp3", None, stereo, stereo_rate),
    }
    for name, (fmt, subtype, data, sr) in specs.items():
        if name == "flac_48k_3ch":
            data, sr = soxr.resample(data, rate, 48000), 48000
        path = root / f"{name}.{fmt}"
        sf.write(str(path), data, sr, subtype=subtype) if subtype else sf.write(str(path), data, sr)
        out[name] = path
    return out


@pytest.fixture(scope="session")
def broken_files(tmp_path_factory, trumpet) -> dict[str, Path]:
    """One deliberately broken file per bad-input case."""
    root = tmp_path_factory.mktemp("broken")
    audio, rate = trumpet
    files = {}
    good = root / "good.wav"
    sf.write(str(good), audio, rate)
    corrupt = bytearray(good.read_bytes())
    corrupt[12:400] = os.urandom(388)  # header and first chunk garbled
    files["corrupt"] = root / "corrupt.wav"
    files["corrupt"].write_bytes(bytes(corrupt))
    files["empty"] = root / "empty.flac"
    files["empty"].write_bytes(b"")
    mp3 = root / "full.mp3"
    sf.write(str(mp3), audio, rate)
    data = mp3.read_bytes()
    files["truncated_mp3"] = root / "truncated.mp3"
    files["truncated_mp3"].write_bytes(data[: len(data) // 2])
    files["text_as_wav"] = root / "notes.wav"
    files["text_as_wav"].write_text("these are my notes, not audio\n" * 20)
    nan = audio.copy()
    nan[1000:1010] = np.nan
    files["nan"] = root / "nan.wav"
    sf.write(str(files["nan"]), nan, rate, subtype="FLOAT")
    inf = audio.copy()
    inf[5] = np.inf
    files["inf"] = root / "inf.wav"
    sf.write(str(files["inf"]), inf, rate, subtype="FLOAT")
    files["zero_length"] = root / "zero.wav"
    sf.write(str(files["zero_length"]), np.zeros(0, np.float32), rate)
    files["silent"] = root / "silent.wav"
    sf.write(str(files["silent"]), np.zeros(rate * 3, np.float32), rate)
    files["unreadable"] = root / "locked.wav"
    shutil.copy(good, files["unreadable"])
    os.chmod(files["unreadable"], 0)
    files["missing"] = root / "no_such_song.ogg"
    return files


def _torch_reference(checkpoint_paths, audio: np.ndarray) -> dict[str, dict[int, np.ndarray]]:
    """{scale: {level: segment-mean vector}} of the torch models on ``audio`` (mono, bundle rate)."""
    import torch

    from samplecnn.runtime.segments import cut_segments
    from samplecnn.trainer.checkpoint import load_checkpoint

    out = {}
    for path in checkpoint_paths:
        ckpt = load_checkpoint(path)
        model = ckpt.build_model()
        segments = torch.from_numpy(cut_segments(audio, ckpt.config.segment_samples))
        with torch.no_grad():
            outputs = model(segments)
        out[ckpt.config.name] = {int(k[len("level"):]): v.mean(0).numpy() for k, v in outputs.items() if k.startswith("level")}
        out[ckpt.config.name][0] = torch.sigmoid(outputs["logits"]).mean(0).numpy()
    return out


@pytest.fixture(scope="session")
def torch_reference():
    """The function computing {scale: {level: vector}} (level 0 = mean sigmoid(logits)) with torch."""
    return _torch_reference
