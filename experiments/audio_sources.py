"""Inventory of the unlabelled real audio used for distillation: hours and licence per source.

Reads mer4q (all splits) from ../shared/data and the Debian game-music packages unpacked by
``experiments/get_audio.sh``; writes

    OUT/unlabelled.csv     path,source           every decodable file (the teacher labels these)
    OUT/sources.json       per source: files, hours, licence (from the package's copyright file)

Usage: python experiments/audio_sources.py [--debian DIR] [--mer4q DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import soundfile as sf

HOME = Path.home() / ".cache" / "samplecnn"
MIN_SECONDS = 4.0  # shorter than the largest backbone input (3.54 s) plus a margin: jingles


def licence_of(copyright_file: Path) -> str:
    """The distinct 'License:' names of a Debian machine-readable copyright file."""
    if not copyright_file.exists():
        return "unknown"
    names = re.findall(r"^License:\s*(.+)$", copyright_file.read_text(errors="replace"), flags=re.M)
    return ", ".join(dict.fromkeys(n.strip() for n in names)) or "see copyright file"


def duration(path: Path) -> float | None:
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - an undecodable file is simply not listed
        return None
    return info.frames / info.samplerate if info.samplerate else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debian", default=str(HOME / "debian-music"))
    parser.add_argument("--mer4q", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mer4q"))
    parser.add_argument("--out", default=str(HOME / "distill"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, sources = [], {}
    mer4q = Path(args.mer4q)
    for split in ("train", "valid", "test"):
        with open(mer4q / f"{split}.csv", newline="") as f:
            for row in csv.DictReader(f):
                rows.append((mer4q / row["path"], f"mer4q-{split}"))
    for package in sorted(p for p in Path(args.debian).iterdir() if p.is_dir() and p.name != "debs"):
        for path in sorted(package.rglob("*")):
            if path.is_file() and path.name != "COPYRIGHT":
                rows.append((path, package.name))
        sources[package.name] = {"licence": licence_of(package / "COPYRIGHT"), "origin": f"Debian package {package.name}"}
    kept = []
    for path, source in rows:
        seconds = duration(path)
        entry = sources.setdefault(source, {"licence": "research use (4Q audio emotion dataset, AllMusic previews)",
                                            "origin": "mer4q"})  # fmt: skip
        entry.setdefault("files", 0)
        entry.setdefault("hours", 0.0)
        entry.setdefault("unusable", 0)
        if seconds is None or seconds < MIN_SECONDS:
            entry["unusable"] += 1
            continue
        entry["files"] += 1
        entry["hours"] += seconds / 3600
        kept.append((str(path), source, round(seconds, 2)))
    with open(out / "unlabelled.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "source", "seconds"])
        writer.writerows(kept)
    for entry in sources.values():
        entry["hours"] = round(entry.get("hours", 0.0), 3)
    total = sum(e["hours"] for e in sources.values())
    (out / "sources.json").write_text(json.dumps({"total_hours": round(total, 2), "sources": sources}, indent=1))
    for name, e in sources.items():
        print(f"{name:24s} {e.get('files', 0):5d} files {e['hours']:6.2f} h  ({e.get('unusable', 0)} unusable)  {e['licence'][:60]}")
    print(f"total {total:.2f} h in {len(kept)} files -> {out / 'unlabelled.csv'}")


if __name__ == "__main__":
    main()
