"""Probe: the int8 graphs' float stem as Conv vs Reshape+MatMul(+Transpose), feeding QuantizeLinear (onnxruntime CPU, batch 8)."""
import time, numpy as np, onnx, onnxruntime as ort
from onnx import helper as h, TensorProto as T, numpy_helper as nh
B, C, m, n = 8, 128, 3, 19683
Tlen = m * n
W = np.random.randn(C, 1, m).astype(np.float32)
def graph(kind):
    nodes, inits = [], [nh.from_array(np.float32(0.05), "s"), nh.from_array(np.uint8(128), "z")]
    if kind == "conv":
        inits.append(nh.from_array(W[:, :, None, :], "w"))
        nodes += [h.make_node("Reshape", ["x", "shp4"], ["x4"]), h.make_node("Conv", ["x4", "w"], ["y"], strides=[1, m])]
        inits.append(nh.from_array(np.array([B, 1, 1, Tlen], np.int64), "shp4"))
    else:
        inits += [nh.from_array(W[:, 0, :].T.copy(), "w"), nh.from_array(np.array([B, n, m], np.int64), "shp")]
        nodes += [h.make_node("Reshape", ["x", "shp"], ["xf"]), h.make_node("MatMul", ["xf", "w"], ["yt"])]
        if kind == "matmul+transpose":
            nodes += [h.make_node("Transpose", ["yt"], ["y"], perm=[0, 2, 1])]
        else:
            nodes += [h.make_node("Identity", ["yt"], ["y"])]
    nodes.append(h.make_node("QuantizeLinear", ["y", "s", "z"], ["q"]))
    g = h.make_graph(nodes, kind, [h.make_tensor_value_info("x", T.FLOAT, [B, 1, Tlen])], [h.make_tensor_value_info("q", T.UINT8, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 18)]).SerializeToString()
x = np.random.randn(B, 1, Tlen).astype(np.float32)
for threads in (1, 2):
    res = {}
    sess = {}
    for kind in ("conv", "matmul+transpose", "matmul (NWC out)"):
        o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.log_severity_level = 3
        sess[kind] = ort.InferenceSession(graph(kind), o, providers=["CPUExecutionProvider"])
    for r in range(5):
        for kind, s in sess.items():
            s.run(None, {"x": x}); t = time.perf_counter()
            for _ in range(10): s.run(None, {"x": x})
            res.setdefault(kind, []).append((time.perf_counter() - t) / 10 / B * 1e3)
    print(threads, "thread(s): ms/segment", {k: round(float(np.median(v)), 3) for k, v in res.items()})
