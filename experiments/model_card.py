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
from pathlib import Path

from samplecnn.export.report import model_card as technical_card
from samplecnn.runtime.bundle import Bundle
from samplecnn.runtime.bundle_write import add_extra_file
from samplecnn.trainer.ablation import to_markdown

INTRO = """# samplecnn default model

Multi-level, multi-scale sample-level CNN tagger (Lee & Nam 2017) shipped with samplecnn so
that `samplecnn infer songs/` works without data or training. Three raw-waveform backbones
(2^14, 3^9, 5^6 at width 0.25: ~125 k parameters each) were **distilled from musicnn**
(Pons & Serra 2019, `MTT_musicnn`) on every hour of real music this project could reach:
each learned the teacher's 50 MagnaTagATune tag probabilities (soft targets, window by window)
and, through a linear map used only in training, the teacher's penultimate and pooled
features.{stage2} The song vector is the paper's: the concatenated segment-mean activations of
the last three layers of all three backbones (960 dimensions), followed by a **spectral level**
that is not in the paper: 384 log-mel statistics of the whole song (mean and standard
deviation of 96 log-mel bands from 0 to 7 kHz and of their frame-to-frame change;
`runtime/spectral.py`, numpy, computed while the song decodes). The small students match
their teacher's tags but miss timbre that these statistics carry (evaluation below, and
`experiments/probes/README.md`). Song-level heads read the whole 1,344-d vector:
`tags` (the teacher's 50 tags, fitted on the teacher's song-level probabilities: the model's
best tags){msd_head}, `quadrant` (emotion) and `instruments`. The backbones' own tags (mean over
scales) are the `backbone` head.

## What it is and is not good for

- Good for: tagging a catalogue with the MagnaTagATune vocabulary (instruments, genres,
  vocals, tempo, mood words){msd_vocabulary} at a few hundred times real time on a laptop CPU, as song
  vectors for your own classifiers (`samplecnn fit`), demos and pipelines.
- Not as good as: its teacher on every song. It is a 16x smaller raw-waveform student
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


def stage_one(training: dict) -> dict | None:
    """The training record of the checkpoint a fine-tuned backbone started from (--init), if it is still on disk."""
    from samplecnn.trainer.checkpoint import read_metadata

    init = training.get("init")
    if not init or not Path(init).is_file():
        return None
    return json.loads(read_metadata(init).get("training", "{}"))


def stage_two(checkpoints: dict) -> str | None:
    """What the shipped checkpoints' second stage (a run started with --init) did: "msd" (stage 2
    of experiments/train_default_backbones_msd.sh: + MSD_musicnn's outputs), "more audio" (stage 1's
    recipe continued on more label files: train_default_backbones.sh INIT=...), or None."""
    records = [info.get("training", {}) for info in checkpoints.values()]
    if not any(r.get("init") for r in records):
        return None
    return "msd" if any("msd_" in (r.get("command") or "") for r in records) else "more audio"


def train_minutes(training: dict) -> float:
    """Training minutes of a backbone, its --init checkpoint's included."""
    first = stage_one(training) or {}
    return (float(training.get("train_seconds") or 0) + float(first.get("train_seconds") or 0)) / 60


def training_section(manifest: dict) -> list[str]:
    checkpoints = manifest["provenance"].get("checkpoints", {})
    tuned = stage_two(checkpoints)
    lines = ["## Backbones: how they were distilled", ""]
    lines += ["ROC-AUC / PR-AUC here are teacher agreement with MTT_musicnn: each held-out song's top-5 teacher tags are its "
              "positives (valid: mer4q valid, 82 songs; test: mer4q test, 208 songs).", ""]
    header = "| scale | stage | epochs (best) | valid ROC-AUC | test ROC-AUC | test PR-AUC | test correlation | train time | segments/s | device |"
    lines += [header, "|---|---|---|---|---|---|---|---|---|---|"]
    commands = []
    for scale, info in checkpoints.items():
        t = info.get("training", {})
        stages = [("1: MTT", stage_one(t)), ("2: + MSD features" if tuned == "msd" else "2: more audio", t)] if tuned else [("MTT", t)]
        for stage, record in stages:
            if record is None:
                lines.append(f"| {scale} | {stage} | (its run is not on this machine) | | | | | | | |")
                continue
            best, test = record.get("best", {}), record.get("test", {}) or {}
            lines.append(
                f"| {scale} | {stage} | {record.get('epochs', '?')} ({best.get('epoch', '?')}) | {_fmt(best.get('roc_auc', '?'))} | "
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
        "plateaued; its best epoch is the starting point of stage 2 or, without stage 2, the shipped weights.",
    ]
    if tuned == "more audio":
        lines += [
            "Stage 2 (`INIT=~/.cache/samplecnn/runs/distill RUNS=~/.cache/samplecnn/runs/distill-more "
            "experiments/train_default_backbones.sh`, lr 1e-4, a fixed budget) continues each backbone from its stage-1 best "
            "checkpoint (`--init`) with stage 1's recipe on more label files: the music found since (see Training data). "
            "Its best epoch on mer4q valid is shipped.",
        ]
    if tuned == "msd":
        lines += [
            "Stage 2 (`experiments/train_default_backbones_msd.sh`, seed 1, lr 2e-4, a fixed budget) fine-tunes each "
            "backbone from stage 1 (`--init`) to also regress MSD_musicnn's 50 tag probabilities, penultimate (200) and "
            "pooled (1506) features, all standardised, through the training-only linear map; the backbone's tags stay the "
            "50 MTT tags. Stage 2's last epoch is shipped (`best` would be the best MTT agreement on valid, which is not "
            "what stage 2 is for).",
        ]
    stage2_runs = f" and `~/.cache/samplecnn/runs/{'distill-msd' if tuned == 'msd' else 'distill-more'}/<scale>/` (stage 2)" if tuned else ""
    lines += ["", f"Run folders: `~/.cache/samplecnn/runs/distill/<scale>/` (stage 1){stage2_runs}, "
              "metrics.jsonl per epoch. Rebuild everything after training with `experiments/default_model.sh`.", ""]
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
    lines += ["", "Width 0.25 is the size choice: about 16x fewer FLOPs and parameters than the paper's width 1; "
              "the cost in accuracy was not measured here (full width does not train in the time this CPU had).", ""]
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
    minutes = [train_minutes(c.get("training", {})) for c in manifest["provenance"].get("checkpoints", {}).values()]
    train_time = f"{min(minutes):.0f}-{max(minutes):.0f} minutes per backbone" if minutes else "an unrecorded time"
    tuned = stage_two(manifest["provenance"].get("checkpoints", {}))
    stage2 = {"msd": " Then each was fine-tuned to also predict, through that map, the outputs of musicnn's `MSD_musicnn` "
                     "(50 Last.fm tags, mostly genres: their probabilities, and its penultimate and pooled features), whose "
                     "features transfer to genre far better than MTT_musicnn's (see Evaluation).",
              "more audio": " Then each continued with the same recipe on the music found since (a second stage on more "
                            "label files; see Training data and the backbones' table)."}.get(tuned, "")
    msd = any(h.name == "msd" for h in bundle.heads)
    msd_head = (", `msd` (musicnn `MSD_musicnn`'s 50 Last.fm tags: genres, decades, moods; fitted the same way on that "
                "teacher's song-level probabilities of the same audio)") if msd else ""
    msd_vocabulary = (" and, with `msd`, the Last.fm vocabulary of the Million Song Dataset (rock, indie, electronic, "
                      "Hip-Hop, jazz, 80s, chillout, ...; it has no classical tag)") if msd else ""
    msd_targets = ", ".join(x for x in ("in stage 2" if tuned == "msd" else "", "for the `msd` head" if msd else "") if x)
    intro = INTRO.replace("{train_time}", train_time).replace("{stage2}", stage2).replace("{instruments_real}", instruments_real(args.instruments_real))
    lines = [intro.replace("{msd_head}", msd_head).replace("{msd_vocabulary}", msd_vocabulary),
             DATA.replace("{msd_targets}", f" and, {msd_targets}, `MSD_musicnn`" if msd_targets else "")]
    lines += sources_section(args.sources)
    lines += evaluation_section(args.evaluation)
    lines += training_section(manifest)
    lines += heads_section(bundle)
    if args.ablation:
        lines += ["## Ablation (levels x scales, test split)", ""]
        for path in args.ablation:
            table = json.loads(Path(path).read_text())
            lines += [to_markdown(table["rows"], table["task"], table.get("title", "")), f"Gain of multi-level + multi-scale: `{json.dumps(table.get('gain'))}`", ""]
    lines += quantization_section(manifest)
    lines += ["## Reproduce", "", "```bash", "experiments/get_audio.sh && .venv/bin/python experiments/audio_sources.py  # audio + inventory",
              "experiments/teacher_env.sh                   # musicnn's own venv", "# teacher labels (experiments/README or default_model.sh header)",
              "bash experiments/train_default_backbones.sh   # stage 1: the backbones from MTT_musicnn (CPU, hours; re-run to --resume)",
              "bash experiments/train_default_backbones_msd.sh  # stage 2: + MSD_musicnn's outputs (needs its labels; ~1 h)",
              "bash experiments/default_model.sh            # export, heads, ablation, this card, copy into the package", "```", ""]
    lines += ["---", "", technical_card(manifest).replace("# samplecnn bundle", "## Technical details", 1)]
    (root / "MODEL_CARD.md").write_text("\n".join(lines))
    add_extra_file(root, "MODEL_CARD.md")
    Bundle.load(root)
    print(f"wrote {root / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
