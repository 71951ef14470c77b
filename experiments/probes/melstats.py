"""Probe: does a spectral level (log-mel statistics of the song) add to the song vector?

Same protocol and folds as experiments/distill_eval.py. Feature sets per task: the shipped
song vector (from fit's song-vector cache), log-mel mean+std alone, and both concatenated.
Usage: .venv/bin/python experiments/probes/melstats.py  ->  /tmp/samplecnn-probe-melstats.json
"""
import json, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import distill_eval as de
from samplecnn.runtime.audio import load_audio

SR, NFFT, HOP, NMEL = 22050, 1024, 512, 96


def mel_matrix():
    def hz2mel(f): return 2595 * np.log10(1 + f / 700)
    def mel2hz(m): return 700 * (10 ** (m / 2595) - 1)
    pts = mel2hz(np.linspace(0, hz2mel(SR / 2), NMEL + 2))
    bins = np.fft.rfftfreq(NFFT, 1 / SR)
    fb = np.zeros((NMEL, len(bins)), np.float32)
    for i in range(NMEL):
        lo, c, hi = pts[i:i + 3]
        fb[i] = np.maximum(0, np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)))
    return fb


FB = mel_matrix()
WIN = np.hanning(NFFT).astype(np.float32)


def melstats(path):
    x = load_audio(path, SR)
    n = 1 + max(0, (len(x) - NFFT) // HOP)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, max(0, NFFT - len(x)))), NFFT)[::HOP][:n] * WIN
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    logmel = np.log10(1 + 10000 * (power @ FB.T))
    d = np.diff(logmel, axis=0)
    return np.concatenate([logmel.mean(0), logmel.std(0)]), np.concatenate([np.abs(d).mean(0), d.std(0)])


out = {}
cache = str(Path.home() / ".cache/samplecnn/features")
for task, extracted, sv, y, groups in de.probe_tasks(melstats, "runtime/default_model", cache):
    ms = np.stack([e[0] for e in extracted]); dl = np.stack([e[1] for e in extracted])
    print(task, flush=True)
    out[task] = de.transfer({"song vector": sv, "melstats": ms, "melstats+delta": np.concatenate([ms, dl], 1),
                             "song vector + melstats": np.concatenate([sv, ms], 1),
                             "song vector + melstats+delta": np.concatenate([sv, ms, dl], 1)}, y, groups)
    json.dump(out, open("/tmp/samplecnn-probe-melstats.json", "w"), indent=1)
