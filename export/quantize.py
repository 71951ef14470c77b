"""Reduced-precision graphs: static INT8 (QDQ, per-channel, calibrated on real audio) for CPUs,
FP16 (fp32 inputs and outputs) for GPUs.

INT8 is judged where it matters, against the fp32 graph on songs NOT used for calibration:
per-output segment error, song-level tag-score error (segment-mean sigmoid(logits) per song)
and top-5 tag agreement per song. An INT8 graph whose agreement is below ``min_agreement`` is
refused with :class:`QuantizationError`; nothing downgrades it to a warning.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..runtime.atomic import atomic_path
from ..runtime.backends import open_graph_file, run_in_batches
from ..runtime.heads import sigmoid
from .audio_sets import Song
from .errors import ExportError
from .parity import compare

DEFAULT_MIN_AGREEMENT = 0.9
TOP_K = 5
CALIBRATION_BATCH = 8


class QuantizationError(ExportError):
    """A reduced-precision graph that does not agree well enough with fp32, or cannot be made."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        self.report = report or {}
        super().__init__(message)

    @property
    def exit_code(self) -> int:
        return 1 if self.report else 2  # with a report: the graph was made and judged, and failed


@dataclass(frozen=True)
class Int8Settings:
    """onnxruntime static quantization knobs; the defaults are the fastest measured here that
    keep agreement (``benchmarks/export_speed.py`` compares the alternatives).

    U8 activations x S8 weights is the VNNI/AMX fast path of onnxruntime's x86 kernels, so
    ``reduce_range`` (a 7-bit workaround for pre-VNNI CPUs) stays off. TensorRT needs other
    settings: :meth:`tensorrt`.
    """

    quant_format: str = "QDQ"  # or "QOperator"
    activation_type: str = "QUInt8"  # or "QInt8"
    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = False
    calibrate_method: str = "MinMax"  # or "Percentile", "Entropy" (slower, more memory)
    symmetric_activations: bool = False  # True: activation ranges symmetric around 0, zero point 0
    # The stem conv (1 input channel, k = stride = m) is 0.4% of the FLOPs, but as a QLinearConv
    # onnxruntime ran it at ~6 GOP/s: 30-43% of int8 time (benchmarks/op_profile.py). True keeps
    # it a float Conv (its output quantized before block 1; the waveform is never quantized):
    # faster at one thread in the profiler, ~25% slower in the default model's two-thread
    # pipeline, and more exact: with a quantized stem OpenVINO int8's top-5 agreement with fp32
    # fell to 0.875 on the test songs (gate 0.9). Exactness wins: on by default.
    stem_fp32: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def tensorrt(cls) -> "Int8Settings":
        """What TensorRT's ONNX parser takes: QDQ, signed int8 activations and weights, symmetric
        (every zero point 0), per-channel weights, float biases (no int32 bias DequantizeLinear). onnxruntime runs it too (slower than u8/s8),
        so the agreement gate judges it there before any engine is built."""
        return cls(quant_format="QDQ", activation_type="QInt8", weight_type="QInt8", per_channel=True, symmetric_activations=True)

    def extra_options(self) -> dict:
        if self.symmetric_activations:  # TensorRT: zero points 0; biases stay float (it has no int32 DQ)
            return {"ActivationSymmetric": True, "WeightSymmetric": True, "CalibTensorRangeSymmetric": True, "QuantizeBias": False}
        return {"CalibTensorRangeSymmetric": False}


class SegmentReader:
    """onnxruntime CalibrationDataReader over ``segments: (N, L)`` in batches of ``batch``."""

    def __init__(self, input_name: str, segments: np.ndarray, batch: int = CALIBRATION_BATCH) -> None:
        self.feeds = [{input_name: np.ascontiguousarray(segments[i : i + batch], dtype=np.float32)} for i in range(0, len(segments), batch)]
        self.position = 0

    def get_next(self) -> dict | None:
        if self.position >= len(self.feeds):
            return None
        self.position += 1
        return self.feeds[self.position - 1]

    def rewind(self) -> None:
        self.position = 0


def stem_convs(model_path: str | Path) -> list[str]:
    """Names of the Conv nodes that read one input channel (the waveform stem) in an ONNX graph."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    weights = {init.name: init for init in graph.initializer}
    return [node.name for node in graph.node
            if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in weights and weights[node.input[1]].dims[1] == 1]  # fmt: skip


def quantize_int8(
    fp32_path: str | Path, out_path: str | Path, calibration_segments: np.ndarray, *, input_name: str = "waveform", settings: Int8Settings = Int8Settings()
) -> Path:
    """Write a static INT8 graph of ``fp32_path`` to ``out_path``, calibrated on ``calibration_segments: (N, L)``.

    Runs onnxruntime's ``quant_pre_process`` (shape inference + graph optimisation) first.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_segments) == 0:
        raise QuantizationError("no calibration segments; pass --calibration with a folder or CSV of real songs")
    out_path = Path(out_path)

    class Reader(SegmentReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="samplecnn-quant-", dir=out_path.parent) as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        try:
            quant_pre_process(str(fp32_path), prepared)
            quantize_static(
                prepared,
                os.path.join(tmp, "int8.onnx"),
                Reader(input_name, calibration_segments),
                quant_format=getattr(QuantFormat, settings.quant_format),
                activation_type=getattr(QuantType, settings.activation_type),
                weight_type=getattr(QuantType, settings.weight_type),
                per_channel=settings.per_channel,
                reduce_range=settings.reduce_range,
                calibrate_method=getattr(CalibrationMethod, settings.calibrate_method),
                extra_options=settings.extra_options(),
                nodes_to_exclude=stem_convs(prepared) if settings.stem_fp32 else [],
                calibration_providers=["CPUExecutionProvider"],
            )
        except (AttributeError, ValueError, RuntimeError) as exc:
            raise QuantizationError(f"INT8 quantization of {fp32_path} with {settings} failed: {exc}") from exc
        os.replace(os.path.join(tmp, "int8.onnx"), out_path)
    return out_path


def convert_fp16(fp32_path: str | Path, out_path: str | Path) -> Path:
    """Write an FP16 copy of ``fp32_path`` (weights and activations fp16; inputs/outputs stay fp32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        onnx.save(half, tmp)
    return out_path


def song_scores(outputs: dict[str, np.ndarray], counts: list[int], logits_name: str = "logits") -> np.ndarray:
    """(n_songs, n_tags): segment-mean sigmoid(logits) per song (the runtime's backbone scores);
    ``counts`` segments per song, in order."""
    probs = sigmoid(outputs[logits_name].astype(np.float64))
    return np.add.reduceat(probs, np.cumsum([0] + counts[:-1]), axis=0) / np.asarray(counts)[:, None]


def top_k_agreement(reference: np.ndarray, candidate: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Per song: |top-k tags of reference ∩ top-k of candidate| / k, for (n_songs, n_tags) scores."""
    k = min(k, reference.shape[1])
    ref_top = np.argsort(-reference, axis=1)[:, :k]
    cand_top = np.argsort(-candidate, axis=1)[:, :k]
    return np.array([len(set(a) & set(b)) / k for a, b in zip(ref_top, cand_top)])


def evaluate_against_fp32(
    fp32_path: str | Path, candidate_path: str | Path, songs: list[Song], segment_samples: int, *, per_song: int = 8, batch_size: int = 5,
) -> dict:
    """Compare ``candidate_path`` with ``fp32_path`` on ``songs`` (held out from calibration).

    Both run in their serving backends (:func:`samplecnn.runtime.backends.open_graph_file`:
    onnxruntime for .onnx, TensorRT for a .plan candidate). Returns per-output segment error,
    song-level tag-score error and top-k agreement.
    """
    if not songs:
        raise QuantizationError("no evaluation songs; INT8 must be judged on songs not used for calibration")
    segments = [song.segments(segment_samples, per_song) for song in songs]
    counts = [len(s) for s in segments]
    stacked = np.concatenate(segments)
    with open_graph_file(fp32_path) as backend:
        reference = run_in_batches(backend, stacked, batch_size)
    with open_graph_file(candidate_path) as backend:
        candidate = run_in_batches(backend, stacked, batch_size)
    ref_scores, cand_scores = song_scores(reference, counts), song_scores(candidate, counts)
    agreement = top_k_agreement(ref_scores, cand_scores)
    score_error = np.abs(ref_scores - cand_scores)
    return {
        "reference": Path(fp32_path).name,
        "evaluation_songs": [s.name for s in songs],
        "evaluation_segments": int(len(stacked)),
        "outputs": compare(reference, candidate),
        "song_tag_score_max_abs_diff": float(score_error.max()),
        "song_tag_score_mean_abs_diff": float(score_error.mean()),
        "top_k": min(TOP_K, ref_scores.shape[1]),
        "top_k_agreement_mean": float(agreement.mean()),
        "top_k_agreement_min": float(agreement.min()),
        "top_k_agreement_per_song": {s.name: float(a) for s, a in zip(songs, agreement)},
    }


def check_agreement(report: dict, min_agreement: float, graph_file: str) -> dict:
    """Raise :class:`QuantizationError` if the mean top-k agreement in ``report`` is below ``min_agreement``."""
    # Above 1 is allowed and always refuses: a dry run that shows the report without publishing.
    if not np.isfinite(min_agreement) or min_agreement < 0.0:
        raise QuantizationError(f"min_agreement = {min_agreement}: must be a number >= 0, normally in [0, 1] (default {DEFAULT_MIN_AGREEMENT})")
    report = {**report, "min_agreement": min_agreement, "passed": report["top_k_agreement_mean"] >= min_agreement}
    if not report["passed"]:
        raise QuantizationError(
            f"{graph_file}: top-{report['top_k']} tag agreement with fp32 is {report['top_k_agreement_mean']:.3f} "
            f"(worst song {report['top_k_agreement_min']:.3f}) on {len(report['evaluation_songs'])} held-out songs, "
            f"below the required {min_agreement}; no bundle was written. Calibrate on more songs like the ones you "
            "will tag (--calibration), lower --min-agreement if this is acceptable, or export without int8",
            report,
        )
    return report


def check_tensorrt_qdq(path: str | Path) -> dict:
    """Refuse a QDQ graph TensorRT's ONNX parser would reject; returns counts for the manifest.

    Every QuantizeLinear/DequantizeLinear zero point must be int8 and 0 (TensorRT quantizes
    symmetrically to signed int8), and every quantized weight per-channel (a scale per output
    channel). Raises :class:`QuantizationError` naming the first offending nodes.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    bad_zero, per_tensor_weights, count = [], [], 0
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        count += 1
        zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zero is None or zero.dtype != np.int8 or np.any(zero != 0):
            bad_zero.append(f"{node.name} ({'no zero point' if zero is None else f'{zero.dtype} {np.unique(zero)[:3].tolist()}'})")
        if node.op_type == "DequantizeLinear" and node.input[0] in constants and constants[node.input[0]].ndim > 1:
            if np.size(constants[node.input[1]]) < 2:
                per_tensor_weights.append(node.name)
    problems = []
    if not count:
        problems.append("no QuantizeLinear/DequantizeLinear nodes (not a QDQ graph)")
    if bad_zero:
        problems.append(f"{len(bad_zero)} Q/DQ nodes without an int8 zero point of 0, e.g. {bad_zero[:3]}")
    if per_tensor_weights:
        problems.append(f"per-tensor weight quantization in {per_tensor_weights[:3]}")
    if problems:
        raise QuantizationError(f"{path} is not a TensorRT int8 graph: {'; '.join(problems)}. Quantize it with Int8Settings.tensorrt()")
    return {"qdq_nodes": count, "zero_points": "int8, all 0", "weights": "per-channel"}
