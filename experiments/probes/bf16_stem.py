"""Probe: can the bf16 stem be made cheaper by another formulation? The full-width 3^9 stem
(1 input channel, k = stride = 3, 128 channels) + ReLU, then block 1 (conv 128 -> 128, ReLU,
max-pool 3), under OpenVINO's bf16 hint: as the exported Conv2d, as a 1x1 conv over the 3
samples of each frame as channels, or as Reshape + MatMul + Transpose. Interleaved rounds,
median ms per segment; "stem only" also pays the conversion of its big output back to f32.

    .venv/bin/python experiments/probes/bf16_stem.py   (result: experiments/results/probe_bf16_stem.json)
"""
import sys, time, numpy as np, openvino as ov
from onnx import helper as h, TensorProto as T, numpy_helper as nh
rng = np.random.default_rng(0)
C, m, n = 128, 3, 19683
Tlen = m * n
W0 = (rng.standard_normal((C, 1, m)) * 0.5).astype(np.float32)
b0 = rng.standard_normal(C).astype(np.float32) * 0.1
W1 = (rng.standard_normal((C, C, 3)) / np.sqrt(3 * C)).astype(np.float32)
b1 = rng.standard_normal(C).astype(np.float32) * 0.1

def graph(kind, B, tail=True):
    I = [nh.from_array(W1[:, :, None, :], "w1"), nh.from_array(b1, "b1")]
    N = []
    if kind == "conv2d":
        I += [nh.from_array(np.array([B, 1, 1, Tlen], np.int64), "s4"), nh.from_array(W0[:, :, None, :], "w0"), nh.from_array(b0, "b0")]
        N += [h.make_node("Reshape", ["x", "s4"], ["x4"]), h.make_node("Conv", ["x4", "w0", "b0"], ["y0"], strides=[1, m]), h.make_node("Relu", ["y0"], ["r0"])]
    elif kind == "1x1 over 3 ch":
        I += [nh.from_array(np.array([B, n, m], np.int64), "s3"), nh.from_array(np.array([B, m, 1, n], np.int64), "s4b"),
              nh.from_array(W0.reshape(C, m, 1, 1), "w0"), nh.from_array(b0, "b0")]
        N += [h.make_node("Reshape", ["x", "s3"], ["x3"]), h.make_node("Transpose", ["x3"], ["xt"], perm=[0, 2, 1]),
              h.make_node("Reshape", ["xt", "s4b"], ["x4"]), h.make_node("Conv", ["x4", "w0", "b0"], ["y0"]), h.make_node("Relu", ["y0"], ["r0"])]
    else:  # matmul
        I += [nh.from_array(np.array([B, n, m], np.int64), "s3"), nh.from_array(np.array([B, C, 1, n], np.int64), "s4c"),
              nh.from_array(W0[:, 0, :].T.copy(), "w0"), nh.from_array(b0, "b0")]
        N += [h.make_node("Reshape", ["x", "s3"], ["x3"]), h.make_node("MatMul", ["x3", "w0"], ["mm"]), h.make_node("Add", ["mm", "b0"], ["a"]),
              h.make_node("Relu", ["a"], ["r"]), h.make_node("Transpose", ["r"], ["rt"], perm=[0, 2, 1]), h.make_node("Reshape", ["rt", "s4c"], ["r0"])]
    if tail:
        N += [h.make_node("Conv", ["r0", "w1", "b1"], ["y1"], pads=[0, 1, 0, 1]), h.make_node("Relu", ["y1"], ["r1"]),
              h.make_node("MaxPool", ["r1"], ["out"], kernel_shape=[1, 3], strides=[1, 3])]
    else:
        N += [h.make_node("Identity", ["r0"], ["out"])]
    g = h.make_graph(N, kind, [h.make_tensor_value_info("x", T.FLOAT, [B, 1, Tlen])], [h.make_tensor_value_info("out", T.FLOAT, None)], I)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])

core = ov.Core()
import json, onnx, os
from samplecnn.benchmarks.common import machine_info
results = []
import tempfile
tmp = tempfile.mkdtemp(prefix='samplecnn-stem-')
for B, threads in ((1, 1), (8, 2)):
    x = rng.standard_normal((B, 1, Tlen)).astype(np.float32) * 0.2
    for tail in (False, True):
        models, outs = {}, {}
        for kind in ("conv2d", "1x1 over 3 ch", "matmul"):
            p = f"{tmp}/{kind.replace(' ', '_')}_{B}_{tail}.onnx"; onnx.save(graph(kind, B, tail), p)
            cm = core.compile_model(core.read_model(p), "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
            models[kind] = cm.create_infer_request()
            outs[kind] = models[kind].infer({0: x})[0].copy()
        ref = outs["conv2d"]
        res = {k: [] for k in models}
        for r in range(7):
            for kind, req in (models.items() if r % 2 == 0 else reversed(list(models.items()))):
                req.infer({0: x}); t = time.perf_counter()
                for _ in range(20): req.infer({0: x})
                res[kind].append((time.perf_counter() - t) / 20 / B * 1e3)
        print(f"batch {B}, {threads} thread(s), {'stem+block1+pool' if tail else 'stem only'}: ms/segment",
              {k: round(float(np.median(v)), 3) for k, v in res.items()},
              "max rel diff vs conv2d", {k: float(np.abs(o - ref).max() / np.abs(ref).max()) for k, o in outs.items()}, flush=True)
        results.append({"batch": B, "threads": threads, "graph": "stem+block1+pool" if tail else "stem only",
                        "ms_per_segment": {k: round(float(np.median(v)), 3) for k, v in res.items()}})
out = os.path.join(os.path.dirname(__file__), "..", "results", "probe_bf16_stem.json")
with open(out, "w") as f:
    json.dump({"what": __doc__.split("\n\n")[0], "machine": machine_info(), "results": results}, f, indent=2)
