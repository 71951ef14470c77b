"""`samplecnn` command line: thin typer wrappers over the public Python API.

Heavy imports (torch, onnxruntime) happen inside each command, so `samplecnn infer` never
loads torch and `samplecnn --help` starts fast.
"""

from __future__ import annotations

import typer

from .trainer.sources import (  # the dataset options, declared once (typer + dataclasses only: no torch)
    DatasetOption, GtzanOption, LabelColumnOption, MaxClipsOption, MtatOption, TagsFileOption, TargetsOption, TaskOption, TestListOption,
    TestOption, TestTargetsOption, TrainListOption, ValidListOption, ValidOption, ValidTargetsOption, split_lists,
)

app = typer.Typer(
    name="samplecnn",
    help="Music auto-tagging with multi-level, multi-scale sample-level CNNs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Music auto-tagging with multi-level, multi-scale sample-level CNNs."""


@app.command()
def summary(
    scales: list[str] = typer.Argument(None, help="Scales such as 3^9 (default: the presets 2^14 3^9 5^6)."),
    width: float = typer.Option(1.0, help="Channel width multiplier."),
    n_tags: int = typer.Option(50, help="Number of output tags."),
) -> None:
    """Print parameters, segment length, FLOPs and tap widths of backbone scales."""
    from .trainer.model import format_summary, summary as rows

    typer.echo(format_summary(rows(scales or None, n_tags=n_tags, width=width)))


# --- train (trainer/) ------------------------------------------------------------------------
@app.command()
def train(
    manifest: str = typer.Argument(None, help="CSV manifest 'path,tags[,...]' (train split); valid.csv/test.csv beside a train.csv are used."),
    mtat: MtatOption = None,
    gtzan: GtzanOption = None,
    valid: ValidOption = None,
    test: TestOption = None,
    label_column: LabelColumnOption = "tags",
    task: TaskOption = None,
    tags_file: TagsFileOption = None,
    train_list: TrainListOption = None,
    valid_list: ValidListOption = None,
    test_list: TestListOption = None,
    scale: str = typer.Option("3^9", help="Backbone scale m^n: 2^14, 3^9, 5^6 or any m^n."),
    width: float = typer.Option(1.0, help="Channel width multiplier (0.5: about 4x fewer FLOPs)."),
    init: str = typer.Option(None, "--init", help="Fine-tune: start from this checkpoint's weights (same scale and labels; e.g. to add a distilled feature). A narrower checkpoint is widened to --width first, computing the same function (Net2WiderNet)."),
    epochs: int = typer.Option(None, help="Maximum epochs (default 50; with --resume: the stored value)."),
    batch_size: int = typer.Option(23, help="Segments per batch (the papers' 23)."),
    optimizer: str = typer.Option("sgd", help="sgd (Nesterov 0.9, the papers' schedule) or adam."),
    lr: float = typer.Option(None, help="Learning rate (default: sgd 0.01, adam 0.001); divided by 5 at each plateau."),
    patience: int = typer.Option(3, help="Epochs without a lower valid loss that make a plateau."),
    max_plateaus: int = typer.Option(4, help="Stop early after this many plateaus."),
    crops_per_clip: int = typer.Option(1, help="Random-offset crops per training clip per epoch."),
    workers: int = typer.Option(None, help="DataLoader / decoding worker processes (default 2; 0: main process)."),
    threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
    device: str = typer.Option(None, help="cpu or cuda (default cpu)."),
    seed: int = typer.Option(0, help="Seed of initialisation, crops, order and dropout."),
    out: str = typer.Option("runs/train", help="Run folder: metrics.jsonl, best/last.safetensors, state."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last epoch (its stored options)."),
    cache_dir: str = typer.Option(None, help="Decoded-audio cache (default $SAMPLECNN_CACHE or ~/.cache/samplecnn/audio)."),
    max_clips: MaxClipsOption = None,
    max_minutes: float = typer.Option(None, help="Wall-time budget: stop before an epoch that would overrun it (--resume continues)."),
    targets: TargetsOption = None,
    valid_targets: ValidTargetsOption = None,
    test_targets: TestTargetsOption = None,
    distill_feature: list[str] = typer.Option(None, "--distill-feature", help="Distil: also regress this teacher feature (e.g. penultimate, pooled; repeatable) from the levels through a linear map."),
    feature_weight: float = typer.Option(1.0, help="Distil: weight of the feature MSE next to the soft-tag BCE."),
    amp: str = typer.Option("fp32", help="fp32, or bf16 autocast (CPUs with AVX512-BF16 or AMX; CUDA)."),
) -> None:
    """Train one backbone scale on one dataset (or distil a teacher's labels); report clip-level ROC-AUC / PR-AUC per epoch."""
    import shlex
    import sys

    from .trainer.train import TrainConfig, TrainError, resume_config, train as run_training

    command = shlex.join(["samplecnn"] + sys.argv[1:])
    try:
        if resume:
            config = resume_config(
                out, epochs=epochs, device=device, workers=workers, threads=threads or None, max_minutes=max_minutes, command=command
            )
        else:
            config = TrainConfig(
                manifest=manifest, mtat=mtat, gtzan=gtzan, valid=valid, test=test, label_column=label_column,
                task=task, tags_file=tags_file, split_lists=split_lists(train_list, valid_list, test_list),
                init=init, scale=scale, width=width, epochs=epochs or 50, batch_size=batch_size, optimizer=optimizer, lr=lr,
                patience=patience, max_plateaus=max_plateaus, crops_per_clip=crops_per_clip,
                workers=2 if workers is None else workers, threads=threads, device=device or "cpu", seed=seed,
                out=out, cache_dir=cache_dir, max_clips=max_clips, max_minutes=max_minutes, command=command,
                targets=list(targets or []), valid_targets=list(valid_targets or []), test_targets=list(test_targets or []),
                distill_features=list(distill_feature or []), feature_weight=feature_weight, amp=amp,
            )  # fmt: skip
        record = run_training(config, resume=resume)
    except (TrainError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    best = record["best"]
    typer.echo(f"best epoch {best.get('epoch')}: valid ROC-AUC {best.get('roc_auc', float('nan')):.4f}, "
               f"PR-AUC {best.get('pr_auc', float('nan')):.4f}; checkpoints in {config.out}")  # fmt: skip
    if record.get("skipped_files"):  # the exit-code rule: 1 = some inputs failed (the run itself completed)
        typer.echo(f"{record['skipped_files']} unusable audio files were skipped: see {config.out}/skipped.json", err=True)
        raise typer.Exit(1)


# --- export (export/) ------------------------------------------------------------------------
@app.command()
def export(
    checkpoints: list[str] = typer.Argument(..., help="Backbone checkpoints, one per scale (written by `samplecnn train`)."),
    out: str = typer.Option(..., "--out", help="Bundle folder to write (replaced atomically if it exists)."),
    engine: str = typer.Option("onnx", "--engine", help="onnx: ONNX graphs only; trt: also TensorRT engines (needs a GPU and samplecnn[trt])."),
    precision: list[str] = typer.Option(["fp32"], "--precision", help="fp32, fp16, int8; repeat for several (fp32 is always written)."),
    parity_audio: str = typer.Option(None, "--parity-audio", help="Folder, CSV (path column) or audio file of real songs for parity checks and int8 evaluation."),
    calibration: str = typer.Option(None, "--calibration", help="Folder or CSV of real songs to calibrate int8 on (not used for evaluation)."),
    min_agreement: float = typer.Option(0.9, "--min-agreement", help="Refuse int8 below this mean top-5 tag agreement with fp32 on held-out songs."),
    conv1d: bool = typer.Option(False, "--conv1d", help="Keep the Conv1d graph instead of the faster 2-D lowered one."),
    training_data: str = typer.Option(None, "--training-data", help="Describe the training data in the manifest (default: from the checkpoints)."),
    spectral: bool = typer.Option(True, "--spectral/--no-spectral", help="Add the spectral level (384 log-mel statistics of the song) to the song vector; --no-spectral keeps the paper's backbone levels only."),
) -> None:
    """Export checkpoints to a bundle: ONNX per scale and precision, parity-checked, optional TensorRT engines."""
    import time

    from .export.bundle_writer import export_bundle
    from .export.errors import ExportError
    from .export.report import summary_table
    from .runtime.backends import BackendError
    from .runtime.bundle import Bundle, BundleError
    from .trainer.checkpoint import CheckpointError

    started = time.perf_counter()
    try:
        root = export_bundle(
            checkpoints, out, precisions=tuple(precision), engine=engine, parity_audio=parity_audio, calibration=calibration,
            lowering=not conv1d, min_agreement=min_agreement, training_data=training_data, spectral=spectral,
        )
        bundle = Bundle.load(root)
    except (ExportError, CheckpointError, BundleError, BackendError) as exc:
        typer.echo(f"error: {exc}", err=True)  # 2: refused before work; 1: a check failed (README, Exit codes)
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None
    typer.echo(summary_table(bundle.manifest, root))
    typer.echo(f"\nwrote {root} in {time.perf_counter() - started:.1f} s; next: samplecnn infer --bundle {root} songs/")


# --- infer (runtime/) ------------------------------------------------------------------------


@app.command()
def infer(
    paths: list[str] = typer.Argument(..., help="Audio files, globs or directories (walked recursively)."),
    bundle: str = typer.Option(None, "--bundle", "-b", help="Model bundle folder (default: the model shipped in runtime/default_model)."),
    out: str = typer.Option(None, "--out", "-o", help="Write results to FILE.jsonl or FILE.csv (appended song by song)."),
    resume: bool = typer.Option(False, help="Skip songs already in --out and append the rest."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out (atomically, when the run ends)."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Tags per head in the table and 'top'."),
    embeddings: bool = typer.Option(False, help="Add each song's embedding (all levels of all scales, then the spectral level if the bundle has one) to --out."),
    segments: bool = typer.Option(False, help="Add the per-segment tag time series to --out (.jsonl only)."),
    backend: str = typer.Option("auto", help="auto | ort | trt | openvino. auto picks the fastest installed backend exact for --precision and says what it chose; a named backend never falls back."),
    device: str = typer.Option("cpu", help="cpu | cuda."),
    precision: str = typer.Option("fp32", help="fp32 | fp16 | int8 (the bundle must have it) | bf16 (openvino, on a CPU with native bf16; runs the fp32 graph)."),
    batch_size: int = typer.Option(None, help="Segments per backend call (default: the largest <= 8 that fits a memory budget; 16 on cuda)."),
    threads: int = typer.Option(None, help="onnxruntime intra-op threads (default: one per CPU)."),
    decode_workers: int = typer.Option(None, help="Songs decoded while the model runs (default 1)."),
    max_segments: int = typer.Option(None, help="At most this many segments per song and scale (evenly spaced)."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bar on stderr (default: when stderr is a terminal)."),
    plot: str = typer.Option(None, "--plot", help="Folder for one taggram PNG per song (tags over time + song-level scores; needs samplecnn[plot])."),
) -> None:
    """Tag songs with a model bundle (torch-free): a table, or JSON Lines / CSV with --out.

    Songs that fail are reported with path and reason and the rest are processed; the exit code is 1 when any failed, 2 for a bad option, bundle or backend.
    """
    from .runtime.infer import infer as run_infer

    code = run_infer(
        paths, bundle=bundle, out=out, resume=resume, overwrite=overwrite, top_k=top_k, embeddings=embeddings,
        segments=segments, backend=backend, device=device, precision=precision, batch_size=batch_size,
        threads=threads, decode_workers=decode_workers, max_segments=max_segments, progress=progress, plot=plot,
    )
    global _skip_teardown
    _skip_teardown = True
    raise typer.Exit(code)


# --- report (runtime/report) -----------------------------------------------------------------
@app.command()
def report(
    results: list[str] = typer.Argument(..., help="Results: .jsonl/.csv from `samplecnn infer --out`, .parquet files or a folder of them (catalogue)."),
    out: str = typer.Option("report.html", "--out", "-o", help="The HTML page to write (replaced atomically)."),
    errors: list[str] = typer.Option(None, "--errors", help="Table(s) of failed songs (path, reason/error): .jsonl/.csv/.parquet."),
    title: str = typer.Option(None, help="Page title (default: the results file name)."),
) -> None:
    """One self-contained HTML page (no network) summarising a results file: tags, scores, durations, failures, songs.

    Exit code 0; 1 when rows were skipped (said on the page and on stderr); 2 when nothing could be read.
    """
    from .runtime.report import main as run_report

    raise typer.Exit(run_report(results, out=out, errors=errors or [], title=title))


# --- fit (trainer/fit) -----------------------------------------------------------------------


def _int_list(text: str | None) -> list[int] | None:
    return [int(v) for v in text.split(",")] if text else None


@app.command()
def fit(
    bundle: str = typer.Argument(..., help="Bundle folder (written by `samplecnn export`); the head is added to it."),
    manifest: DatasetOption = None,
    mtat: MtatOption = None,
    gtzan: GtzanOption = None,
    valid: ValidOption = None,
    test: TestOption = None,
    label_column: LabelColumnOption = "tags",
    task: TaskOption = None,
    tags_file: TagsFileOption = None,
    train_list: TrainListOption = None,
    valid_list: ValidListOption = None,
    test_list: TestListOption = None,
    max_clips: MaxClipsOption = None,
    targets: TargetsOption = None,
    valid_targets: ValidTargetsOption = None,
    test_targets: TestTargetsOption = None,
    name: str = typer.Option(None, help="Head name in the bundle (default: the label column; 'tags' with --targets)."),
    scales: str = typer.Option(None, help="Comma-separated scales to read, e.g. 3^9,5^6 or 3^9,mel (default: all, and mel when the bundle has the spectral level)."),
    levels: str = typer.Option(None, help="Comma-separated levels, 1 = last hidden layer (default: all, e.g. 1,2,3)."),
    kfold: int = typer.Option(0, help="Also report k-fold cross-validation on train+valid (k > 1)."),
    group_column: str = typer.Option(None, help="With --kfold: manifest column kept within one fold (e.g. artist)."),
    ablation: str = typer.Option(None, help="Also run the levels x scales ablation; write PREFIX.json and PREFIX.md."),
    write: bool = typer.Option(True, "--write/--no-write", help="Write the head into the bundle (default) or only evaluate."),
    cache_dir: str = typer.Option(None, help="Song-vector cache (default ~/.cache/samplecnn/features); keyed by bundle, file and settings."),
    precision: str = typer.Option("fp32", help="Backbone graphs to extract with: fp32 | int8 | fp16."),
    hidden: int = typer.Option(512, help="Units of each of the two hidden layers."),
    dropout: float = typer.Option(0.5, help="Dropout of the hidden layers."),
    max_segments: int = typer.Option(None, help="At most this many segments per song and scale."),
    seed: int = typer.Option(0, help="Seed of the classifier's initialisation and order."),
) -> None:
    """Fit a song-level classifier head on multi-level, multi-scale song vectors (transfer learning).

    Songs that cannot be read are reported and left out; the exit code is then 1 (the head is still written), 2 for a bad option, dataset or bundle.
    """
    from .runtime.bundle import BundleError
    from .trainer.features import FeatureError
    from .trainer.fit import FitError
    from .trainer.fit_run import FitOptions, run_fit
    from .trainer.song_classifier import ClassifierConfig

    options = FitOptions(
        bundle=bundle, manifest=manifest, valid=valid, test=test, mtat=mtat, gtzan=gtzan, label_column=label_column,
        task=task, tags_file=tags_file, split_lists=split_lists(train_list, valid_list, test_list), max_clips=max_clips,
        targets=list(targets or []), valid_targets=list(valid_targets or []), test_targets=list(test_targets or []),
        name=name, scales=scales.split(",") if scales else None, levels=_int_list(levels), kfold=kfold,
        group_column=group_column, ablation=ablation, write=write, cache_dir=cache_dir, precision=precision,
        max_segments=max_segments, seed=seed, classifier=ClassifierConfig(hidden=hidden, dropout=dropout, seed=seed),
    )  # fmt: skip
    try:
        result = run_fit(options, log=typer.echo)
    except (FitError, FeatureError, BundleError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if result["failed"]:
        typer.echo(f"{len(result['failed'])} songs could not be read and were left out (listed above as 'skipped')", err=True)
        raise typer.Exit(1)


# --- serve (runtime/serve) and triton (export/triton) ----------------------------------------


@app.command()
def serve(
    bundle: str = typer.Option(None, "--bundle", "-b", help="Model bundle folder (default: the model shipped in runtime/default_model)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8080, "--port", "-p", help="HTTP/REST port (Open Inference Protocol)."),
    grpc_port: int = typer.Option(None, "--grpc-port", help="gRPC port (default: --port + 1)."),
    max_bytes: int = typer.Option(64 << 20, "--max-bytes", help="Largest audio file (or waveform) accepted, in bytes; larger gets 413."),
    precision: str = typer.Option("fp32", help="fp32 | int8 (the bundle must have it)."),
    threads: int = typer.Option(None, help="onnxruntime intra-op threads (default: one per CPU)."),
    max_batch_songs: int = typer.Option(8, help="Songs from concurrent requests tagged together."),
) -> None:
    """Serve the model over the Open Inference Protocol (KServe V2; HTTP + gRPC) with MLServer (needs samplecnn[serve]).

    Exit code 2 for a bad option, bundle or a missing extra (before any port opens).
    """
    from .runtime.backends import BackendError
    from .runtime.bundle import BundleError
    from .runtime.serve import serve as run_server

    try:
        run_server(bundle, host=host, port=port, grpc_port=grpc_port, max_bytes=max_bytes, precision=precision,
                   threads=threads, max_batch_songs=max_batch_songs)
    except (BundleError, BackendError, ImportError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def triton(
    bundle: str = typer.Argument(..., help="Bundle folder (written by `samplecnn export`)."),
    repo: str = typer.Argument(..., help="Triton model repository folder to write (replaced atomically if it exists)."),
    precision: str = typer.Option("fp32", help="Which graph of each scale: fp32 | fp16 | int8 (ONNX), or the engine's precision with --engines."),
    engines: bool = typer.Option(False, "--engines", help="Use the bundle's TensorRT engines (platform tensorrt_plan) instead of ONNX."),
    max_batch_size: int = typer.Option(16, help="max_batch_size of every scale model (segments per Triton batch)."),
    instances: int = typer.Option(1, help="instance_group count per scale model."),
    kind: str = typer.Option("cpu", help="cpu | gpu: instance_group kind of the scale models."),
) -> None:
    """Write a Triton model repository: one model per scale plus the `samplecnn` python-backend model (tags from audio)."""
    from .export.triton import TritonError, write_repository
    from .runtime.bundle import BundleError

    try:
        root = write_repository(bundle, repo, precision=precision, engines=engines, max_batch_size=max_batch_size,
                                instances=instances, kind=kind)
    except (TritonError, BundleError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {root}; run it with Triton's container as {root}/README.md says")


# --- bench (benchmarks/) ---------------------------------------------------------------------


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """Benchmark backbones (vs the measured GEMM peak) and the whole pipeline (vs torch eager); check the targets.

    Options are the suite's own (`samplecnn bench --help`): --out, --songs, --agreement-songs,
    --min-seconds, --rounds, --rss-file, --audio, --workdir, --quick.
    """
    from .benchmarks.suite import main as run_suite

    run_suite(ctx.args, prog="samplecnn bench")


# --- catalogue (runtime/catalogue) -----------------------------------------------------------


@app.command()
def catalogue(
    sources: list[str] = typer.Argument(..., help="Folders, globs, audio files, or .csv/.parquet path lists; local or URIs pyarrow reads (s3://, gs://, ...)."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder: songs/*.parquet (one row per song), errors/*.parquet, catalogue.json."),
    bundle: str = typer.Option(None, "--bundle", "-b", help="Model bundle folder (default: the model shipped in runtime/default_model)."),
    address: str = typer.Option(None, "--address", envvar="RAY_ADDRESS", help="Ray cluster to join (HOST:PORT, ray://HOST:10001 or auto); default: start a local Ray."),
    resume: bool = typer.Option(False, help="Skip songs already in --out (failed ones are retried)."),
    path_column: str = typer.Option("path", help="Column of a .csv/.parquet source holding the song paths."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Tags per head in the top_<head> column."),
    embeddings: bool = typer.Option(False, help="Add each song's embedding (fixed-size float32 list) to the rows."),
    backend: str = typer.Option("auto", help="auto | ort | trt. auto says what it chose; a named backend never falls back."),
    device: str = typer.Option("cpu", help="cpu | cuda."),
    precision: str = typer.Option("fp32", help="fp32 | fp16 | int8 (the bundle must have it)."),
    batch_size: int = typer.Option(None, help="Segments per backend call (default as infer)."),
    max_segments: int = typer.Option(None, help="At most this many segments per song and scale (evenly spaced)."),
    actors: int = typer.Option(None, help="Actors in the pool, each holding one model (default: as many as leave one CPU free)."),
    threads: int = typer.Option(None, help="onnxruntime threads (and Ray CPUs) per actor (default 1)."),
    actor_cpus: float = typer.Option(None, help="Ray CPUs each actor reserves (default: its threads); e.g. 0.5 to run one actor per 1-CPU node."),
    songs_per_batch: int = typer.Option(4, help="Songs per actor call."),
    rows_per_file: int = typer.Option(1000, help="Rows per Parquet part file (a killed job redoes at most this many with --resume)."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bar on stderr (default: when stderr is a terminal)."),
) -> None:
    """Tag a catalogue as a Ray Data job (needs the `ray` extra): the rows of `infer`, as Parquet.

    Exit code 1 when some songs failed (rows in OUT/errors), 2 for a bad option, source list, bundle, output folder, address or missing Ray.
    """
    from .runtime.catalogue import catalogue as run_catalogue

    raise typer.Exit(run_catalogue(
        sources, out, bundle=bundle, address=address, resume=resume, path_column=path_column, top_k=top_k,
        embeddings=embeddings, backend=backend, device=device, precision=precision, batch_size=batch_size,
        max_segments=max_segments, actors=actors, threads=threads, actor_cpus=actor_cpus, songs_per_batch=songs_per_batch,
        rows_per_file=rows_per_file, progress=progress,
    ))  # fmt: skip


# Commands whose process may end without the interpreter's teardown (see main). `samplecnn
# infer` has closed every output by then (its --out file is renamed into place; stdout and
# stderr are flushed in main); tearing down numpy's, onnxruntime's and every module's objects
# took 0.04 s of a 0.9 s cold start (full width, 2 cores, 2026-12-02).
_skip_teardown = False


def main() -> None:
    """The `samplecnn` console script. After `infer` it runs the atexit handlers (a wrapper's
    or a library's, as a normal exit would), flushes stdout and stderr and leaves with
    os._exit, skipping the teardown of the interpreter's objects; under a profiler or tracer
    (cProfile, coverage), which report after the program returns, and after every other
    command, it exits normally."""
    import sys

    try:
        app()
    except SystemExit as done:
        if _skip_teardown and sys.getprofile() is None and sys.gettrace() is None:
            import atexit
            import os

            atexit._run_exitfuncs()  # CPython's own exit step; os._exit below would skip it
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except (OSError, ValueError):  # a closed pipe: let the normal exit report it
                raise done from None
            os._exit(done.code if isinstance(done.code, int) else 1)
        raise


if __name__ == "__main__":
    main()
