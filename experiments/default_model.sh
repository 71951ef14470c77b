#!/usr/bin/env bash
# Builds the default model shipped in runtime/default_model (see its MODEL_CARD.md).
#
# 1. Backbones (CPU, this repo's 2-core dev machine; ~40 min with the commands in
#    experiments/train_default_backbones.sh): 2^14, 3^9, 5^6 at width 0.25 on mer4q `tags`.
# 2. Export fp32 + int8 (int8 calibrated on 32 mer4q train songs, judged on 32 others).
# 3. Heads on the frozen song vectors: mer4q `tags` (genres + moods), mer4q `quadrant`
#    (emotion), synthtags `tags` (instrument families) as `instruments`.
# 4. Model card, then the bundle is copied into the package.
# Every step writes through the runtime's one bundle writer (runtime.bundle.write_manifest,
# runtime.bundle_write): head files are named by their content and the manifest holds no
# clock times, so rebuilding from the same runs gives the same file names and manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs/mer4q}
WORK=${WORK:-runs/default_model}
CACHE=${CACHE:-runs/cache/features}
SC=.venv/bin/samplecnn
HEAD_OPTS=(--hidden 256 --dropout 0.5 --seed 0 --cache-dir "$CACHE")

rm -rf "$WORK"
$SC export "$RUNS"/2-14/best.safetensors "$RUNS"/3-9/best.safetensors "$RUNS"/5-6/best.safetensors \
  --out "$WORK" --precision int8 --parity-audio "$DATA/mer4q/valid.csv" --calibration "$DATA/mer4q/train.csv" \
  --training-data "mer4q (4Q audio emotion dataset, AllMusic previews): tags column, 20 genres + 40 moods, train split 610 songs"
$SC fit "$WORK" -d "$DATA/mer4q/train.csv" --label-column tags --name tags "${HEAD_OPTS[@]}" \
  --ablation experiments/results/default_mer4q_tags
$SC fit "$WORK" -d "$DATA/mer4q/train.csv" --label-column quadrant --name quadrant "${HEAD_OPTS[@]}" \
  --ablation experiments/results/default_mer4q_quadrant
$SC fit "$WORK" -d "$DATA/synthtags/train.csv" --label-column tags --name instruments "${HEAD_OPTS[@]}"
.venv/bin/python experiments/model_card.py "$WORK" --runs "$RUNS" --ablation experiments/results/default_mer4q_tags.json \
  --ablation experiments/results/default_mer4q_quadrant.json
rm -rf runtime/default_model
cp -r "$WORK" runtime/default_model
.venv/bin/python -c "from samplecnn.runtime.bundle import Bundle; b = Bundle.load('runtime/default_model'); print('default model:', [h.name for h in b.heads], b.precisions)"
