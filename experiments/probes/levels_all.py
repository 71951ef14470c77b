"""Probe: every hidden layer of the distilled backbones, max- and mean-pooled inside the segment, song mean."""
import sys, numpy as np, torch, time, dataclasses
from pathlib import Path
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import distill_eval as de
from samplecnn.trainer.checkpoint import load_checkpoint
from samplecnn.runtime.audio import load_audio
from samplecnn.runtime.segments import cut_segments
torch.set_num_threads(2)
RUNS = Path.home()/".cache/samplecnn/runs/distill"
rows = de.read_rows("mer4q")
paths = [r["path"] for r in rows]
out = {}
for name in ("2-14","3-9","5-6"):
    ck = load_checkpoint(RUNS/name/"best.safetensors"); m = ck.build_model()
    t0=time.time(); res = []
    for p in paths:
        a = load_audio(p, 22050)
        seg = torch.from_numpy(cut_segments(a, m.config.segment_samples))
        with torch.no_grad():
            h = [m.stem(seg.unsqueeze(1))]
            for b in m.blocks: h.append(b(h[-1]))
            h.append(m.top(h[-1]))
        res.append([np.concatenate([x.amax(2).mean(0).numpy(), x.mean(2).mean(0).numpy()]) for x in h])
    print(name, time.time()-t0, [r.shape for r in res[0]], flush=True)
    for k in range(len(res[0])):
        out[f"{name}/{k}"] = np.stack([r[k] for r in res])
np.savez("/tmp/samplecnn-probe-levels_all.npz", paths=np.array(paths), **out)
