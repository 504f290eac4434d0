"""``returnlens train``: the training recipe from a YAML config and/or flags.

Flags override the config file; ``--resume`` without ``--config`` continues from the
run's own ``config.yaml``. After training, the best checkpoint is calibrated on the val
split and exported to ``OUT/model.onnx`` with its parity check (``--no-export`` skips
that). Under ``torchrun`` only rank 0 exports. The flags are generated from the
:class:`TrainConfig` schema, so a new config key is a flag without touching this file.
Torch is imported inside the handler; the schema is torch-free.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

from training.config import TrainConfig
from training.config_fields import field_shape
from vision.errors import ConfigError

# Keys that are not flags of their own: --manifest is a repeatable path, and a mapping
# (extra) only fits --set or the YAML file.
_NOT_FLAGS = frozenset({"manifest", "extra"})


def register(sub: Any) -> None:  # argparse._SubParsersAction
    p = sub.add_parser(
        "train",
        help="train a grader model from a manifest (YAML config and/or flags)",
        description="Train the multi-head grader (ordinal grade, damage labels, SKU embedding) "
        "on a manifest, then calibrate and export OUT/model.onnx. Flags override --config; "
        "--set overrides both. Multi-GPU: torchrun --nproc_per_node=N -m returnlens train ...",
    )
    p.add_argument("--config", type=Path, help="YAML recipe (see training/configs/default.yaml)")
    p.add_argument(
        "--manifest",
        action="append",
        metavar="PATH",
        help="manifest JSONL; repeat to merge several",
    )
    _add_config_flags(p)
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


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``image_size`` -> ``--image-size``).

    Values stay strings (argparse ``type`` is not set) so the schema coerces and checks
    them exactly as it does YAML and ``--set`` values, with the same one-sentence errors.
    A flag left out is None and does not override the config file.
    """
    group = p.add_argument_group("training config (TrainConfig fields; see --config)")
    for name, field in TrainConfig.model_fields.items():
        if name in _NOT_FLAGS:
            continue
        shape = field_shape(field)
        flag = "--" + name.replace("_", "-")
        default = field.get_default(call_default_factory=True)
        text = f"{field.description} (default: {'none' if default is None else default})"
        if shape.base is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
        elif shape.choices:
            group.add_argument(flag, choices=shape.choices, help=text)
        else:
            metavar = {int: "N", float: "X"}.get(shape.base, "VALUE")
            group.add_argument(flag, metavar=metavar, help=text)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """--config (or OUT/config.yaml when resuming), then the flags, then --set pairs."""
    if args.config is not None:
        base = TrainConfig.load(args.config)
    elif args.resume and args.out and (Path(args.out) / "config.yaml").is_file():
        base = TrainConfig.load(Path(args.out) / "config.yaml")
    else:
        base = TrainConfig()
    flags = {
        name: getattr(args, name)
        for name in TrainConfig.model_fields
        if name not in _NOT_FLAGS and getattr(args, name) is not None
    }
    if args.manifest:
        flags["manifest"] = list(args.manifest)
    return TrainConfig.from_dict({**base.to_dict(), **flags, **_set_pairs(args.set)})


def _set_pairs(pairs: list[str]) -> dict[str, Any]:
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
