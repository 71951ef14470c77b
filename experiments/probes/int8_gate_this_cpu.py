"""Probe: does the shipped default model's int8 export gate hold on this CPU?

The gate (top-5 agreement of int8 with fp32 on 32 held-out songs, >= 0.9) ran on the machine that
exported the bundle (a Sapphire Rapids, with VNNI and AMX). Without VNNI, x86 int8 kernels
(onnxruntime's MLAS and OpenVINO's alike) sum u8 x s8 pairs in saturating int16, and our int8
graphs use full 8-bit weights (``reduce_range`` off), so their outputs can differ on such CPUs.
This re-runs each scale's gate here, on the same songs, with the same function, and prints it
next to what the manifest recorded. Needs ../shared/data/mer4q. Usage:

    python experiments/probes/int8_gate_this_cpu.py [--out experiments/results/probe_int8_gate_<cpu>.json]
"""
import argparse
import json
from pathlib import Path

from samplecnn.benchmarks.common import DATA, machine_info
from samplecnn.export.audio_sets import load_songs
from samplecnn.export.quantize import evaluate_against_fp32
from samplecnn.runtime.bundle import Bundle
from samplecnn.runtime.tagger import default_bundle_path

KEYS = ("top_k_agreement_mean", "top_k_agreement_min", "song_tag_score_max_abs_diff", "song_tag_score_mean_abs_diff")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out")
args = parser.parse_args()
bundle = Bundle.load(default_bundle_path())  # the runtime reads the manifest and checks every file's hash
by_name = {p.name: p for p in (DATA / "mer4q").rglob("*.mp3")}
result = {"machine": machine_info(), "bundle": str(bundle.root), "scales": {}}
for scale in bundle.scales:
    recorded = scale.quantization["int8"]
    songs = load_songs([by_name[name] for name in recorded["evaluation_songs"]], bundle.sample_rate)
    here = evaluate_against_fp32(bundle.path(scale.models["fp32"]), bundle.path(scale.models["int8"]), songs, scale.segment_samples)
    result["scales"][scale.name] = {"recorded_at_export": {k: recorded[k] for k in KEYS}, "this_cpu": {k: here[k] for k in KEYS}}
    print(scale.name, "recorded:", {k: round(recorded[k], 5) for k in KEYS}, "\n      this CPU:", {k: round(here[k], 5) for k in KEYS})
print("CPU flags:", " ".join(result["machine"]["simd"]))
if args.out:
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("saved", args.out)
