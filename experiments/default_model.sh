#!/usr/bin/env bash
# Builds the default model shipped in runtime/default_model (see its MODEL_CARD.md).
#
# 0. Audio and teacher labels (once): experiments/get_audio.sh, experiments/audio_sources.py,
#    experiments/teacher_env.sh, then experiments/teacher_musicnn.py on DISTILL/unlabelled.csv
#    and on synthtags (for the evaluation's musicnn rows).
# 1. Backbones: experiments/train_default_backbones.sh (2^14, 3^9, 5^6 at width 0.25 distilled
#    from musicnn MTT_musicnn; hours on a 2-core CPU). Stage 2
#    (experiments/train_default_backbones_msd.sh: + MSD_musicnn's outputs) was tried and not
#    shipped (experiments/results/probe_msd_stage2.json); to build from it:
#    RUNS=~/.cache/samplecnn/runs/distill-msd CHECKPOINT=last TRAINING_DATA="..." experiments/default_model.sh
# 2. Export fp32 + int8 (int8 calibrated on mer4q train songs, judged on others).
# 3. Heads on the frozen song vectors: `tags`, the 50 MTT tags from the multi-level
#    multi-scale song vector (the paper's song-level classifier), distilled from the teacher's
#    song-level probabilities on every training label file; `msd`, MSD_musicnn's 50 Last.fm
#    tags (genres, decades, moods) the same way from its labels of the same audio; mer4q `quadrant` (emotion) and
#    synthtags `tags` (instrument families) as `instruments`. The backbones' own 50 tags (mean
#    over scales) stay the `backbone` head.
# 4. Evaluation (teacher agreement, transfer vs the previous model and musicnn), model card,
#    then the bundle is copied into the package.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
DISTILL=${DISTILL:-$HOME/.cache/samplecnn/distill}
RUNS=${RUNS:-$HOME/.cache/samplecnn/runs/distill}
CHECKPOINT=${CHECKPOINT:-best}  # best: the epoch of best teacher agreement on mer4q valid
WORK=${WORK:-$HOME/.cache/samplecnn/default_model}
CACHE=${CACHE:-$HOME/.cache/samplecnn/features}
BASELINE=${BASELINE:-}  # NAME=BUNDLE of a previous model to compare against (optional)
SC=.venv/bin/samplecnn
HEAD_OPTS=(--hidden 256 --dropout 0.5 --seed 0 --cache-dir "$CACHE")
HOURS=$(.venv/bin/python -c "import json,sys; d=json.load(open(sys.argv[1])); print(round(sum(e['hours'] for n,e in d['sources'].items() if n not in ('mer4q-valid','mer4q-test')),1))" "$DISTILL/sources.json")

rm -rf "$WORK"
$SC export "$RUNS"/2-14/$CHECKPOINT.safetensors "$RUNS"/3-9/$CHECKPOINT.safetensors "$RUNS"/5-6/$CHECKPOINT.safetensors \
  --out "$WORK" --precision int8 --parity-audio "$DATA/mer4q/valid.csv" --calibration "$DATA/mer4q/train.csv" \
  --training-data "${TRAINING_DATA:-distilled from musicnn 0.1.0 MTT_musicnn (50 MagnaTagATune tags + penultimate and pooled features) on $HOURS h of real audio: mer4q train songs and Debian game-music packages (see MODEL_CARD.md)}"
teacher_head() {  # NAME LABEL_DIR: a head on a teacher's song-level probabilities (held-out corpora left out)
  local name=$1 labels=$2 targets=()
  for f in "$labels"/*.safetensors; do
    case "$(basename "$f")" in mer4q-valid.*|mer4q-test.*|synthtags.*) ;; *) targets+=(--targets "$f") ;; esac
  done
  $SC fit "$WORK" "${targets[@]}" --valid-targets "$labels/mer4q-valid.safetensors" --test-targets "$labels/mer4q-test.safetensors" \
    --name "$name" --hidden 512 --dropout 0.1 --seed 0 --cache-dir "$CACHE"
}
teacher_head tags "$DISTILL/labels/MTT_musicnn"
teacher_head msd "$DISTILL/labels/MSD_musicnn"
$SC fit "$WORK" -d "$DATA/mer4q/train.csv" --label-column quadrant --name quadrant "${HEAD_OPTS[@]}" \
  --ablation experiments/results/default_mer4q_quadrant
$SC fit "$WORK" -d "$DATA/synthtags/train.csv" --label-column tags --name instruments "${HEAD_OPTS[@]}"
EVAL_ARGS=(--bundle "$WORK" --labels "$DISTILL/labels/MTT_musicnn" --out experiments/results/distill_eval --cache-dir "$CACHE")
[ -n "$BASELINE" ] && EVAL_ARGS+=(--baseline "$BASELINE")
PREVIOUS=experiments/results/distill_eval_session2.json  # earlier models, same protocol and folds
[ -f "$PREVIOUS" ] && EVAL_ARGS+=(--import-row "session-2 default all=$PREVIOUS#student all" --import-row "first default (mer4q tags) all=$PREVIOUS#old default all")
.venv/bin/python experiments/distill_eval.py "${EVAL_ARGS[@]}"
.venv/bin/python experiments/probes/instruments_real.py "$WORK"  # the instruments head on real songs
.venv/bin/python experiments/model_card.py "$WORK" --sources "$DISTILL/sources.json" --evaluation experiments/results/distill_eval.json \
  --ablation experiments/results/default_mer4q_quadrant.json --instruments-real experiments/results/probe_instruments_real.json
rm -rf runtime/default_model
cp -r "$WORK" runtime/default_model
.venv/bin/python -c "from samplecnn.runtime.bundle import Bundle; b = Bundle.load('runtime/default_model'); print('default model:', [h.name for h in b.heads], b.precisions)"
