"""The paper's ablation: which layers (levels) and which scales the song vector should take.

Levels {last, last two, last three} x scales {each alone, all together}, each row fitted and
evaluated the same way (:func:`samplecnn.trainer.fit.fit_head`), reported on the test split
(or valid when there is none). With a bundle's spectral level, two more rows: it alone, and
all scales' last three levels with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..runtime.spectral import SPECTRAL
from .data import Dataset
from .fit import fit_head
from .song_classifier import ClassifierConfig

LEVEL_SETS = {"last": (1,), "last two": (1, 2), "last three": (1, 2, 3)}
METRICS = {"tags": ("roc_auc", "pr_auc"), "classes": ("accuracy", "macro_f1")}


def ablation_rows(
    splits: dict,
    dataset: Dataset,
    scales: list[str],
    available_levels: int,
    config: ClassifierConfig = ClassifierConfig(),
    label: str = "",
    log=print,
    spectral: bool = False,
) -> list[dict]:
    """One row per (level set, scale set): dims, the task's metrics on the evaluation split.

    ``spectral`` (the bundle has the spectral level, runtime/spectral.py): two more rows after
    the paper's, the spectral level alone and every scale's last three levels with it."""
    evaluation = "test" if "test" in splits else "valid"
    scale_sets = [[s] for s in scales] + ([list(scales)] if len(scales) > 1 else [])
    plan = [(scale_set, name, levels) for scale_set in scale_sets for name, levels in LEVEL_SETS.items()]
    if spectral:
        plan += [([SPECTRAL], "spectral", (1,)), ([*scales, SPECTRAL], "last three", LEVEL_SETS["last three"])]
    rows = []
    for scale_set, name, levels in plan:
        if max(levels) > available_levels:
            continue
        report = fit_head(splits, dataset, scale_set, list(levels), config)
        m = report.metrics[evaluation]
        row = {
            "backbones": label,
            "scales": scale_set_name(scale_set, scales),
            "levels": name,
            "spectral": SPECTRAL in scale_set,
            "dims": report.input_width,
            "split": evaluation,
            **{k: round(float(m[k]), 4) for k in METRICS[dataset.task]},
            "valid_" + METRICS[dataset.task][0]: round(float(report.metrics["valid"][METRICS[dataset.task][0]]), 4),
        }
        log(format_row(row, dataset.task))
        rows.append(row)
    return rows


def scale_set_name(scale_set: list[str], scales: list[str]) -> str:
    if scale_set == [*scales, SPECTRAL]:
        return f"{scale_set_name(list(scales), scales)} + {SPECTRAL}"
    joined = "+".join(scale_set)
    return f"all ({joined})" if len(scales) > 1 and len(scale_set) == len(scales) else joined


def format_row(row: dict, task: str) -> str:
    values = "  ".join(f"{k}={row[k]:.4f}" for k in METRICS[task])
    return f"{row['backbones']:<12} {row['scales']:<24} {row['levels']:<11} {row['dims']:>5}  {values}"


def best_gain(rows: list[dict], task: str) -> dict:
    """Multi-level + multi-scale (all scales, last three) against the best single-scale last layer."""
    key = METRICS[task][0]
    paper = [r for r in rows if not r.get("spectral")]  # the spectral level is not the paper's
    singles = [r for r in paper if r["levels"] == "last" and not r["scales"].startswith("all")]
    multi = [r for r in paper if r["levels"] == "last three" and r["scales"].startswith("all")]
    if not singles or not multi:
        return {}
    best_single = max(singles, key=lambda r: r[key])
    return {
        "metric": key,
        "multi_level_multi_scale": multi[0][key],
        "best_single_scale_last_layer": best_single[key],
        "best_single_scale": best_single["scales"],
        "gain": round(multi[0][key] - best_single[key], 4),
    }


def to_markdown(rows: list[dict], task: str, title: str = "") -> str:
    metrics = METRICS[task]
    header = ["backbones", "scales", "levels", "dims", *metrics]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {m: max(r[m] for r in rows) for m in metrics}
    for r in rows:
        cells = [str(r["backbones"]), r["scales"], r["levels"], str(r["dims"])]
        cells += [f"**{r[m]:.4f}**" if r[m] == best[m] else f"{r[m]:.4f}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_ablation(rows: list[dict], task: str, out: str | Path, title: str = "", extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``out``.json (rows + summary) and ``out``.md (the table)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"title": title, "task": task, "rows": rows, "gain": best_gain(rows, task), **(extra or {})}
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(json.dumps(summary, indent=2, default=lambda v: float(v) if isinstance(v, np.floating) else str(v)) + "\n")
    md_path.write_text(to_markdown(rows, task, title))
    return json_path, md_path
