"""The paper's transfer setting and ablation, on the data this project has.

    python experiments/transfer.py --backbones mer4q=runs/mer4q --backbones synthtags=runs/synthtags \
        --out experiments/results

For each pre-training source (a folder with <scale>/best.safetensors per preset) the three
backbones are exported to a bundle; song vectors are extracted with the runtime; for each
target (dataset manifest + label column) the levels x scales ablation is fitted and evaluated
on the target's test split. A control bundle of randomly initialised backbones (same
architecture, same width) gets the same treatment. Results: one JSON + markdown table per
(source, target), and experiments/results/README.md with them all.

Targets: mer4q `quadrant` (emotion, a higher-level label than the pre-training tags) and
synthtags `style` (the score corpus). Everything here runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from samplecnn.export.bundle_writer import export_bundle
from samplecnn.runtime.tagger import Tagger
from samplecnn.trainer.ablation import ablation_rows, save_ablation, to_markdown
from samplecnn.trainer.checkpoint import load_checkpoint, save_checkpoint
from samplecnn.trainer.data import read_manifest_splits
from samplecnn.trainer.fit import split_vectors
from samplecnn.trainer.model import PRESETS, SampleCNN
from samplecnn.trainer.song_classifier import ClassifierConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGETS = {
    "mer4q-quadrant": (DATA / "mer4q" / "train.csv", "quadrant"),
    "synthtags-style": (DATA / "synthtags" / "train.csv", "style"),
}
# Which targets each pre-training source is evaluated on (the two settings).
DEFAULT_PLAN = {"mer4q": ["mer4q-quadrant", "synthtags-style"], "synthtags": ["synthtags-style"]}
PARITY_AUDIO = Path(__file__).resolve().parents[1] / "examples"


def checkpoints_of(folder: Path) -> list[Path]:
    paths = [folder / s.replace("^", "-") / "best.safetensors" for s in PRESETS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"missing checkpoints {missing}; train them first (see README, Training)")
    return paths


def random_checkpoints(like: list[Path], out: Path, seed: int = 0) -> list[Path]:
    """Same architectures as ``like``, freshly initialised (the control)."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for i, path in enumerate(like):
        ckpt = load_checkpoint(path)
        torch.manual_seed(seed + i)
        model = SampleCNN(ckpt.config).eval()
        made.append(save_checkpoint(out / f"{ckpt.config.name.replace('^', '-')}.safetensors", model, ckpt.labels,
                                    {"note": "randomly initialised control, never trained", "seed": seed + i}))  # fmt: skip
    return made


def bundle_for(name: str, checkpoints: list[Path], work: Path) -> Path:
    out = work / "bundles" / name
    if not (out / "manifest.json").is_file():
        export_bundle(checkpoints, out, parity_audio=PARITY_AUDIO)
    return out


def run(sources: dict[str, Path], out: Path, work: Path, cache: Path, config: ClassifierConfig) -> None:
    for source, folder in sources.items():
        trained = checkpoints_of(folder)
        bundles = {
            "trained": bundle_for(source, trained, work),
            "random": bundle_for(f"{source}-random", random_checkpoints(trained, work / "random" / source), work),
        }
        for target in DEFAULT_PLAN.get(source, list(TARGETS)):
            manifest, column = TARGETS[target]
            dataset = read_manifest_splits(manifest, label_column=column)
            rows = []
            for label, bundle in bundles.items():
                started = time.perf_counter()
                with Tagger(bundle) as tagger:
                    splits = split_vectors(tagger, dataset, cache)
                    scales = [s.name for s in tagger.bundle.scales]
                print(f"{source} {label} -> {target}: features in {time.perf_counter() - started:.0f} s")
                part = ablation_rows(splits, dataset, scales, 3, config, label=label)
                rows += part if label == "trained" else [r for r in part if r["levels"] == "last three" and r["scales"].startswith("all")]
            title = f"backbones pre-trained on {source} tags -> {target} ({dataset.task}, test split)"
            save_ablation(rows, dataset.task, out / f"{source}_to_{target}", title=title)
            print(to_markdown(rows, dataset.task, title))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", action="append", required=True, help="NAME=FOLDER of <scale>/best.safetensors")
    parser.add_argument("--out", default="experiments/results")
    parser.add_argument("--work", default="runs/transfer", help="bundles and control checkpoints")
    parser.add_argument("--cache-dir", default="runs/cache/features")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sources = {k: Path(v) for k, v in (b.split("=", 1) for b in args.backbones)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run(sources, out, Path(args.work), Path(args.cache_dir), ClassifierConfig(seed=args.seed))
    write_summary(out)


def write_summary(out: Path) -> None:
    """out/README.md with every (source, target) table found in ``out`` (earlier runs too)."""
    lines = ["# Transfer learning and the levels x scales ablation", "", "Produced by `python experiments/transfer.py`; see README.", ""]
    for path in sorted(out.glob("*_to_*.json")):
        t = json.loads(path.read_text())
        lines += [to_markdown(t["rows"], t["task"], t["title"]), f"Multi-level + multi-scale vs best single-scale last layer: `{json.dumps(t['gain'])}`", ""]
    (out / "README.md").write_text("\n".join(lines))

if __name__ == "__main__":
    main()
