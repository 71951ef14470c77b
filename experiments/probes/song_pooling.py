"""Probe: song pooling of level vectors over segments: mean (today) vs mean+std vs mean+max."""
import sys, json, numpy as np
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import distill_eval as de
from samplecnn.runtime import pipeline as P
from samplecnn.runtime import Tagger
EXTRA = {}
orig_add, orig_finish = P._Song.add, P._Song.finish
def add(self, scale, row, start, sr):
    orig_add(self, scale, row, start, sr)
    d = EXTRA.setdefault(self.path, {})
    for o in scale.level_outputs:
        v = row[o.name].astype(np.float64)
        sq, mx = d.get((scale.name, o.level), (0.0, None))
        d[(scale.name, o.level)] = (sq + v * v, v if mx is None else np.maximum(mx, v))
P._Song.add = add
task = sys.argv[1]
rows, col, g = {"quadrant": (de.read_rows("mer4q"), "quadrant", "artist"), "style": (de.read_rows("synthtags"), "style", "source")}[task]
paths = [r["path"] for r in rows]; y = np.array([r[col] for r in rows]); groups = [r[g] for r in rows]
mean, std, mx = [], [], []
with Tagger(ROOT / "runtime" / "default_model") as t:
    for f in t.features(paths):
        assert f.ok, f.error
        d = EXTRA.pop(f.path)
        m, s, x = [], [], []
        for sc, levels in f.levels.items():
            for lv in sorted(levels):
                mu = levels[lv].astype(np.float64); sq, mxv = d[(sc, lv)]
                n = f.n_segments[sc]
                m.append(mu); s.append(np.sqrt(np.maximum(sq / n - mu * mu, 0))); x.append(mxv)
        mean.append(np.concatenate(m)); std.append(np.concatenate(s)); mx.append(np.concatenate(x))
mean, std, mx = map(np.stack, (mean, std, mx))

out = de.transfer({"mean": mean, "mean+std": np.concatenate([mean, std], 1), "mean+max": np.concatenate([mean, mx], 1), "std": std}, y, groups)
json.dump(out, open(ROOT / f"experiments/results/probe_song_pooling_{task}.json", "w"), indent=1)
