#!/usr/bin/env bash
# The default model's three backbones: mer4q `tags` (20 genres + 40 moods), width 0.25, Adam,
# seed 0, batch 23, single-threaded (two runs fit side by side on a 2-core machine).
# On the dev machine they were run with --max-minutes budgets and continued with
#   samplecnn train --resume --out runs/mer4q/<scale> --epochs 16
# which gives bit-identical weights to a straight run of the same number of epochs (tested:
# tests/trainer/test_train.py); EPOCHS below is the upper bound, the schedule may stop earlier.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
EPOCHS=${EPOCHS:-16}
train() {  # scale crops-per-clip
  .venv/bin/samplecnn train "$DATA/mer4q/train.csv" --label-column tags --scale "$1" --width 0.25 \
    --optimizer adam --epochs "$EPOCHS" --crops-per-clip "$2" --batch-size 23 --workers 1 --threads 1 \
    --seed 0 --cache-dir runs/cache --out "runs/mer4q/${1/^/-}"
}
train 3^9 2 &
train 2^14 1
train 5^6 1
wait
