"""The bundle schema both ways (typed read, one writer): round trips, content-addressed heads,
and the same bundle built twice from the same inputs is the same bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from samplecnn.export.bundle_writer import write_bundle
from samplecnn.runtime.bundle import Bundle, BundleError, BundleSpec, HeadSpec, write_manifest
from samplecnn.runtime.bundle_write import add_head
from samplecnn.runtime.tagger import DEFAULT_MODEL, Tagger

ROOT = Path(__file__).resolve().parents[2]


def head_weights(width: int, n_labels: int, seed: int):
    rng = np.random.default_rng(seed)
    layers = [(rng.normal(size=(8, width)), rng.normal(size=8)), (rng.normal(size=(n_labels, 8)), rng.normal(size=n_labels))]
    return rng.normal(size=width), np.full(width, 2.0), layers


def genre_head(bundle: Bundle) -> HeadSpec:
    scale = bundle.scales[0]
    width = sum(o.width for o in scale.level_outputs)
    return HeadSpec("genre", "classes", ("a", "b", "c"), "", (scale.name,), tuple(o.level for o in scale.level_outputs), width)


def build(checkpoint, out: Path, data_dir: Path) -> Path:
    """Export, add a head, write the model card: what experiments/default_model.sh does, in small."""
    write_bundle([checkpoint], out, parity_audio=data_dir, training_data="tests")
    head = genre_head(Bundle.load(out))
    add_head(out, head, *head_weights(head.input_width, 3, seed=0))
    card = [sys.executable, str(ROOT / "experiments" / "model_card.py"), str(out)]  # the card without the optional inputs (sources, evaluation, ablation)
    subprocess.run(card, check=True, capture_output=True, text=True)
    return out


def test_the_same_bundle_built_twice_is_byte_identical(tiny_checkpoints, data_dir, tmp_path):
    first = build(tiny_checkpoints[1], tmp_path / "first", data_dir)
    second = build(tiny_checkpoints[1], tmp_path / "second", data_dir)
    files = sorted(p.name for p in first.iterdir())
    assert files == sorted(p.name for p in second.iterdir())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), f"{name} differs between two builds"
    bundle = Bundle.load(second)
    (head,) = bundle.heads
    digest = json.loads((second / "manifest.json").read_text())["files"][head.file]
    assert head.file == f"head_genre.{digest[:16]}.safetensors"  # named by its content
    assert "MODEL_CARD.md" in bundle.spec.extra_files and "exported_at" not in bundle.spec.provenance


def test_replacing_a_head_removes_the_old_file_and_keeps_order(tiny_bundle, tmp_path):
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    head = genre_head(Bundle.load(root))
    first = add_head(root, head, *head_weights(head.input_width, 3, seed=0))
    add_head(root, replace(head, name="mood"), *head_weights(head.input_width, 3, seed=1))
    again = add_head(root, head, *head_weights(head.input_width, 3, seed=0))
    assert again == first  # same weights, same file name
    changed = add_head(root, head, *head_weights(head.input_width, 3, seed=2))
    bundle = Bundle.load(root)
    assert [h.name for h in bundle.heads] == ["mood", "genre"]
    assert not first.exists() and changed.exists() and len(list(root.glob("head_*.safetensors"))) == 2
    with Tagger(bundle) as tagger:
        assert [h.spec.name for h in tagger.heads] == ["mood", "genre"]


def test_head_of_the_wrong_width_is_refused(tiny_bundle, tmp_path):
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    head = genre_head(Bundle.load(root))
    with pytest.raises(BundleError, match="weights take"):
        add_head(root, head, *head_weights(head.input_width + 1, 3, seed=0))
    assert Bundle.load(root).heads == ()


@pytest.mark.parametrize("which", ["tiny", "default"])
def test_every_written_field_is_parsed_and_written_back(tiny_bundle, which):
    root = tiny_bundle if which == "tiny" else DEFAULT_MODEL
    if not (root / "manifest.json").is_file():
        pytest.skip("no default model installed")
    manifest = json.loads((root / "manifest.json").read_text())
    spec = Bundle.load(root).spec
    assert spec.to_dict() == {k: v for k, v in manifest.items() if k != "files"}
    assert sorted(spec.files()) == sorted(manifest["files"])
    assert all(s.graph for s in spec.scales) and spec.pooling.to_dict() == {"segment": "max", "song": "mean"}


def test_unknown_pooling_and_unlisted_files_are_refused(tiny_bundle, tmp_path):
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    manifest = json.loads((root / "manifest.json").read_text())
    with pytest.raises(BundleError, match=r"pooling .* is not supported"):
        BundleSpec.from_dict({**manifest, "pooling": {"segment": "mean", "song": "mean"}})
    spec = Bundle.load(root).spec
    with pytest.raises(BundleError, match=r"names files that are not there: \['NOTES.md'\]"):
        write_manifest(root, replace(spec, extra_files=(*spec.extra_files, "NOTES.md")))
    Bundle.load(root)  # untouched


def test_model_card_follows_a_backbone_through_its_stages(tiny_checkpoints, data_dir, tmp_path):
    """The card's training table lists every stage of a backbone by following each checkpoint's
    --init (here: trained, continued on more audio, widened), with the width of each and the
    command that re-runs it."""
    from samplecnn.trainer.checkpoint import load_checkpoint, save_checkpoint
    from samplecnn.trainer.model import SampleCNN
    from samplecnn.trainer.widen import widen_state

    start = load_checkpoint(tiny_checkpoints[1])
    runs = tmp_path / "runs"
    first = save_checkpoint(runs / "distill" / "x" / "best.safetensors", start.build_model(), start.labels,
                            {"epochs": 3, "train_seconds": 600, "command": f"samplecnn train --out {runs}/distill/x"})  # fmt: skip
    more = save_checkpoint(runs / "more" / "x" / "last.safetensors", start.build_model(), start.labels,
                           {"epochs": 2, "train_seconds": 300, "init": str(first), "command": f"samplecnn train --init {first} --out {runs}/more/x"})  # fmt: skip
    wide_config = replace(start.config, width=2 * start.config.width)
    wide = SampleCNN(wide_config)
    wide.load_state_dict(widen_state(start.state_dict, start.config, wide_config))
    last = save_checkpoint(runs / "wide" / "x" / "best.safetensors", wide.eval(), start.labels,
                           {"epochs": 1, "train_seconds": 120, "init": str(more), "command": f"samplecnn train --init {more} --width 0.25 --out {runs}/wide/x"})  # fmt: skip
    card = build(last, tmp_path / "bundle", data_dir) / "MODEL_CARD.md"
    text = card.read_text()
    rows = [line for line in text.splitlines() if line.startswith(f"| {start.config.name} |")]
    assert [row.split(" | ")[1:3] for row in rows] == [["1: MTT", "0.125"], ["2: more audio", "0.125"], ["3: widened to 0.25", "0.25"]]
    assert f"at width 0.25: ~" in text and "17 minutes per backbone" in text  # 600 + 300 + 120 s
    assert f"WIDTH=0.25 LR=2e-4" in text and f"INIT={runs}/more RUNS={runs}/wide" in text
