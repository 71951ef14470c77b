import sys, json, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import distill_eval as de
from pathlib import Path
L = Path.home()/".cache/samplecnn/distill/labels"
G = ["pop/rock","jazz","electronic","r&b","country","blues","rap","latin","folk","reggae","new age","international","vocal"]
rows = de.read_rows("mer4q"); keep=[]
for r in rows:
    g=[t for t in r["tags"].split(";") if t in G]
    if len(g)==1: r["genre"]=g[0]; keep.append(r)
corp=["mer4q-train","mer4q-valid","mer4q-test"]
out={}
for task, rr, col in (("genre", keep, "genre"), ("quadrant", rows, "quadrant")):
    paths=[r["path"] for r in rr]; y=np.array([r[col] for r in rr]); groups=[r["artist"] for r in rr]
    feats={}
    for m in ("MTT_musicnn","MSD_musicnn"):
        for a in ("penultimate","pooled","probs"):
            feats[f"{m} {a}"]=de.teacher_song_arrays(L/m,corp,paths,a)
    print(task); out[task]=de.transfer(feats,y,groups)
