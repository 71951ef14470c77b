"""Shared pieces of the benchmark scripts: paths, the machine record, real audio segments,
random-weight models and bundles (cached), child processes that report JSON, and timing.

Every engine is measured in its own child process (``run_child``): torch's OpenMP pool and
onnxruntime's thread pool both spin-wait, and on a 2-core machine two pools in one process
steal each other's cores. A child prints one JSON line prefixed with ``RESULT_PREFIX``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_WORKDIR = Path(os.environ.get("SAMPLECNN_BENCH_WORKDIR", "/tmp/samplecnn-bench"))
PRESET_SCALES = ("2^14", "3^9", "5^6")
N_TAGS = 50  # MTAT's top-50, the papers' setting, for the random-weight speed models
RESULT_PREFIX = "BENCH_RESULT_JSON="
TRAINED_RUNS = REPO / "runs" / "mer4q"  # the default model's checkpoints (width 0.25), when trained


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that decide which kernels run (AVX-512, VNNI, AMX)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
                return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def training_running() -> list[str]:
    """Command lines of `samplecnn train` processes (other jobs competing for the CPU)."""
    done = subprocess.run(["pgrep", "-af", "samplecnn train"], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if "pgrep" not in line]


def machine_info() -> dict:
    """Where the numbers came from: CPU, cores, memory, library versions, competing load."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    load = os.getloadavg()
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "simd": cpu_flags(), "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(), "numpy": np.__version__, "onnxruntime": version("onnxruntime"),
        "torch": version("torch"), "openvino": version("openvino"), "tensorrt": version("tensorrt"), "loadavg_at_start": [round(v, 2) for v in load],
        "training_running_at_start": training_running(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# --- timing ------------------------------------------------------------------------------------


def time_calls(call, *, min_seconds: float, min_calls: int = 1, max_calls: int = 1000, warmup: int = 1) -> list[float]:
    """Seconds per call of ``call()``: ``warmup`` untimed calls, then until ``min_seconds`` and ``min_calls``."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    while len(times) < max_calls and (len(times) < min_calls or sum(times) < min_seconds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


# --- rounds: figures measured side by side, A B ... B A ---------------------------------------
#
# This VM's speed drifts within a run and varies by up to 30% between runs, so a ratio of two
# figures measured minutes apart says more about the drift than about the engines. Every
# comparison is therefore made inside one round (its two figures measured one after the other),
# and the order of a round is reversed every other round, so a linear drift favours neither
# side. A ratio is reported as the median of its per-round values, with their spread.

SPREAD_FLAG = 0.10  # a figure whose rounds spread more than 10% of their median is flagged


def spread(values: list[float]) -> dict:
    """Median, spread = (max - min) / median, flag (spread > SPREAD_FLAG) and the per-round values."""
    values = [float(v) for v in values]
    median = float(np.median(values))
    width = (max(values) - min(values)) / median if median else float("nan")
    return {"median": round(median, 3), "spread": round(width, 3), "flagged": bool(width > SPREAD_FLAG), "rounds": [round(v, 3) for v in values]}


def format_figure(figure: dict | None, *, percent: bool = False, digits: int | None = None, missing: str = "") -> str:
    """'median±S%' of a :func:`spread` dict, '!' when flagged (``missing`` without one): the
    median as a percentage (``percent``), with ``digits`` decimals, or as stored."""
    if not figure:
        return missing
    m = figure["median"]
    value = f"{100 * m:.1f}%" if percent else (f"{m:.{digits}f}" if digits is not None else f"{m}")
    return f"{value}±{100 * figure['spread']:.0f}%{'!' if figure['flagged'] else ''}"


def paired_ratio(numerators: list[float | None], denominators: list[float | None]) -> dict | None:
    """:func:`spread` of the per-round ratios numerator[r] / denominator[r] (each pair measured in
    the same round); None when the rounds do not pair up or a figure is missing or zero."""
    if not numerators or len(numerators) != len(denominators):
        return None
    if any(v is None for v in numerators) or any(not d for d in denominators):
        return None
    return spread([a / b for a, b in zip(numerators, denominators)])


def round_order(items: list, round_index: int) -> list:
    """The order of one round: as given in even rounds, reversed in odd ones (A B C, C B A, ...)."""
    return list(items) if round_index % 2 == 0 else list(reversed(items))


# --- child processes ---------------------------------------------------------------------------


def child_env(threads: int | None) -> dict[str, str]:
    """Environment of a child: thread pools pinned to ``threads`` before any library starts."""
    env = dict(os.environ)
    if threads:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env


def run_child(module: str, spec: dict, *, threads: int | None = None, timeout: float = 900) -> dict:
    """Run ``python -m module --child JSON`` in a fresh process; return the JSON it reports."""
    command = [sys.executable, "-m", module, "--child", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env=child_env(threads), timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child {module} {spec.get('engine', '')} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def report_child(result: dict) -> None:
    """What a child prints last: the JSON its parent reads."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --- real audio --------------------------------------------------------------------------------


AUDIO_ENV = "SAMPLECNN_BENCH_AUDIO"  # a folder/CSV of songs replacing both sources (smoke tests)


def evaluation_source() -> Path:
    """Real songs for timing and agreement: the mer4q test split, else the repo's examples."""
    if os.environ.get(AUDIO_ENV):
        return Path(os.environ[AUDIO_ENV])
    test = DATA / "mer4q" / "test.csv"
    return test if test.is_file() else EXAMPLES


def calibration_source() -> Path:
    """Songs int8 is calibrated on: the mer4q train split (never the evaluation songs)."""
    if os.environ.get(AUDIO_ENV):
        return Path(os.environ[AUDIO_ENV])
    train = DATA / "mer4q" / "train.csv"
    return train if train.is_file() else EXAMPLES


def real_segments(segment_samples: int, count: int, sample_rate: int = 22050, source: Path | None = None) -> np.ndarray:
    """(count, segment_samples) float32 segments cut from real songs (repeated if there are few)."""
    from samplecnn.export.audio_sets import load_songs, stack_segments

    with quiet_stderr():
        songs = load_songs(source or evaluation_source(), sample_rate, max_songs=max(4, count // 4))
    segments = stack_segments(songs, segment_samples, 4)
    reps = -(-count // len(segments))
    return np.ascontiguousarray(np.tile(segments, (reps, 1))[:count])


def song_paths(count: int, source: Path | None = None) -> list[str]:
    """Up to ``count`` real song files, evenly spread over the source's list."""
    from samplecnn.export.audio_sets import list_audio, pick_evenly

    return [str(p) for p in pick_evenly(list_audio(source or evaluation_source()), count)]


# --- models ------------------------------------------------------------------------------------


def random_model(scale: str, width: float, seed: int = 0, n_tags: int = N_TAGS):
    """A SampleCNN with random weights and randomised BatchNorm statistics (as the tests do), eval mode."""
    import torch

    from samplecnn.trainer.model import SampleCNN, preset

    torch.manual_seed(seed)
    model = SampleCNN(preset(scale, n_tags=n_tags, width=width))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.05, 0.05), m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def random_checkpoints(workdir: Path, scales: tuple[str, ...], width: float, seed: int = 0) -> list[Path]:
    """Random-weight checkpoints of ``scales`` at ``width`` (written once, reused)."""
    from samplecnn.trainer.checkpoint import save_checkpoint

    paths = []
    for scale in scales:
        path = workdir / f"random_w{width:g}" / f"{scale.replace('^', '-')}.safetensors"
        if not path.is_file():
            save_checkpoint(path, random_model(scale, width, seed), [f"tag{i}" for i in range(N_TAGS)],
                            {"note": "random weights for speed benchmarks", "seed": seed})
        paths.append(path)
    return paths


def trained_checkpoints() -> list[Path]:
    """The default model's trained checkpoints (runs/mer4q/*/best.safetensors), [] if incomplete."""
    paths = [TRAINED_RUNS / s.replace("^", "-") / "best.safetensors" for s in PRESET_SCALES]
    return paths if all(p.is_file() for p in paths) else []


def _key(checkpoints: list[Path], options: dict) -> str:
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for path in checkpoints:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to a temporary file while the block runs (libmpg123 prints a
    line per damaged MP3 frame of the mer4q previews); replayed if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read()[-4000:].decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def cached_bundle(workdir: Path, name: str, checkpoints: list[Path], *, precisions=("fp32", "int8"), lowering: bool = True,
                  min_agreement: float = 0.0, log=print) -> Path:
    """A bundle of ``checkpoints`` exported through ``export_bundle`` (parity on real songs,
    int8 calibrated on mer4q train and judged on mer4q test), reused while its inputs match.

    ``min_agreement`` 0 by default: random-weight speed models only need a graph to time (their
    int8 agreement is recorded in the manifest, not enforced); pass 0.9 for trained models."""
    options = {"precisions": list(precisions), "lowering": lowering, "min_agreement": min_agreement,
               "audio": [str(evaluation_source()), str(calibration_source())]}
    if "int8" in precisions:  # a change of the int8 defaults (e.g. the float stem) is a different graph: export again
        from samplecnn.export.quantize import Int8Settings

        options["int8_settings"] = Int8Settings().to_dict()
    key = _key(checkpoints, options)
    out = workdir / "bundles" / f"{name}-{key}"
    if (out / "manifest.json").is_file():
        return out
    from samplecnn.export.bundle_writer import export_bundle

    t0 = time.perf_counter()
    with quiet_stderr():
        export_bundle([str(p) for p in checkpoints], out, precisions=tuple(precisions), lowering=lowering, min_agreement=min_agreement,
                      parity_audio=evaluation_source(), calibration=calibration_source() if "int8" in precisions else None)
    log(f"  exported {out.name} in {time.perf_counter() - t0:.0f} s")
    return out


def write_json(path: Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
