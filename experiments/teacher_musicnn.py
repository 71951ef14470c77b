"""Teacher labels from musicnn (Pons & Serra 2019): per-window tag probabilities and features.

Runs in the teacher's own environment (``experiments/teacher_env.sh``: TensorFlow + musicnn,
never a dependency of samplecnn) and writes teacher-label files in the trainer's format
(:mod:`samplecnn.trainer.targets`), one per (model, corpus):

    OUT/MTT_musicnn/<corpus>.safetensors   probs (50 MagnaTagATune tags), penultimate (200), pooled (1506)
    OUT/MSD_musicnn/<corpus>.safetensors   probs (50 Last.fm tags), penultimate (200), pooled (1506)

Two fixes over ``musicnn.extractor``: the TF graph of each model is built and restored once
(the extractor rebuilds it per file, about 5x slower), and the log-mel spectrogram is computed
in float32 (the extractor casts to float16 before ``log10(10000 x + 1)``, which overflows to
inf on loud bins). Windows are 3 s (187 frames, the models' training length) every ``--hop``
seconds. A corpus whose file exists is skipped (resumable); unreadable audio is listed, not fatal.

Usage (teacher venv): TF_USE_LEGACY_KERAS=1 python experiments/teacher_musicnn.py LIST.csv OUT
    LIST.csv: columns path and (optional) corpus/source; one label file per corpus.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SR, FFT_HOP, FFT_SIZE, N_MELS, N_FRAMES = 16000, 256, 512, 96, 187  # musicnn.configuration; 187 frames = 3 s
MODELS = ("MTT_musicnn", "MSD_musicnn")
FEATURES = ("penultimate", "pooled")


def load_audio_16k(path: str | Path) -> np.ndarray:
    """Mono float32 at 16 kHz (soundfile decode + soxr, as librosa.load does)."""
    import soundfile as sf
    import soxr

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SR:
        audio = soxr.resample(audio, rate, SR, quality="HQ").astype(np.float32)
    if not len(audio) or not np.isfinite(audio).all():
        raise ValueError("empty or non-finite audio")
    return audio


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(frames, 96) float32 log-compressed mel spectrogram, musicnn's front end in float32."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=SR, hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS).T
    return np.log10(10000.0 * mel.astype(np.float32) + 1.0)


def windows(mel: np.ndarray, hop_frames: int) -> np.ndarray:
    """(n, 187, 96) patches every ``hop_frames``; a clip shorter than a window is repeat-padded."""
    if len(mel) < N_FRAMES:
        mel = np.tile(mel, (int(np.ceil(N_FRAMES / len(mel))), 1))[:N_FRAMES]
    starts = range(0, len(mel) - N_FRAMES + 1, hop_frames)
    return np.stack([mel[s : s + N_FRAMES] for s in starts])


class Teacher:
    """One musicnn model, graph built and weights restored once. ``run(patches)`` -> arrays."""

    def __init__(self, model: str, threads: int = 0) -> None:
        import musicnn
        import tensorflow as tf
        from musicnn import configuration, models

        tf.compat.v1.disable_eager_execution()
        self.model = model
        self.tags = list(configuration.MTT_LABELS if model.startswith("MTT") else configuration.MSD_LABELS)
        self.graph = tf.Graph()
        with self.graph.as_default():
            with tf.name_scope("model"):
                self.x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, N_MELS])
                self.is_training = tf.compat.v1.placeholder(tf.bool)
                y, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(
                    self.x, self.is_training, model, len(self.tags)
                )
                self.outputs = [tf.nn.sigmoid(y), penultimate, tf.concat([max_pool, mean_pool], axis=1)]
            config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
            self.session = tf.compat.v1.Session(graph=self.graph, config=config)
            tf.compat.v1.train.Saver().restore(self.session, os.path.join(os.path.dirname(musicnn.__file__), model) + "/")
        self.identity = {"package": "musicnn", "version": "0.1.0", "model": model, "tensorflow": tf.__version__,
                         "front_end": "log10(10000 mel + 1) in float32, 16 kHz, 512/256, 96 mels"}  # fmt: skip

    def run(self, patches: np.ndarray, batch: int = 128) -> dict[str, np.ndarray]:
        """(n, 187, 96) -> {"probs": (n, 50), "penultimate": (n, 200), "pooled": (n, 1506)}."""
        parts = [self.session.run(self.outputs, {self.x: patches[i : i + batch], self.is_training: False})
                 for i in range(0, len(patches), batch)]  # fmt: skip
        return {name: np.concatenate([p[k] for p in parts]).astype(np.float32)
                for k, name in enumerate(("probs", "penultimate", "pooled"))}  # fmt: skip


def main() -> None:
    from samplecnn.trainer.targets import write_teacher_labels

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list", help="CSV with a path column and optionally corpus or source")
    parser.add_argument("out")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--hop", type=float, default=1.5, help="seconds between window starts")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--only", default=None, help="comma-separated corpora to label")
    args = parser.parse_args()
    corpora: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
    with open(args.list, newline="") as f:
        for row in csv.DictReader(f):
            corpora[row.get("corpus") or row.get("source") or Path(args.list).stem].append(row["path"])
    if args.only:
        corpora = {k: v for k, v in corpora.items() if k in args.only.split(",")}
    teachers = [Teacher(m, args.threads) for m in args.models.split(",")]
    hop_frames = int(round(args.hop * SR / FFT_HOP))
    window_seconds, hop_seconds = N_FRAMES * FFT_HOP / SR, hop_frames * FFT_HOP / SR
    out = Path(args.out)
    for corpus, paths in corpora.items():
        targets = {t.model: out / t.model / f"{corpus}.safetensors" for t in teachers}
        if all(p.exists() for p in targets.values()):
            print(f"{corpus}: done already", file=sys.stderr)
            continue
        items, failed, started, audio_seconds = defaultdict(list), [], time.perf_counter(), 0.0
        for n, path in enumerate(paths, 1):
            try:
                audio = load_audio_16k(path)
                patches = windows(log_mel(audio), hop_frames)
            except Exception as error:  # noqa: BLE001 - listed and skipped
                failed.append({"path": path, "reason": str(error)})
                continue
            seconds = len(audio) / SR
            audio_seconds += seconds
            for teacher in teachers:
                items[teacher.model].append((path, seconds, teacher.run(patches)))
            if n % 50 == 0 or n == len(paths):
                elapsed = time.perf_counter() - started
                print(f"{corpus}: {n}/{len(paths)} files, {audio_seconds / 3600:.2f} h audio, "
                      f"{audio_seconds / elapsed:.0f}x real time", file=sys.stderr, flush=True)  # fmt: skip
        for teacher in teachers:
            write_teacher_labels(targets[teacher.model], teacher=teacher.identity, tags=teacher.tags,
                                 window_seconds=window_seconds, hop_seconds=hop_seconds, items=items[teacher.model])  # fmt: skip
        if failed:
            (out / f"{corpus}.failed.json").write_text(json.dumps(failed, indent=1))
        print(f"{corpus}: wrote {len(items[teachers[0].model])} files ({len(failed)} unreadable)", file=sys.stderr)


if __name__ == "__main__":
    main()
