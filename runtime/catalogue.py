"""``samplecnn catalogue``: the tagging of ``samplecnn infer`` as a Ray Data job.

    from samplecnn.runtime.catalogue import catalogue
    code = catalogue(["s3://bucket/songs.parquet"], "tags_out/", address="auto", embeddings=True)

The driver lists the songs (:mod:`.sources`), drops those already done (``resume``), and
hands Ray Data blocks of paths, never audio. An actor pool tags them: each actor holds one
:class:`~.tagger.Tagger` (the bundle travels through the object store once, so cluster nodes
need no copy of it), fetches URI songs to a local temp file and lets the runtime decode, segment,
pool and apply the heads exactly as ``infer`` does. Result rows stream back to the driver,
which writes them as atomic Parquet parts (:mod:`.catalogue_store`) and reports progress.

The pool's reservations leave one CPU of the cluster free (actors x Ray CPUs per actor <= CPUs
- 1; an actor reserves its threads, or ``actor_cpus``): a pool that takes every CPU starves Ray
Data's other tasks and the job stalls "backpressured" (ray-project/ray#44687). Each actor
reports its Ray node id, host and pid; ``catalogue.json`` records them per actor. Ray is imported only here, inside functions: ``import
samplecnn.runtime`` never imports it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .backends import BackendError
from .bundle import Bundle, BundleError
from .catalogue_actor import TagActor, bundle_files
from .catalogue_store import ERRORS, JOB_FILE, SONGS, PartWriter, StoreError, check_out_dir, error_schema, job_identity, open_out_dir, song_columns, song_schema
from .progress import Progress
from .sources import DEFAULT_PATH_COLUMN, SourceError, is_uri, list_songs
from .tagger import Tagger, default_bundle_path

EXIT_OK, EXIT_FAILED_SONGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_SONGS_PER_BATCH = 4  # songs per actor call: enough to keep the decode thread ahead
DEFAULT_ROWS_PER_FILE = 1000  # rows per Parquet part (a kill loses at most this many, redone by --resume)
FLUSH_SECONDS = 60.0  # ... or at most this much work
MAX_BLOCKS = 2000  # paths per Ray block grow beyond songs_per_batch for catalogues over this many batches
PROBE_SECONDS = 5.0  # ray.init on an address where nothing listens retries for minutes: probe first
INSTALL_HINT = "pip install 'samplecnn[ray]'"


class CatalogueError(ValueError):
    """A bad option, address or environment, found before any song is tagged (exit 2)."""


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's one-machine mode, every node address on 127.0.0.1


def require_ray(local: bool = False):
    """The ``ray`` module with Ray Data; CatalogueError naming the extra when it is missing.

    ``local``: the job will start its own one-machine Ray. When Ray is not imported yet, it is
    then imported in Ray's one-machine mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read once
    at import; an explicit setting is kept), so that Ray listens and advertises on 127.0.0.1
    instead of the machine's interface address (ray-project/ray#26293)."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise CatalogueError(f"samplecnn catalogue needs Ray Data, which is not installed ({exc}); {INSTALL_HINT}") from exc
    return ray


@dataclass(frozen=True)
class PoolPlan:
    """The actor pool: ``actors`` actors, each running onnxruntime on ``threads`` threads and
    reserving ``actor_cpus`` Ray CPUs (default: as many as its threads), on ``cpus`` CPUs."""

    actors: int
    threads: int
    cpus: float
    actor_cpus: float | None = None

    @property
    def reserved(self) -> float:
        """Ray CPUs one actor reserves."""
        return float(self.threads if self.actor_cpus is None else self.actor_cpus)

    def describe(self) -> str:
        spare = self.cpus - self.actors * self.reserved
        each = "" if self.reserved == self.threads else f", {self.reserved:g} Ray CPU(s) reserved each,"
        return f"{self.actors} actor(s) x {self.threads} thread(s){each} on {self.cpus:g} CPUs ({spare:g} left for reading and writing)"


def plan_pool(cpus: float, *, actors: int | None = None, threads: int | None = None, actor_cpus: float | None = None) -> PoolPlan:
    """Size the pool so its reservations leave at least one CPU free (see the module docstring).

    Default: 1 thread per actor (onnxruntime scales best across processes here), each actor
    reserving as many Ray CPUs as it runs threads, and as many actors as fit in ``cpus - 1``.
    ``actor_cpus`` below ``threads`` reserves less than an actor computes on: it lets one
    actor run on each 1-CPU node of a cluster (``actor_cpus=0.5`` on 2 x 1 CPU) while Ray Data
    keeps a CPU to schedule its tasks; the default pool then still runs no more onnxruntime
    threads than the cluster has CPUs. CatalogueError when the asked-for pool does not fit.
    """
    for name, value in (("--actors", actors), ("--threads", threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise CatalogueError(f"{name} {value!r}: must be a positive integer")
    if actor_cpus is not None and (isinstance(actor_cpus, bool) or not isinstance(actor_cpus, (int, float)) or not 0 < actor_cpus <= 64):
        raise CatalogueError(f"--actor-cpus {actor_cpus!r}: must be a number of Ray CPUs above 0 (e.g. 0.5, 1, 2)")
    threads = threads or 1
    reserved = float(threads if actor_cpus is None else actor_cpus)
    spare = cpus - 1
    if spare < reserved:
        raise CatalogueError(
            f"the Ray cluster has {cpus:g} CPU(s): an actor pool of actors reserving {reserved:g} CPU(s) needs at least {reserved + 1:g} "
            "(one CPU stays free for Ray Data's read tasks, ray-project/ray#44687); use more CPUs, fewer --threads "
            "(or --actor-cpus below --threads), or `samplecnn infer` on one machine"
        )
    if actors is None:
        actors = max(1, min(int(spare // reserved + 1e-9), int(cpus // threads)))
    if actors * reserved > spare + 1e-9:
        raise CatalogueError(
            f"--actors {actors} x {reserved:g} reserved CPU(s) = {actors * reserved:g} CPUs, but the cluster has {cpus:g}: at most "
            f"{spare:g} leave one CPU for Ray Data's read tasks (a full pool stalls, ray-project/ray#44687); pass fewer actors "
            "or a smaller --actor-cpus"
        )
    return PoolPlan(actors, threads, float(cpus), None if actor_cpus is None else float(actor_cpus))


def probe_address(address: str) -> None:
    """CatalogueError when nothing listens at a ``host:port`` / ``ray://host:port`` address."""
    if address == "auto":
        return
    target = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise CatalogueError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:10001 or auto")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise CatalogueError(
            f"--address {address!r}: no Ray cluster answers there ({exc}); start one with `ray start --head --port={port}` "
            "or pass the address `ray start` printed (or omit --address to start a local Ray)"
        ) from exc


def connect(ray, address: str | None) -> bool:
    """Join ``address`` (or $RAY_ADDRESS), or start a local Ray. True when this call started it."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"logging_level": "warning", "configure_logging": True}
    try:
        if address:
            probe_address(address)  # nothing listening: an instant error instead of minutes of retries
            ray.init(address=address, **quiet)
        else:
            # Loopback only: require_ray(local=True) imported Ray in its one-machine mode (unless
            # Ray was imported before, e.g. by the caller's own code; then Ray picks the address).
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
    except CatalogueError:
        raise
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError from Ray's start-up
        raise CatalogueError(f"cannot {'join Ray at ' + repr(address) if address else 'start a local Ray'}: {exc}") from exc
    return True


def _blocks(songs: list[str], songs_per_batch: int):
    import pyarrow as pa

    per_block = max(songs_per_batch, -(-len(songs) // MAX_BLOCKS))
    return [pa.table({"path": pa.array(songs[i : i + per_block], pa.string())}) for i in range(0, len(songs), per_block)]


def catalogue(
    sources: list[str],
    out: str | Path,
    *,
    bundle: str | Path | None = None,
    address: str | None = None,
    resume: bool = False,
    path_column: str = DEFAULT_PATH_COLUMN,
    top_k: int = 5,
    embeddings: bool = False,
    backend: str = "auto",
    device: str = "cpu",
    precision: str = "fp32",
    batch_size: int | None = None,
    max_segments: int | None = None,
    actors: int | None = None,
    threads: int | None = None,
    actor_cpus: float | None = None,
    songs_per_batch: int = DEFAULT_SONGS_PER_BATCH,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    progress: bool | None = None,
    stderr=None,
) -> int:
    """Tag every song of ``sources`` into ``out`` (see the module docstring); returns the exit code.

    0: every song tagged; 1: some songs failed (rows in ``out/errors``, the rest tagged);
    2: bad option, source list, bundle, output folder, address or missing Ray (nothing tagged).
    """
    stderr = stderr or sys.stderr

    def say(message: str) -> None:
        print(message, file=stderr, flush=True)

    started_here = False
    ray = None
    try:  # every check that needs no Ray first: they are instant, importing Ray is not
        for name, value in (("top_k", top_k), ("songs_per_batch", songs_per_batch), ("rows_per_file", rows_per_file)):
            if not isinstance(value, int) or value < 1:
                raise CatalogueError(f"--{name.replace('_', '-')} {value!r}: must be a positive integer")
        if is_uri(str(out)):
            raise CatalogueError(f"--out {out}: the job writes to a local (or mounted shared) folder; pass a path, not a URI")
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address:
            probe_address(address)
        loaded = Bundle.load(bundle if bundle is not None else default_bundle_path())
        given = {"backend": backend, "device": device, "precision": precision, "batch_size": batch_size, "max_segments": max_segments}
        tagger_options = {k: v for k, v in given.items() if v is not None}
        Tagger(loaded, **tagger_options, threads=1).close()  # the actors' Tagger: bad backend/precision fail here, not in Ray
        options = {"precision": precision, "device": device, "backend": backend, "top_k": top_k, "embeddings": embeddings, "max_segments": max_segments}
        columns = hashlib.sha256("\n".join(song_columns(loaded, embeddings)).encode()).hexdigest()
        identity = job_identity(loaded, **options, columns_sha256=columns)
        songs = list_songs(sources, path_column=path_column)
        if not songs:
            raise CatalogueError(f"no songs in {list(sources)}; pass audio files, folders, globs, or a .csv/.parquet with a {path_column!r} column")
        done = check_out_dir(out, identity, resume=resume)
        todo = [s for s in songs if s not in done]
        if done:
            say(f"resume: {len(songs) - len(todo)} songs already in {Path(out) / SONGS}, {len(todo)} to go")
        if not todo:
            say("nothing to do: every song already has a row")
            return EXIT_OK
        ray = require_ray(local=not (address or os.environ.get("RAY_ADDRESS")))
        started_here = connect(ray, address)
        plan = plan_pool(ray.cluster_resources().get("CPU", 0), actors=actors, threads=threads, actor_cpus=actor_cpus)
        root = open_out_dir(out, identity, bundle_root=str(loaded.root))
    except (CatalogueError, BundleError, BackendError, SourceError, StoreError, ValueError) as exc:
        say(f"error: {exc}")
        if started_here:
            ray.shutdown()
        return EXIT_USAGE
    try:
        return _run(
            ray, loaded, todo, root, plan, tagger_options, top_k=top_k, embeddings=embeddings,
            songs_per_batch=songs_per_batch, rows_per_file=rows_per_file, progress=progress, say=say, stderr=stderr,
        )  # fmt: skip
    finally:
        if started_here:
            ray.shutdown()


def _run(ray, bundle: Bundle, todo: list[str], root: Path, plan: PoolPlan, tagger_options: dict, *, top_k, embeddings, songs_per_batch, rows_per_file, progress, say, stderr) -> int:
    import json

    import pyarrow.compute as pc

    from .atomic import write_bytes_atomically

    say(f"samplecnn catalogue: {len(todo)} songs with {bundle.root}; pool: {plan.describe()}")
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our progress line replaces its per-dataset INFO lines
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    schema = song_schema(bundle, embeddings)
    songs_out = PartWriter(root / SONGS, schema, rows_per_file=rows_per_file, flush_seconds=FLUSH_SECONDS)
    errors_out = PartWriter(root / ERRORS, error_schema(), rows_per_file=rows_per_file, flush_seconds=FLUSH_SECONDS)
    files_ref = [ray.put(bundle_files(bundle))]
    dataset = ray.data.from_arrow(_blocks(todo, songs_per_batch)).map_batches(
        TagActor,
        batch_size=songs_per_batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=plan.actors),
        num_cpus=plan.reserved,
        fn_constructor_kwargs={"files_ref": files_ref, "tagger_options": {**tagger_options, "threads": plan.threads}, "top_k": top_k, "embeddings": embeddings},
    )
    meter = Progress(len(todo), stderr, enabled=progress)
    started_unix = time.time()  # the job clock's start on the wall clock (benchmarks: time from the command's start)
    first_result = None
    seen: dict[tuple[str, int], dict] = {}  # (node id, pid) -> where each actor ran, what it did
    completed = False
    try:
        for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            if first_result is None:
                first_result = meter.elapsed
            for node, host, pid, mb in zip(*(table.column(c).to_pylist() for c in ("_node_id", "_host", "_pid", "_peak_rss_mb"))):
                actor = seen.setdefault((node, pid), {"node_id": node, "host": host, "pid": pid, "songs": 0, "peak_rss_mb": 0.0})
                actor["songs"] += 1
                actor["peak_rss_mb"] = round(max(actor["peak_rss_mb"], mb), 1)
            failed = pc.is_valid(table.column("error"))
            good = table.filter(pc.invert(failed)).select(schema.names)
            bad = table.filter(failed)
            songs_out.add(good)
            errors_out.add(bad.select(["path", "error"]).rename_columns(["path", "reason"]))
            for path, reason in zip(bad.column("path").to_pylist(), bad.column("error").to_pylist()):
                meter.clear_line()
                say(f"FAILED {path}: {reason}")
                meter.update(False, 0.0)
            for duration in good.column("duration").to_pylist():
                meter.update(True, duration)
        completed = True
    except KeyboardInterrupt:
        meter.clear_line()
        say(f"interrupted after {meter.done} songs; rows so far are in {root} (run again with --resume)")
    finally:
        songs_out.flush()
        errors_out.flush()
    meter.clear_line()
    if meter.enabled:
        stderr.write("\n")
    rss = ", ".join(f"{a['peak_rss_mb']:.0f}" for a in sorted(seen.values(), key=lambda a: a["peak_rss_mb"]))
    nodes = len({node for node, _ in seen})
    say(meter.summary() + f"; first result after {first_result or 0:.1f} s; {len(seen)} actor(s) on {nodes} node(s), peak RSS per actor: {rss} MB")
    say(f"rows: {root / SONGS} ({songs_out.written} new), failures: {root / ERRORS} ({errors_out.written})")
    record = json.loads((root / JOB_FILE).read_text())
    record["last_run"] = {
        "songs": meter.done, "failed": meter.failed, "audio_seconds": round(meter.audio_seconds, 3),
        "wall_seconds": round(meter.elapsed, 3), "first_result_seconds": round(first_result or 0.0, 3),
        "started_unix": round(started_unix, 3), "actors": plan.actors, "threads": plan.threads, "actor_cpus": plan.reserved,
        "cluster_cpus": plan.cpus, "peak_rss_mb_per_actor": sorted(a["peak_rss_mb"] for a in seen.values()),
        "actors_seen": sorted(seen.values(), key=lambda a: (a["node_id"], a["pid"])), "completed": completed,
        "ray_gcs_address": ray.get_runtime_context().gcs_address,
    }  # fmt: skip
    write_bytes_atomically(root / JOB_FILE, (json.dumps(record, indent=2) + "\n").encode())
    if not completed:
        return EXIT_INTERRUPTED
    return EXIT_FAILED_SONGS if meter.failed else EXIT_OK
