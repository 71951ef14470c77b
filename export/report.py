"""Human-readable views of an exported bundle: the CLI's summary table and MODEL_CARD.md."""

from __future__ import annotations

from pathlib import Path


def _parity_cell(scale: dict, precision: str) -> str:
    if precision == "int8":
        q = scale.get("quantization", {}).get("int8", {})
        if not q:
            return "-"
        return f"top-{q['top_k']} agree {q['top_k_agreement_mean']:.3f} (min {q['min_agreement']})"
    report = scale.get("parity", {}).get(precision)
    if not report:
        return "-"
    worst = max(report["outputs"].values(), key=lambda row: row["max_abs_diff"] / max(row["tolerance"], 1e-30))
    return f"{'ok' if report['passed'] else 'FAIL'} max|d| {worst['max_abs_diff']:.1e} <= {worst['tolerance']:.1e}"


def summary_table(manifest: dict, root: str | Path) -> str:
    """One row per scale and file: precision, graph, size, outputs, parity/agreement."""
    root = Path(root)
    rows = [("scale", "file", "precision", "graph", "MB", "outputs", "check")]
    for scale in manifest["scales"]:
        outputs = " ".join(f"{o['name']}({o['width']})" for o in scale["outputs"])
        for precision, file in scale["models"].items():
            size = (root / file).stat().st_size / 1e6
            rows.append((scale["name"], file, precision, scale.get("graph", {}).get(precision, "?"), f"{size:.2f}", outputs, _parity_cell(scale, precision)))
        for engine in scale.get("engines", []):
            size = (root / engine["file"]).stat().st_size / 1e6
            check = scale.get("quantization", {}).get("int8_engine", {}) if engine["precision"] == "int8" else scale.get("parity", {}).get(f"{engine['precision']}_engine", {})
            rows.append((scale["name"], engine["file"], engine["precision"], f"TensorRT {engine['tensorrt_version']}", f"{size:.2f}",
                         engine["gpu"], "ok" if check.get("passed") else "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def model_card(manifest: dict) -> str:
    """MODEL_CARD.md text for a bundle manifest (files, labels, checks, provenance)."""
    prov = manifest.get("provenance", {})
    lines = [
        "# samplecnn bundle",
        "",
        "Sample-level raw-waveform CNN backbones (Lee & Nam 2017, arXiv 1706.06810) exported by "
        f"samplecnn {prov.get('samplecnn_version', '?')}.",
        "",
        f"- Sample rate: {manifest['sample_rate']} Hz; pooling: {manifest['pooling']}",
        f"- Backbone labels ({len(manifest['backbone_labels'])}): {', '.join(manifest['backbone_labels'])}",
        f"- Training data: {prov.get('training_data') or 'not recorded'}",
        "",
        "## Scales",
        "",
    ]
    for scale in manifest["scales"]:
        lines.append(f"### {scale['name']} ({scale['segment_samples']} samples per segment)")
        lines.append("")
        for precision, file in scale["models"].items():
            lines.append(f"- `{file}` ({precision}, {scale.get('graph', {}).get(precision, '?')} graph): {_parity_cell(scale, precision)}")
        for engine in scale.get("engines", []):
            lines.append(f"- `{engine['file']}` (TensorRT {engine['tensorrt_version']}, {engine['gpu']}, compute {engine['compute_capability']}, "
                         f"from `{engine.get('onnx', '?')}`)")
        metrics = prov.get("metrics", {}).get(scale["name"])
        if metrics:
            lines.append(f"- Training metrics: {metrics}")
        lines.append("")
    lines += [
        "## Checks",
        "",
        "Every graph was compared with the PyTorch model on real audio at batch sizes other than the traced one "
        "(see `parity` in manifest.json); INT8 graphs were judged by top-5 tag agreement with fp32 on songs not "
        "used for calibration (see `quantization`).",
        "",
    ]
    return "\n".join(lines)
