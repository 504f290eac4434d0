"""``returnlens policy check FILE``: validate a policy YAML before the service loads it.

Prints OK, the content-hash version and a summary (exit 0), or every error with its YAML
path (exit 2). With ``--model`` (an ONNX file or a model-card JSON) it also fits the policy
to that model's labels as the service does (``serving.policy.fit``: each model grade's
policy grade, by name, ``grade_map`` or rank, one line each; every rule part skipped for
a damage label the model lacks; a ``grade_map`` hint for grades matched by rank), and
resolves the thresholds the policy leaves to the model card exactly as the service does,
so the version printed is the one the service stores with its decisions.

Either way it ends with the card-driven thresholds in effect, one line each with its
source (``policy``, ``model card`` or ``default``), and for a card value what the card
says it was fitted for.

``returnlens policy simulate FILE --since DATE [--until DATE]`` re-decides the stored
shopper decisions of that period under the policy FILE, from their stored scores and
facts (no inference; ``serving.services.replay.simulate_policy``), and reports how many
outcomes would change, the from -> to counts and the changed decisions.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vision.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from serving.policy import Policy
    from vision.card import ModelCard


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
    simulate = inner.add_parser(
        "simulate",
        help="Re-decide stored decisions under a new policy; report what would change.",
        description="Re-decide every shopper decision made since DATE from its stored scores "
        "and facts under the policy FILE; report how many outcomes would change, from -> to "
        "counts and the changed decisions.",
    )
    simulate.add_argument("file", type=Path, help="the new policy YAML")
    simulate.add_argument(
        "--since", required=True, type=_when, help="first day (YYYY-MM-DD or ISO time, UTC)"
    )
    simulate.add_argument("--until", default=None, type=_when, help="end, exclusive (default: now)")
    simulate.add_argument("--database-url", dest="database_url", help="default: the service's")
    simulate.add_argument(
        "--model",
        type=Path,
        default=None,
        help="ONNX model or card JSON whose thresholds fill what the policy leaves out "
        "(default: the service's model)",
    )
    simulate.add_argument(
        "--limit", type=int, default=20, help="changed decisions listed (default 20)"
    )
    simulate.add_argument("--json", action="store_true", help="print the report as JSON")
    simulate.set_defaults(handler=_simulate)


def _check(args: argparse.Namespace) -> int:
    from serving.policy.config import check_compatible, load_policy

    card: ModelCard | None = None
    try:
        policy = load_policy(args.file)
        if args.model is not None:
            card = _model_card(args.model)
            policy = check_compatible(policy, list(card.grade_labels), list(card.damage_labels))
            policy = policy.for_model(card.thresholds)
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
        fit = policy.fit
        how = "as written" if fit is None else "once fitted (serving.policy.fit)"
        print(f"  fits the labels of {args.model} {how}")
        for line in fit.lines() if fit is not None else ():
            print(f"  {line}")
    for line in threshold_lines(policy, card):
        print(f"  {line}")
    if args.resolved:
        print(json.dumps(policy.resolved(), indent=2, sort_keys=True))
    return 0


def _when(text: str) -> datetime:
    """A date or ISO time from the command line, as aware UTC (naive means UTC)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD) or ISO time"
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _simulate(args: argparse.Namespace) -> int:
    from serving.commands.service import settings_from_args
    from serving.policy.config import load_policy
    from serving.services.decide import policy_for_model
    from serving.services.replay import simulate_policy
    from serving.storage.db import open_database

    settings = settings_from_args(args)
    card = _model_card(args.model or settings.resolve_model_path())
    policy = policy_for_model(load_policy(args.file), card)  # as the service would
    db = open_database(settings.database_url, migrate=False)
    try:
        result = simulate_policy(db, policy, args.since, args.until)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    window = f"since {args.since.isoformat()}" + (
        f" until {args.until.isoformat()}" if args.until else ""
    )
    print(
        f"policy {policy.version}: {len(result.changed)} of {result.decisions} decision(s) "
        f"{window} would change outcome"
    )
    if result.skipped:
        print(f"  {len(result.skipped)} decision(s) skipped (stored without the facts needed):")
        print(f"    {result.skipped[0][0]}: {result.skipped[0][1]}")
    for (old, new), count in sorted(result.transitions.items()):
        print(f"  {old} -> {new}: {count}")
    shown = result.changed[: max(args.limit, 0)]
    for c in shown:
        print(
            f"  {c.decision_id} (return {c.return_id}, {c.created_at:%Y-%m-%d}): "
            f"{c.original} -> {c.simulated}"
        )
    if len(result.changed) > len(shown):
        print(f"  ... and {len(result.changed) - len(shown)} more (--json lists all)")
    return 0


def threshold_lines(policy: Policy, card: ModelCard | None) -> list[str]:
    """A header and one line per card-driven threshold: value, source, and the card's
    target for a value taken from it."""
    head = (
        f"thresholds in effect with model {card.model_version}:"
        if card is not None
        else "thresholds in effect (no --model given):"
    )
    lines = [head]
    for eff in policy.thresholds.values():
        target = _card_target(card, eff.card_key) if eff.source == "model card" else ""
        lines.append(f"  {eff.line()}{f'; {target}' if target else ''}")
    return lines


def _card_target(card: ModelCard | None, key: str) -> str:
    """What the card says a suggestion was fitted for (export writes it since calibration
    checks began; an older card just lacks it)."""
    info = (card.metrics.get("thresholds") or {}).get(key) if card is not None else None
    if not isinstance(info, dict):
        return ""
    photos = f" ({info['val_photos']} photos)" if info.get("val_photos") else ""
    if "target_precision" in info:
        share = f"{100 * info['target_precision']:g}%"
        return f"fitted for {share} auto-decision precision on validation{photos}"
    if "target_false_flag_rate" in info:
        share = f"{100 * info['target_false_flag_rate']:g}%"
        return f"flags {share} of same-SKU validation pairs{photos}"
    return ""


def _model_card(path: Path) -> ModelCard:
    """The model card from a JSON file or an ONNX file's metadata."""
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
    return card
