#!/usr/bin/env bash
# One-time set-up: a virtual environment in .venv with samplecnn and everything the tests,
# training and export need. torch is pinned to the local CPU wheel (an unpinned torch pulls a
# multi-GB CUDA build). Idempotent: re-running only checks.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[train,export,dev,ray,serve,openvino,plot]" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import samplecnn.runtime, samplecnn.trainer, samplecnn.export" 
