"""Probe: frame length and hop of the spectral level (runtime/spectral.py), each concatenated to the
shipped song vector; same protocol and folds as experiments/distill_eval.py.
Usage: .venv/bin/python experiments/probes/melstats_frames.py  ->  /tmp/samplecnn-probe-melstats_frames_7k.json
"""
import json, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import distill_eval as de
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.spectral import SpectralSpec, spectral_vector
# Session 6, first run: 96 bands up to rate/2 (11,025 Hz). Second run (after mer4q's 16 kHz MP3s were found to
# have nothing above ~7.5 kHz, so the top bands were a codec flag): bands up to 7 kHz.
specs = {"1024/1024 96 bands to 7 kHz": SpectralSpec(1024, 1024, 96, 7000.0), "1024/1024 64 bands to 7 kHz": SpectralSpec(1024, 1024, 64, 7000.0),
         "2048/1024 96 bands to 7 kHz": SpectralSpec(2048, 1024, 96, 7000.0)}
cache = str(Path.home() / ".cache/samplecnn/features")
out = {}


def frames(path):
    x = load_audio(path, 22050)
    return {k: spectral_vector(x, s, 22050) for k, s in specs.items()}


for task, extracted, sv, y, groups in de.probe_tasks(frames, str(Path.home() / ".cache/samplecnn/session5_model"), cache):
    feats = {k: [e[k] for e in extracted] for k in specs}
    print(task, flush=True)
    out[task] = de.transfer({f"sv + {k}": np.concatenate([sv, np.stack(v)], 1) for k, v in feats.items()}, y, groups)
    json.dump(out, open("/tmp/samplecnn-probe-melstats_frames_7k.json", "w"), indent=1)
