"""``returnlens train``: the training recipe from a YAML config and/or flags.

Flags override the config file; ``--resume`` without ``--config`` continues from the
run's own ``config.yaml``. After training, the best checkpoint is calibrated on the val
split and exported to ``OUT/model.onnx`` with its parity check (``--no-export`` skips
that). Under ``torchrun`` only rank 0 exports. Torch is imported inside the handler.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# flag dest -> TrainConfig key (the flags an ML engineer changes most often)
_OVERRIDES = {
    "backbone": "backbone",
    "pretrained": "pretrained",
    "image_size": "image_size",
    "resize_mode": "resize_mode",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr_backbone": "lr_backbone",
    "lr_head": "lr_head",
    "aug_strength": "aug_strength",
    "freeze_epochs": "freeze_epochs",
    "seed": "seed",
    "out": "out",
    "num_workers": "num_workers",
    "max_steps": "max_steps",
    "device": "device",
    "amp": "amp",
    "embedding_dim": "embedding_dim",
    "patience": "patience",
    "class_balance": "class_balance",
    "max_minutes": "max_minutes",
}


def register(sub: Any) -> None:  # argparse._SubParsersAction
    p = sub.add_parser(
        "train",
        help="train a grader model from a manifest (YAML config and/or flags)",
        description="Train the multi-head grader (ordinal grade, damage labels, SKU embedding) "
        "on a manifest, then calibrate and export OUT/model.onnx. Flags override --config. "
        "Multi-GPU: torchrun --nproc_per_node=N -m returnlens train ...",
    )
    p.add_argument("--config", type=Path, help="YAML recipe (see training/configs/default.yaml)")
    p.add_argument(
        "--manifest",
        action="append",
        metavar="PATH",
        help="manifest JSONL; repeat to merge several",
    )
    p.add_argument(
        "--backbone",
        help="efficientnet_lite0 | efficientnet_lite2 | "
        "mobilenet_v3_small | "
        "mobilenet_v3_large | efficientnet_b0 | resnet18 | resnet50",
    )
    p.add_argument("--pretrained", help="imagenet | none | PATH to a local weights file")
    p.add_argument("--image-size", type=int)
    p.add_argument("--resize-mode", choices=("letterbox", "center_crop", "stretch"))
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr-backbone", type=float)
    p.add_argument("--lr-head", type=float)
    p.add_argument("--aug-strength", type=float, help="0 (off) .. 1 (strong)")
    p.add_argument("--freeze-epochs", type=int, help="train only the heads for N epochs")
    p.add_argument("--embedding-dim", type=int)
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    p.add_argument("--class-balance", choices=("loss", "sampler", "none"))
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="output directory (checkpoints, metrics.jsonl, model.onnx)")
    p.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    p.add_argument("--max-steps", type=int, help="stop after N optimiser steps (smoke tests)")
    p.add_argument(
        "--max-minutes", type=float, help="wall-clock budget; stops after the epoch that crosses it"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"))
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    p.add_argument("--no-export", action="store_true", help="skip calibration + ONNX export")
    p.add_argument("--model-version", help="version written into the model card")
    p.add_argument("--quantize", action="store_true", help="also export an int8 model")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config key, VALUE read as YAML (repeatable), e.g. "
        "--set backbone_trainable=0.5 --set ema_decay=0.99",
    )
    p.set_defaults(handler=_train)


def resolve_config(args: argparse.Namespace) -> Any:
    """--config (or OUT/config.yaml when resuming) with the flags applied on top."""
    from training.config import TrainConfig

    if args.config is not None:
        base = TrainConfig.load(args.config)
    elif args.resume and args.out and (Path(args.out) / "config.yaml").is_file():
        base = TrainConfig.load(Path(args.out) / "config.yaml")
    else:
        base = TrainConfig()
    changes = {key: getattr(args, dest) for dest, key in _OVERRIDES.items()}
    if args.manifest:
        changes["manifest"] = list(args.manifest)
    return TrainConfig.from_dict({**base.replace(**changes).to_dict(), **_set_pairs(args.set)})


def _set_pairs(pairs: list[str]) -> dict[str, Any]:
    import yaml

    from vision.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key.strip()}: {text!r} is not a YAML value") from exc
    return out


def _train(args: argparse.Namespace) -> int:
    from training.train import train

    config = resolve_config(args)
    progress = not args.no_progress
    result = train(config, resume=args.resume, progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(
        f"trained {result.epochs_completed} epoch(s), {result.global_step} steps; best "
        f"{config.early_stop_metric} = {result.best_metric:.4f} -> {result.best_checkpoint}"
        + (" (stopped early)" if result.stopped_early else "")
    )
    if args.no_export:
        return 0
    from training.export import calibrate_and_export

    report = calibrate_and_export(
        result.best_checkpoint,
        result.manifest,
        result.out_dir / "model.onnx",
        model_version=args.model_version,
        quantize=args.quantize,
        progress=progress,
    )
    print(
        f"exported {report.path} (temperature {report.temperature:.4f}, parity max |diff| "
        f"{report.parity_max_diff:.2e})"
    )
    metrics = getattr(report, "metrics", None) or {}
    shown = {
        k: metrics.get(k)
        for k in (
            "split",
            "accuracy",
            "mean_abs_grade_error",
            "ece",
            "damage_macro_auroc",
            "embedding_sku_auroc",
        )
    }
    print(
        "  "
        + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in shown.items()
            if v is not None
        )
    )
    return 0
