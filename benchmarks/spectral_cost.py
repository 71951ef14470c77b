"""What the spectral level (runtime/spectral.py) costs in the whole pipeline.

Tags the same real songs (mer4q test, 30 s 16 kHz MP3s: decode and resample included) with
two bundles whose backbone graphs are identical: the default model (song vector with the
spectral level) and the same bundle without its ``spectral`` entry (written here into a temp
folder with heads dropped, so only the statistics differ; the heads cost microseconds).
Interleaved rounds (A B, B A, ...), default settings (``Tagger`` batch, threads, one decode
worker), reported as the median over rounds and the per-round time ratio with its spread.
Also times the statistics alone on one core (``spectral_vector`` of a decoded 30 s song).

    python -m samplecnn.benchmarks.spectral_cost [--songs 24] [--rounds 4] [--precision int8] [--out benchmarks/results/spectral_cost.json]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..runtime.bundle import Bundle, write_manifest
from ..runtime.tagger import Tagger, default_bundle_path
from .common import machine_info, paired_ratio, round_order, song_paths, spread, write_json


def without_spectral(bundle: Bundle, out: Path) -> Path:
    """A copy of ``bundle`` with no spectral level and no heads (the backbone graphs only)."""
    out.mkdir(parents=True)
    for scale in bundle.spec.scales:
        for name in scale.models.values():
            shutil.copy2(bundle.path(name), out / name)
    write_manifest(out, replace(bundle.spec, spectral=None, heads=(), extra_files=()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--out", default="benchmarks/results/spectral_cost.json")
    args = parser.parse_args()
    paths = song_paths(args.songs)
    bundle = default_bundle_path()
    loaded = Bundle.load(bundle)
    spec, rate = loaded.spectral, loaded.sample_rate
    if spec is None:
        raise SystemExit(f"{bundle} has no spectral level: nothing to measure")
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {"with spectral level": bundle, "backbones only": without_spectral(loaded, Path(tmp) / "plain")}
        taggers = {name: Tagger(path, precision=args.precision) for name, path in bundles.items()}
        try:
            for tagger in taggers.values():
                list(tagger.tag(paths[:2]))  # warm-up
            seconds: dict[str, list[float]] = {name: [] for name in bundles}
            audio = 0.0
            for r in range(args.rounds):
                for name in round_order(list(bundles), r):
                    t0 = time.perf_counter()
                    results = list(taggers[name].tag(paths))
                    seconds[name].append(time.perf_counter() - t0)
                    audio = sum(x.duration for x in results if x.ok)
        finally:
            for tagger in taggers.values():
                tagger.close()
    from ..runtime.audio import load_audio
    from ..runtime.spectral import spectral_vector

    song = load_audio(paths[0], rate, max_seconds=30)
    alone = []
    for _ in range(20):
        t0 = time.perf_counter()
        spectral_vector(song, spec, rate)
        alone.append(time.perf_counter() - t0)
    rows = {name: {"seconds_rounds": v, "seconds_median": statistics.median(v), "x_real_time": round(audio / statistics.median(v), 1),
                   "spread": spread(v)} for name, v in seconds.items()}
    ratio = paired_ratio(seconds["with spectral level"], seconds["backbones only"])
    result = {"machine": machine_info(), "songs": len(paths), "audio_s": round(audio, 1), "precision": args.precision, "rounds": args.rounds,
              "pipelines": rows, "time_ratio_with_vs_without": ratio,
              "statistics_alone_ms_per_30s_song": round(1000 * statistics.median(alone), 2)}
    print(f"{'pipeline':<22}{'median s':>10}{'x RT':>8}")
    for name, row in rows.items():
        print(f"{name:<22}{row['seconds_median']:>10.3f}{row['x_real_time']:>8}")
    print(f"time with / without the spectral level, per round: {ratio}")
    print(f"the statistics alone: {result['statistics_alone_ms_per_30s_song']} ms per 30 s song (one core)")
    write_json(Path(args.out), result)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
