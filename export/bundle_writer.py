"""Write a model bundle (see ``samplecnn.runtime.bundle`` for the contract) from checkpoints.

Per scale: the fp32 graph (the 2-D lowered graph by default, see ``lowering.py``), checked
against torch; optionally an FP16 graph (checked against torch, looser tolerance) and an INT8
graph (calibrated on real songs, judged on held-out songs); optionally TensorRT engines built
from those graphs and checked too. Everything is written into a temporary folder beside the
destination and renamed into place only when every file, hash and check is done, so a failed
export (parity, agreement, TensorRT) never leaves half a bundle or replaces a good one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..runtime._version import __version__ as samplecnn_version
from ..runtime.bundle import FORMAT, PRECISIONS, SCHEMA_VERSION, publish_folder_atomically, scale_file_stem, sha256_file, write_manifest_atomically
from ..trainer.checkpoint import Checkpoint, load_checkpoint
from ..trainer.model import INPUT_NAME, LOGITS_NAME
from .audio_sets import AudioSourceError, Song, content_digest, list_audio, load_songs, pick_evenly, split_holdout, stack_segments
from .errors import ExportError
from .report import model_card
from .onnx_export import OPSET, export_backbone
from .parity import TOLERANCES, check_parity, torch_reference
from .quantize import DEFAULT_MIN_AGREEMENT, Int8Settings, check_agreement, convert_fp16, evaluate_against_fp32, quantize_int8

ENGINES = ("onnx", "trt")
PARITY_SEGMENTS_PER_SONG = 2
PARITY_MAX_SONGS = 6
CALIBRATION_SEGMENTS_PER_SONG = 4
CALIBRATION_MAX_SONGS = 32


def check_compatible(checkpoints: list[tuple[Path, Checkpoint]]) -> None:
    """Scales of one bundle must share sample rate and labels and differ in scale."""
    if not checkpoints:
        raise ExportError("no checkpoints given; pass one checkpoint per scale (e.g. runs/3^9/best.safetensors)")
    first_path, first = checkpoints[0]
    seen: dict[str, Path] = {}
    for path, ckpt in checkpoints:
        if ckpt.config.sample_rate != first.config.sample_rate:
            raise ExportError(
                f"{path} runs at {ckpt.config.sample_rate} Hz but {first_path} at {first.config.sample_rate} Hz; "
                "all scales of a bundle must share one sample rate: retrain one of them"
            )
        if list(ckpt.labels) != list(first.labels):
            raise ExportError(f"{path} was trained on other labels than {first_path}; a bundle's scales must share their labels")
        if ckpt.config.name in seen:
            raise ExportError(f"{path} and {seen[ckpt.config.name]} are both scale {ckpt.config.name}; give one checkpoint per scale")
        seen[ckpt.config.name] = path


def scale_entry(ckpt: Checkpoint, models: dict[str, str]) -> dict:
    config = ckpt.config
    outputs = [{"name": name, "level": int(name[len("level"):]), "width": width} for name, width in config.level_widths.items()]
    outputs.append({"name": LOGITS_NAME, "level": 0, "width": config.n_tags})
    return {
        "name": config.name,
        "segment_samples": config.segment_samples,
        "input_name": INPUT_NAME,
        "config": json.loads(config.to_json()),
        "models": models,
        "graph": {},
        "engines": [],
        "outputs": outputs,
        "parity": {},
        "quantization": {},
    }


def synthetic_songs(sample_rate: int, seconds: float = 8.0, count: int = 3) -> list[Song]:
    """Deterministic test signals (chords + noise bursts) for :func:`write_bundle` without real audio."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    songs = []
    for i in range(count):
        tones = sum(np.sin(2 * np.pi * f * (i + 1) * t) for f in (110.0, 220.0 * 1.26, 330.0 * 1.5))
        bursts = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.6)
        songs.append(Song(f"synthetic_{i}", (0.2 * tones + 0.05 * bursts).astype(np.float32)))
    return songs


def plan_audio(sample_rate: int, parity_audio, calibration, need_int8: bool) -> tuple[list[Song], list[Song], list[Song], str]:
    """(parity songs, calibration songs, held-out evaluation songs, description of the parity audio)."""
    if parity_audio is None and calibration is None:
        raise ExportError(
            "parity checks need real audio: pass --parity-audio (or parity_audio=) with a folder or CSV of songs "
            "like the ones you will tag (--calibration is used when given)"
        )
    if need_int8 and calibration is None:
        raise ExportError("int8 needs calibration audio: pass --calibration FOLDER_OR_CSV with real songs (e.g. part of the training set)")
    if calibration is None:
        return load_songs(parity_audio, sample_rate, max_songs=PARITY_MAX_SONGS), [], [], str(parity_audio)
    calibration_files = pick_evenly(list_audio(calibration), CALIBRATION_MAX_SONGS)
    held_out: list[Path] = []
    if parity_audio is not None:  # songs used for calibration (even as copies elsewhere) are not held out
        used = {content_digest(p) for p in calibration_files}
        held_out = [p for p in list_audio(parity_audio) if content_digest(p) not in used]
    if held_out:
        calibration_songs = load_songs(calibration_files, sample_rate)
        evaluation_songs = load_songs(held_out, sample_rate, max_songs=CALIBRATION_MAX_SONGS)
    else:  # no separate evaluation songs: hold out every third calibration song
        calibration_songs, evaluation_songs = split_holdout(load_songs(calibration_files, sample_rate))
    parity_songs = evaluation_songs if parity_audio is not None else calibration_songs
    source = str(parity_audio if parity_audio is not None else calibration)
    return parity_songs[:PARITY_MAX_SONGS], calibration_songs, evaluation_songs, source


def export_scale(
    ckpt: Checkpoint, staging: Path, *, precisions, engine: str, graph: str, parity_songs, calibration_songs, evaluation_songs,
    audio_source: str, min_agreement: float, int8_settings: Int8Settings, trt_options: dict,
) -> dict:
    """Export, check and record every file of one scale into ``staging``; returns its manifest entry."""
    config = ckpt.config
    model = ckpt.build_model()
    stem = scale_file_stem(config.name)
    entry = scale_entry(ckpt, {})
    segments = stack_segments(parity_songs, config.segment_samples, PARITY_SEGMENTS_PER_SONG)
    reference = torch_reference(model, segments)
    names = [s.name for s in parity_songs]

    def add_model(precision: str, file: str, report: dict | None) -> None:
        entry["models"][precision] = file
        entry["graph"][precision] = graph
        if report is not None:
            entry["parity"][precision] = {**report, "audio": audio_source}

    fp32_file = f"{stem}.fp32.onnx"
    export_backbone(model, staging / fp32_file, graph=graph)
    add_model("fp32", fp32_file, check_parity(model, staging / fp32_file, segments, graph=graph, reference=reference, songs=names))
    if "fp16" in precisions:
        file = f"{stem}.fp16.onnx"
        convert_fp16(staging / fp32_file, staging / file)
        add_model("fp16", file, check_parity(model, staging / file, segments, precision="fp16", graph=graph, reference=reference, songs=names))
    if "int8" in precisions:
        file = f"{stem}.int8.onnx"
        calibration_segments = stack_segments(calibration_songs, config.segment_samples, CALIBRATION_SEGMENTS_PER_SONG)
        started = time.perf_counter()
        quantize_int8(staging / fp32_file, staging / file, calibration_segments, input_name=INPUT_NAME, settings=int8_settings)
        report = evaluate_against_fp32(staging / fp32_file, staging / file, evaluation_songs, config.segment_samples)
        report = check_agreement(report, min_agreement, file)
        add_model("int8", file, None)
        entry["quantization"]["int8"] = {
            "method": "static", "settings": int8_settings.to_dict(), "calibration_songs": [s.name for s in calibration_songs],
            "calibration_segments": int(len(calibration_segments)), "seconds": round(time.perf_counter() - started, 2), **report,
        }
    if engine == "trt":
        entry["tensorrt_builds"] = []
        for precision in [p for p in PRECISIONS if p in entry["models"]]:
            entry["engines"].append(build_checked_engine(model, staging, entry, precision, segments, reference, names, evaluation_songs, trt_options))
            entry["tensorrt_builds"].append(entry["engines"][-1].pop("build"))
    return entry


def build_checked_engine(model, staging: Path, entry: dict, precision: str, segments, reference, names, evaluation_songs, trt_options: dict) -> dict:
    """Build the TensorRT engine of ``precision`` and check it like its ONNX graph (parity or agreement)."""
    from .tensorrt import build_engine, run_engine

    onnx_file = entry["models"][precision]
    plan = staging / onnx_file.replace(".onnx", ".plan")
    spec = build_engine(staging / onnx_file, plan, precision=precision, input_name=INPUT_NAME, segment_samples=entry["segment_samples"], **trt_options)

    def runner(batch: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        return run_engine(plan, INPUT_NAME, batch, batch_size)

    if precision == "int8":
        report = evaluate_against_fp32(staging / entry["models"]["fp32"], plan, evaluation_songs, entry["segment_samples"], candidate_runner=runner)
        entry["quantization"][f"int8_engine"] = check_agreement(report, entry["quantization"]["int8"]["min_agreement"], plan.name)
    else:
        # TensorRT runs fp32 layers in TF32 by default (10-bit mantissa): judge it like fp16.
        entry["parity"][f"{precision}_engine"] = check_parity(
            model, plan, segments, precision=precision, graph="tensorrt", tolerance=TOLERANCES["fp16"], reference=reference,
            songs=names, runner=runner, runtime=f"TensorRT {spec['tensorrt_version']} on {spec['gpu']}",
        )
    return spec


def export_bundle(
    checkpoints: list[str | Path],
    out: str | Path,
    *,
    precisions: tuple[str, ...] = ("fp32",),
    engine: str = "onnx",
    parity_audio: str | Path | None = None,
    calibration: str | Path | None = None,
    lowering: bool = True,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    training_data: str | None = None,
    int8_settings: Int8Settings = Int8Settings(),
    trt_options: dict | None = None,
    _songs: tuple | None = None,
) -> Path:
    """Export ``checkpoints`` (one per scale) into a new, verified bundle at ``out``; returns ``out``.

    ``precisions`` of ONNX graphs to write (fp32 always); ``engine="trt"`` also builds a
    TensorRT engine of each. ``parity_audio``/``calibration``: folder, CSV or audio file of
    real songs. Raises ExportError subclasses (ParityError, QuantizationError, TensorRTError,
    AudioSourceError) or CheckpointError; on any error nothing is written at ``out``.
    """
    started = time.perf_counter()
    precisions = tuple(dict.fromkeys(("fp32", *precisions)))
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ExportError(f"precision {unknown[0]!r} is not one of {PRECISIONS}")
    if engine not in ENGINES:
        raise ExportError(f"engine {engine!r} is not one of {ENGINES}; 'onnx' writes ONNX graphs, 'trt' also builds TensorRT engines")
    if engine == "trt":
        from .tensorrt import import_tensorrt

        import_tensorrt()  # fail before minutes of export, not after
    out = Path(out)
    loaded = [(Path(p), load_checkpoint(p)) for p in checkpoints]
    check_compatible(loaded)
    sample_rate = loaded[0][1].config.sample_rate
    if _songs is not None:
        parity_songs, calibration_songs, evaluation_songs, source = _songs
    else:
        parity_songs, calibration_songs, evaluation_songs, source = plan_audio(sample_rate, parity_audio, calibration, "int8" in precisions)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging.", dir=out.parent))
    try:
        scales = [
            export_scale(
                ckpt, staging, precisions=precisions, engine=engine, graph="conv2d" if lowering else "conv1d",
                parity_songs=parity_songs, calibration_songs=calibration_songs, evaluation_songs=evaluation_songs,
                audio_source=source, min_agreement=min_agreement, int8_settings=int8_settings, trt_options=trt_options or {},
            )
            for _, ckpt in loaded
        ]
        manifest = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "sample_rate": sample_rate,
            "pooling": {"segment": "max", "song": "mean"},
            "backbone_labels": list(loaded[0][1].labels),
            "scales": scales,
            "heads": [],
            "provenance": provenance(loaded, training_data, time.perf_counter() - started),
            "extra_files": ["MODEL_CARD.md"],
        }
        (staging / "MODEL_CARD.md").write_text(model_card(manifest))
        write_manifest_atomically(staging, manifest)
        publish_folder_atomically(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def provenance(loaded: list[tuple[Path, Checkpoint]], training_data: str | None, seconds: float) -> dict:
    import onnx
    import onnxruntime
    import torch

    checkpoints = {
        ckpt.config.name: {"file": path.name, "sha256": sha256_file(path), "training": ckpt.training} for path, ckpt in loaded
    }
    recorded = {ckpt.training.get("training_data") or ckpt.training.get("dataset") for _, ckpt in loaded} - {None}
    return {
        "samplecnn_version": samplecnn_version,
        "checkpoints": checkpoints,
        "training_data": training_data if training_data is not None else (sorted(map(str, recorded)) or None),
        "metrics": {ckpt.config.name: ckpt.training.get("metrics", {}) for _, ckpt in loaded},
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "export_seconds": round(seconds, 1),
        "tools": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "opset": OPSET},
    }


def write_bundle(checkpoint_paths: list[str | Path], out: str | Path, *, training_data: str | None = None, parity_audio: str | Path | None = None, **options) -> Path:
    """fp32 bundle of ``checkpoint_paths`` at ``out`` (:func:`export_bundle` with defaults).

    Without ``parity_audio`` the parity check runs on deterministic synthetic test signals and
    the manifest's parity reports say so (``"audio": "synthetic ..."``); the CLI always
    requires real audio.
    """
    if parity_audio is not None or options.get("calibration") is not None:
        return export_bundle(checkpoint_paths, out, training_data=training_data, parity_audio=parity_audio, **options)
    sample_rate = load_checkpoint(checkpoint_paths[0]).config.sample_rate if checkpoint_paths else 22050
    songs = (synthetic_songs(sample_rate), [], [], "synthetic test signals (chords + noise bursts); pass parity_audio for real songs")
    return export_bundle(checkpoint_paths, out, training_data=training_data, _songs=songs, **options)


__all__ = ["AudioSourceError", "ENGINES", "ExportError", "check_compatible", "export_bundle", "write_bundle"]
