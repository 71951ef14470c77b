"""Write the default model's MODEL_CARD.md from what the bundle and its runs recorded.

    python experiments/model_card.py BUNDLE --runs runs/mer4q --ablation results/x.json ...

Every number in the card comes from the bundle's manifest (head metrics, parity, int8
agreement, checkpoint training records) or from the ablation JSON files; nothing is typed in.
The card is then listed in the manifest by the runtime's one bundle writer
(``runtime.bundle_write.add_extra_file``), so the bundle stays valid and building it twice
from the same inputs gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from samplecnn.export.report import model_card as technical_card
from samplecnn.runtime.bundle import Bundle
from samplecnn.runtime.bundle_write import add_extra_file
from samplecnn.trainer.ablation import to_markdown

INTRO = """# samplecnn default model

Multi-level, multi-scale sample-level CNN tagger (Lee & Nam 2017) shipped with samplecnn so
that `samplecnn infer songs/` works without data or training. Three raw-waveform backbones
(2^14, 3^9, 5^6 at width 0.25: ~125 k parameters each) were trained on the tags of 610 real
songs; three song-level heads read the concatenated segment-mean activations of the last three
layers of all three backbones (960 dimensions).

## What it is and is not good for

- Good for: a first look at a catalogue, demos, smoke tests of a pipeline, and as a starting
  point (its heads can be refitted with `samplecnn fit` on your labels in minutes).
- Not good for: production tagging. 610 training songs (about 5 hours of audio, 30 s previews
  at 16 kHz / 32 kbps) is tiny next to MagnaTagATune (~15 k clips) or the Million Song
  Dataset; the backbones trained for minutes on a 2-core CPU at a quarter of the paper's
  width. Expect clearly-better-than-chance rankings (see the test metrics), not reliable
  individual tags, particularly for the 40 mood tags and rare genres. The `instruments` head
  was fitted on synthesized General MIDI renderings (synthtags) and transfers to real
  recordings only roughly.
- To do better: train on MagnaTagATune, MSD or your own catalogue (README, Training) at full
  width on a GPU, export, and fit heads on your labels.
"""

DATA = """## Training data and licences

- **mer4q** — the 4Q audio emotion dataset (Panda, Malheiro & Paiva, 2018): 900 AllMusic
  30 s previews with AllMusic genre and mood tags and Russell-quadrant emotion labels; split
  by artist into 610 / 82 / 208 songs (train / valid / test). **Research use only**; the
  audio is not redistributed here, and neither this model nor its outputs carry any licence
  to the recordings.
- **synthtags** — 2,326 clips rendered from music21 corpus scores with a General MIDI
  soundfont (instrument families, drums, density). Some score collections are restricted to
  non-commercial use: **development, testing and research use**.
- Hence the default model is for research and evaluation, not for commercial deployment.
"""


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def training_section(manifest: dict, runs: Path) -> list[str]:
    lines = ["## Backbones: how they were trained", ""]
    lines += ["| scale | epochs (best) | valid ROC-AUC | test ROC-AUC | test PR-AUC | train time | segments/s | device |", "|---|---|---|---|---|---|---|---|"]
    commands = []
    for scale, info in manifest["provenance"].get("checkpoints", {}).items():
        t = info.get("training", {})
        best, test = t.get("best", {}), t.get("test", {}) or {}
        seconds = t.get("train_seconds") or 0
        lines.append(
            f"| {scale} | {t.get('epochs', '?')} ({best.get('epoch', '?')}) | {_fmt(best.get('roc_auc', '?'))} | "
            f"{_fmt(test.get('roc_auc', '?'))} | {_fmt(test.get('pr_auc', '?'))} | {float(seconds) / 60:.0f} min | "
            f"{t.get('segments_per_second', '?')} | {t.get('device', '?')} |"
        )
        width = next(s["config"]["width"] for s in manifest["scales"] if s["name"] == scale)
        commands.append(
            f"samplecnn train ../shared/data/mer4q/train.csv --label-column {t.get('label_column', 'tags')} --scale {scale} "
            f"--width {width} --optimizer {t.get('optimizer', '?')} --lr {t.get('lr', '?')} --batch-size {t.get('batch_size', '?')} "
            f"--crops-per-clip {t.get('crops_per_clip', 1)} --epochs {t.get('epochs', '?')} --seed {t.get('seed', 0)} "
            f"--threads 1 --out runs/mer4q/{scale.replace('^', '-')}"
        )
    lines += ["", f"Machine: {platform.machine()} CPU, 2 cores (the project's dev machine, shared with other jobs), seed 0.", ""]
    lines += [
        "Equivalent commands (the runs were interrupted by `--max-minutes` budgets and continued with "
        "`--resume`, which reproduces an uninterrupted run bit for bit; the best epoch's weights are shipped):",
        "", "```bash", *commands, "```", "",
    ]
    lines += [f"Run folders: `{runs}/<scale>/` (metrics.jsonl per epoch). Rebuild everything after training with `experiments/default_model.sh`.", ""]
    return lines


def _dataset_name(text: str) -> str:
    """'../shared/data/mer4q/train.csv [quadrant]' -> 'mer4q quadrant'."""
    path, _, column = text.partition(" [")
    return f"{Path(path).parent.name} {column.rstrip(']')}".strip()


def heads_section(bundle: Bundle) -> list[str]:
    lines = ["## Heads: test-split metrics", ""]
    lines += ["| head | task | labels | data | test ROC-AUC | test PR-AUC | test accuracy | test macro-F1 | songs (train/valid/test) |", "|---|---|---|---|---|---|---|---|---|"]
    for head in bundle.heads:
        m = head.metrics.get("splits", {}).get("test", {})
        n = head.metrics.get("n_songs", {})
        lines.append(
            f"| {head.name} | {head.task} | {len(head.labels)} | {_dataset_name(head.metrics.get('dataset', '?'))} | {_fmt(m.get('roc_auc', '-'))} | "
            f"{_fmt(m.get('pr_auc', '-'))} | {_fmt(m.get('accuracy', '-'))} | {_fmt(m.get('macro_f1', '-'))} | "
            f"{n.get('train', '?')}/{n.get('valid', '?')}/{n.get('test', '?')} |"
        )
    lines += [
        "", "Chance: ROC-AUC 0.5; quadrant accuracy 0.25 (four balanced classes). Quadrants of Russell's "
        "valence-arousal plane: Q1 positive + energetic (happy, excited), Q2 negative + energetic (angry, tense), "
        "Q3 negative + calm (sad, depressed), Q4 positive + calm (relaxed, serene).", "",
    ]
    return lines


def quantization_section(manifest: dict) -> list[str]:
    lines = ["## INT8 and size", ""]
    for scale in manifest["scales"]:
        q = scale.get("quantization", {}).get("int8")
        if q:
            songs = q.get("evaluation_songs")
            n = len(songs) if isinstance(songs, list) else songs
            lines.append(
                f"- {scale['name']}: top-{q['top_k']} tag agreement with fp32 {q['top_k_agreement_mean']:.3f} on average "
                f"(worst song {q['top_k_agreement_min']:.2f}) over {n} held-out songs ({q['evaluation_segments']} segments); "
                f"song tag-score error max {q['song_tag_score_max_abs_diff']:.4f}, mean {q['song_tag_score_mean_abs_diff']:.4f}; "
                f"calibrated on {q['calibration_segments']} segments of other songs"
            )
    lines += ["", "Width 0.25 is the size choice: about 16x fewer FLOPs and parameters than the paper's width 1; "
              "the cost in accuracy was not measured here (full width does not train in the time this CPU had).", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--runs", default="runs/mer4q")
    parser.add_argument("--ablation", action="append", default=[])
    args = parser.parse_args()
    root = Path(args.bundle)
    bundle = Bundle.load(root)
    manifest = bundle.spec.to_dict()
    lines = [INTRO, DATA]
    lines += training_section(manifest, Path(args.runs))
    lines += heads_section(bundle)
    if args.ablation:
        lines += ["## Ablation (levels x scales, test split)", ""]
        for path in args.ablation:
            table = json.loads(Path(path).read_text())
            lines += [to_markdown(table["rows"], table["task"], table.get("title", "")), f"Gain of multi-level + multi-scale: `{json.dumps(table.get('gain'))}`", ""]
    lines += quantization_section(manifest)
    lines += ["## Reproduce", "", "```bash", "bash experiments/train_default_backbones.sh   # the three backbones (CPU, ~40 min)",
              "bash experiments/default_model.sh            # export, heads, ablation, this card, copy into the package", "```", ""]
    lines += ["---", "", technical_card(manifest).replace("# samplecnn bundle", "## Technical details", 1)]
    (root / "MODEL_CARD.md").write_text("\n".join(lines))
    add_extra_file(root, "MODEL_CARD.md")
    Bundle.load(root)
    print(f"wrote {root / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
