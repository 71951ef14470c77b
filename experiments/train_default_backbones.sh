#!/usr/bin/env bash
# The default model's three backbones, distilled from musicnn (MTT_musicnn) on every hour of
# real audio the teacher labelled (experiments/get_audio.sh + experiments/teacher_musicnn.py):
# soft MagnaTagATune tags (BCE on overlap-weighted window probabilities) plus the teacher's
# penultimate (200) and pooled (1506) features regressed from the student's levels.
# Width 0.25 (the shipped model's; up to 0.375 keeps the default model at >= 300x real time with
# int8 on a 2-core CPU: benchmarks/results/width_speed.json), Adam, batch 64, bf16 autocast (AMX / AVX512-BF16), seed 0, one thread each: the
# four runs (three scales + the tags-only control of 3^9) share a 2-core machine.
# Held out of training: mer4q valid (model selection) and mer4q test (teacher agreement).
# Long runs: re-run this script; every run continues where it stopped (--resume).
# INIT=DIR: start each scale from DIR/<scale>/$INIT_CHECKPOINT.safetensors (--init; default best;
# e.g. the runs above, to continue on more audio than they were trained on) at LR (default
# 1e-4), into new RUNS. WIDTH (default 0.25): with INIT at a narrower width, each backbone is
# widened first (trainer/widen.py: the same function, then the new channels train).
set -euo pipefail
cd "$(dirname "$0")/.."
LABELS=${LABELS:-$HOME/.cache/samplecnn/distill/labels/MTT_musicnn}
RUNS=${RUNS:-$HOME/.cache/samplecnn/runs/distill}
MINUTES=${MINUTES:-75}
EPOCHS=${EPOCHS:-30}
TRAIN=()
for f in "$LABELS"/*.safetensors; do
  case "$(basename "$f")" in mer4q-valid.*|mer4q-test.*|synthtags.*) ;; *) TRAIN+=(--targets "$f") ;; esac
done
INIT=${INIT:-}
train() {  # scale run-name [extra options]
  local scale=$1 name=$2; shift 2
  local out="$RUNS/$name" init=()
  [ -n "$INIT" ] && init=(--init "$INIT/$name/${INIT_CHECKPOINT:-best}.safetensors" --lr "${LR:-1e-4}")
  if [ -f "$out/last.state.safetensors" ]; then
    .venv/bin/samplecnn train --resume --out "$out" --epochs "$EPOCHS" --max-minutes "$MINUTES"
  else
    .venv/bin/samplecnn train "${TRAIN[@]}" --valid-targets "$LABELS/mer4q-valid.safetensors" \
      --test-targets "$LABELS/mer4q-test.safetensors" --scale "$scale" --width "${WIDTH:-0.25}" --optimizer adam \
      --batch-size 64 --amp bf16 --crops-per-clip 2 --epochs "$EPOCHS" --workers 0 --threads 1 --seed 0 \
      --max-minutes "$MINUTES" --out "$out" "${init[@]}" "$@"
  fi
}
FEATURES=(--distill-feature penultimate --distill-feature pooled)
mkdir -p "$RUNS"
train 3^9 3-9 "${FEATURES[@]}" > "$RUNS/3-9.log" 2>&1 &
train 2^14 2-14 "${FEATURES[@]}" > "$RUNS/2-14.log" 2>&1 &
train 5^6 5-6 "${FEATURES[@]}" > "$RUNS/5-6.log" 2>&1 &
if [ "${CONTROL:-1}" = 1 ]; then  # CONTROL=0: the three scales only (the control is settled)
  train 3^9 3-9-tags-only > "$RUNS/3-9-tags-only.log" 2>&1 &
fi
wait
