"""What ``samplecnn infer`` does, as a function (the CLI command only parses options)."""

from __future__ import annotations

import sys
from pathlib import Path

from .audio import AudioError
from .backends import BackendError
from .bundle import BundleError
from .outputs import OutputError, ResultWriter, done_paths, format_table, resume_key, table_header
from .progress import Progress
from .tagger import Tagger, expand_inputs

EXIT_OK, EXIT_FAILED_SONGS, EXIT_USAGE = 0, 1, 2

# glibc raises its mmap threshold each time a large block is freed, so after the first batches
# every multi-MB array (decoded blocks, segments, activations) comes from the heap, which
# fragments across threads' arenas and never shrinks: measured 252 -> 190 MB (int8) and
# 283 -> 199 MB (fp32) peak RSS for the full-width presets on a 1 h MP3 with a fixed 1 MB
# threshold and 2 arenas. Set for the `samplecnn infer` process only, not by the library.
M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3
MMAP_THRESHOLD_BYTES, ARENA_MAX = 1 << 20, 2


def bound_malloc_growth() -> bool:
    """Pin glibc's mmap threshold and arena count (see above); False where libc is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))


def infer(
    paths: list[str],
    *,
    bundle: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    top_k: int = 5,
    embeddings: bool = False,
    segments: bool = False,
    backend: str = "auto",
    device: str = "cpu",
    precision: str = "fp32",
    batch_size: int | None = None,
    threads: int | None = None,
    decode_workers: int | None = None,
    max_segments: int | None = None,
    progress: bool | None = None,
    plot: str | Path | None = None,
    stdout=None,
    stderr=None,
) -> int:
    """Tag ``paths`` (files, globs, directories); returns the exit code.

    0: every song tagged; 1: some songs failed (each reported with path and reason on
    stderr, the rest processed); 2: bad options, bundle or backend (nothing processed).
    ``plot``: folder for one taggram PNG per song (:mod:`.plot`; needs samplecnn[plot]).
    """
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    bound_malloc_growth()

    def say(message: str) -> None:
        print(message, file=stderr, flush=True)

    songs = expand_inputs(paths)
    if not songs:
        say("error: no input paths; pass audio files, globs or directories")
        return EXIT_USAGE
    writer = plots = None
    try:
        if plot is not None:
            from .plot import Taggrams

            plots = Taggrams(plot)
        if resume and out is None:
            raise OutputError("--resume needs --out (the file whose songs to skip)")
        if (embeddings or segments) and out is None:
            raise OutputError("--embeddings and --segments go into the --out file; pass --out results.jsonl")
        if resume and out is not None:
            done = done_paths(out)
            skipped = [s for s in songs if resume_key(s) in done]
            songs = [s for s in songs if resume_key(s) not in done]
            if skipped:
                say(f"resume: {len(skipped)} songs already in {out}, {len(songs)} to go")
        tagger = Tagger(
            bundle, backend=backend, device=device, precision=precision, batch_size=batch_size,
            threads=threads, decode_workers=decode_workers, max_segments=max_segments,
        )
        results = tagger.tag(songs, top_k=top_k, embeddings=embeddings, segments=segments or plots is not None)  # checks top_k now
        if out is not None:
            writer = ResultWriter(out, resume=resume, overwrite=overwrite, segments=segments)
    except (BundleError, BackendError, OutputError, ValueError) as exc:  # PlotError is a ValueError
        say(f"error: {exc}")
        if writer is not None:
            writer.close(success=False)
        return EXIT_USAGE
    say(f"samplecnn infer: {len(songs)} songs with {tagger.bundle.root} on {tagger.description}")
    meter = Progress(len(songs), stderr, enabled=progress)
    table = out is None
    completed = False
    plot_failures = 0
    try:
        with tagger:
            if table and songs:
                print(table_header(), file=stdout, flush=True)
            for result in results:
                if result.ok and plots is not None:
                    try:
                        plots.save(result)
                    except (OSError, ValueError) as exc:  # the song's row is still written
                        meter.clear_line()
                        say(f"FAILED plot of {result.path}: {exc}")
                        plot_failures += 1
                    if not segments:
                        result.segments = None  # drawn, not asked for in --out
                if not result.ok:
                    meter.clear_line()
                    say(f"FAILED {result.path}: {result.error}")
                elif writer is not None:
                    writer.write(result)
                if table and result.ok:
                    meter.clear_line()
                    print(format_table([result]), file=stdout, flush=True)
                meter.update(result.ok, result.duration)
        completed = True
    except KeyboardInterrupt:
        meter.clear_line()
        say(f"interrupted after {meter.done} songs" + (f"; rows so far are in {out} (use --resume)" if out and not overwrite else ""))
        return 130
    finally:
        if writer is not None:
            writer.close(success=completed)
    meter.clear_line()
    if meter.enabled:
        stderr.write("\n")
    say(meter.summary())
    if plot_failures:
        say(f"{plot_failures} taggram(s) could not be written to {plot}")
    return EXIT_FAILED_SONGS if meter.failed or plot_failures else EXIT_OK


__all__ = ["infer", "AudioError"]
