"""Probe: do rhythm descriptors of the song add to the shipped song vector (backbones + log-mel stats)?

Candidates, all from the log-mel frames of runtime/spectral.py (1024-sample Hann frames, 96 bands to 7 kHz):
  fp     fluctuation pattern: 12 band groups x 16 log-spaced modulation bands (0.5-10 Hz): |rfft| of each
         group's log-mel trajectory over ~6 s windows (half overlap), mean over windows, log1p
  ac     onset autocorrelation: onset = half-wave rectified frame-to-frame change summed over bands (4 band
         groups), autocorrelation over ~12 s windows normalised by lag 0, sampled at 48 log-spaced lags
         0.15-3 s (20-400 BPM), mean over windows
At two frame rates: hop 1024 (the shipped spectral frames, 21.5 frames/s) and hop 512 (43 frames/s).
Same protocol and folds as experiments/distill_eval.py.
Usage: .venv/bin/python experiments/probes/rhythm.py  ->  /tmp/samplecnn-probe-rhythm.json (kept as experiments/results/probe_rhythm.json)
"""
import json, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import distill_eval as de
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.spectral import SpectralSpec, SpectralStats

SR = 22050


def logmel_frames(x, hop):
    st = SpectralStats(SpectralSpec(1024, hop, 96, 7000.0), SR)
    n = 1 + max(0, (len(x) - 1024) // hop)
    x = np.pad(x, (0, max(0, 1024 - len(x))))
    frames = np.lib.stride_tricks.sliding_window_view(x, 1024)[::hop][:n]
    return st._logmel(frames)  # (T, 96)


def fluctuation(lm, fps, groups=12, nmod=16):
    g = lm.reshape(len(lm), groups, -1).mean(2)  # (T, groups)
    win = int(round(6.0 * fps))
    if len(g) < win:
        g = np.pad(g, ((0, win - len(g)), (0, 0)))
    w = np.lib.stride_tricks.sliding_window_view(g, win, axis=0)[:: win // 2]  # (W, groups, win)
    w = (w - w.mean(2, keepdims=True)) * np.hanning(win)
    spec = np.abs(np.fft.rfft(w, axis=2)).mean(0)  # (groups, win//2+1)
    freqs = np.fft.rfftfreq(win, 1 / fps)
    edges = np.geomspace(0.5, 10.0, nmod + 1)
    cols = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (freqs >= lo) & (freqs < hi)
        cols.append(spec[:, inside].mean(1) if inside.any() else np.array([np.interp(np.sqrt(lo * hi), freqs, s) for s in spec]))
    out = np.stack(cols, 1)
    return np.log1p(out).ravel()


def onset_ac(lm, fps, groups=4, nlag=48):
    d = np.maximum(np.diff(lm, axis=0), 0).reshape(len(lm) - 1, groups, -1).sum(2)  # (T-1, groups)
    win = int(round(12.0 * fps))
    if len(d) < win:
        d = np.pad(d, ((0, win - len(d)), (0, 0)))
    w = np.lib.stride_tricks.sliding_window_view(d, win, axis=0)[:: win // 2]  # (W, groups, win)
    w = w - w.mean(2, keepdims=True)
    f = np.fft.rfft(w, n=2 * win, axis=2)
    ac = np.fft.irfft(np.abs(f) ** 2, axis=2)[..., :win]
    ac = ac / np.maximum(ac[..., :1], 1e-9)
    lags = np.geomspace(0.15, 3.0, nlag) * fps
    idx = np.arange(win)
    out = np.stack([[np.interp(lags, idx, a) for a in wg] for wg in ac]).mean(0)  # (groups, nlag)
    return out.ravel()


def rhythm(path):
    x = load_audio(path, SR)
    out = {}
    for hop in (1024, 512):
        lm = logmel_frames(x, hop)
        fps = SR / hop
        out[f"fp{hop}"] = fluctuation(lm, fps)
        out[f"ac{hop}"] = onset_ac(lm, fps)
    return out


out = {}
cache = str(Path.home() / ".cache/samplecnn/features")
for task, extracted, sv, y, groups in de.probe_tasks(rhythm, "runtime/default_model", cache):
    f = {k: np.stack([e[k] for e in extracted]) for k in extracted[0]}
    print(task, sv.shape, flush=True)
    sets = {"song vector (shipped)": sv}
    for hop in (1024, 512):
        sets[f"fp+ac hop {hop} alone"] = np.concatenate([f[f"fp{hop}"], f[f"ac{hop}"]], 1)
        sets[f"sv + fp hop {hop}"] = np.concatenate([sv, f[f"fp{hop}"]], 1)
        sets[f"sv + ac hop {hop}"] = np.concatenate([sv, f[f"ac{hop}"]], 1)
        sets[f"sv + fp + ac hop {hop}"] = np.concatenate([sv, f[f"fp{hop}"], f[f"ac{hop}"]], 1)
    out[task] = de.transfer(sets, y, groups)
    json.dump(out, open("/tmp/samplecnn-probe-rhythm.json", "w"), indent=1)
