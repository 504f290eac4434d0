"""``returnlens policy check FILE``: validate a policy YAML before the service loads it.

Prints OK, the content-hash version and a summary (exit 0), or every error with its YAML
path (exit 2). With ``--model`` (an ONNX file or a model-card JSON) it also checks that
every grade and damage name in the policy is one of that model's labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vision.errors import ConfigError, ModelError


def register(sub: Any) -> None:  # argparse._SubParsersAction
    policy = sub.add_parser("policy", help="Policy YAML tools.")
    inner = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = inner.add_parser(
        "check",
        help="Validate a policy file; print its version and a summary.",
        description="Validate a policy YAML: exit 0 with OK and the version, or exit 2 with "
        "every error and its YAML path.",
    )
    check.add_argument("file", type=Path, help="policy YAML file")
    check.add_argument(
        "--model",
        type=Path,
        default=None,
        help="ONNX model or model-card JSON whose labels the policy must fit",
    )
    check.add_argument(
        "--resolved",
        action="store_true",
        help="also print the resolved policy (the JSON the version hashes)",
    )
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from serving.policy.config import check_compatible, load_policy

    try:
        policy = load_policy(args.file)
        if args.model is not None:
            grades, damage = _model_labels(args.model)
            check_compatible(policy, grades, damage)
    except ConfigError as exc:
        errors = exc.details.get("errors") if isinstance(exc.details, dict) else None
        if not errors:
            raise
        print(f"FAILED {args.file}: {len(errors)} error(s)", file=sys.stderr)
        for err in errors:
            print(f"  {err['path']}: {err['message']}", file=sys.stderr)
        return 2
    print(f"OK {policy.version}")
    for line in policy.summary():
        print(f"  {line}")
    if args.model is not None:
        print(f"  fits the labels of {args.model}")
    if args.resolved:
        print(json.dumps(policy.resolved(), indent=2, sort_keys=True))
    return 0


def _model_labels(path: Path) -> tuple[list[str], list[str]]:
    """Grade and damage labels from a model card (JSON) or an ONNX file's metadata."""
    from vision.card import CARD_KEY, ModelCard

    if not path.is_file():
        raise ModelError(f"model file {path} does not exist", code="model_not_found")
    if path.suffix.lower() == ".json":
        card = ModelCard.from_json(path.read_text(encoding="utf-8"))
    else:
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises several unrelated types for bad files
            raise ModelError(f"{path} is not a readable ONNX model: {exc}") from exc
        props = {p.key: p.value for p in model.metadata_props}
        if CARD_KEY not in props:
            raise ModelError(f"{path} carries no model card (metadata key {CARD_KEY!r})")
        card = ModelCard.from_json(props[CARD_KEY])
    return list(card.grade_labels), list(card.damage_labels)
