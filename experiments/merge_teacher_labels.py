"""Merge a second teacher's outputs into a first teacher's label files as extra features.

The student keeps the first teacher's tags (its backbone tags, e.g. the 50 MagnaTagATune tags
of MTT_musicnn) and, with ``samplecnn train --distill-feature``, also regresses the second
teacher's arrays (e.g. MSD_musicnn's 50 Last.fm tag probabilities and penultimate features,
stored as ``msd_probs`` and ``msd_penultimate``) from its levels. Both teachers must have
labelled the same files with the same windows (teacher_musicnn.py, same --hop); anything else
is refused, naming the file.

Usage: python experiments/merge_teacher_labels.py FIRST_DIR SECOND_DIR OUT_DIR [--prefix msd_] [--arrays probs,penultimate]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from samplecnn.trainer.targets import PROBS, read_teacher_labels, write_teacher_labels


def merge(first_path: Path, second_path: Path, out_path: Path, prefix: str, arrays: list[str]) -> int:
    first, second = read_teacher_labels(first_path), read_teacher_labels(second_path)
    if (first.window_seconds, first.hop_seconds) != (second.window_seconds, second.hop_seconds):
        raise SystemExit(f"{second_path}: windows {second.window_seconds}/{second.hop_seconds} s, "
                         f"{first_path}: {first.window_seconds}/{first.hop_seconds} s")  # fmt: skip
    if [f.path for f in first.files] != [f.path for f in second.files]:
        raise SystemExit(f"{second_path} labels other files than {first_path}")
    items = []
    for i, entry in enumerate(first.files):
        merged = {name: first.windows(i, name) for name in (PROBS, *first.feature_names)}
        for name in arrays:
            extra = second.windows(i, name)
            if len(extra) != len(merged[PROBS]):
                raise SystemExit(f"{entry.path}: {len(extra)} windows in {second_path}, {len(merged[PROBS])} in {first_path}")
            merged[prefix + name] = extra
        items.append((str(entry.path), entry.seconds, merged))
    teacher = {**first.teacher, "features_from": {prefix + n: f"{second.teacher.get('model')} {n}" for n in arrays}}
    write_teacher_labels(out_path, teacher=teacher, tags=first.tags, window_seconds=first.window_seconds,
                         hop_seconds=first.hop_seconds, items=items)  # fmt: skip
    return len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("out")
    parser.add_argument("--prefix", default="msd_")
    parser.add_argument("--arrays", default="probs,penultimate")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for first in sorted(Path(args.first).glob("*.safetensors")):
        second = Path(args.second) / first.name
        if not second.exists():
            print(f"{first.name}: no {second}; not merged", file=sys.stderr)
            continue
        n = merge(first, second, out / first.name, args.prefix, args.arrays.split(","))
        print(f"{first.name}: {n} files", file=sys.stderr)


if __name__ == "__main__":
    main()
