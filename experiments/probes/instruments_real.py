"""Probe: does the `instruments` head (fitted on synthtags, synthesized audio) mean anything on real music?

No real song here has instrument labels, so the teacher stands in: on the 208 mer4q test songs (held out of
every fit), a class is positive for a song when one of its MagnaTagATune tags is among musicnn MTT_musicnn's
top-5 tags of that song (the teacher-agreement convention of experiments/distill_eval.py). ROC-AUC of each head's
scores for the six classes the two vocabularies share; the `tags` head (fitted on the teacher's outputs) is the
reference for what the song vector can tell.
Usage: .venv/bin/python experiments/probes/instruments_real.py [BUNDLE [CORPUS [HEAD]]]
(CORPUS mer4q-test (default) or mer4q-valid, for choosing a variant; HEAD default instruments)
  ->  experiments/results/probe_instruments_real.json (runs on mer4q-test of the instruments head; the model card reads it)
"""
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import distill_eval as de
from samplecnn.runtime import Tagger
from samplecnn.trainer.features import extract_song_vectors
from samplecnn.trainer.metrics import roc_auc
from samplecnn.trainer.targets import read_teacher_labels

ROOT = Path(__file__).resolve().parents[2]
SHARED = {"guitar": ["guitar"], "piano": ["piano"], "drums": ["drums"], "flute": ["flute"], "synth": ["synth"],
          "strings": ["strings", "violin", "cello", "harp"]}
args = sys.argv[1:] + [None] * 3
bundle, corpus, head = args[0] or str(ROOT / "runtime/default_model"), args[1] or "mer4q-test", args[2] or "instruments"
labels = read_teacher_labels(Path.home() / f".cache/samplecnn/distill/labels/MTT_musicnn/{corpus}.safetensors")
paths = [str(e.path) for e in labels.files]
teacher = np.stack([labels.song_target(i, "probs") for i in range(len(paths))])
top5 = np.argsort(-teacher, axis=1)[:, :5]
with Tagger(bundle) as tagger:
    songs = extract_song_vectors(tagger, paths, str(Path.home() / ".cache/samplecnn/features"), desc="song vectors")
    assert not songs.errors, list(songs.errors.items())[:3]
    heads = {h.spec.name: h for h in tagger.heads}
    scores = {name: np.stack([h.song(levels) for levels in songs.levels]) for name, h in heads.items()}
out = {"bundle": bundle, "corpus": corpus, "head": head, "songs": len(paths), "positives": {}, "instruments": {}, "tags": {}}
for cls, mtt in SHARED.items():
    columns = [labels.tags.index(t) for t in mtt]
    positive = np.isin(top5, columns).any(axis=1)
    out["positives"][cls] = int(positive.sum())
    if 0 < positive.sum() < len(paths):
        out["instruments"][cls] = round(roc_auc(positive, scores[head][:, heads[head].spec.labels.index(cls)]), 3)
        out["tags"][cls] = round(roc_auc(positive, scores["tags"][:, [heads["tags"].spec.labels.index(t) for t in mtt]].max(1)), 3)
for name in ("instruments", "tags"):
    out[name]["macro"] = round(float(np.mean(list(out[name].values()))), 3)
    print(name, out[name])
print("positives", out["positives"])
if (corpus, head) == ("mer4q-test", "instruments"):
    json.dump(out, open(ROOT / "experiments/results/probe_instruments_real.json", "w"), indent=1)
