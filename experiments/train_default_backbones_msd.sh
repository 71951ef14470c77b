#!/usr/bin/env bash
# Stage 2 of the default model's backbones: fine-tune the three MTT-distilled backbones
# (experiments/train_default_backbones.sh) with a second teacher. musicnn's MSD_musicnn (50
# Last.fm tags, mostly genres) labels the same audio with the same windows
# (experiments/teacher_musicnn.py --models MSD_musicnn --hop 2.992);
# experiments/merge_teacher_labels.py adds its probabilities, penultimate and pooled features to
# the MTT label files as msd_probs / msd_penultimate / msd_pooled, and each backbone, started
# from its stage-1 best checkpoint (--init), regresses them from its levels next to MTT's
# features while keeping the 50 MTT tags (BCE). Same width, batch, bf16, one thread per run.
# Long runs: re-run this script; every run continues where it stopped (--resume).
set -euo pipefail
cd "$(dirname "$0")/.."
LABELS=${LABELS:-$HOME/.cache/samplecnn/distill/labels}
STAGE1=${STAGE1:-$HOME/.cache/samplecnn/runs/distill}
RUNS=${RUNS:-$HOME/.cache/samplecnn/runs/distill-msd}
MINUTES=${MINUTES:-50}
EPOCHS=${EPOCHS:-30}
MERGED="$LABELS/MTT+MSD_musicnn"
if [ ! -f "$MERGED/mer4q-test.safetensors" ]; then
  .venv/bin/python experiments/merge_teacher_labels.py "$LABELS/MTT_musicnn" "$LABELS/MSD_musicnn" "$MERGED" \
    --prefix msd_ --arrays probs,penultimate,pooled
fi
TRAIN=()
for f in "$MERGED"/*.safetensors; do
  case "$(basename "$f")" in mer4q-valid.*|mer4q-test.*|synthtags.*) ;; *) TRAIN+=(--targets "$f") ;; esac
done
FEATURES=(--distill-feature penultimate --distill-feature pooled --distill-feature msd_probs
          --distill-feature msd_penultimate --distill-feature msd_pooled)
tune() {  # scale run-name
  local scale=$1 name=$2 out="$RUNS/$2"
  if [ -f "$out/last.state.safetensors" ]; then
    .venv/bin/samplecnn train --resume --out "$out" --epochs "$EPOCHS" --max-minutes "$MINUTES"
  else
    .venv/bin/samplecnn train "${TRAIN[@]}" --valid-targets "$MERGED/mer4q-valid.safetensors" \
      --test-targets "$MERGED/mer4q-test.safetensors" --init "$STAGE1/$name/best.safetensors" --scale "$scale" \
      --width 0.25 --optimizer adam --lr 0.0002 --batch-size 64 --amp bf16 --crops-per-clip 2 --epochs "$EPOCHS" \
      --workers 0 --threads 1 --seed 1 --max-minutes "$MINUTES" --out "$out" "${FEATURES[@]}"
  fi
}
mkdir -p "$RUNS"
tune 3^9 3-9 > "$RUNS/3-9.log" 2>&1 &
tune 2^14 2-14 > "$RUNS/2-14.log" 2>&1 &
tune 5^6 5-6 > "$RUNS/5-6.log" 2>&1 &
wait
