import sys, numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import distill_eval as de
from samplecnn.trainer.checkpoint import load_checkpoint
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.segments import cut_segments
torch.set_num_threads(1)
rows = de.read_rows("mer4q"); g = de.genre_rows(rows)
def vecs(ck, paths):
    m = load_checkpoint(ck).build_model(); out=[]
    for p in paths:
        seg = torch.from_numpy(cut_segments(load_audio(p, 22050), m.config.segment_samples))
        with torch.no_grad(): o = m(seg)
        out.append(np.concatenate([o[f"level{k}"].mean(0).numpy() for k in (1,2,3)]))
    return np.stack(out)
paths=[r["path"] for r in g]; y=np.array([r["genre"] for r in g]); groups=[r["artist"] for r in g]
R=str(__import__("pathlib").Path.home()/".cache/samplecnn/runs")+"/"
feats={"stage1 5^6": vecs(R+"distill/5-6/best.safetensors", paths), "stage2 5^6 last": vecs(R+"distill-msd/5-6/last.safetensors", paths)}
de.transfer(feats, y, groups)
