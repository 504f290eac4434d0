"""``returnlens replay DECISION_ID``: re-run a stored shopper decision and say whether it
reproduces (``serving.services.replay``).

The decision's stored photos are graded again by the model version that made it (the
serving model when the versions match, else the registry's copy) and decided again under
the policy text stored under its version. Prints REPRODUCED or NOT REPRODUCED with every
field that differs (exit 0 or 1). ``--policy FILE`` decides under another policy instead
(a what-if for one decision). The database, photo folder and model are the service's
(``RETURNLENS_*``) unless the flags name others.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:  # argparse._SubParsersAction
    replay = sub.add_parser(
        "replay",
        help="re-run a stored decision from its photos, model and policy; does it reproduce?",
        description="Re-grade a stored decision's photos with the model version that made it, "
        "re-decide under its stored policy and compare with what was stored.",
    )
    replay.add_argument("decision_id", help="the decision's id (dec_...)")
    replay.add_argument("--database-url", dest="database_url", help="default: the service's")
    replay.add_argument("--photo-dir", dest="photo_dir", type=Path, help="default: the service's")
    replay.add_argument("--model-path", dest="model_path", type=Path, help="default: the service's")
    replay.add_argument("--models-dir", dest="models_dir", type=Path, help="the model registry")
    replay.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="decide under this policy YAML instead of the stored one (what-if)",
    )
    replay.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="largest score drift still called reproduced (default 0.02: the store keeps "
        "a JPEG of the graded pixels)",
    )
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from serving.commands.service import settings_from_args
    from serving.policy import load_policy
    from serving.services import replay
    from serving.services.decide import policy_for_model
    from serving.storage.photostore import command_photos
    from vision.errors import ConfigError

    tolerance = replay.SCORE_TOLERANCE if args.tolerance is None else args.tolerance
    if not 0 <= tolerance < 1:
        raise ConfigError("--tolerance must be in [0, 1)", code="invalid_setting")
    settings = settings_from_args(args)
    photos = command_photos(settings, args.photo_dir)  # the folder, or the S3 bucket
    svc = replay.open_service(settings.database_url, photos, settings.resolve_model_path())
    try:
        policy = None
        if args.policy is not None:
            policy = policy_for_model(load_policy(args.policy), svc.grader.card)
        result = replay.replay_decision(
            svc,
            args.decision_id,
            policy=policy,
            models_dir=settings.models_dir,
            tolerance=tolerance,
        )
    finally:
        svc.db.dispose()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        for line in replay_lines(result):
            print(line)
    return 0 if result.reproduced else 1


def replay_lines(result: Any) -> list[str]:
    """The human report of a ``ReplayResult``."""
    head = "REPRODUCED" if result.reproduced else "NOT REPRODUCED"
    o, r = result.original, result.replayed
    lines = [
        f"{head} {result.decision_id} (return {result.return_id}, model "
        f"{result.model_version}, policy {o.policy_version})",
        f"  stored:   {o.outcome}, grade {o.grade}, confidence {_num(o.confidence)}, "
        f"flags {', '.join(o.flags) or '-'}",
        f"  replayed: {r.outcome}, grade {r.grade}, confidence {_num(r.confidence)}, "
        f"flags {', '.join(r.flags) or '-'}",
    ]
    if result.differences:
        lines.append(f"  differences (scores beyond {result.tolerance:g}):")
        lines += [f"    {d.line()}" for d in result.differences]
    if result.note:
        lines.append(f"  note: {result.note}")
    return lines


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
