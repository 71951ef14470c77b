#!/usr/bin/env bash
# The teacher's own environment: musicnn (TensorFlow) in a venv of its own, never a dependency
# of samplecnn. musicnn 0.1.0 pins an old TensorFlow, so it is installed with --no-deps next to
# a current tensorflow-cpu + tf-keras (TF_USE_LEGACY_KERAS=1 makes tf.keras the Keras 2 API
# its code was written for). Its MTT_musicnn / MSD_musicnn weights ship inside its wheel.
# Usage: experiments/teacher_env.sh [VENV]   (default ~/.cache/samplecnn/teacher-venv)
set -euo pipefail
VENV=${1:-${SAMPLECNN_TEACHER_VENV:-$HOME/.cache/samplecnn/teacher-venv}}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "tensorflow-cpu==2.21.*" "tf-keras==2.21.*" "librosa>=0.10" "soundfile>=0.12" "soxr>=0.3" "safetensors>=0.4" "numpy<2.3"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "musicnn==0.1.0"
TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" -c "import musicnn, tensorflow as tf, os; print('teacher env ok: tensorflow', tf.__version__, 'musicnn at', os.path.dirname(musicnn.__file__))"
# samplecnn itself without dependencies: the teacher writes label files with samplecnn.trainer.targets
# (numpy + safetensors only), so the file format has one owner.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$(cd "$(dirname "$0")/.." && pwd)"
