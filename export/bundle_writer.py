"""Write a model bundle (see ``samplecnn.runtime.bundle`` for the contract) from checkpoints.

Per scale: the fp32 graph (the 2-D lowered graph by default, see ``lowering.py``), checked
against torch; optionally an FP16 graph (checked against torch, looser tolerance) and an INT8
graph (calibrated on real songs, judged on held-out songs); optionally TensorRT engines built
from those graphs (int8 from a signed symmetric QDQ graph, judged first on onnxruntime) and
checked too. Every check runs the runtime's serving backends; the manifest is a
:class:`samplecnn.runtime.bundle.BundleSpec` written by the runtime's one writer.

Everything is written into a temporary folder beside the destination and renamed into place
only when every file, hash and check is done, so a failed export (parity, agreement, TensorRT) never leaves half a bundle or replaces a good one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime._version import __version__ as samplecnn_version
from ..runtime.bundle import (
    PRECISIONS, BundleSpec, EngineSpec, OutputSpec, ScaleSpec, publish_folder_atomically, scale_file_stem, sha256_file, write_manifest,
)
from ..runtime.spectral import SpectralSpec
from ..trainer.checkpoint import Checkpoint, load_checkpoint
from ..trainer.model import INPUT_NAME, LOGITS_NAME
from .audio_sets import AudioSourceError, Song, content_digest, list_audio, load_songs, pick_evenly, split_holdout, stack_segments
from .errors import ExportError
from .report import model_card
from .onnx_export import OPSET, export_backbone
from .parity import TOLERANCES, check_parity, torch_reference
from .quantize import DEFAULT_MIN_AGREEMENT, Int8Settings, check_agreement, check_tensorrt_qdq, convert_fp16, evaluate_against_fp32, quantize_int8

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


def scale_spec(ckpt: Checkpoint, models: dict[str, str], **parts) -> ScaleSpec:
    """The manifest entry of one scale: outputs from the checkpoint's config, files and checks in ``parts``."""
    config = ckpt.config
    outputs = [OutputSpec(name, int(name[len("level"):]), width) for name, width in config.level_widths.items()]
    outputs.append(OutputSpec(LOGITS_NAME, 0, config.n_tags))
    return ScaleSpec(config.name, config.segment_samples, INPUT_NAME, models, tuple(outputs), config=json.loads(config.to_json()), **parts)


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


@dataclass
class ScaleExport:
    """One scale while it is exported: its model, parity segments and torch reference, and what is written."""

    ckpt: Checkpoint
    model: object
    segments: np.ndarray
    reference: dict
    songs: list[str]
    models: dict = field(default_factory=dict)
    graph: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    quantization: dict = field(default_factory=dict)
    extra_graphs: dict = field(default_factory=dict)
    engines: list = field(default_factory=list)

    def spec(self) -> ScaleSpec:
        return scale_spec(self.ckpt, self.models, graph=self.graph, parity=self.parity, quantization=self.quantization,
                          extra_graphs=self.extra_graphs, engines=tuple(EngineSpec.from_dict(e) for e in self.engines))


def export_scale(
    ckpt: Checkpoint, staging: Path, *, precisions, engine: str, graph: str, parity_songs, calibration_songs, evaluation_songs,
    audio_source: str, min_agreement: float, int8_settings: Int8Settings,
) -> ScaleExport:
    """Export and check every ONNX graph of one scale into ``staging`` (engines come later)."""
    config = ckpt.config
    model = ckpt.build_model()
    stem = scale_file_stem(config.name)
    segments = stack_segments(parity_songs, config.segment_samples, PARITY_SEGMENTS_PER_SONG)
    scale = ScaleExport(ckpt, model, segments, torch_reference(model, segments), [s.name for s in parity_songs])

    def add_model(precision: str, file: str, report: dict | None) -> None:
        scale.models[precision] = file
        scale.graph[precision] = graph
        if report is not None:
            scale.parity[precision] = {**report, "audio": audio_source}

    def parity(file: str, precision: str) -> dict:
        return check_parity(model, staging / file, segments, precision=precision, graph=graph, reference=scale.reference, songs=scale.songs)

    fp32_file = f"{stem}.fp32.onnx"
    export_backbone(model, staging / fp32_file, graph=graph)
    add_model("fp32", fp32_file, parity(fp32_file, "fp32"))
    if "fp16" in precisions:
        file = f"{stem}.fp16.onnx"
        convert_fp16(staging / fp32_file, staging / file)
        add_model("fp16", file, parity(file, "fp16"))
    if "int8" not in precisions:
        return scale
    calibration_segments = stack_segments(calibration_songs, config.segment_samples, CALIBRATION_SEGMENTS_PER_SONG)

    def int8_graph(file: str, settings: Int8Settings) -> dict:
        """Quantize, then judge on held-out songs on onnxruntime (the agreement gate)."""
        quantize_int8(staging / fp32_file, staging / file, calibration_segments, input_name=INPUT_NAME, settings=settings)
        report = check_agreement(evaluate_against_fp32(staging / fp32_file, staging / file, evaluation_songs, config.segment_samples), min_agreement, file)
        return {"method": "static", "settings": settings.to_dict(), "calibration_songs": [s.name for s in calibration_songs],
                "calibration_segments": int(len(calibration_segments)), **report}

    add_model("int8", f"{stem}.int8.onnx", None)
    scale.quantization["int8"] = int8_graph(scale.models["int8"], int8_settings)
    if engine == "trt":  # TensorRT's parser needs signed symmetric QDQ, not onnxruntime's fast u8/s8 graph
        file = f"{stem}.int8-trt.onnx"
        scale.quantization["int8_trt"] = {**int8_graph(file, Int8Settings.tensorrt()), "graph_check": check_tensorrt_qdq(staging / file)}
        scale.extra_graphs["int8_trt"] = file
    return scale


def build_checked_engines(scale: ScaleExport, staging: Path, evaluation_songs, trt_options: dict) -> None:
    """Build a TensorRT engine of each precision and check it like its ONNX graph, in the serving backend."""
    from .tensorrt import build_engine

    sources = {**scale.models, **({"int8": scale.extra_graphs["int8_trt"]} if "int8_trt" in scale.extra_graphs else {})}
    for precision in [p for p in PRECISIONS if p in sources]:
        plan = staging / f"{scale_file_stem(scale.ckpt.config.name)}.{precision}.plan"
        spec = build_engine(staging / sources[precision], plan, precision=precision, input_name=INPUT_NAME,
                            segment_samples=scale.ckpt.config.segment_samples, **trt_options)  # fmt: skip
        if precision == "int8":
            report = evaluate_against_fp32(staging / scale.models["fp32"], plan, evaluation_songs, scale.ckpt.config.segment_samples)
            scale.quantization["int8_engine"] = check_agreement(report, scale.quantization["int8_trt"]["min_agreement"], plan.name)
        else:
            # TensorRT runs fp32 layers in TF32 by default (10-bit mantissa): judge it like fp16.
            scale.parity[f"{precision}_engine"] = check_parity(
                scale.model, plan, scale.segments, precision=precision, graph="tensorrt", tolerance=TOLERANCES["fp16"],
                reference=scale.reference, songs=scale.songs, runtime=spec["gpu"],
            )
        scale.engines.append(spec)


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
    spectral: bool = True,
    _songs: tuple | None = None,
) -> Path:
    """Export ``checkpoints`` (one per scale) into a new, verified bundle at ``out``; returns ``out``.

    ``precisions`` of ONNX graphs to write (fp32 always); ``engine="trt"`` also builds a
    TensorRT engine of each. ``parity_audio``/``calibration``: folder, CSV or audio file of
    real songs. ``spectral``: give the song vector the spectral level (runtime/spectral.py). Raises ExportError subclasses (ParityError, QuantizationError, TensorRTError,
    AudioSourceError) or CheckpointError; on any error nothing is written at ``out``.
    """
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
                audio_source=source, min_agreement=min_agreement, int8_settings=int8_settings,
            )
            for _, ckpt in loaded
        ]
        if engine == "trt":  # every ONNX graph has passed its checks before any engine is built
            for scale in scales:
                build_checked_engines(scale, staging, evaluation_songs, trt_options or {})
        spec = BundleSpec(
            sample_rate=sample_rate, scales=tuple(s.spec() for s in scales), backbone_labels=tuple(loaded[0][1].labels),
            provenance=provenance(loaded, training_data), extra_files=("MODEL_CARD.md",),
            spectral=SpectralSpec() if spectral else None,
        )  # fmt: skip
        (staging / "MODEL_CARD.md").write_text(model_card(spec.to_dict()))
        write_manifest(staging, spec)
        publish_folder_atomically(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def provenance(loaded: list[tuple[Path, Checkpoint]], training_data: str | None) -> dict:
    """Where the bundle comes from. No clock times: the same inputs give the same manifest."""
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
