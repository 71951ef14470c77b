"""Probe: do a teacher head's outputs add to the song vector, on songs the head never saw?

The `tags` (MTT_musicnn) and `msd` (MSD_musicnn) heads are small MLPs fitted on the teacher's
song-level probabilities of ~850 songs: a non-linear map of the song vector learned from far more
songs than a user's labelled set. Does concatenating their outputs to the song
vector help a logistic regression on a new task? The shipped heads saw mer4q's train songs, so
here both are re-fitted (same settings as experiments/default_model.sh) without any song of the
judged tasks: the 458 mer4q genre songs (genre, and quadrant on the same songs) and synthtags
(never in a head's fit). Same protocol and folds as experiments/distill_eval.py.

    .venv/bin/python experiments/probes/head_outputs.py [BUNDLE]
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import distill_eval as de  # noqa: E402

from samplecnn.trainer.song_classifier import ClassifierConfig, fit_classifier  # noqa: E402
from samplecnn.trainer.targets import read_teacher_labels  # noqa: E402

BUNDLE = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "runtime" / "default_model")
CACHE = str(Path.home() / ".cache/samplecnn/features")
LABELS = Path.home() / ".cache/samplecnn/distill/labels"
HELD_OUT = ("mer4q-valid", "mer4q-test", "synthtags")


def teacher_songs(teacher: str, exclude: set[str]) -> dict[str, tuple[list[str], np.ndarray]]:
    """{"train" | "valid": (paths, song-mean probabilities)} of a teacher's label files, without ``exclude``."""
    out = {"train": ([], []), "valid": ([], [])}
    for f in sorted((LABELS / teacher).glob("*.safetensors")):
        corpus = f.name.split(".")[0]
        split = "valid" if corpus == "mer4q-valid" else None if corpus in HELD_OUT else "train"
        if split is None:
            continue
        labels = read_teacher_labels(f)
        for i, e in enumerate(labels.files):
            if str(e.path) not in exclude:
                out[split][0].append(str(e.path))
                out[split][1].append(labels.song_target(i, "probs"))
    return {k: (p, np.stack(t)) for k, (p, t) in out.items()}


def main() -> None:
    started = time.time()
    tasks = de.transfer_tasks()
    genre_rows = tasks["mer4q_genre"][0]
    judged = {r["path"] for r in genre_rows}
    all_vectors = lambda paths: de.song_features(BUNDLE, paths, np.zeros(len(paths), bool), CACHE)[0]["all"]  # noqa: E731
    heads = {}
    for name, teacher in de.TEACHER_HEADS.items():
        songs = teacher_songs(teacher, judged)
        x = {k: all_vectors(p) for k, (p, _) in songs.items()}
        clf = fit_classifier(x["train"], songs["train"][1], x["valid"], songs["valid"][1], "tags",
                             ClassifierConfig(hidden=512, dropout=0.1, seed=0))
        heads[name] = clf
        print(f"{name} head: {len(songs['train'][0])} train / {len(songs['valid'][0])} valid songs (judged songs left out)", flush=True)
    result = {"bundle": BUNDLE, "protocol": "experiments/distill_eval.py transfer(); heads re-fitted without the judged songs"}
    quadrant_on_genre_songs = (genre_rows, "quadrant", "artist")
    for task, (rows, column, group_column) in {"mer4q_genre": tasks["mer4q_genre"][:3], "mer4q_quadrant (genre songs)": quadrant_on_genre_songs,
                                               "synthtags_style": tasks["synthtags_style"][:3]}.items():
        paths = [r["path"] for r in rows]
        x = all_vectors(paths)
        outputs = {name: clf.predict(x) for name, clf in heads.items()}
        features = {"all": x, "tags probs": outputs["tags"], "msd probs": outputs["msd"],
                    "all + tags probs": np.hstack([x, outputs["tags"]]), "all + msd probs": np.hstack([x, outputs["msd"]]),
                    "all + tags + msd probs": np.hstack([x, outputs["tags"], outputs["msd"]])}
        print(f"{task} ({len(rows)} songs):", flush=True)
        result[task] = de.transfer(features, np.array([r[column] for r in rows]), [r[group_column] for r in rows])
    result["seconds"] = round(time.time() - started, 1)
    out = ROOT / "experiments" / "results" / "probe_head_outputs.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
