import sys, json, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import distill_eval as de
z = np.load("/tmp/samplecnn-probe-levels_all.npz"); paths = list(z["paths"])
rows = de.read_rows("mer4q"); assert [r["path"] for r in rows] == paths
G = ["pop/rock","jazz","electronic","r&b","country","blues","rap","latin","folk","reggae","new age","international","vocal"]
gi, gy = [], []
for i, r in enumerate(rows):
    g = [t for t in r["tags"].split(";") if t in G]
    if len(g) == 1: gi.append(i); gy.append(g[0])
scales = {"2-14": 16, "3-9": 11, "5-6": 8}
def part(s, k, kind):
    v = z[f"{s}/{k}"]; c = v.shape[1] // 2
    return {"max": v[:, :c], "mean": v[:, c:], "both": v}[kind]
def build(levels_of, kind):  # levels_of(n) -> list of layer indices
    return np.concatenate([part(s, k, kind) for s, n in scales.items() for k in levels_of(n)], 1)
sets = {
  "last3 max (shipped)": build(lambda n: range(n-3, n), "max"),
  "last3 mean": build(lambda n: range(n-3, n), "mean"),
  "last3 both": build(lambda n: range(n-3, n), "both"),
  "last5 max": build(lambda n: range(n-5, n), "max"),
  "all max": build(lambda n: range(n), "max"),
  "all mean": build(lambda n: range(n), "mean"),
  "last3 max + first4 mean": np.concatenate([build(lambda n: range(n-3, n), "max"), build(lambda n: range(0, 4), "mean")], 1),
  "mid (n-6..n-3) max": build(lambda n: range(n-6, n-3), "max"),
}
only = sys.argv[1:]
out = {}
for task, idx, y, groups in (("genre", gi, np.array(gy), [rows[i]["artist"] for i in gi]),
                             ("quadrant", list(range(len(rows))), np.array([r["quadrant"] for r in rows]), [r["artist"] for r in rows])):
    print(task, len(idx), flush=True)
    out[task] = de.transfer({k: v[idx] for k, v in sets.items()}, y, groups)
json.dump(out, open("/tmp/samplecnn-probe-levels_all_eval.json", "w"), indent=1)
