"""``returnlens adapt``: refit a model's heads on labelled photos (thin CLI).

The work is ``training.adapt.adapt_model``; this module only parses arguments, picks
the base model (a file, a registered version, or the model the deployment serves) and
prints the report. Torch is imported inside the handler.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from training.cli_model import Deployment, _registry

DEFAULT_CACHE = Path("var/feature-cache")


def register(sub: Any, deployment: Deployment | None = None) -> None:  # argparse subparsers
    p = sub.add_parser(
        "adapt",
        help="refit a model's heads on labelled photos: a new version in seconds to minutes",
        description="Refit the grade and damage heads and the unfamiliarity score of a "
        "model on backbone features of labelled photos (e.g. `dataset export-reviewed`), "
        "optionally replaying the original training data, then calibrate, export and "
        "parity-check the new version. The backbone is not retrained: use `train` for a "
        "full fine-tune.",
    )
    p.add_argument("--data", required=True, type=Path, help="labelled photos (manifest)")
    p.add_argument("--out", required=True, type=Path, help="the new .onnx file")
    p.add_argument(
        "--base",
        help="base model: an .onnx file or a registered version (default: the promoted "
        "version, else the shipped model)",
    )
    p.add_argument("--version", help="the new model version (default: BASE-adapt-<time>)")
    p.add_argument("--replay", type=Path, help="the original training manifest to replay")
    p.add_argument("--replay-max", type=int, default=2000, help="replayed photos at most")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="feature cache folder (default $RETURNLENS_FEATURE_CACHE or ./var/feature-cache)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--min-per-grade", type=int, default=5)
    p.add_argument("--approve-precision", type=float, default=0.98)
    p.add_argument("--no-drift-reference", action="store_true")
    p.add_argument("--register", action="store_true", help="copy into the model registry")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="registry folder (default $RETURNLENS_MODELS_DIR or ./models)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_adapt, deployment=deployment)


def _base(args: argparse.Namespace) -> Path:
    if args.base and Path(args.base).suffix == ".onnx":
        return Path(args.base)
    reg = _registry(args, bootstrap=True)
    return Path(reg.resolve(args.base))


def _cache(args: argparse.Namespace) -> Path | None:
    if args.no_cache:
        return None
    return args.cache or Path(os.environ.get("RETURNLENS_FEATURE_CACHE") or DEFAULT_CACHE)


def _adapt(args: argparse.Namespace) -> int:
    from training.adapt import AdaptOptions, adapt_model
    from vision.manifest import load_manifest
    from vision.registry import ModelRegistry

    options = AdaptOptions(
        replay=load_manifest(args.replay) if args.replay else None,
        replay_max=args.replay_max,
        cache_dir=_cache(args),
        model_version=args.version,
        min_per_grade=args.min_per_grade,
        approve_precision=args.approve_precision,
        drift_reference=not args.no_drift_reference,
        progress=not (args.no_progress or args.json),
    )
    report = adapt_model(_base(args), load_manifest(args.data), args.out, options)
    registered = None
    if args.register:
        registered = ModelRegistry(args.models_dir).register(report.path).version
    if args.json:
        print(json.dumps({**report.to_dict(), "registered": registered}, indent=2))
        return 0
    a, m = report.adapt, report.card.metrics
    head = a["grade_head"]
    print(f"wrote {report.path} (version {report.card.model_version}) in {report.seconds:.1f} s")
    print(
        f"from {a['base_model_version']}; photos {json.dumps(report.photos)}; "
        f"{report.cache_hits} feature(s) from the cache"
    )
    print(f"grade head: anchor {head['anchor']}, l2 {head['l2']:g}, {head['folds']}-fold CV")
    if a["damage_head"]["refitted"]:
        print("damage head refitted: " + ", ".join(a["damage_head"]["refitted"]))
    if "accuracy" in m:
        print(
            f"{m['split']} ({m['count']} photos): accuracy {m['accuracy']:.1%}  "
            f"MAE {m['mean_abs_grade_error']:.3f}  ECE {m['ece']:.3f}"
        )
    print(f"parity: max |diff| {max(a['parity']['max_abs_diff'].values()):.2e}")
    for note in report.notes:
        print(f"note: {note}")
    if registered:
        print(f"registered {registered}; promote it with `returnlens model promote {registered}`")
    return 0
