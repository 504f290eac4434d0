"""The training loop: ``train(config) -> TrainResult``.

One run writes into ``config.out``: ``config.yaml`` (the resolved recipe), ``metrics.jsonl``
(one line per epoch), ``last.pt`` (every epoch, with optimizer/scheduler/scaler/RNG state
for ``resume``) and ``best.pt`` (best validation ``early_stop_metric``). Under torchrun
every rank trains on its shard and only rank 0 writes. Bad input stops with one
sentence (ConfigError / DataError / TrainingError), never a traceback.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training import engine
from training.augment import Augmenter
from training.config import EARLY_STOP_METRICS, EarlyStopMetric, TrainConfig, TrainingError
from training.data import (
    PhotoDataset,
    SkuBatchSampler,
    encode_records,
    grade_class_weights,
    make_loader,
)
from training.distributed import (
    DistContext,
    broadcast_flag,
    init_distributed,
    mean_across,
    shutdown,
)
from training.losses import LossWeights, grader_loss
from training.model import CheckpointMeta, GraderNet, read_checkpoint, save_checkpoint
from vision.errors import ConfigError, DataError
from vision.manifest import Manifest, load_manifest, merge_manifests
from vision.preprocess import PreprocessSpec

__all__ = ["TrainResult", "TrainingError", "load_training_manifest", "train"]


@dataclass(frozen=True, eq=False)
class TrainResult:
    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_metric: float
    epochs_completed: int
    global_step: int
    stopped_early: bool
    manifest: Manifest
    model: GraderNet = field(repr=False)  # final (averaged, with ema_decay) weights


@dataclass
class _State:
    epoch: int = -1  # last completed epoch
    step: int = 0
    best: float = float("nan")
    bad_epochs: int = 0
    stopped: bool = False


def load_training_manifest(paths: tuple[str, ...]) -> Manifest:
    if not paths:
        raise ConfigError(
            "no training manifest given; pass --manifest PATH or set manifest: in the config"
        )
    manifest = load_manifest(paths[0]) if len(paths) == 1 else merge_manifests(list(paths))
    for split in ("train", "val"):
        if not manifest.split(split):
            raise DataError(
                f"the manifest has no {split} records; training needs train and "
                "val splits (val drives early stopping and calibration)"
            )
    return manifest


def _improved(value: float, best: float, metric: EarlyStopMetric) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if EARLY_STOP_METRICS[metric] == "max" else value < best


def _check_resume_labels(
    meta: dict[str, Any],
    manifest: Manifest,
    path: Path,
    config: TrainConfig,
    verb: str = "resume from",
) -> None:
    for key, labels in (
        ("grade_labels", manifest.header.grade_labels),
        ("damage_labels", manifest.header.damage_labels),
    ):
        if tuple(meta[key]) != tuple(labels):
            raise DataError(
                f"cannot {verb} {path}: it was trained with {key.replace('_', ' ')} "
                f"{list(meta[key])} but the manifest has {list(labels)}",
                code="label_mismatch",
            )
    if meta["backbone"] != config.backbone:
        raise ConfigError(
            f"cannot {verb} {path}: it uses backbone {meta['backbone']!r}, "
            f"the config asks for {config.backbone!r}"
        )


class _Run:
    """State shared by the epoch functions of one training run."""

    def __init__(self, config: TrainConfig, ctx: DistContext, device: torch.device) -> None:
        self.config, self.ctx, self.device = config, ctx, device
        self.out = Path(config.out)
        self.manifest = load_training_manifest(config.manifest)
        header = self.manifest.header
        self.grade_labels, self.damage_labels = header.grade_labels, header.damage_labels
        self.spec = PreprocessSpec(config.image_size, config.resize_mode)  # type: ignore[arg-type]
        sku_index: dict[str, int] = {}
        train_enc = encode_records(
            self.manifest.split("train"), self.grade_labels, self.damage_labels, sku_index
        )
        val_enc = encode_records(
            self.manifest.split("val"), self.grade_labels, self.damage_labels, sku_index
        )
        self.train_set = PhotoDataset(
            train_enc, self.spec, Augmenter(config.aug_strength), config.seed
        )
        self.val_set = PhotoDataset(val_enc, self.spec, None, config.seed)
        self.sampler = SkuBatchSampler(
            train_enc.skus,
            train_enc.grades,
            config.batch_size,
            config.photos_per_sku,
            config.seed,
            balance=config.class_balance == "sampler",
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        self.class_weights = (
            grade_class_weights(train_enc.grades, len(self.grade_labels))
            if config.class_balance == "loss"
            else None
        )
        self.weights = LossWeights(
            config.loss_grade, config.loss_grade_mae, config.loss_damage, config.loss_embedding
        )
        self.dtype = engine.amp_dtype(config.amp, device)
        self.model = GraderNet(
            config.backbone,
            len(self.grade_labels),
            len(self.damage_labels),
            config.embedding_dim,
            pretrained=config.pretrained,
        ).to(device)
        if config.init_from is not None:
            self._init_from(Path(config.init_from))
        self.frozen_norms = engine.freeze_leading(self.model.features, config.backbone_trainable)
        if config.bn_momentum is not None:
            for m in engine.batch_norms(self.model):
                m.momentum = config.bn_momentum
        # NHWC weights match the NHWC input the model permutes; ~20% faster convs on CPU.
        self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = (
            engine.WeightAverage(self.model, config.ema_decay)
            if config.ema_decay is not None
            else None
        )
        self.optimizer = engine.build_optimizer(self.model, config)
        self.scheduler = engine.build_scheduler(self.optimizer, config, len(self.sampler))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.state = _State()
        self.current_epoch = 0
        pin = device.type == "cuda"
        self.train_loader = make_loader(
            self.train_set,
            batch_sampler=self.sampler,
            num_workers=config.num_workers,
            pin_memory=pin,
        )
        self.val_loader = make_loader(
            self.val_set,
            batch_size=config.batch_size,
            num_workers=config.num_workers,
            pin_memory=pin,
        )
        # Under torchrun the model is wrapped once. Freezing the backbone is done by the
        # schedule (backbone lr 0) plus frozen BatchNorm statistics, not requires_grad, so
        # the DDP reducer never has to be rebuilt mid-run.
        self.net: torch.nn.Module = self.model
        if ctx.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)

    def summary(self) -> dict[str, Any]:
        return {**self.manifest.summary(), "manifests": list(self.config.manifest)}

    def meta(self, val_metrics: dict[str, float]) -> CheckpointMeta:
        return CheckpointMeta(
            backbone=self.config.backbone,
            grade_labels=tuple(self.grade_labels),
            damage_labels=tuple(self.damage_labels),
            embedding_dim=self.config.embedding_dim,
            preprocess=self.spec,
            config=self.config.to_dict(),
            epoch=self.state.epoch,
            best_metric=self.state.best,
            data_summary=self.summary(),
            val_metrics=val_metrics,
        )

    @property
    def evaluated(self) -> GraderNet:
        """The weights that are validated, kept as best.pt and exported."""
        return self.model if self.ema is None else self.ema.model  # type: ignore[return-value]

    def save(self, path: Path, val_metrics: dict[str, float], *, best: bool = False) -> None:
        s = self.state
        extra: dict[str, Any] = {
            "epoch": s.epoch,
            "step": s.step,
            "best": s.best,
            "bad_epochs": s.bad_epochs,
            "stopped": s.stopped,
            "rng": engine.rng_state(),
        }
        if self.ema is not None and not best:
            extra["ema"] = self.ema.model.state_dict()
        save_checkpoint(
            path,
            self.evaluated if best else self.model,
            self.meta(val_metrics),
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            extra=extra,
        )

    def _init_from(self, path: Path) -> None:
        """Start from another run's weights (all of them): fine-tuning on new data.

        Unlike ``resume`` the optimiser, schedule and epoch count start afresh; the
        labels and backbone must match, for the heads to mean the same thing.
        """
        if not path.is_file():
            raise ConfigError(f"init_from checkpoint {path} does not exist")
        payload = read_checkpoint(path, map_location=str(self.device))
        _check_resume_labels(payload["meta"], self.manifest, path, self.config, "start from")
        self.model.load_state_dict(payload["model"])

    def resume(self) -> None:
        path = self.out / "last.pt"
        payload = read_checkpoint(path, map_location=str(self.device))
        _check_resume_labels(payload["meta"], self.manifest, path, self.config)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        extra = payload["extra"]
        if self.ema is not None and "ema" in extra:
            self.ema.model.load_state_dict(extra["ema"])
        self.state = _State(
            int(extra["epoch"]),
            int(extra["step"]),
            float(extra["best"]),
            int(extra["bad_epochs"]),
            bool(extra["stopped"]),
        )
        engine.set_rng_state(extra["rng"])

    def train_epoch(self, epoch: int, progress: bool) -> dict[str, float]:
        cfg, model = self.config, self.model
        model.train()
        if epoch < cfg.freeze_epochs:
            engine.freeze_batchnorm(model.features)
        for norm in self.frozen_norms:
            norm.eval()
        self.sampler.set_epoch(epoch)
        self.current_epoch = epoch
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not (progress and self.ctx.is_main),
            dynamic_ncols=True,
        )
        sums = torch.zeros(5, dtype=torch.float64)
        seen = 0
        for batch in bar:
            if cfg.max_steps is not None and self.state.step >= cfg.max_steps:
                break
            parts = self._step(batch)
            sums += torch.stack([p.double().cpu() for p in parts])
            seen += 1
            bar.set_postfix(
                loss=f"{float(parts.total):.3f}",
                grade=f"{float(parts.grade):.3f}",
                lr=f"{self.optimizer.param_groups[2]['lr']:.2e}",
            )
        bar.close()
        names = (
            "train_loss",
            "train_grade_loss",
            "train_grade_mae_loss",
            "train_damage_loss",
            "train_embedding_loss",
        )
        return {n: float(v) / max(seen, 1) for n, v in zip(names, sums.tolist(), strict=True)}

    def _step(self, batch: dict[str, torch.Tensor]) -> Any:
        dev = self.device
        image, grade, damage, sku = (
            batch[k].to(dev, non_blocking=True) for k in ("image", "grade", "damage", "sku")
        )
        with engine.autocast(dev, self.dtype):
            out = self.net(image)
        parts = grader_loss(
            out,
            grade,
            damage,
            sku,
            weights=self.weights,
            sord_alpha=self.config.sord_alpha,
            supcon_temperature=self.config.supcon_temperature,
            class_weights=self.class_weights,
        )
        total = mean_across(self.ctx, parts.total.detach())
        if not bool(torch.isfinite(total)):
            raise TrainingError(
                f"the training loss became non-finite ({float(total)}) at step "
                f"{self.state.step + 1} (epoch {self.current_epoch + 1}); lower the learning "
                "rates or check the data",
                details={"step": self.state.step + 1},
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(parts.total).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.state.step += 1
        if self.ema is not None:
            self.ema.update(self.model, self.state.step)
        return parts._replace(total=total)

    def end_epoch(
        self, epoch: int, train_metrics: dict[str, float], seconds: float
    ) -> dict[str, Any]:
        cfg, s = self.config, self.state
        val = engine.validate(
            self.evaluated, self.val_loader, cfg, self.device, self.dtype, self.weights
        )
        value = val[cfg.early_stop_metric]
        improved = broadcast_flag(
            self.ctx, _improved(value, s.best, cfg.early_stop_metric), self.device
        )
        s.epoch = epoch
        if improved:
            s.best, s.bad_epochs = value, 0
        else:
            s.bad_epochs += 1
        s.stopped = s.bad_epochs >= cfg.patience
        row = {
            "epoch": epoch,
            "step": s.step,
            **train_metrics,
            **val,
            "lr_backbone": self.optimizer.param_groups[0]["lr"],
            "lr_head": self.optimizer.param_groups[2]["lr"],
            "backbone_frozen": epoch < cfg.freeze_epochs,
            "seconds": round(seconds, 2),
        }
        if not self.ctx.is_main:
            return row
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        self.save(self.out / "last.pt", val)
        if improved:
            self.save(self.out / "best.pt", val, best=True)
        return row


def _prepare_out(config: TrainConfig, resume: bool, ctx: DistContext) -> None:
    out = Path(config.out)
    if resume and not (out / "last.pt").is_file():
        raise ConfigError(f"nothing to resume: {out / 'last.pt'} does not exist")
    if not resume and (out / "last.pt").exists():
        raise ConfigError(
            f"{out} already holds a training run (last.pt); pass --resume to "
            "continue it or choose another output directory"
        )
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.yaml")


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or resume) one run; returns where the checkpoints are and the final model."""
    device = engine.resolve_device(config.device)
    ctx = init_distributed(device.type)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    try:
        return _train(config, resume, progress, ctx, device)
    finally:
        shutdown(ctx)


def _train(
    config: TrainConfig, resume: bool, progress: bool, ctx: DistContext, device: torch.device
) -> TrainResult:
    _prepare_out(config, resume, ctx)
    engine.seed_everything(config.seed, device)
    run = _Run(config, ctx, device)
    torch.manual_seed(config.seed + 1000 * ctx.rank)  # dropout differs per rank
    if resume:
        run.resume()
    started = time.monotonic()
    for epoch in range(run.state.epoch + 1, config.epochs):
        if run.state.stopped or (
            config.max_steps is not None and run.state.step >= config.max_steps
        ):
            break
        if config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes:
            if progress and ctx.is_main:
                tqdm.write(f"time budget of {config.max_minutes} min reached; stopping")
            break
        t0 = time.perf_counter()
        metrics = run.train_epoch(epoch, progress)
        row = run.end_epoch(epoch, metrics, time.perf_counter() - t0)
        if progress and ctx.is_main:
            tqdm.write(_epoch_line(row))
    out = Path(config.out)
    if ctx.is_main and not (out / "best.pt").exists() and (out / "last.pt").exists():
        shutil.copyfile(out / "last.pt", out / "best.pt")
    return TrainResult(
        out,
        out / "best.pt",
        out / "last.pt",
        run.state.best,
        run.state.epoch + 1,
        run.state.step,
        run.state.stopped,
        run.manifest,
        run.evaluated,
    )


def _epoch_line(row: dict[str, Any]) -> str:
    keys = (
        "train_loss",
        "val_loss",
        "val_grade_acc",
        "val_grade_mae",
        "val_damage_auroc",
        "val_sku_auc",
    )
    parts = [f"{k}={row[k]:.4f}" for k in keys if isinstance(row.get(k), float)]
    return f"epoch {row['epoch'] + 1}: " + " ".join(parts)
