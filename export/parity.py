"""Parity validation that blocks: torch (the checkpoint's model, unfolded, eval) vs the exported
graph run by the runtime's own serving backend (onnxruntime for ONNX, TensorRT for engines).

Every output of the exported graph is compared with torch on real audio segments, at batch
sizes other than the traced one (2), so a graph that baked a batch dimension in fails here and
not in production. Per output the max and mean absolute difference are checked against
``atol + rtol * max|torch output|``; every failing output is collected into one
:class:`ParityError` that names each of them. The report (a JSON-able dict) goes into the
bundle manifest under the scale's ``parity[precision]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..runtime.backends import open_graph_file, run_in_batches
from ..trainer.model import SampleCNN
from .errors import ExportCheckFailed, ExportError

BATCH_SIZES = (1, 5)  # the graph is traced at batch 2; 5 also leaves a ragged last batch


@dataclass(frozen=True)
class Tolerance:
    """An output passes when max |onnx - torch| <= atol + rtol * max |torch|."""

    atol: float
    rtol: float

    def limit(self, reference: np.ndarray) -> float:
        return self.atol + self.rtol * float(np.abs(reference).max(initial=0.0))


# fp32: BN folding and kernel choice reorder float sums; 1e-4 relative is ~1000x the observed
# ~1e-7 and far below any change a real bug causes. fp16: 10-bit mantissa over ~12 layers.
TOLERANCES = {"fp32": Tolerance(atol=1e-5, rtol=1e-4), "fp16": Tolerance(atol=1e-3, rtol=2e-2)}


class ParityError(ExportCheckFailed):
    """An exported graph whose outputs differ from torch's. ``failures`` lists every failing output."""

    def __init__(self, graph_file: str, report: dict) -> None:
        self.graph_file = graph_file
        self.report = report
        self.failures = [name for name, row in report["outputs"].items() if not row["passed"]]
        details = "; ".join(
            f"{name}: max |diff| {report['outputs'][name]['max_abs_diff']:.3g} > tolerance "
            f"{report['outputs'][name]['tolerance']:.3g} (mean {report['outputs'][name]['mean_abs_diff']:.3g}, "
            f"batch {report['outputs'][name]['worst_batch_size']})"
            for name in self.failures
        )
        super().__init__(
            f"parity check failed for {graph_file} ({report['precision']}, {report['graph']} graph) against torch on "
            f"{report['segments']} real audio segments: {details}. The exported graph does not compute what the "
            "checkpoint computes, so no bundle was written; re-export, and if it fails again report a bug with this message"
        )


def torch_reference(model: SampleCNN, segments: np.ndarray) -> dict[str, np.ndarray]:
    """``model`` (eval) on ``segments: (N, L)`` -> {output name: (N, width)} float32."""
    model = model.eval()
    outputs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, len(segments), 16):
            batch = model(torch.from_numpy(np.ascontiguousarray(segments[start : start + 16])))
            for name, value in batch.items():
                outputs.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def compare(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per output: max and mean absolute difference. A missing or misshapen output is a failure."""
    rows = {}
    for name, ref in reference.items():
        got = actual.get(name)
        if got is None or got.shape != ref.shape:
            rows[name] = {"max_abs_diff": float("inf"), "mean_abs_diff": float("inf"),
                          "problem": f"shape {None if got is None else got.shape}, expected {ref.shape}"}
            continue
        diff = np.abs(got.astype(np.float64) - ref)
        finite = bool(np.isfinite(got).all())
        rows[name] = {"max_abs_diff": float(diff.max()) if finite else float("inf"), "mean_abs_diff": float(diff.mean()) if finite else float("inf")}
    return rows


def check_parity(
    model: SampleCNN,
    onnx_path: str | Path,
    segments: np.ndarray,
    *,
    precision: str = "fp32",
    graph: str = "conv2d",
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    tolerance: Tolerance | None = None,
    reference: dict[str, np.ndarray] | None = None,
    songs: list[str] | None = None,
    runtime: str | None = None,
) -> dict:
    """Compare ``onnx_path`` (an ONNX graph or a TensorRT engine) with ``model`` on
    ``segments: (N, segment_samples)`` at each batch size.

    The file runs in the serving backend for it (:func:`samplecnn.runtime.backends.open_graph_file`:
    onnxruntime on CPU for .onnx, TensorRT for .plan), exactly as inference runs it; ``runtime``
    adds a note (e.g. the GPU) to the report's description of it. Returns the report dict;
    raises :class:`ParityError` (carrying the report) if any output is out of tolerance at any
    batch size. ``reference`` reuses a torch run of the same segments.
    """
    if segments.ndim != 2 or segments.shape[1] != model.config.segment_samples:
        raise ExportError(f"parity segments have shape {segments.shape}; expected (N, {model.config.segment_samples}) for {model.config.name}")
    if tolerance is None:
        if precision not in TOLERANCES:
            raise ExportError(f"no parity tolerance for precision {precision!r}; known: {sorted(TOLERANCES)} (int8 is checked by agreement, see quantize.py)")
        tolerance = TOLERANCES[precision]
    reference = reference if reference is not None else torch_reference(model, segments)
    worst: dict[str, dict] = {}
    with open_graph_file(onnx_path, precision=precision) as backend:
        runtime = backend.description + (f" on {runtime}" if runtime else "")
        runs = {batch_size: run_in_batches(backend, segments, batch_size) for batch_size in batch_sizes}
    for batch_size, actual in runs.items():
        for name, row in compare(reference, actual).items():
            if name not in worst or row["max_abs_diff"] > worst[name]["max_abs_diff"]:
                worst[name] = {**row, "worst_batch_size": batch_size}
    outputs = {}
    for name, row in worst.items():
        limit = tolerance.limit(reference[name])
        outputs[name] = {**row, "tolerance": limit, "passed": row["max_abs_diff"] <= limit}
    report = {
        "reference": "torch (checkpoint model, eval, unfolded)",
        "runtime": runtime,
        "precision": precision,
        "graph": graph,
        "batch_sizes": list(batch_sizes),
        "segments": int(len(segments)),
        "songs": list(songs or []),
        "atol": tolerance.atol,
        "rtol": tolerance.rtol,
        "outputs": outputs,
        "passed": all(row["passed"] for row in outputs.values()),
    }
    if not report["passed"]:
        raise ParityError(Path(onnx_path).name, report)
    return report
