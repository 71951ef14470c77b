"""Probe: a map from the song vector into a teacher's penultimate space (ridge, 200 dims),
fitted on many 30 s chunks of real music that none of the judged songs are in: the game music
of the distillation corpus cut into 30 s chunks plus the 442 mer4q songs outside the genre task
(3,309 items). Target of a chunk: the teacher's windows over it, overlap-weighted
(``TeacherLabels.crop_target``). Judged like experiments/probes/head_outputs.py: the 458 mer4q
genre songs (genre, and quadrant on the same songs) and synthtags style, same protocol and folds
as experiments/distill_eval.py. Session 4's ridge map was fitted on 610 songs two thirds of which
were judged (a leak); this one sees none of them and five times as many items.

    .venv/bin/python experiments/probes/teacher_space_map.py
"""
import json, sys, time
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import distill_eval as de
from samplecnn.runtime import Tagger
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.heads import song_vector
from samplecnn.trainer.targets import read_teacher_labels
BUNDLE = str(ROOT / "runtime" / "default_model")
CACHE = str(Path.home() / ".cache/samplecnn/features")
LABELS = Path.home() / ".cache/samplecnn/distill/labels"
SR, CHUNK = 22050, 30.0
t0 = time.time()
tasks = de.transfer_tasks()
judged = {r["path"] for r in tasks["mer4q_genre"][0]}

def vec(levels):
    """The song vector "all" of distill_eval.song_features: every scale in turn, its levels in order."""
    return song_vector(levels, list(levels), sorted(next(iter(levels.values()))))

# fit items: (source, index, start, length, audio spec)
items = []
labels = {}
for f in sorted((LABELS / "MSD_musicnn").glob("*.safetensors")):
    corpus = f.name.split(".")[0]
    if corpus == "synthtags": continue
    lab = {t: read_teacher_labels(LABELS / t / f.name) for t in ("MSD_musicnn", "MTT_musicnn")}
    labels[corpus] = lab
    for i, e in enumerate(lab["MSD_musicnn"].files):
        if str(e.path) in judged: continue
        if corpus.startswith("mer4q"):
            items.append((corpus, i, None, None)); continue
        n = int(e.seconds // CHUNK)
        for c in range(max(n, 1)):
            items.append((corpus, i, c * CHUNK, min(CHUNK, e.seconds)))
print(len(items), "fit items", flush=True)

def inputs():
    cur = None
    for corpus, i, start, length in items:
        e = labels[corpus]["MSD_musicnn"].files[i]
        if start is None:
            yield str(e.path); continue
        if cur is None or cur[0] != e.path:
            cur = (e.path, load_audio(e.path, SR))
        a = cur[1][int(start * SR): int((start + length) * SR)]
        yield (a, SR)

X, Y = [], {"MSD": [], "MTT": []}
with Tagger(BUNDLE) as t:
    for (corpus, i, start, length), f in zip(items, t.features(inputs())):
        if not f.ok: print("skip", f.error); continue
        X.append(vec(f.levels))
        for k, name in (("MSD", "MSD_musicnn"), ("MTT", "MTT_musicnn")):
            lab = labels[corpus][name]
            Y[k].append(lab.song_target(i, "penultimate") if start is None else lab.crop_target(i, start, length, "penultimate"))
X = np.stack(X); Y = {k: np.stack(v) for k, v in Y.items()}
print("extracted", X.shape, time.time() - t0, flush=True)

mu, sd = X.mean(0), X.std(0) + 1e-6
Z = (X - mu) / sd
gram = Z.T @ Z  # shared by every ridge fit below
def ridge(lam, y):
    ym = y.mean(0)
    W = np.linalg.solve(gram + lam * len(Z) * np.eye(Z.shape[1]), Z.T @ (y - ym))
    return lambda x: ((x - mu) / sd) @ W + ym
res = {}
for task, (rows, col, gcol, _) in tasks.items():
    if task == "mer4q_quadrant":
        rows = tasks["mer4q_genre"][0]
    paths = [r["path"] for r in rows]; y = np.array([r[col] for r in rows]); g = [r[gcol] for r in rows]
    sv = de.song_features(BUNDLE, paths, np.zeros(len(paths), bool), CACHE)[0]["all"]
    feats = {"song vector": sv}
    for lam in (1e-2, 1e-1, 1.0):
        for k in ("MSD", "MTT"):
            p = ridge(lam, Y[k])(sv)
            feats[f"proj {k} l{lam}"] = p
            feats[f"sv + proj {k} l{lam}"] = np.concatenate([sv, p], 1)
    print(task, flush=True)
    res[task] = de.transfer(feats, y, g)
json.dump(res, open(ROOT / "experiments/results/probe_teacher_space_map.json", "w"), indent=1)
print("done", time.time() - t0)
