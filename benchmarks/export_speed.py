"""Export cost and onnxruntime CPU speed of the exported graphs (3^9, full width).

Measures, in one run: `export_bundle` time (fp32 + fp16 + int8, parity and agreement checks
included), file sizes, ms per segment at batch 16 for the Conv1d graph, the 2-D lowered graph,
the INT8 graph under several quantization settings and the FP16 graph, and the INT8 agreement
figures on held-out real songs. Weights are random (BatchNorm statistics randomised as in the
tests), so agreement figures say how quantization perturbs this architecture, not a trained
tagger. Usage:

    python -m samplecnn.benchmarks.export_speed [--out benchmarks/results/export_speed.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import DATA, machine_info, random_model
BATCH = 16


def ms_per_segment(path: Path, segments: np.ndarray, repeats: int = 7) -> float:
    from samplecnn.runtime.backends.ort import OrtBackend

    backend = OrtBackend.from_file(path)  # the serving session
    feed = segments[:BATCH]
    backend.infer(feed)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        backend.infer(feed)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) / BATCH * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/export_speed.json")
    parser.add_argument("--calibration", default=str(DATA / "mer4q" / "train.csv"))
    parser.add_argument("--evaluation", default=str(DATA / "mer4q" / "valid.csv"))
    args = parser.parse_args()

    from samplecnn.export.audio_sets import load_songs, stack_segments
    from samplecnn.export.bundle_writer import export_bundle
    from samplecnn.export.onnx_export import export_backbone
    from samplecnn.export.quantize import Int8Settings, evaluate_against_fp32, quantize_int8
    from samplecnn.trainer.checkpoint import save_checkpoint

    model = random_model("3^9", 1.0, seed=0)
    results: dict = {"machine": machine_info(),
                     "model": "3^9 width 1.0, 50 tags, random weights", "batch": BATCH}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = save_checkpoint(tmp / "3-9.safetensors", model.eval(), [f"tag{i}" for i in range(50)], {"note": "random"})
        started = time.perf_counter()
        bundle = export_bundle([ckpt], tmp / "bundle", precisions=("fp16", "int8"), parity_audio=args.evaluation, calibration=args.calibration)
        results["export_bundle_seconds"] = round(time.perf_counter() - started, 1)
        manifest = json.loads((bundle / "manifest.json").read_text())
        scale = manifest["scales"][0]
        results["file_mb"] = {f: round((bundle / f).stat().st_size / 1e6, 2) for f in scale["models"].values()}
        started = time.perf_counter()
        conv1d = export_backbone(model, tmp / "conv1d.onnx", graph="conv1d")
        results["export_conv1d_graph_seconds"] = round(time.perf_counter() - started, 1)
        q = scale["quantization"]["int8"]
        results["int8_agreement"] = {k: q[k] for k in ("top_k", "top_k_agreement_mean", "top_k_agreement_min", "song_tag_score_max_abs_diff",
                                                       "song_tag_score_mean_abs_diff", "calibration_segments", "evaluation_segments")}
        results["int8_agreement"]["evaluation_songs"] = len(q["evaluation_songs"])
        results["int8_output_max_abs_diff"] = {k: v["max_abs_diff"] for k, v in q["outputs"].items()}
        songs = load_songs(args.evaluation, 22050, max_songs=8)
        segments = stack_segments(songs, 59049, 2)
        calibration = stack_segments(load_songs(args.calibration, 22050, max_songs=16), 59049, 4)
        speed = {"fp32 conv1d": ms_per_segment(conv1d, segments), "fp32 conv2d (bundle)": ms_per_segment(bundle / scale["models"]["fp32"], segments),
                 "fp16 conv2d (bundle, CPU)": ms_per_segment(bundle / scale["models"]["fp16"], segments),
                 "int8 QDQ u8/s8 per-channel (bundle)": ms_per_segment(bundle / scale["models"]["int8"], segments)}
        variants = {
            "int8 QDQ s8/s8 per-channel": Int8Settings(activation_type="QInt8"),
            "int8 QOperator u8/s8 per-channel": Int8Settings(quant_format="QOperator"),
            "int8 QDQ u8/s8 per-channel reduce_range": Int8Settings(reduce_range=True),
            "int8 QDQ u8/s8 per-tensor": Int8Settings(per_channel=False),
        }
        agreement = {"int8 QDQ u8/s8 per-channel (bundle)": q["top_k_agreement_mean"]}
        for name, settings in variants.items():
            path = quantize_int8(bundle / scale["models"]["fp32"], tmp / f"{len(speed)}.onnx", calibration, settings=settings)
            speed[name] = ms_per_segment(path, segments)
            agreement[name] = evaluate_against_fp32(bundle / scale["models"]["fp32"], path, songs, 59049)["top_k_agreement_mean"]
        results["ms_per_segment"] = {k: round(v, 2) for k, v in speed.items()}
        results["top5_agreement_by_setting"] = agreement
    machine = results["machine"]
    print(f"{results['model']} on {machine['cpu']}, {machine['cores']} cores, SIMD: {' '.join(machine['simd'])}")
    print(f"export_bundle (fp32+fp16+int8, checks included): {results['export_bundle_seconds']} s; files (MB): {results['file_mb']}")
    print(f"{'graph':<42} {'ms/segment':>10} {'top-5 agree':>11}")
    for name, ms in results["ms_per_segment"].items():
        agree = agreement.get(name)
        print(f"{name:<42} {ms:>10.2f} {'' if agree is None else f'{agree:.3f}':>11}")
    print("int8 vs fp32 on held-out songs:", results["int8_agreement"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
