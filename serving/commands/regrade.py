"""``returnlens regrade --model VERSION [--since DATE]``: a model over stored history.

The logic is ``serving.services.regrade``; this module parses the flags, names the
model (a registry version, or an ONNX file) and gives each worker a way to open its own
context (:func:`open_context`: the service built from the settings as the API builds
it, plus the model to regrade with, each with one ONNX Runtime thread).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from pathlib import Path
from typing import Any

from serving.commands.policy import _when


def register(sub: Any) -> None:  # argparse._SubParsersAction
    p = sub.add_parser(
        "regrade",
        help="grade stored photos with another model; predictions stored beside the originals",
        description="Runs a model (a registry version or an ONNX file) over the stored "
        "photos of past shopper decisions and stores its predictions as shadow "
        "predictions (compare them with `returnlens shadow report`). Idempotent: a "
        "decision already graded by that model is skipped, so a stopped run resumes.",
    )
    p.add_argument("--model", required=True, help="registry version or path to an .onnx file")
    p.add_argument("--since", type=_when, default=None, help="decisions since (YYYY-MM-DD or ISO)")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool (default); ray: Ray Data (the scale extra)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes or Ray actors, one core each (default: the CPU count)",
    )
    p.add_argument(
        "--ray-address",
        dest="ray_address",
        default=None,
        help="a Ray cluster address (default: start Ray locally)",
    )
    p.add_argument("--database-url", dest="database_url", help="default: the service's")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_regrade)


def model_path_for(settings: Any, name: str) -> Path:
    """An existing file, else a registry version (ModelError with a sentence if neither)."""
    path = Path(name)
    if path.suffix == ".onnx" and path.is_file():
        return path
    from vision.registry import ModelRegistry

    return ModelRegistry(settings.models_dir).get(name).path


def open_context(settings: dict[str, Any], model_path: str) -> tuple[Any, Any, Any]:
    """One worker's (service, grader, policy) from the caller's resolved settings (a
    dict: it pickles to a spawned process or a Ray actor). Top-level for the same reason."""
    from serving.app import build_runtime
    from serving.services import decide
    from serving.services.shadow import check_same_labels
    from serving.settings import Settings
    from vision.model import OnnxModel
    from vision.pipeline import Grader, Lanes

    fixed = {"ort_threads": 1, "migrate_on_start": False, "seed_demo": False}
    resolved = Settings(**{**settings, **fixed, "shadow_model_path": None})
    svc = build_runtime(resolved).service
    model = OnnxModel(Path(model_path), intra_op_threads=1)
    check_same_labels(svc.grader.card, model.card)
    grader = Grader(model, profile="shopper", limits=svc.grader.limits, lanes=Lanes(1))
    return svc, grader, decide.policy_for_model(svc.policy, model.card)


def _regrade(args: argparse.Namespace) -> int:
    from serving.commands.service import settings_from_args
    from serving.services.regrade import regrade
    from serving.storage.db import open_database
    from vision.model import OnnxModel

    settings = settings_from_args(args)
    path = model_path_for(settings, args.model)
    version = OnnxModel(path, intra_op_threads=1).card.model_version
    db = open_database(settings.database_url, migrate=False)
    try:
        result = regrade(
            db,
            functools.partial(open_context, settings.model_dump(), str(path)),
            model_version=version,
            since=args.since,
            engine=args.engine,
            workers=args.workers,
            address=args.ray_address,
        )
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(
            f"regraded {result.stored} of {result.decisions} decisions with {version} "
            f"({result.already} already graded, {result.failed} failed; {result.photos} "
            f"photos in {result.seconds:.1f} s, {result.photos_per_second:.1f} photos/s on "
            f"{result.workers} {args.engine} workers)"
        )
        for decision_id, error in result.errors:
            print(f"  failed {decision_id}: {error}")
    return 1 if result.failed else 0
