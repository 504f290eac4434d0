"""Pieces of the training loop that are not the loop itself: device and precision choice,
seeding and RNG capture, the optimiser with its per-group schedule, validation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from training.config import TrainConfig
from training.losses import LossWeights, grader_loss
from training.metrics import accuracy, auroc, mean_absolute_grade_error, sku_pair_similarities
from training.model import GraderNet
from vision.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it (no loss scaling needed), else fp16; never on CPU."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def rng_state() -> dict[str, Any]:
    """Every global RNG as plain values/tensors (loadable with weights_only=True)."""
    np_state: Any = np.random.get_state()
    state: dict[str, Any] = {
        "python": repr(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), *[float(x) for x in np_state[2:]]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import ast

    random.setstate(ast.literal_eval(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(
        (kind, np.array(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_optimizer(model: GraderNet, config: TrainConfig) -> torch.optim.AdamW:
    """Backbone and head groups, each split so biases and norm weights get no decay."""
    groups: list[dict[str, Any]] = []
    for kind, params, lr in (
        ("backbone", model.backbone_parameters(), config.lr_backbone),
        ("head", model.head_parameters(), config.lr_head),
    ):
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        groups.append(
            {"params": decay, "lr": lr, "weight_decay": config.weight_decay, "kind": kind}
        )
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "kind": kind})
    return torch.optim.AdamW(groups, lr=config.lr_head)


def lr_factor(step: int, *, start: int, warmup: int, total: int, floor: float = 0.01) -> float:
    """0 before ``start``, linear warm-up over ``warmup`` steps, cosine to ``floor``."""
    if step < start:
        return 0.0
    if warmup > 0 and step < start + warmup:
        return (step - start + 1) / warmup
    span = max(total - start - warmup, 1)
    progress = min(max((step - start - warmup) / span, 0.0), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _group_factor(step: int, *, start: int, warmup: int, total: int) -> float:
    return lr_factor(step, start=start, warmup=warmup, total=total)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule; the backbone's warm-up starts when it is unfrozen."""
    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)
    lambdas: list[Callable[[int], float]] = []
    for group in optimizer.param_groups:
        start = config.freeze_epochs * steps_per_epoch if group["kind"] == "backbone" else 0
        lambdas.append(partial(_group_factor, start=start, warmup=warmup, total=total))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


class WeightAverage:
    """Exponential moving average of a model's weights and BatchNorm statistics.

    On a few hundred steps of a small real set the weights of any one epoch are noisy
    (validation accuracy swings by several points from epoch to epoch); the average is
    what gets validated, kept as ``best.pt`` and exported. The decay ramps up as
    (1 + step) / (10 + step), so the average does not remember the initial weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        live = model.state_dict()
        for name, avg in self.model.state_dict().items():
            if avg.dtype.is_floating_point:
                avg.lerp_(live[name].to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(live[name])


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_leading(features: nn.Module, trainable: float) -> list[nn.Module]:
    """Freeze all but the last ``trainable`` share of the backbone (by parameter tensors,
    in forward order); returns the frozen BatchNorm layers, to keep in eval mode.

    On a few thousand photos, fine-tuning every layer overfits within a few epochs, and
    the early layers (edges, textures) are the ones ImageNet already got right. Frozen
    layers also need no backward pass, the costly half of a CPU step at full resolution.
    """
    params = list(features.parameters())
    keep = round(len(params) * trainable)
    frozen = {id(p) for p in params[: len(params) - keep]}
    for p in params:
        if id(p) in frozen:
            p.requires_grad_(False)
    return [
        m
        for m in batch_norms(features)
        if all(id(p) in frozen for p in m.parameters(recurse=False))
    ]


def freeze_batchnorm(module: nn.Module) -> None:
    """Keep BatchNorm statistics while the backbone is frozen (call after model.train())."""
    for m in batch_norms(module):
        m.eval()


@torch.no_grad()
def validate(
    model: GraderNet,
    loader: Iterable[dict[str, torch.Tensor]],
    config: TrainConfig,
    device: torch.device,
    dtype: torch.dtype | None,
    weights: LossWeights,
) -> dict[str, float]:
    """Loss and headline metrics on the validation split (argmax grade, uncalibrated)."""
    model.eval()
    losses: list[float] = []
    preds, grades, emb, dmg_p, dmg_y, skus = [], [], [], [], [], []
    for batch in loader:
        image = batch["image"].to(device, non_blocking=True)
        with autocast(device, dtype):
            out = model(image)
        g, d, s = (batch[k].to(device) for k in ("grade", "damage", "sku"))
        parts = grader_loss(
            out,
            g,
            d,
            s,
            weights=weights,
            sord_alpha=config.sord_alpha,
            supcon_temperature=config.supcon_temperature,
        )
        losses.append(float(parts.total) * len(image))
        preds.append(out.grade_logits.float().argmax(1).cpu().numpy())
        grades.append(batch["grade"].numpy())
        emb.append(out.embedding.float().cpu().numpy())
        dmg_p.append(out.damage_logits.float().cpu().numpy())
        dmg_y.append(batch["damage"].numpy())
        skus.append(batch["sku"].numpy())
    y, p = np.concatenate(grades), np.concatenate(preds)
    labelled = y >= 0
    metrics = {
        "val_loss": sum(losses) / max(len(y), 1),
        "val_grade_acc": accuracy(y[labelled], p[labelled]) if labelled.any() else float("nan"),
        "val_grade_mae": mean_absolute_grade_error(y[labelled], p[labelled]),
    }
    scores, targets = np.concatenate(dmg_p), np.concatenate(dmg_y)
    aucs = [
        a for j in range(scores.shape[1]) if (a := auroc(scores[:, j], targets[:, j])) is not None
    ]
    metrics["val_damage_auroc"] = float(np.mean(aucs)) if aucs else float("nan")
    sku_auc = sku_pair_similarities(np.concatenate(emb), np.concatenate(skus).tolist()).auroc
    metrics["val_sku_auc"] = float("nan") if sku_auc is None else sku_auc
    return {k: float(v) for k, v in metrics.items()}
