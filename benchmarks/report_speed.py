"""Time and peak memory of `samplecnn report` on large synthetic results files.

Writes ROWS (default 100,000) synthetic song rows shaped like the default model's output
(its heads and labels, top-5 per head, its embedding width, read from the installed bundle;
durations of 10 s .. 10 min) in each format, then builds the report of each in a fresh child process and
records wall and CPU seconds (the child's and its forked JSON Lines reader's) and peak RSS
(VmHWM) of the child, and of the reader when one ran (its figure counts the pages it shares
with the child at the fork). Formats:

- ``jsonl``: `samplecnn infer --out x.jsonl` rows, no embeddings;
- ``jsonl+emb``: the same with the default model's embedding per row (not in the default set:
  the file is over 1 GB per 100,000 rows);
- ``csv``: `samplecnn infer --out x.csv` rows, no embeddings;
- ``parquet+emb``: catalogue rows (runtime/catalogue_store layout) with embeddings
  and 1% failed songs in an errors table (needs pyarrow; skipped without it).

Scores are random (a few strong tags per song), so the figures measure reading and drawing,
not a tagger. Each child also reports the wall seconds of the report's stages
(``write_report(stages=...)``): read (the files into columns), summarise (atypicality, the
summary), charts (the PNGs, PCA included), table (the songs table's JSON and the page) and
write; matplotlib's import overlaps the reading. Usage:

    python -m samplecnn.benchmarks.report_speed [--rows 100000] [--formats jsonl,csv,...] [--out benchmarks/results/report_speed.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from samplecnn.runtime.procinfo import peak_rss_mb

from .common import RESULTS, machine_info, report_child, run_child, write_json

FORMATS = ("jsonl", "jsonl+emb", "csv", "parquet+emb")
DEFAULT_FORMATS = ("jsonl", "csv", "parquet+emb")  # jsonl+emb: a 1 GB file per 100,000 rows, minutes to write
CHUNK = 5000  # rows generated and written per step (bounds the generator's memory)


def default_model_shape() -> tuple[list[tuple[str, list[str]]], int]:
    """(heads and labels, embedding width) of `samplecnn infer --embeddings` with the default
    model (torch-free bundle read): "backbone" first, then the bundle's heads."""
    from samplecnn.runtime.bundle import Bundle
    from samplecnn.runtime.tagger import default_bundle_path, result_heads

    bundle = Bundle.load(default_bundle_path())
    return [(h, list(labels)) for h, labels in result_heads(bundle)], sum(width for *_, width in bundle.embedding_parts)


def synthetic_chunk(rng: np.random.Generator, start: int, n: int, heads, embedding_dim: int | None) -> dict:
    """Columns of ``n`` rows: paths, durations (n,), per head scores (n, L), embeddings (n, D)."""
    chunk = {
        "path": [f"catalogue/{i // 1000:03d}/song_{i:06d}.mp3" for i in range(start, start + n)],
        "duration": np.round(rng.uniform(10, 600, n), 3),
        "scores": {},
    }
    for name, labels in heads:
        logits = rng.normal(-2.5, 1.0, (n, len(labels)))
        logits[np.arange(n), rng.integers(0, len(labels), n)] += 3.5  # one strong tag per song
        chunk["scores"][name] = np.round(1 / (1 + np.exp(-logits)), 6).astype(np.float32)
    if embedding_dim:
        chunk["embedding"] = rng.standard_normal((n, embedding_dim), np.float32) + rng.standard_normal((1, embedding_dim), np.float32)
    return chunk


def _top(scores: np.ndarray, labels: list[str], k: int = 5) -> list[list[list]]:
    order = np.argsort(-scores, axis=1)[:, :k]
    return [[[labels[j], float(row[j])] for j in idx] for row, idx in zip(scores, order)]


def write_files(folder: Path, rows: int, heads, embedding_dim: int, formats: tuple[str, ...]) -> dict[str, Path]:
    """One synthetic results file (or catalogue folder) per format."""
    rng = np.random.default_rng(0)
    paths = {}
    writers = {}
    for fmt in formats:
        if fmt.startswith("jsonl"):
            paths[fmt] = folder / f"{fmt.replace('+', '_')}.jsonl"
            writers[fmt] = open(paths[fmt], "w", encoding="utf-8")
        elif fmt == "csv":
            paths[fmt] = folder / "results.csv"
            writers[fmt] = open(paths[fmt], "w", encoding="utf-8")
            header = ["path", "duration"] + [f"top_{h}" for h, _ in heads] + [f"{h}:{label}" for h, labels in heads for label in labels]
            writers[fmt].write(",".join(header) + "\n")
    parquet = "parquet+emb" in formats
    if parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        paths["parquet+emb"] = folder / "catalogue"
        (folder / "catalogue" / "songs").mkdir(parents=True)
        (folder / "catalogue" / "errors").mkdir()
        failed = []
    need_embedding = any(f.endswith("+emb") for f in formats)
    for part, start in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - start)
        chunk = synthetic_chunk(rng, start, n, heads, embedding_dim if need_embedding else None)
        tops = {h: _top(chunk["scores"][h], labels) for h, labels in heads}
        for fmt in [f for f in formats if f.startswith("jsonl")]:
            lines = []
            for i in range(n):
                row = {"path": chunk["path"][i], "duration": float(chunk["duration"][i]), "n_segments": {"2^14": 40, "3^9": 22, "5^6": 17},
                       "top": {h: tops[h][i] for h, _ in heads},
                       "scores": {h: dict(zip(labels, chunk["scores"][h][i].tolist())) for h, labels in heads}}
                if fmt == "jsonl+emb":
                    row["embedding"] = np.round(chunk["embedding"][i], 6).tolist()
                lines.append(json.dumps(row))
            writers[fmt].write("\n".join(lines) + "\n")
        if "csv" in formats:
            lines = []
            for i in range(n):
                cells = [chunk["path"][i], f"{chunk['duration'][i]:.3f}"]
                cells += [";".join(f"{label}:{score:.4f}" for label, score in tops[h][i]) for h, _ in heads]
                cells += [f"{v:.6f}" for h, _ in heads for v in chunk["scores"][h][i].tolist()]
                lines.append(",".join(cells))
            writers["csv"].write("\n".join(lines) + "\n")
        if parquet:
            keep = np.ones(n, bool)
            keep[rng.random(n) < 0.01] = False  # 1% failed songs
            failed += [p for p, k in zip(chunk["path"], keep) if not k]
            columns = {"path": [p for p, k in zip(chunk["path"], keep) if k], "duration": chunk["duration"][keep]}
            for h, labels in heads:
                columns[f"top_{h}"] = [";".join(label for label, _ in t) for t, k in zip(tops[h], keep) if k]
                for j, label in enumerate(labels):
                    columns[f"{h}:{label}"] = chunk["scores"][h][keep, j]
            flat = pa.array(chunk["embedding"][keep].ravel(), pa.float32())
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, embedding_dim)
            pq.write_table(pa.table(columns), folder / "catalogue" / "songs" / f"part-bench-{part:05d}.parquet")
    for f in writers.values():
        f.close()
    if parquet:
        pq.write_table(pa.table({"path": failed, "reason": ["decode failed: synthetic"] * len(failed)}), folder / "catalogue" / "errors" / "part-bench-00000.parquet")
    return paths


def child(spec: dict) -> None:
    import resource

    from samplecnn.runtime.report import write_report

    def cpu_now() -> float:  # this process and its waited-for children (a forked JSON Lines reader)
        return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))

    start, cpu = time.perf_counter(), cpu_now()
    stages: dict = {}
    results = write_report([spec["input"]], spec["out"], stages=stages)
    seconds, cpu_seconds = time.perf_counter() - start, cpu_now() - cpu
    report_child({"seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "peak_rss_mb": round(peak_rss_mb(), 1), "songs": len(results.paths),
                  "failures": len(results.failures), "html_mb": round(Path(spec["out"]).stat().st_size / 1e6, 1),
                  "read_workers": [{"mb": round(w["bytes"] / 1e6, 1), "peak_rss_mb": round(w["peak_rss_mb"], 1), "status": w["status"]}
                                   for w in results.read_workers],
                  "stages_seconds": {k: round(v, 2) for k, v in stages.items()}})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--formats", default=",".join(DEFAULT_FORMATS), help=f"comma-separated subset of {','.join(FORMATS)}")
    parser.add_argument("--out", default=str(RESULTS / "report_speed.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    formats = tuple(f for f in args.formats.split(",") if f)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"--formats {sorted(unknown)}: unknown; choose from {', '.join(FORMATS)}")
    if "parquet+emb" in formats:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            print("parquet+emb skipped: pyarrow is not installed (pip install pyarrow)")
            formats = tuple(f for f in formats if f != "parquet+emb")
    heads, embedding_dim = default_model_shape()
    record = {"machine": machine_info(), "rows": args.rows, "heads": {h: len(labels) for h, labels in heads},
              "embedding_dim": embedding_dim, "results": {}}
    with tempfile.TemporaryDirectory(prefix="report-speed-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        inputs = write_files(folder, args.rows, heads, embedding_dim, formats)
        record["generate_seconds"] = round(time.perf_counter() - start, 1)
        print(f"{'format':<12} {'input MB':>9} {'seconds':>8} {'CPU s':>7} {'peak RSS MB':>14} {'songs':>8} {'failures':>9} {'HTML MB':>8}  wall s per stage")
        for fmt, path in inputs.items():
            size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*.parquet"))) / 1e6
            got = run_child("samplecnn.benchmarks.report_speed", {"input": str(path), "out": str(folder / f"{fmt}.html")}, timeout=1800)
            got["input_mb"] = round(size, 1)
            record["results"][fmt] = got
            stages = " ".join(f"{k} {v:.2f}" for k, v in got["stages_seconds"].items())
            rss = f"{got['peak_rss_mb']:.1f}" + "".join(f" +{w['peak_rss_mb']:.0f}" for w in got.get("read_workers", []))  # + a forked reader's
            print(f"{fmt:<12} {size:9.1f} {got['seconds']:8.2f} {got['cpu_seconds']:7.2f} {rss:>14} {got['songs']:8,} {got['failures']:9,} {got['html_mb']:8.1f}  {stages}")
    print(f"saved {write_json(Path(args.out), record)}")


if __name__ == "__main__":
    main()
