import sys, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import distill_eval as de
z=np.load("/tmp/samplecnn-probe-proj56.npz"); V,P=z["V"],z["P"]
rows = de.read_rows("mer4q"); g = de.genre_rows(rows)
y=np.array([r["genre"] for r in g]); groups=[r["artist"] for r in g]
de.transfer({"raw 320": V, "proj msd pen": P[:,1756:1956], "proj mtt pen": P[:,0:200], "proj msd probs": P[:,1706:1756]}, y, groups)
