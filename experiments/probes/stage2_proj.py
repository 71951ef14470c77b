import sys, numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import distill_eval as de
from safetensors.torch import load_file
from samplecnn.trainer.checkpoint import load_checkpoint
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.segments import cut_segments
torch.set_num_threads(1)
rows = de.read_rows("mer4q"); g = de.genre_rows(rows)
paths=[r["path"] for r in g]; y=np.array([r["genre"] for r in g]); groups=[r["artist"] for r in g]
R=str(__import__("pathlib").Path.home()/".cache/samplecnn/runs/distill-msd/5-6")+"/"
m = load_checkpoint(R+"last.safetensors").build_model()
H = load_file(R+"last.feature_head.safetensors"); W, b = H["project.weight"].numpy(), H["project.bias"].numpy()
V=[]
for p in paths:
    seg = torch.from_numpy(cut_segments(load_audio(p, 22050), m.config.segment_samples))
    with torch.no_grad(): o = m(seg)
    V.append(np.concatenate([o[f"level{k}"].mean(0).numpy() for k in (1,2,3)]))
V=np.stack(V); P = V @ W.T + b
sl = {"mtt pen": slice(0,200), "mtt pooled": slice(200,1706), "msd probs": slice(1706,1756), "msd pen": slice(1756,1956), "msd pooled": slice(1956,3462)}
feats={"raw 320": V, **{f"proj {k}": P[:, s] for k, s in sl.items()}, "raw+proj msd pen": np.concatenate([V, P[:, sl["msd pen"]]],1)}
np.savez("/tmp/samplecnn-probe-proj56.npz", V=V, P=P)
de.transfer(feats, y, groups)
