"""musicnn's whole pipeline timed on the same songs as the pipeline table: the tagger users would
install instead (Pons & Serra 2019, TensorFlow). Runs under the teacher's own Python
(``experiments/teacher_env.sh`` -> ``~/.cache/samplecnn/teacher-venv``), never samplecnn's:

    parent (bench):  musicnn_speed.run_round(paths)  ->  {"wall_s", "audio_s", ...} or {"absent": why}
    child (teacher venv):  python benchmarks/musicnn_speed.py --child JSON

What is timed per song, after one untimed warm-up song: decode + resample to 16 kHz, the float32
log-mel front end, cutting 3 s windows (musicnn's own tagging hop: no overlap) and the MTT_musicnn
network on them, with the TF graph built and restored once per process (``experiments/
teacher_musicnn.py``'s ``Teacher``; ``musicnn.extractor`` would rebuild it per file). Threads:
TensorFlow's default (all cores), as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEACHER_SCRIPT = REPO / "experiments" / "teacher_musicnn.py"
PYTHON_ENV = "SAMPLECNN_TEACHER_PYTHON"
MODEL = "MTT_musicnn"
RESULT_PREFIX = "BENCH_RESULT_JSON="  # as benchmarks.common (this file must import without samplecnn)


def teacher_python() -> Path:
    return Path(os.environ.get(PYTHON_ENV) or Path.home() / ".cache" / "samplecnn" / "teacher-venv" / "bin" / "python")


def absent_reason() -> str | None:
    """Why the musicnn row cannot be measured here, or None when it can."""
    if not teacher_python().is_file():
        return (f"no teacher environment at {teacher_python()} (create it with experiments/teacher_env.sh, "
                f"or set {PYTHON_ENV})")
    if not TEACHER_SCRIPT.is_file():
        return f"{TEACHER_SCRIPT.relative_to(REPO)} is missing (the teacher's graph-built-once runner)"
    return None


def run_round(paths: list[str], timeout: float = 900) -> dict:
    """One timed pass of musicnn over ``paths`` in a fresh teacher-venv process; {"absent": why} when it cannot run."""
    why = absent_reason()
    if why:
        return {"absent": why}
    command = [str(teacher_python()), str(Path(__file__).resolve()), "--child", json.dumps({"paths": paths})]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        return {"absent": f"the musicnn child failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:] or ''}"}
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def child(spec: dict) -> dict:
    """In the teacher venv: build the graph once, warm up on the first song, time every song."""
    sys.path.insert(0, str(TEACHER_SCRIPT.parent))
    import teacher_musicnn as tm
    import tensorflow as tf

    teacher = tm.Teacher(MODEL)
    paths = spec["paths"]
    hop = tm.N_FRAMES  # musicnn's tagging default: windows without overlap

    def tag(path: str) -> tuple[float, list[str]]:
        audio = tm.load_audio_16k(path)
        probs = teacher.run(tm.windows(tm.log_mel(audio), hop))["probs"].mean(axis=0)
        return len(audio) / tm.SR, [teacher.tags[i] for i in probs.argsort()[::-1][:5]]

    tag(paths[0])
    latencies, audio, top5 = [], 0.0, {}
    for path in paths:
        t0 = time.perf_counter()
        seconds, top5[path] = tag(path)
        latencies.append(time.perf_counter() - t0)
        audio += seconds
    return {"wall_s": sum(latencies), "latencies_s": latencies, "audio_s": audio, "top5": top5,
            "description": f"musicnn 0.1.0 {MODEL} on TensorFlow {tf.__version__} (graph built once, float32 log-mel, decode included)"}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(RESULT_PREFIX + json.dumps(child(json.loads(sys.argv[2]))), flush=True)
    else:
        print(__doc__)
        why = absent_reason()
        print(f"musicnn row: {'absent: ' + why if why else 'available'}")
