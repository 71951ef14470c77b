"""Write the default model's MODEL_CARD.md from what the bundle and its runs recorded.

    python experiments/model_card.py BUNDLE --sources SOURCES.json --evaluation EVAL.json --ablation results/x.json ...

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
import re
from dataclasses import replace
from pathlib import Path

from samplecnn.export.report import model_card as technical_card
from samplecnn.runtime.bundle import SPECTRAL, Bundle
from samplecnn.runtime.bundle_write import add_extra_file
from samplecnn.trainer.ablation import to_markdown

INTRO = """# samplecnn default model

Multi-level, multi-scale sample-level CNN tagger (Lee & Nam 2017) shipped with samplecnn so
that `samplecnn infer songs/` works without data or training. Three raw-waveform backbones
({scales} at width {width}: ~{params} k parameters each) were **distilled from musicnn**
(Pons & Serra 2019, `MTT_musicnn`) on every hour of real music this project could reach:
each learned the teacher's 50 MagnaTagATune tag probabilities (soft targets, window by window)
and, through a linear map used only in training, the teacher's penultimate and pooled
features.{stage2} The song vector is the paper's: the concatenated segment-mean activations of
the last three layers of all three backbones ({backbone_dims} dimensions), followed by a **spectral level**
that is not in the paper: 384 log-mel statistics of the whole song (mean and standard
deviation of 96 log-mel bands from 0 to 7 kHz and of their frame-to-frame change;
`runtime/spectral.py`, numpy, computed while the song decodes). The small students match
their teacher's tags but miss timbre that these statistics carry (evaluation below, and
`experiments/probes/README.md`). Song-level heads read the whole {vector_dims:,}-d vector:
`tags` (the teacher's 50 tags, fitted on the teacher's song-level probabilities: the model's
best tags){msd_head}, `quadrant` (emotion) and `instruments`. The backbones' own tags (mean over
scales) are the `backbone` head.

## What it is and is not good for

- Good for: tagging a catalogue with the MagnaTagATune vocabulary (instruments, genres,
  vocals, tempo, mood words){msd_vocabulary} at a few hundred times real time on a laptop CPU, as song
  vectors for your own classifiers (`samplecnn fit`), demos and pipelines.
- Not as good as: its teacher on every song. It is a {smaller}x smaller raw-waveform student
  trained for {train_time} on a 2-core CPU; the teacher-agreement and transfer figures below
  say how close it gets. MagnaTagATune's vocabulary has its own quirks (e.g. `classical`
  and `classic`, `female` and `woman` are separate tags).
- The `instruments` head was fitted on synthesized General MIDI renderings (synthtags) and
  does not carry over to real recordings{instruments_real}: read the instruments of a
  recording from `tags`.
"""

DATA = """## Training data and licences

- **Audio (no labels used):** mer4q's 610 train songs and the music of Debian game-music
  packages (table below; hours and licence per source as recorded by
  `experiments/audio_sources.py` from each package's copyright file). mer4q valid (82 songs)
  and test (208 songs) were held out of distillation: valid for model selection, test for
  teacher agreement.
- **Targets:** musicnn 0.1.0 `MTT_musicnn`{msd_targets} (ISC licence, weights shipped in its PyPI wheel),
  run in its own environment (`experiments/teacher_env.sh`, TensorFlow 2.21) with the graph
  built once and the log-mel computed in float32; 3 s windows (187 frames) every 2.992 s.
- **mer4q** — the 4Q audio emotion dataset (Panda, Malheiro & Paiva, 2018): AllMusic 30 s
  previews with Russell-quadrant emotion labels. **Research use only**; the audio is not
  redistributed here, and neither this model nor its outputs carry any licence to the
  recordings. The `quadrant` head is fitted on its train split.
- **synthtags** — 2,326 clips rendered from music21 corpus scores with a General MIDI
  soundfont. Some score collections are restricted to non-commercial use: **development,
  testing and research use**. The `instruments` head is fitted on it.
- Hence the default model is for research and evaluation, not for commercial deployment.
"""


def sources_section(sources_file: Path | None) -> list[str]:
    if sources_file is None or not sources_file.is_file():
        return []
    info = json.loads(sources_file.read_text())
    lines = ["| source | files | hours | licence (package copyright file) | used for |", "|---|---|---|---|---|"]
    total = 0.0
    for name, e in info["sources"].items():
        used = "held out (model selection)" if name == "mer4q-valid" else "held out (teacher agreement)" if name == "mer4q-test" else "distillation"
        if used == "distillation":
            total += e["hours"]
        lines.append(f"| {name} | {e.get('files', 0)} | {e['hours']:.2f} | {e['licence']} | {used} |")
    return lines + ["", f"Distillation audio: **{total:.1f} hours**.", ""]


def evaluation_section(evaluation: Path | None) -> list[str]:
    if evaluation is None or not evaluation.is_file():
        return []
    r = json.loads(evaluation.read_text())
    a = r["teacher_agreement_mer4q_test"]
    lines = ["## Evaluation", "", f"**Teacher agreement** on the {a['songs']} mer4q test songs (held out of distillation and of "
             "every head's fit): macro ROC-AUC of the student's song-level scores taking each song's top-5 teacher tags as "
             "positives, and the Pearson correlation of student and teacher song-level scores:", "",
             "| student scores | top-5 ROC-AUC | top-5 PR-AUC | correlation |", "|---|---|---|---|"]
    for key, what in (("teacher_agreement_mer4q_test_tags_head", "`tags` head (multi-level multi-scale song vector)"),
                      ("teacher_agreement_mer4q_test_msd_head", "`msd` head (the same song vector; against MSD_musicnn's 50 Last.fm tags)"),
                      ("teacher_agreement_mer4q_test", "`backbone` (mean over scales of each backbone's tags)")):
        if key in r:
            a = r[key]
            lines.append(f"| {what} | **{a['top5_roc_auc']:.3f}** | {a['top5_pr_auc']:.3f} | **{a['correlation']:.3f}** |")
    lines += ["",
             f"**Transfer** ({r['protocol']}; same folds for every row):", "",
             "| features | dims | mer4q quadrant accuracy | mer4q genre accuracy | synthtags style accuracy |", "|---|---|---|---|---|"]  # fmt: skip
    tasks = [r.get(t, {}) for t in ("mer4q_quadrant", "mer4q_genre", "synthtags_style")]

    def cell(task: dict, name: str) -> str:
        return f"{task[name]['accuracy']:.3f} ± {task[name]['std']:.3f}" if name in task else "—"

    for name in dict.fromkeys(n for task in tasks for n in task):
        dims = next(task[name]["dims"] for task in tasks if name in task)
        lines.append(f"| {name} | {dims} | " + " | ".join(cell(task, name) for task in tasks) + " |")
    lines += ["", "`student all` is the song vector the heads read (with the spectral level when the bundle has it); "
              "`student backbones` is its multi-level multi-scale part alone (the paper's song vector) and `student mel` the "
              "spectral level alone; `<scale>` rows concatenate "
              "that scale's three levels, `<scale>/L1` is one level (L1 = last hidden layer). Rows named `<name> default all` are earlier default models: given live "
              "with `default_model.sh BASELINE=...`, or imported from earlier runs of the same protocol and folds "
              "(experiments/results/distill_eval_session*.json; those runs had no genre task). mer4q genre: the 458 "
              "songs with exactly one of 13 genre tags (pop/rock, jazz, electronic, r&b, country, blues, rap, latin, folk, "
              "reggae, new age, international, vocal), folds grouped by artist. musicnn rows are the teachers' song-mean "
              "features: MTT_musicnn's ""penultimate features (200 dims) and taggram (50 tags), MSD_musicnn's penultimate features (200 dims; "
              "not labelled on synthtags).", ""]
    return lines


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def stage_chain(training: dict, width: float) -> list[dict]:
    """The stages of a backbone, first to last, following each checkpoint's --init: per stage its
    training record, its width, a label ("MTT", "more audio", "+ MSD features", "widened to W")
    and its run folder (None where it was not recorded). A stage whose --init checkpoint is no
    longer on disk is a record None."""
    from samplecnn.trainer.checkpoint import read_metadata

    chain = [{"training": training, "width": width}]
    while (init := chain[0]["training"].get("init")) not in (None, "None"):
        if not Path(init).is_file():
            chain.insert(0, {"training": None, "width": None, "run": str(Path(init).parent)})
            break
        metadata = read_metadata(init)
        chain.insert(0, {"training": json.loads(metadata.get("training", "{}")), "width": json.loads(metadata["config"])["width"],
                         "run": str(Path(init).parent)})  # fmt: skip
    out = re.search(r"--out (\S+)", training.get("command") or "")
    chain[-1]["run"] = out.group(1) if out else None  # the last stage's folder: its command's --out
    for i, stage in enumerate(chain):
        before = chain[i - 1] if i else None
        if before is None:
            stage["label"] = "MTT"
        elif before["width"] is not None and stage["width"] != before["width"]:
            stage["label"] = f"widened to {stage['width']:g}"
        elif "msd_" in ((stage["training"] or {}).get("command") or ""):
            stage["label"] = "+ MSD features"
        else:
            stage["label"] = "more audio"
    return chain


def _chains(manifest: dict) -> dict[str, list[dict]]:
    widths = {s["name"]: s["config"]["width"] for s in manifest["scales"]}
    return {scale: stage_chain(info.get("training", {}), widths[scale]) for scale, info in manifest["provenance"].get("checkpoints", {}).items()}


def paper_ratio(manifest: dict) -> float:
    """FLOPs of the paper's width-1 backbones over the bundle's (all scales)."""
    from samplecnn.trainer.model import BackboneConfig

    configs = [BackboneConfig.from_dict(s["config"]) for s in manifest["scales"]]
    return sum(replace(c, width=1.0).flops_per_segment() / c.segment_samples for c in configs) / sum(
        c.flops_per_segment() / c.segment_samples for c in configs)


def sizes(bundle: Bundle, manifest: dict) -> dict[str, str]:
    """The intro's numbers: scales, width, parameters per backbone (k), song-vector widths, FLOPs ratio."""
    from samplecnn.trainer.model import BackboneConfig, SampleCNN, count_parameters

    configs = [BackboneConfig.from_dict(s["config"]) for s in manifest["scales"]]
    params = sum(count_parameters(SampleCNN(c)) for c in configs) / len(configs) / 1000
    backbone = sum(w for name, _, w in bundle.embedding_parts if name != SPECTRAL)
    return {"{scales}": ", ".join(c.name for c in configs), "{width}": f"{configs[0].width:g}", "{params}": f"{params:.0f}",
            "{backbone_dims}": str(backbone), "{vector_dims:,}": f"{bundle.embedding_width:,}", "{smaller}": f"{paper_ratio(manifest):.0f}"}


def reproduce_stages(chain: list[dict]) -> list[str]:
    """One command per stage of the backbones (run folders as recorded for the first scale)."""
    runs = [str(Path(stage["run"]).parent).replace(str(Path.home()), "~") if stage.get("run") else "RUNS" for stage in chain]
    lines = [f"RUNS={runs[0]} bash experiments/train_default_backbones.sh   # stage 1: from MTT_musicnn (CPU, hours; re-run to --resume)"]
    for i, stage in enumerate(chain[1:], 1):
        label, init = stage["label"], f"INIT={runs[i - 1]} RUNS={runs[i]}"
        if label == "+ MSD features":
            lines.append(f"STAGE1={runs[i - 1]} RUNS={runs[i]} bash experiments/train_default_backbones_msd.sh  # stage {i + 1}: + MSD_musicnn's outputs")
        elif label.startswith("widened"):
            lines.append(f"{init} INIT_CHECKPOINT=last WIDTH={stage['width']:g} LR=2e-4 CONTROL=0 bash experiments/train_default_backbones.sh  # stage {i + 1}: {label}")
        else:
            lines.append(f"{init} CONTROL=0 bash experiments/train_default_backbones.sh  # stage {i + 1}: {label}")
    return lines


def train_minutes(chain: list[dict]) -> float:
    """Training minutes of a backbone, every stage included."""
    return sum(float((stage["training"] or {}).get("train_seconds") or 0) for stage in chain) / 60


STAGE_TEXT = {
    "more audio": "continues each backbone from the previous stage (`--init`; `INIT=... RUNS=... experiments/train_default_backbones.sh`, "
                  "lr 1e-4, a fixed budget) with stage 1's recipe on more label files: the music found since (see Training data).",
    "+ MSD features": "(`experiments/train_default_backbones_msd.sh`, seed 1, lr 2e-4, a fixed budget) fine-tunes each backbone from "
                      "the previous stage (`--init`) to also regress MSD_musicnn's 50 tag probabilities, penultimate (200) and pooled "
                      "(1506) features, all standardised, through the training-only linear map; the backbone's tags stay the 50 MTT tags.",
    "widened": "(`INIT=... INIT_CHECKPOINT=last WIDTH=... LR=2e-4 experiments/train_default_backbones.sh`, a fixed budget) widens each "
               "backbone from the previous stage's last checkpoint (`--init` at a larger `--width`: `trainer/widen.py`, Net2WiderNet, "
               "the same function up to 1% noise on the new channels) and continues with stage 1's recipe on all the label files.",
}


def training_section(manifest: dict, chains: dict[str, list[dict]]) -> list[str]:
    lines = ["## Backbones: how they were distilled", ""]
    lines += ["ROC-AUC / PR-AUC here are teacher agreement with MTT_musicnn: each held-out song's top-5 teacher tags are its "
              "positives (valid: mer4q valid, 82 songs; test: mer4q test, 208 songs).", ""]
    header = "| scale | stage | width | epochs (best) | valid ROC-AUC | test ROC-AUC | test PR-AUC | test correlation | train time | segments/s | device |"
    lines += [header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    commands = []
    for scale, chain in chains.items():
        for i, stage in enumerate(chain, 1):
            record, name = stage["training"], f"{i}: {stage['label']}" if len(chain) > 1 else stage["label"]
            if record is None:
                lines.append(f"| {scale} | {name} | | (its run is not on this machine) | | | | | | | |")
                continue
            best, test = record.get("best", {}), record.get("test", {}) or {}
            lines.append(
                f"| {scale} | {name} | {stage['width']:g} | {record.get('epochs', '?')} ({best.get('epoch', '?')}) | {_fmt(best.get('roc_auc', '?'))} | "
                f"{_fmt(test.get('roc_auc', '?'))} | {_fmt(test.get('pr_auc', '?'))} | {_fmt(test.get('teacher_correlation', '?'))} | "
                f"{float(record.get('train_seconds') or 0) / 60:.0f} min | {record.get('segments_per_second', '?')} | {record.get('device', '?')} |"
            )
            commands.append(record.get("command") or f"# {scale}: no command recorded")
    lines += ["", f"Machine: {platform.machine()} CPU, 2 cores (the project's dev machine, shared with other jobs).", ""]
    lines += [
        "Commands, as recorded in each checkpoint (the runs shared the machine, one torch thread each, and were "
        "continued with `--resume` in later sessions):",
        "", "```bash", *commands, "```", "",
        "Stage 1 (`experiments/train_default_backbones.sh`: width 0.25, Adam, batch 64, bf16 autocast, two crops per "
        "clip, seed 0, soft MTT tags + MTT_musicnn's penultimate and pooled features) ran until its valid agreement "
        "plateaued; its best epoch is the starting point of the next stage or, without one, the shipped weights.",
    ]
    first = next(iter(chains.values()), [])
    for i, stage in enumerate(first[1:], 2):
        kind = "widened" if stage["label"].startswith("widened") else stage["label"]
        lines.append(f"Stage {i} {STAGE_TEXT[kind]}")
    runs = [f"`{stage['run'].replace(str(Path.home()), '~')}`" for stage in first if stage.get("run")]
    files = sorted({info.get("file", "?") for info in manifest["provenance"].get("checkpoints", {}).values()})
    lines += ["", f"Shipped: each backbone's {' / '.join(f'`{f}`' for f in files)} of its last stage "
              "(`best`: the epoch of best teacher agreement on mer4q valid; `last`: the last epoch)."]
    lines += ["", f"Run folders, one per stage (2^14 shown; the other scales' are its siblings): {', '.join(runs) or 'none recorded'}; metrics.jsonl per epoch. "
              "Rebuild everything after training with `experiments/default_model.sh`.", ""]
    return lines


def _dataset_name(text: str) -> str:
    """'../shared/data/mer4q/train.csv [quadrant]' -> 'mer4q quadrant'; other names as they are."""
    if " [" not in text:
        return text
    path, _, column = text.partition(" [")
    return f"{Path(path).parent.name} {column.rstrip(']')}".strip()


def instruments_real(path: Path | None) -> str:
    """The clause of experiments/probes/instruments_real.py's result on held-out real songs."""
    if path is None:
        return ""
    r = json.loads(path.read_text())
    return (f" (against musicnn's instrument tags on {r['songs']} held-out mer4q songs, macro ROC-AUC "
            f"{r['instruments']['macro']:.2f} over the {len(r['instruments']) - 1} classes both vocabularies have, "
            f"where the `tags` head scores {r['tags']['macro']:.2f}; `experiments/probes/instruments_real.py`)")


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
        "", "`tags`: ROC-AUC / PR-AUC are teacher agreement (each song's top-5 teacher tags as positives). "
        "Chance: ROC-AUC 0.5; quadrant accuracy 0.25 (four balanced classes). Quadrants of Russell's "
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
    width = manifest["scales"][0]["config"]["width"]
    lines += ["", f"Width {width:g} is the size choice: {paper_ratio(manifest):.0f}x fewer FLOPs than the paper's width 1, chosen "
              "by the whole pipeline's speed with int8 on a 2-core CPU (`python -m samplecnn.benchmarks.width_speed`, "
              "`benchmarks/results/width_speed.json`); full width does not train in the time this CPU had.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--ablation", action="append", default=[])
    parser.add_argument("--sources", type=Path, default=None, help="sources.json of experiments/audio_sources.py")
    parser.add_argument("--evaluation", type=Path, default=None, help="JSON of experiments/distill_eval.py")
    parser.add_argument("--instruments-real", type=Path, default=None, help="JSON of experiments/probes/instruments_real.py")
    args = parser.parse_args()
    root = Path(args.bundle)
    bundle = Bundle.load(root)
    manifest = bundle.spec.to_dict()
    chains = _chains(manifest)
    minutes = [train_minutes(chain) for chain in chains.values()]
    train_time = f"{min(minutes):.0f}-{max(minutes):.0f} minutes per backbone" if minutes else "an unrecorded time"
    labels = [stage["label"] for stage in next(iter(chains.values()), [])[1:]]
    later = {"+ MSD features": "Then each was fine-tuned to also predict, through that map, the outputs of musicnn's `MSD_musicnn` "
                               "(50 Last.fm tags, mostly genres: their probabilities, and its penultimate and pooled features), whose "
                               "features transfer to genre far better than MTT_musicnn's (see Evaluation).",
             "more audio": "Then each continued with the same recipe on the music found since (more label files; see Training "
                           "data and the backbones' table).",
             "widened": "Then each was widened (more channels computing the same function: `trainer/widen.py`) and trained on "
                        "with the same recipe."}  # fmt: skip
    stage2 = "".join(" " + later["widened" if label.startswith("widened") else label] for label in labels)
    msd = any(h.name == "msd" for h in bundle.heads)
    msd_head = (", `msd` (musicnn `MSD_musicnn`'s 50 Last.fm tags: genres, decades, moods; fitted the same way on that "
                "teacher's song-level probabilities of the same audio)") if msd else ""
    msd_vocabulary = (" and, with `msd`, the Last.fm vocabulary of the Million Song Dataset (rock, indie, electronic, "
                      "Hip-Hop, jazz, 80s, chillout, ...; it has no classical tag)") if msd else ""
    msd_targets = ", ".join(x for x in ("in a training stage" if "+ MSD features" in labels else "", "for the `msd` head" if msd else "") if x)
    intro = INTRO
    for key, value in sizes(bundle, manifest).items():
        intro = intro.replace(key, value)
    intro = intro.replace("{train_time}", train_time).replace("{stage2}", stage2).replace("{instruments_real}", instruments_real(args.instruments_real))
    lines = [intro.replace("{msd_head}", msd_head).replace("{msd_vocabulary}", msd_vocabulary),
             DATA.replace("{msd_targets}", f" and, {msd_targets}, `MSD_musicnn`" if msd_targets else "")]
    lines += sources_section(args.sources)
    lines += evaluation_section(args.evaluation)
    lines += training_section(manifest, chains)
    lines += heads_section(bundle)
    if args.ablation:
        lines += ["## Ablation (levels x scales, test split)", ""]
        for path in args.ablation:
            table = json.loads(Path(path).read_text())
            lines += [to_markdown(table["rows"], table["task"], table.get("title", "")), f"Gain of multi-level + multi-scale: `{json.dumps(table.get('gain'))}`", ""]
    lines += quantization_section(manifest)
    lines += ["## Reproduce", "", "```bash", "experiments/get_audio.sh && .venv/bin/python experiments/audio_sources.py  # audio + inventory",
              "experiments/teacher_env.sh                   # musicnn's own venv", "# teacher labels (experiments/README or default_model.sh header)"]
    lines += reproduce_stages(next(iter(chains.values()), []))
    lines += ["bash experiments/default_model.sh            # export, heads, ablation, this card, copy into the package", "```", ""]
    lines += ["---", "", technical_card(manifest).replace("# samplecnn bundle", "## Technical details", 1)]
    (root / "MODEL_CARD.md").write_text("\n".join(lines))
    add_extra_file(root, "MODEL_CARD.md")
    Bundle.load(root)
    print(f"wrote {root / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
