"""Trainer throughput against its ceiling: a bare torch forward+backward loop on the same model.

For each setting (batch, precision, DataLoader workers) this times, in interleaved rounds
(A B A B ...), segments per second of

- ``bare``: random tensors already in memory, forward + BCE + backward + Adam step;
- ``trainer``: :func:`samplecnn.trainer.train.train_epoch` over real cached audio with
  distillation targets (random crops, overlap-weighted teacher targets, feature head), exactly
  what ``samplecnn train --targets`` runs;

and reports the trainer as a fraction of the bare loop, the median and spread of each.
"before" is the first round's trainer configuration (batch 23, fp32, 2 workers next to 2
torch threads: the defaults of the previous release); "after" is what the default model's
training used (batch 64, bf16 autocast, no workers, the main process feeds the batches).

Usage: python -m samplecnn.benchmarks.train_speed --labels LABEL_FILE [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

SETTINGS = {  # name -> (batch, amp, workers, threads)
    "before: batch 23, fp32, 2 workers": (23, "fp32", 2, 2),
    "batch 64, fp32, 0 workers": (64, "fp32", 0, 2),
    "after: batch 64, bf16, 0 workers": (64, "bf16", 0, 2),
}


def cpu_flags() -> dict:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), platform.processor())
    return {"cpu": model, "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_tile" in flags, "avx512_vnni": "avx512_vnni" in flags}


def bare_rate(model, batch: int, amp: str, seconds: float) -> float:
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(batch, model.config.segment_samples), torch.rand(batch, model.config.n_tags)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)["logits"].float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done += batch
    return done / (time.perf_counter() - start)


def trainer_rate(model, head, crops, batch: int, amp: str, workers: int, batches: int) -> float:
    from torch.utils.data import DataLoader, Subset

    from samplecnn.trainer.train import train_epoch

    optimizer = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), 1e-3)
    subset = Subset(crops, list(range(min(len(crops), batch * batches))))
    loader = DataLoader(subset, batch_size=batch, shuffle=False, num_workers=workers, drop_last=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16")
    stats = train_epoch(model, loader, optimizer, "tags", "cpu", "bench", amp=autocast, head=head)
    return stats["train_segments"] / stats["train_seconds"]


def main() -> None:
    from samplecnn.trainer.cache import DEFAULT_CACHE_DIR, AudioCache
    from samplecnn.trainer.distill import DistillCrops, FeatureHead, TeacherSet
    from samplecnn.trainer.model import SampleCNN, preset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", required=True, help="a teacher-label file (its audio is decoded into the cache)")
    parser.add_argument("--scale", default="3^9")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="per bare measurement")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    teacher = TeacherSet([args.labels], [], [])
    dataset, refs = teacher.dataset()
    config = preset(args.scale, len(teacher.tags), width=args.width)
    cache = AudioCache(DEFAULT_CACHE_DIR, config.sample_rate)
    clips, _ = cache.prepare(dataset.split("train"), min_samples=config.segment_samples)
    features = ["penultimate", "pooled"]
    stats = teacher.feature_stats(features)
    crops = DistillCrops(clips, refs, teacher, config.segment_samples, config.sample_rate, 2, 0, features, stats)
    results = {name: {"bare": [], "trainer": []} for name in SETTINGS}
    previous = torch.get_num_threads()
    for round_ in range(args.rounds):
        for name, (batch, amp, workers, threads) in SETTINGS.items():
            torch.set_num_threads(threads)
            torch.manual_seed(round_)
            model = SampleCNN(config)
            head = FeatureHead(list(config.level_widths.values()), len(stats[0]))
            results[name]["bare"].append(bare_rate(model, batch, amp, args.seconds))
            batches = max(3, int(results[name]["bare"][-1] * args.seconds / batch))
            results[name]["trainer"].append(trainer_rate(model, head, crops, batch, amp, workers, batches))
            print(f"round {round_ + 1} {name}: bare {results[name]['bare'][-1]:.1f}, trainer {results[name]['trainer'][-1]:.1f} segments/s", flush=True)
    torch.set_num_threads(previous)
    rows = []
    for name, r in results.items():
        bare, trainer = np.median(r["bare"]), np.median(r["trainer"])
        spread = max(np.ptp(r["bare"]) / bare, np.ptp(r["trainer"]) / trainer)
        rows.append({"setting": name, "bare_segments_per_s": round(float(bare), 2), "trainer_segments_per_s": round(float(trainer), 2),
                     "trainer_fraction_of_bare": round(float(trainer / bare), 3), "spread": round(float(spread), 3),
                     "rounds": r, "flag_spread_over_10pct": bool(spread > 0.10)})  # fmt: skip
    report = {"scale": args.scale, "width": args.width, "cpu": cpu_flags(), "torch": torch.__version__, "rows": rows,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_speed.json").write_text(json.dumps(report, indent=1))
    print(f"\n{args.scale} width {args.width}, {report['cpu']}")
    print(f"{'setting':40s} {'bare seg/s':>10s} {'trainer seg/s':>13s} {'trainer/bare':>12s} {'spread':>7s}")
    for row in rows:
        print(f"{row['setting']:40s} {row['bare_segments_per_s']:10.1f} {row['trainer_segments_per_s']:13.1f} "
              f"{row['trainer_fraction_of_bare']:12.2f} {row['spread']:7.1%}{'  (noisy)' if row['flag_spread_over_10pct'] else ''}")  # fmt: skip


if __name__ == "__main__":
    main()
