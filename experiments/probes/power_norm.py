"""Probe: a fixed non-linear transform of the song vector's backbone levels before the user's
standardise + logistic regression (power / log / per-level L2 normalisation, as for Fisher
vectors). The levels are segment means of max-pooled ReLU activations: non-negative and skewed.
Same protocol and folds as experiments/distill_eval.py; the spectral level is left as it is.

    .venv/bin/python experiments/probes/power_norm.py [BUNDLE]
"""
import json, sys, time
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import distill_eval as de
from samplecnn.runtime import Tagger
from samplecnn.runtime.spectral import SPECTRAL
from samplecnn.trainer.features import extract_song_vectors
BUNDLE = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "runtime" / "default_model")
CACHE = str(Path.home() / ".cache/samplecnn/features")

def blocks(paths):
    out = []
    with Tagger(BUNDLE) as t:
        songs = extract_song_vectors(t, paths, CACHE, desc="sv")
        for lv in songs.levels:
            bl = []
            for scale, levels in lv.items():
                for k in sorted(levels):
                    bl.append((scale, k, levels[k]))
            out.append(bl)
    return out

def make(bl, f):
    return np.stack([np.concatenate([f(s, k, v) for s, k, v in song]) for song in bl])

def l2(v): return v / (np.linalg.norm(v) + 1e-9)
T = {
 "id": lambda s,k,v: v,
 "sqrt": lambda s,k,v: v if s == SPECTRAL else np.sqrt(np.maximum(v, 0)),
 "pow0.25": lambda s,k,v: v if s == SPECTRAL else np.maximum(v, 0) ** 0.25,
 "log1p": lambda s,k,v: v if s == SPECTRAL else np.log1p(np.maximum(v, 0)*10),
 "l2block": lambda s,k,v: v if s == SPECTRAL else l2(v),
 "sqrt+l2block": lambda s,k,v: v if s == SPECTRAL else l2(np.sqrt(np.maximum(v,0))),
}
res = {}
for task, (rows, col, gcol, _) in de.transfer_tasks().items():
    paths = [r["path"] for r in rows]; y = np.array([r[col] for r in rows]); g = [r[gcol] for r in rows]
    bl = blocks(paths)
    print(task, len(paths), [ (s,k,v.shape[0], float(v.min())) for s,k,v in bl[0]], flush=True)
    feats = {n: make(bl, f) for n, f in T.items()}
    res[task] = de.transfer(feats, y, g)
json.dump(res, open(ROOT / "experiments/results/probe_power_norm.json", "w"), indent=1)
