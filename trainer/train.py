"""`samplecnn train`: one backbone scale on one dataset.

Per epoch: random-offset crops of every training clip (``crops_per_clip`` each), then a
clip-level evaluation of the valid split (every segment by the runtime's segmenting rule,
segment probabilities averaged per clip). The paper's schedule: SGD with Nesterov momentum 0.9,
lr 0.01, divided by 5 whenever the valid loss has not improved for ``patience`` epochs, stop
after ``max_plateaus`` such drops (Adam gets the same schedule). Everything a run writes to
``out`` is safetensors or JSON:

    metrics.jsonl            one record per epoch (+ a final "test" record)
    best.safetensors         best valid checkpoint (ROC-AUC for tags, accuracy for classes)
    last.safetensors         last epoch's weights
    last.state.safetensors   optimizer tensors; schedule, history and config as JSON (train_state.py)
    skipped.json             unusable audio files with the reason
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .batches import CropDataset, SegmentDataset, eval_loader, train_loader
from .cache import DEFAULT_CACHE_DIR, AudioCache, CachedClip, SkippedClip
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import Dataset, holdout, limit_clips
from .distill import DistillCrops, FeatureHead, TeacherSet, distill_loss, score_correlation
from .metrics import evaluate
from .model import SampleCNN, preset
from ..runtime.atomic import atomic_path
from .progress import Progress
from .sources import DatasetSource, DatasetSourceError
from .train_state import PlateauSchedule, read_state, restore_optimizer, save_state
from .widen import WidenError, widen_check, widen_state

OPTIMIZERS = ("sgd", "adam")
AMP_MODES = ("fp32", "bf16")  # bf16: torch.autocast (CPUs with AVX512-BF16 / AMX, CUDA)
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3}  # sgd: the papers' value
HEAD_FILE = "last.feature_head.safetensors"  # distillation's FeatureHead (training only, not exported)


class TrainError(ValueError):
    """A training request that cannot run (bad option, no usable clips, existing run, ...)."""


@dataclass(kw_only=True)
class TrainConfig(DatasetSource):
    """Every option of a run; stored in the run's state so ``--resume`` needs only the folder.

    The dataset is a :class:`~samplecnn.trainer.sources.DatasetSource` (manifest, MTAT or
    GTZAN: the fields and options ``fit`` uses too) or, for distillation, teacher-label files.
    """

    targets: list[str] = field(default_factory=list)  # training teacher-label files
    valid_targets: list[str] = field(default_factory=list)  # default: valid_fraction of targets' files
    test_targets: list[str] = field(default_factory=list)
    distill_features: list[str] = field(default_factory=list)  # teacher features regressed from the levels
    feature_weight: float = 1.0  # weight of that MSE next to the soft-target BCE
    # model
    init: str | None = None  # start from this checkpoint's weights (same scale, width and labels): fine-tuning
    scale: str = "3^9"
    width: float = 1.0
    dropout: float = 0.5
    # optimisation
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float = 0.0
    batch_size: int = 23  # the papers' batch
    epochs: int = 50
    crops_per_clip: int = 1
    patience: int = 3
    lr_factor: float = 5.0
    max_plateaus: int = 4
    # system
    workers: int = 2
    threads: int = 0  # 0: torch's default
    device: str = "cpu"
    amp: str = "fp32"
    seed: int = 0
    out: str = "runs/train"
    cache_dir: str | None = None
    max_eval_segments: int | None = None  # per clip; None: cover the whole clip
    max_minutes: float | None = None  # wall-time budget of one invocation; --resume continues
    command: str = ""

    def validate(self) -> None:
        if self.targets and (self.manifest or self.mtat or self.gtzan):
            raise TrainError("give exactly one dataset: a CSV manifest, --mtat DIR, --gtzan DIR or --targets FILE")
        if not self.targets:
            try:
                self.check_source()
            except DatasetSourceError as error:
                raise TrainError(f"{error} (or --targets FILE to distil a teacher)") from error
        if self.distill_features and not self.targets:
            raise TrainError("distill-feature needs teacher-label files (--targets)")
        if self.amp not in AMP_MODES:
            raise TrainError(f"amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        if self.amp == "bf16" and self.device == "cpu" and not cpu_has_bf16():
            raise TrainError("amp bf16 needs a CPU with AVX512-BF16 or AMX (this one has neither); use --amp fp32")
        if self.optimizer not in OPTIMIZERS:
            raise TrainError(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise TrainError(f"device {self.device!r} is not one of cpu, cuda, cuda:N")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise TrainError(f"device {self.device!r} requested but torch sees no CUDA GPU; use --device cpu")
        for name in ("batch_size", "epochs", "crops_per_clip", "patience", "max_plateaus"):
            if getattr(self, name) < 1:
                raise TrainError(f"{name.replace('_', '-')} = {getattr(self, name)}: must be at least 1")
        if self.batch_size < 2:
            raise TrainError("batch-size must be at least 2 (batch norm needs two segments)")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise TrainError(f"max-minutes = {self.max_minutes}: must be positive (or omitted: no budget)")
        if self.workers < 0:
            raise TrainError(f"workers = {self.workers}: must be 0 (main process) or more")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]


# --- data ------------------------------------------------------------------------------------


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (avx512_bf16 or amx_bf16 in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(config: TrainConfig):
    """bf16 autocast when ``config.amp`` asks for it (a no-op context otherwise)."""
    device_type = "cuda" if config.device.startswith("cuda") else "cpu"
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=config.amp == "bf16")


def load_dataset(config: TrainConfig, teacher: TeacherSet | None = None) -> tuple[Dataset, dict]:
    """The dataset a config names, with a held-out valid split if it has none, and (distillation)
    each clip's teacher windows ({} otherwise)."""
    if teacher is None:
        return config.load(seed=config.seed), {}
    dataset, refs = teacher.dataset()
    if not dataset.split("valid"):
        dataset = holdout(dataset, config.valid_fraction, config.seed)
    if config.max_clips:
        dataset = limit_clips(dataset, config.max_clips, config.seed)
    return dataset, refs


def prepare_splits(
    dataset: Dataset, cache: AudioCache, min_samples: int, workers: int, log
) -> tuple[dict[str, list[CachedClip]], list[SkippedClip]]:
    """Decode every split into the cache; unusable files are logged, counted and skipped."""
    prepared, skipped = {}, []
    for split, clips in dataset.splits.items():
        if not clips:
            continue
        with Progress(len(clips), f"decode {split}") as bar:
            kept, bad = cache.prepare(clips, min_samples=min_samples, workers=workers, on_done=bar.update)
        for item in bad:
            log(f"skipped {item.path}: {item.reason}")
        prepared[split] = kept
        skipped += bad
        log(f"{split}: {len(kept)} clips usable, {len(bad)} skipped")
    if not prepared.get("train") or not prepared.get("valid"):
        raise TrainError("no usable clips in the train or valid split; see the skipped files above")
    return prepared, skipped


# --- optimisation ----------------------------------------------------------------------------


def build_optimizer(config: TrainConfig, *modules: torch.nn.Module) -> torch.optim.Optimizer:
    parameters = [p for module in modules if module is not None for p in module.parameters()]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.learning_rate, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


def segment_loss(logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Mean loss of a batch. logits, targets: (B, K); BCE for tags, CE (argmax target) for classes."""
    if task == "classes":
        return torch.nn.functional.cross_entropy(logits, targets.argmax(dim=1))
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)


def clip_probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    return torch.softmax(logits, dim=1) if task == "classes" else torch.sigmoid(logits)


# --- epochs ----------------------------------------------------------------------------------


def train_epoch(model, loader, optimizer, task: str, device: str, desc: str, *, amp=None, head=None,
                feature_weight: float = 1.0) -> dict:  # fmt: skip
    """One pass over ``loader``; returns mean loss (and its parts), segments and seconds.

    Batches are (waveforms, targets) for labelled data, (waveforms, teacher probs, teacher
    features) for distillation (``head``: the FeatureHead, or None for soft tags only).
    """
    model.train()
    if head is not None:
        head.train()
    level_names = [n for n in model.output_names if n != "logits"]
    total_loss, parts_sum, segments, start = 0.0, {}, 0, time.perf_counter()
    with Progress(len(loader), desc) as bar:
        for batch in loader:
            waveforms, *targets = (t.to(device, non_blocking=True) for t in batch)
            with amp if amp is not None else torch.autocast("cpu", enabled=False):
                outputs = model(waveforms)
                if len(targets) == 1:
                    loss, parts = segment_loss(outputs["logits"].float(), targets[0], task), {}
                else:
                    loss, parts = distill_loss(outputs, targets[0], targets[1], head, level_names, feature_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(waveforms)
            for key, value in parts.items():
                parts_sum[key] = parts_sum.get(key, 0.0) + value * len(waveforms)
            segments += len(waveforms)
            bar.update(1, loss=total_loss / segments)
    seconds = time.perf_counter() - start
    parts = {f"train_{k}": v / max(1, segments) for k, v in parts_sum.items()}
    return {"train_loss": total_loss / max(1, segments), **parts, "train_segments": segments, "train_seconds": seconds}


@torch.no_grad()
def predict_clips(model, clips: list[CachedClip], task: str, device: str, batch_size: int, workers: int,
                  max_segments: int | None = None, desc: str = "eval", amp=None) -> tuple[np.ndarray, float]:  # fmt: skip
    """Clip-level probabilities (n_clips, K), averaged over each clip's segments, and the mean segment loss."""
    model.eval()
    dataset = SegmentDataset(clips, model.config.segment_samples, max_segments)
    targets = torch.from_numpy(np.stack([c.target for c in clips]))
    sums = torch.zeros(len(clips), model.config.n_tags, dtype=torch.float64)
    counts = torch.zeros(len(clips), dtype=torch.float64)
    total_loss = 0.0
    with Progress(math.ceil(len(dataset) / batch_size), desc) as bar:
        for waveforms, clip_ids in eval_loader(dataset, batch_size, workers, pin=device != "cpu"):
            with amp if amp is not None else torch.autocast("cpu", enabled=False):
                logits = model(waveforms.to(device))["logits"].float().cpu()
            total_loss += segment_loss(logits, targets[clip_ids], task).item() * len(clip_ids)
            sums.index_add_(0, clip_ids, clip_probabilities(logits, task).double())
            counts.index_add_(0, clip_ids, torch.ones(len(clip_ids), dtype=torch.float64))
            bar.update(1)
    return (sums / counts[:, None]).numpy(), total_loss / len(dataset)


def evaluate_split(model, clips, task, config: TrainConfig, desc: str, teacher_scores: np.ndarray | None = None) -> dict:
    """Clip-level metrics (roc_auc, pr_auc, [accuracy, macro_f1]) and the segment loss of a split.

    With ``teacher_scores`` (n_clips, K) (distillation) also the correlation of song-level scores.
    """
    scores, loss = predict_clips(
        model, clips, task, config.device, 2 * config.batch_size, config.workers, config.max_eval_segments, desc,
        amp=autocast(config),
    )
    metrics = {"loss": loss, **evaluate(np.stack([c.target for c in clips]), scores, task)}
    if teacher_scores is not None:
        metrics["teacher_correlation"] = score_correlation(scores, teacher_scores)
    return metrics


def main_metric(task: str) -> str:
    return "accuracy" if task == "classes" else "roc_auc"


# --- resume ------------------------------------------------------------------------------


def resume_config(run_dir: str | Path, **overrides) -> TrainConfig:
    """The stored config of a run, with ``overrides`` (e.g. epochs, device, workers) applied."""
    _, metadata = read_state(Path(run_dir) / "last.state.safetensors")
    stored = json.loads(metadata["config"])
    stored.update({k: v for k, v in overrides.items() if v is not None}, out=str(run_dir))
    return TrainConfig(**stored)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    """The mutable state of a run between epochs."""

    config: TrainConfig
    dataset: Dataset
    clips: dict[str, list[CachedClip]]
    skipped: list[SkippedClip]
    model: SampleCNN
    optimizer: torch.optim.Optimizer
    schedule: PlateauSchedule
    out: Path
    teacher: TeacherSet | None = None
    refs: dict = field(default_factory=dict)  # distillation: clip path -> teacher windows
    head: FeatureHead | None = None
    feature_stats: tuple | None = None
    epoch: int = 0  # epochs done
    history: list = field(default_factory=list)
    best: dict = field(default_factory=dict)  # {"epoch", metric: value}


def _setup(config: TrainConfig, resume: bool, log) -> Run:
    config.validate()
    out = Path(config.out)
    if not resume and (out / "last.safetensors").exists():
        raise TrainError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    teacher = TeacherSet(config.targets, config.valid_targets, config.test_targets) if config.targets else None
    dataset, refs = load_dataset(config, teacher)
    for note in dataset.notes:
        log(note)
    log(dataset.describe())
    model_config = preset(config.scale, len(dataset.labels), width=config.width, dropout=config.dropout)
    initial, initial_note = _initial_weights(config.init, model_config, dataset.labels, config.seed) if config.init and not resume else (None, "")  # before any audio is decoded
    cache = AudioCache(config.cache_dir or DEFAULT_CACHE_DIR, model_config.sample_rate)
    clips, skipped = prepare_splits(dataset, cache, model_config.segment_samples, config.workers, log)
    (out / "skipped.json").write_text(json.dumps([s.to_dict() for s in skipped], indent=1))
    head, stats = None, None
    if teacher:
        teacher.check_lengths(clips, refs, model_config.sample_rate)
        if config.distill_features:
            missing = [n for n in config.distill_features if n not in teacher.feature_names]
            if missing:
                raise TrainError(f"distill-feature {', '.join(missing)} not in the teacher-label files; "
                                 f"they hold {', '.join(teacher.feature_names) or 'no features'}")  # fmt: skip
            stats = teacher.feature_stats(config.distill_features)
    torch.manual_seed(config.seed)
    model = SampleCNN(model_config).to(config.device)
    if initial is not None:
        model.load_state_dict(initial)
        log(f"initialised from {config.init}{initial_note}")
    if stats is not None:
        head = FeatureHead(list(model_config.level_widths.values()), len(stats[0])).to(config.device)
    optimizer = build_optimizer(config, model, head)
    schedule = PlateauSchedule(config.learning_rate, config.patience, config.lr_factor, config.max_plateaus)
    run = Run(config, dataset, clips, skipped, model, optimizer, schedule, out, teacher, refs, head, stats)
    if resume:
        _restore(run, log)
    return run


def _initial_weights(path: str, model_config, labels: list[str], seed: int) -> tuple[dict[str, torch.Tensor], str]:
    """Fine-tuning: the weights of checkpoint ``path``, which must be the same backbone (scale,
    width, taps) with the same labels in the same order, or the same backbone at a narrower width
    (widened with the same function: trainer/widen.py, split fractions drawn from ``seed``)."""
    try:
        checkpoint = load_checkpoint(path)
    except (OSError, CheckpointError) as error:
        raise TrainError(f"init {path}: {error}") from error
    widen = checkpoint.config != model_config
    if widen:
        try:
            widen_check(checkpoint.config, model_config)
        except WidenError:
            raise TrainError(f"init {path}: its model {checkpoint.config.name} (width {checkpoint.config.width}, "
                             f"{checkpoint.config.n_tags} tags) is not this run's {model_config.name} "
                             f"(width {model_config.width}, {model_config.n_tags} tags), nor the same backbone at a "
                             f"narrower width to widen") from None  # fmt: skip
    if list(checkpoint.labels) != list(labels):
        raise TrainError(f"init {path}: its labels differ from this run's (first difference: "
                         f"{next((a, b) for a, b in zip(checkpoint.labels, labels) if a != b)})")  # fmt: skip
    if widen:  # Net2WiderNet: the wider model starts as the same function
        note = f" (width {checkpoint.config.width} widened to {model_config.width}: the same function, up to 1% noise on the new channels)"
        return widen_state(checkpoint.state_dict, checkpoint.config, model_config, seed), note
    return checkpoint.state_dict, ""


def _restore(run: Run, log) -> None:
    checkpoint = load_checkpoint(run.out / "last.safetensors")
    if checkpoint.config != run.model.config:
        raise TrainError(f"{run.out}: stored model {checkpoint.config} does not match this run's {run.model.config}")
    run.model.load_state_dict(checkpoint.state_dict)
    if run.head is not None:
        run.head.load_state_dict(load_file(str(run.out / HEAD_FILE), device=run.config.device))
    tensors, metadata = read_state(run.out / "last.state.safetensors")
    restore_optimizer(run.optimizer, tensors, json.loads(metadata["optimizer"]), run.config.device)
    run.schedule = PlateauSchedule(**json.loads(metadata["schedule"]))
    run.epoch = int(metadata["epoch"])
    run.history = json.loads(metadata["history"])
    run.best = json.loads(metadata["best"])
    log(f"resumed {run.out} after epoch {run.epoch} (lr {run.schedule.lr:g})")


def training_record(run: Run, test: dict | None = None) -> dict:
    """What a checkpoint says about how it was trained."""
    c = run.config
    train_seconds = sum(h["train_seconds"] for h in run.history)
    train_segments = sum(h["train_segments"] for h in run.history)
    return {
        "dataset": run.dataset.name, "dataset_notes": run.dataset.notes, "task": run.dataset.task,
        "label_column": c.label_column,
        "clips": {s: len(v) for s, v in run.clips.items()}, "skipped_files": len(run.skipped),
        "epochs": run.epoch, "best": run.best, "last": run.history[-1] if run.history else {}, "test": test,
        "optimizer": c.optimizer, "lr": c.learning_rate, "batch_size": c.batch_size, "crops_per_clip": c.crops_per_clip,
        "seed": c.seed, "init": c.init, "device": c.device, "torch_threads": torch.get_num_threads(),
        "train_seconds": round(train_seconds, 1), "segments_per_second": round(train_segments / max(train_seconds, 1e-9), 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": c.command,
    }  # fmt: skip


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def run_epoch(run: Run, log) -> dict:
    """Train one epoch, evaluate valid, save last (+ best), log and return the record."""
    c, epoch = run.config, run.epoch + 1
    for group in run.optimizer.param_groups:
        group["lr"] = run.schedule.lr
    torch.manual_seed(c.seed * 1_000_003 + epoch)  # dropout depends only on (seed, epoch)
    if run.teacher is None:
        crops = CropDataset(run.clips["train"], run.model.config.segment_samples, c.crops_per_clip, c.seed)
    else:
        crops = DistillCrops(run.clips["train"], run.refs, run.teacher, run.model.config.segment_samples,
                             run.model.config.sample_rate, c.crops_per_clip, c.seed, c.distill_features, run.feature_stats)  # fmt: skip
    loader = train_loader(crops, c.batch_size, c.workers, c.seed, epoch, pin=c.device != "cpu")
    start = time.perf_counter()
    stats = train_epoch(run.model, loader, run.optimizer, run.dataset.task, c.device, f"epoch {epoch}/{c.epochs}",
                        amp=autocast(c), head=run.head, feature_weight=c.feature_weight)  # fmt: skip
    valid = evaluate_split(run.model, run.clips["valid"], run.dataset.task, c, "valid", teacher_scores(run, "valid"))
    record = {
        "event": "epoch", "epoch": epoch, "lr": run.schedule.lr, **stats,
        **{f"valid_{k}": v for k, v in valid.items()},
        "segments_per_second": stats["train_segments"] / stats["train_seconds"],
        "epoch_seconds": time.perf_counter() - start,
    }  # fmt: skip
    action = run.schedule.step(valid["loss"])
    run.epoch, record["schedule"] = epoch, action
    run.history.append(record)
    metric = main_metric(run.dataset.task)
    if not run.best or valid[metric] > run.best[metric]:
        run.best = {"epoch": epoch, metric: valid[metric], "roc_auc": valid["roc_auc"], "pr_auc": valid["pr_auc"]}
        save_checkpoint(run.out / "best.safetensors", run.model, run.dataset.labels, training_record(run))
    save_checkpoint(run.out / "last.safetensors", run.model, run.dataset.labels, training_record(run))
    if run.head is not None:
        with atomic_path(run.out / HEAD_FILE) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in run.head.state_dict().items()}, tmp)
    save_state(run.out / "last.state.safetensors", run.optimizer, run.schedule, epoch, run.history, run.best, c)
    _append_jsonl(run.out / "metrics.jsonl", record)
    log(format_epoch(record, metric))
    return record


def teacher_scores(run: Run, split: str) -> np.ndarray | None:
    """(n_clips, K) teacher song-level probabilities of a split (distillation), else None."""
    return run.teacher.song_targets(run.clips[split], run.refs) if run.teacher else None


def format_epoch(record: dict, metric: str) -> str:
    extra = f" {metric} {record['valid_' + metric]:.4f}" if metric != "roc_auc" else ""
    note = f" [{record['schedule']}]" if record.get("schedule") else ""
    if "valid_teacher_correlation" in record:
        extra += f", teacher r {record['valid_teacher_correlation']:.3f}"
    if "train_feature_loss" in record:
        extra += f" (tag loss {record['train_tag_loss']:.4f}, feature loss {record['train_feature_loss']:.4f})"
    return (
        f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, valid loss {record['valid_loss']:.4f}, "
        f"ROC-AUC {record['valid_roc_auc']:.4f}, PR-AUC {record['valid_pr_auc']:.4f}{extra}, "
        f"{record['epoch_seconds']:.0f} s, {record['segments_per_second']:.1f} segments/s{note}"
    )


def finish(run: Run, log) -> dict | None:
    """Evaluate the best checkpoint on the test split (if any) and record it in best.safetensors."""
    best_path = run.out / "best.safetensors"
    if not run.clips.get("test") or not best_path.exists():
        return None
    best = load_checkpoint(best_path)
    model = best.build_model().to(run.config.device)
    test = evaluate_split(model, run.clips["test"], run.dataset.task, run.config, "test", teacher_scores(run, "test"))
    _append_jsonl(run.out / "metrics.jsonl", {"event": "test", "best_epoch": run.best.get("epoch"), **test})
    record = dict(best.training, test=test)
    save_checkpoint(best_path, model, best.labels, record)
    log(f"test (best epoch {run.best.get('epoch')}): " + ", ".join(f"{k} {v:.4g}" for k, v in test.items()))
    return test


def out_of_time(config: TrainConfig, elapsed: float, epoch_seconds: float) -> bool:
    """Whether another epoch of ``epoch_seconds`` would overrun ``config.max_minutes``."""
    return config.max_minutes is not None and elapsed + epoch_seconds > 60 * config.max_minutes


def train(config: TrainConfig, *, resume: bool = False, log=None) -> dict:
    """Run (or with ``resume`` continue) a training run; returns the final training record.

    Writes metrics.jsonl, best/last checkpoints and the resume state to ``config.out``.
    ``config.threads`` > 0 sets torch's CPU threads for the run (restored afterwards).
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    previous_threads = torch.get_num_threads()
    if config.threads > 0:
        # Fewer threads than cores avoids OpenMP spin-waiting when the machine is shared.
        torch.set_num_threads(config.threads)
    try:
        return _train(config, resume, log)
    finally:
        torch.set_num_threads(previous_threads)


def _train(config: TrainConfig, resume: bool, log) -> dict:
    run = _setup(config, resume, log)
    log(f"{run.model.config.name} width {config.width}: {sum(p.numel() for p in run.model.parameters()):,} parameters, "
        f"{config.optimizer} lr {run.schedule.lr:g}, {torch.get_num_threads()} threads, device {config.device}")  # fmt: skip
    started = time.perf_counter()
    while run.epoch < config.epochs and not run.schedule.stopped:
        record = run_epoch(run, log)
        if run.schedule.stopped:
            log(f"early stop: {run.schedule.plateaus} plateaus")
        elif out_of_time(config, time.perf_counter() - started, record["epoch_seconds"]):
            log(f"time budget of {config.max_minutes:g} min reached after epoch {run.epoch}; "
                f"continue with --resume --out {run.out} --epochs {config.epochs}")  # fmt: skip
            break
    test = finish(run, log)
    return training_record(run, test)
