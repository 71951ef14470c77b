"""Probe: the song vector vs its projections into the teacher's spaces (tags head outputs, its hidden layer, a ridge map to
musicnn's penultimate features fitted on the training songs), judged by transfer (experiments/distill_eval.py protocol)."""
import sys, json, numpy as np, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import distill_eval as de
from samplecnn.runtime import Tagger
from samplecnn.trainer.features import extract_song_vectors
from samplecnn.trainer.targets import read_teacher_labels
from samplecnn.runtime.heads import head_input
B = str(ROOT / "runtime" / "default_model"); CACHE = str(Path.home()/".cache/samplecnn/features")
LAB = Path.home()/".cache/samplecnn/distill/labels/MTT_musicnn"
def vecs(paths):
    with Tagger(B) as t:
        s = extract_song_vectors(t, paths, CACHE, desc="v")
        assert not s.errors, list(s.errors.items())[:3]
        heads = {h.spec.name: h for h in t.heads}
        X = np.stack([head_input(l, heads["tags"].spec) for l in s.levels])  # the song vector the tags head reads
    return X, heads
# training songs of the tags head
train_paths, pen, probs = [], [], []
for f in sorted(LAB.glob("*.safetensors")):
    if f.name.split(".")[0] in ("mer4q-valid", "mer4q-test", "synthtags"): continue
    L = read_teacher_labels(f)
    for i, e in enumerate(L.files):
        train_paths.append(str(e.path)); pen.append(L.song_target(i, "penultimate")); probs.append(L.song_target(i, "probs"))
pen, probs = np.stack(pen), np.stack(probs)
t0=time.time(); Xtr, heads = vecs(train_paths); print("train vecs", Xtr.shape, time.time()-t0, flush=True)
tags = heads["tags"]
def hidden(h, X):
    z = (X - h.mean) / h.std
    for w, b in h.layers[:-1]: z = np.maximum(z @ w.T + b, 0)
    return z
# ridge projection song vector -> teacher penultimate
mu, sd = Xtr.mean(0), Xtr.std(0)+1e-6
Z = (Xtr-mu)/sd
res = {}
for lam in (1.0, 10.0, 100.0):
    W = np.linalg.solve(Z.T@Z + lam*np.eye(Z.shape[1]), Z.T@(pen-pen.mean(0)))
    res[lam] = W
out = {}
for task, (rows, col, gcol) in {"quadrant": (de.read_rows("mer4q"), "quadrant", "artist"), "style": (de.read_rows("synthtags"), "style", "source")}.items():
    paths = [r["path"] for r in rows]; y = np.array([r[col] for r in rows]); groups = [r[gcol] for r in rows]
    X, _ = vecs(paths)
    feats = {"all": X, "tags probs": tags(X), "tags hidden": hidden(tags, X)}
    for lam, W in res.items():
        P = ((X-mu)/sd)@W
        feats[f"proj pen ridge{lam:g}"] = P
        feats[f"all+proj{lam:g}"] = np.concatenate([X, P], 1)
    feats["all+tagsprobs"] = np.concatenate([X, tags(X)], 1)
    print(task, flush=True)
    out[task] = de.transfer(feats, y, groups)
json.dump(out, open(ROOT / "experiments/results/probe_teacher_projection.json", "w"), indent=1)
