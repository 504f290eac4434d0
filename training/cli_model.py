"""``returnlens evaluate``, ``export`` and
``model list|show|promote|rollback|history|fit-unfamiliarity``.

``evaluate`` and ``model`` are torch-free (they run in a serving install); only
``export`` imports torch, inside its handler. ``training`` may not import ``serving``:
what ``model promote`` needs from the deployment (the shipped model, reviewed labels,
the policy's threshold, the audit table) comes in as a :class:`Deployment`, which the
CLI root passes (``serving/commands/model_promote.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from training import cli_drift
from vision.card import ModelCard
from vision.errors import ModelError


class Deployment(Protocol):
    """The deployment's side of ``model promote`` (``serving.commands.model_promote``)."""

    def shipped_model(self) -> Path: ...

    def database_url(self, explicit: str | None) -> str | None: ...

    def reviewed_labels(
        self, url: str, photo_dir: Path | None, out_dir: Path, test_fraction: float
    ) -> Path | None: ...

    def policy_threshold(self, policy: Path | None) -> Callable[[ModelCard], tuple[float, str]]: ...

    def audit(self, url: str, record: dict[str, Any]) -> None: ...


def register(sub: Any, deployment: Deployment | None = None) -> None:  # argparse subparsers
    ev = sub.add_parser(
        "evaluate",
        help="evaluate an exported ONNX model on a manifest split",
        description="Evaluate an ONNX model through vision (decode, card "
        "preprocessing, ONNX Runtime) and write report.md, metrics.json and "
        "PNG plots.",
    )
    ev.add_argument("--model", required=True, type=Path, help="the .onnx file")
    ev.add_argument("--data", required=True, type=Path, help="manifest (JSONL)")
    ev.add_argument("--out", required=True, type=Path, help="output folder")
    ev.add_argument("--split", default="test", choices=("train", "val", "test"))
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(handler=_evaluate)

    ex = sub.add_parser(
        "export",
        help="calibrate a checkpoint and export a parity-checked ONNX",
        description="Fit the temperature on the val split, export ONNX with the "
        "model card, evaluate it on the test split, and refuse to write it "
        "unless torch and ONNX Runtime agree within 1e-4.",
    )
    ex.add_argument("--checkpoint", required=True, type=Path)
    ex.add_argument("--data", required=True, type=Path, help="manifest (JSONL)")
    ex.add_argument("--out", required=True, type=Path, help="output .onnx path")
    ex.add_argument("--version", help="model version (default: BACKBONE-YYYYMMDD-HHMMSS)")
    ex.add_argument(
        "--quantize",
        action="store_true",
        help="also write an int8 model (NAME.int8.onnx) and report its change",
    )
    ex.add_argument("--register", action="store_true", help="copy into the model registry")
    ex.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="registry folder (default $RETURNLENS_MODELS_DIR or ./models)",
    )
    ex.add_argument(
        "--approve-precision",
        type=float,
        default=0.98,
        help="target accuracy of auto-approved items for the suggested threshold",
    )
    ex.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy")
    ex.add_argument(
        "--tta-flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each photo with its mirror image inside the graph "
        "(default: the training recipe's tta_flip)",
    )
    ex.add_argument("--no-progress", action="store_true")
    ex.set_defaults(handler=_export)

    mo = sub.add_parser(
        "model",
        help="the model registry: list, show, promote, rollback, history; fit-unfamiliarity",
    )
    mo.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="registry folder (default $RETURNLENS_MODELS_DIR or ./models)",
    )
    mo.set_defaults(deployment=deployment)
    msub = mo.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    ls = msub.add_parser("list", help="registered versions")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_model_list)
    sh = msub.add_parser("show", help="a version's model card")
    sh.add_argument("version")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(handler=_model_show)
    pr = msub.add_parser(
        "promote",
        help="make VERSION the model serving loads, if it is not worse than the champion",
        description="Grade the challenger VERSION and the current champion on the same "
        "held-out photos (the test split of each --data manifest and the deployment's "
        "reviewed labels) and refuse (exit 2, both sides printed) when the challenger is "
        "worse on accuracy, MAE, ECE or the precision of auto-decisions at the policy's "
        "threshold. The challenger must load and grade with the champion's labels. The "
        "switch is one atomic rename; the promotions log (promotions.jsonl in the "
        "registry) records who, when, why, the comparison and whether it was forced.",
    )
    pr.add_argument("version")
    pr.add_argument("--reason", required=True, help="why (recorded in the promotions log)")
    pr.add_argument("--by", help="who (default: the login name)")
    pr.add_argument(
        "--data",
        action="append",
        type=Path,
        default=[],
        metavar="MANIFEST",
        help="a held-out manifest (repeatable); its --split records are used",
    )
    pr.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    pr.add_argument(
        "--database-url",
        dest="database_url",
        help="the deployment's database, whose reviewed labels are exported and compared "
        "on (default: RETURNLENS_DATABASE_URL when set)",
    )
    pr.add_argument("--photo-dir", dest="photo_dir", type=Path, help="its photo store")
    pr.add_argument(
        "--reviewed",
        choices=("test", "all", "none"),
        default="test",
        help="which reviewed labels: 'test' (default) the items the reviewed-label export "
        "puts in its test split at --reviewed-test-fraction (held out when the challenger "
        "was trained on an export with the same fraction), 'all' (the challenger was not "
        "trained on reviewed labels), 'none'",
    )
    pr.add_argument("--reviewed-test-fraction", type=float, default=0.2)
    pr.add_argument(
        "--policy",
        type=Path,
        help="policy whose grade-confidence threshold scores auto-decisions "
        "(default: the service's, RETURNLENS_POLICY_PATH or the shipped one)",
    )
    pr.add_argument(
        "--threshold",
        type=float,
        help="score auto-decisions of both models at this confidence instead",
    )
    pr.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="a loss smaller than this on a metric does not count as worse (default 0)",
    )
    pr.add_argument(
        "--force",
        action="store_true",
        help="promote even when the challenger is worse or nothing can be compared "
        "(recorded as forced)",
    )
    pr.add_argument("--json", action="store_true", help="print the comparison as JSON")
    pr.set_defaults(handler=_model_promote)
    rb = msub.add_parser(
        "rollback", help="return to the previous champion (from the promotions log)"
    )
    rb.add_argument("--reason", required=True, help="why (recorded in the promotions log)")
    rb.add_argument("--by", help="who (default: the login name)")
    rb.add_argument("--database-url", dest="database_url", help="also audit it there")
    rb.set_defaults(handler=_model_rollback)
    hi = msub.add_parser("history", help="the promotions log: who promoted what, when, why")
    hi.add_argument("--json", action="store_true")
    hi.set_defaults(handler=_model_history)
    fu = msub.add_parser(
        "fit-unfamiliarity",
        help="add an unfamiliarity score (fitted on a manifest) to an ONNX model",
        description="Fit how far a photo lies from the training data on the manifest's "
        "train split (pooled backbone features, probabilistic-PCA Mahalanobis distance), "
        "append the score to the graph as the output 'unfamiliarity', set its threshold "
        "on the val split for the target false-alarm rate, and write it into the card. "
        "The other outputs stay bit-identical. Torch-free.",
    )
    fu.add_argument("--model", required=True, type=Path, help="the exported .onnx file")
    fu.add_argument("--data", required=True, type=Path, help="in-distribution manifest (JSONL)")
    fu.add_argument("--out", required=True, type=Path, help="output .onnx path (may be --model)")
    fu.add_argument(
        "--target-rate",
        type=float,
        default=0.015,
        help="share of val photos the threshold may flag (at most 0.02; default 0.015)",
    )
    fu.add_argument("--components", type=int, default=128, help="principal directions kept")
    fu.add_argument("--max-train", type=int, default=8000, help="train photos used at most")
    fu.set_defaults(handler=_model_fit_unfamiliarity)
    cli_drift.register(msub)  # fit-drift-reference (training/cli_drift.py)


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.4f}"


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_model
    from vision.manifest import load_manifest

    if not args.model.is_file():
        raise ModelError(f"model file {args.model} does not exist", code="model_not_found")
    manifest = load_manifest(args.data)
    m = evaluate_model(
        args.model,
        manifest,
        args.out,
        split=args.split,
        progress=not args.no_progress,
        batch_size=args.batch_size,
    )
    g, c = m["grade"], m["calibration"]
    print(
        f"{m['split']}: {m['count']} photos  accuracy {_fmt(g['accuracy'], True)}  "
        f"macro-F1 {_fmt(g['macro_f1'])}  MAE {_fmt(g['mean_abs_error'])}  "
        f"ECE {_fmt(c['ece_before'])} -> {_fmt(c['ece_after'])}  "
        f"damage AUROC {_fmt(m['damage']['macro_auroc'])}  "
        f"SKU AUROC {_fmt(m['embedding']['sku_pair_auroc'])}"
    )
    print(f"wrote {args.out / 'report.md'}, metrics.json and {len(m['plots'])} plots")
    return 0


def _export(args: argparse.Namespace) -> int:
    from training.export import calibrate_and_export
    from vision.manifest import load_manifest
    from vision.registry import ModelRegistry

    manifest = load_manifest(args.data)
    rep = calibrate_and_export(
        args.checkpoint,
        manifest,
        args.out,
        model_version=args.version,
        quantize=args.quantize,
        progress=not args.no_progress,
        approve_precision=args.approve_precision,
        exporter=args.exporter,
        tta_flip=args.tta_flip,
    )
    m, d = rep.metrics, rep.parity.max_abs_diff
    print(f"wrote {rep.path} (version {rep.card.model_version})")
    print(f"temperature {rep.temperature:.4f}; thresholds {json.dumps(rep.thresholds)}")
    print(
        f"{m.get('split')}: accuracy {_fmt(m.get('accuracy'), True)}  MAE "
        f"{_fmt(m.get('mean_abs_grade_error'))}  ECE {_fmt(m.get('ece'))}  damage AUROC "
        f"{_fmt(m.get('damage_macro_auroc'))}  SKU AUROC {_fmt(m.get('embedding_sku_auroc'))}"
    )
    print(
        f"parity on {rep.parity.images} photos: max |diff| grade {d['grade_probs']:.2e}, "
        f"damage {d['damage_probs']:.2e}, embedding {d['embedding']:.2e}, "
        f"cam {d['damage_cam']:.2e} (limit {rep.parity.tolerance:g})"
    )
    q = rep.quantization
    if q is not None:
        change = q.accuracy_change
        print(
            f"int8: {q.path} ({q.size_bytes['int8'] / 1e6:.2f} MB vs "
            f"{q.size_bytes['fp32'] / 1e6:.2f} MB); accuracy change "
            f"{'n/a' if change is None else f'{100 * change:+.2f} points'}"
        )
        for b in ("1", "8"):
            print(
                f"  CPU, 1 thread, batch {b}: fp32 {q.latency_ms['fp32'][b]:.2f} ms/img, int8 "
                f"{q.latency_ms['int8'][b]:.2f} ms/img ({q.speedup(int(b)):.2f}x)"
            )
    if args.register:
        reg = ModelRegistry(args.models_dir)
        entry = reg.register(rep.path, int8_path=q.path if q is not None else None)
        print(f"registered {entry.version} in {reg.root}")
    return 0


def _model_list(args: argparse.Namespace) -> int:
    reg = _registry(args, bootstrap=False)
    entries = reg.list()
    if args.json:
        print(json.dumps([e.summary() for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no models registered in {reg.root}")
        return 0
    rows = [("", "VERSION", "BACKBONE", "CREATED", "ACCURACY", "INT8")]
    rows += [
        (
            "*" if e.promoted else "",
            e.version,
            e.card.backbone,
            e.card.created_at,
            _fmt(e.card.metrics.get("accuracy"), True),
            "yes" if e.int8_path else "",
        )
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print("(* = promoted: what serving loads)")
    return 0


def _model_show(args: argparse.Namespace) -> int:
    from vision.registry import ModelRegistry

    entry = ModelRegistry(args.models_dir).get(args.version)
    card = entry.card
    if args.json:
        print(json.dumps(card.to_dict(), indent=2, sort_keys=True))
        return 0
    print(f"version      {card.model_version}{'  (promoted)' if entry.promoted else ''}")
    print(
        f"file         {entry.path}" + (f"  (+ int8 {entry.int8_path})" if entry.int8_path else "")
    )
    print(
        f"backbone     {card.backbone}, input {card.preprocess.input_size}px "
        f"{card.preprocess.resize_mode}, embedding {card.embedding_dim}"
    )
    print(f"created      {card.created_at}")
    print(f"grades       {', '.join(card.grade_labels)}")
    print(f"damage       {', '.join(card.damage_labels) or '-'}")
    print(f"temperature  {card.temperature:.4f}")
    for line in _provenance_lines(card):
        print(line)
    scalar = {k: v for k, v in card.metrics.items() if not isinstance(v, dict)}
    print(f"metrics      {json.dumps(scalar)}")
    if card.notes:
        print(f"notes        {card.notes}")
    return 0


def _provenance_lines(card: Any) -> list[str]:
    """Where the card's temperature, thresholds and unfamiliarity score came from.

    An ML engineer deciding whether to promote a model needs to see that calibration was
    measured (ECE before and after, which one was kept) and what each suggested threshold
    was fitted for, not only the numbers; an older card simply says it lacks them.
    """
    cal = card.metrics.get("calibration")
    if isinstance(cal, dict):
        lines = [
            f"calibration  ECE {cal.get('ece_before')} before, {cal.get('ece_after')} after "
            f"temperature scaling (cross-validated) on {cal.get('val_photos')} val photos; "
            f"kept {cal.get('kept')}"
        ]
        if cal.get("note"):
            lines.append(f"             {cal['note']}")
    else:
        lines = ["calibration  not recorded (a card from before export measured it)"]
    targets = card.metrics.get("thresholds")
    for name, value in sorted(card.thresholds.items()):
        why = targets.get(name) if isinstance(targets, dict) else None
        lines.append(f"threshold    {name} = {value}" + (f"  ({json.dumps(why)})" if why else ""))
    unf = card.unfamiliarity
    if unf is None:
        lines.append("unfamiliar   none: serving abstains on every photo with this model")
    else:
        test_rate = unf.fitted_on.get("test_false_alarm_rate")
        lines.append(
            f"unfamiliar   {unf.method} > {unf.threshold:.4f}; false alarms "
            f"{unf.false_alarm_rate:.1%} val"
            + (f", {float(test_rate):.1%} test" if test_rate is not None else "")
            + f" (fitted {unf.fitted_on.get('fitted_at', '?')})"
        )
    return lines


def _model_fit_unfamiliarity(args: argparse.Namespace) -> int:
    from vision.manifest import load_manifest
    from vision.unfamiliarity import fit_unfamiliarity

    if not args.model.is_file():
        raise ModelError(f"model file {args.model} does not exist", code="model_not_found")
    rep = fit_unfamiliarity(
        args.model,
        load_manifest(args.data),
        args.out,
        target_rate=args.target_rate,
        components=args.components,
        max_train=args.max_train,
    )
    spec, fit = rep.spec, rep.spec.fitted_on
    test_rate = fit.get("test_false_alarm_rate")
    print(f"wrote {rep.path}: output {spec.output!r}, method {spec.method}")
    print(
        f"threshold {spec.threshold:.4f}: flags {_fmt(spec.false_alarm_rate, True)} of "
        f"{fit['val_photos']} val photos (target {_fmt(args.target_rate, True)}); "
        f"test {_fmt(test_rate, True)} of {fit['test_photos']}"
    )
    print(f"fitted on {fit['train_photos']} train photos, {fit['components']} components")
    return 0


def _registry(args: argparse.Namespace, *, bootstrap: bool) -> Any:
    """The registry, with the shipped model registered as its first version."""
    from vision.registry import ModelRegistry

    reg = ModelRegistry(args.models_dir)
    dep: Deployment | None = getattr(args, "deployment", None)
    if dep is not None and (bootstrap or reg.root.is_dir()):
        reg.ensure_shipped(dep.shipped_model())
    return reg


def _held_out(args: argparse.Namespace, card: ModelCard, tmp: Path) -> list[Any]:
    from training.compare import HeldOut, held_out_from
    from training.compare import load_held_out as load_manifest

    split = None if args.split == "all" else args.split
    sets = [held_out_from(load_manifest(path), card, split) for path in args.data]
    dep: Deployment | None = args.deployment
    if args.reviewed == "none":
        return sets
    if dep is None:
        if args.database_url:
            raise ModelError(
                "--database-url needs the service's storage, which this install's "
                "`model` command was not given",
                code="no_deployment",
            )
        return sets
    url = dep.database_url(args.database_url)
    if url is None:
        return sets
    exported = dep.reviewed_labels(
        url, args.photo_dir, tmp / "reviewed", args.reviewed_test_fraction
    )
    if exported is None:
        print(
            "the deployment has no reviewed labels yet; comparing on --data only", file=sys.stderr
        )
        return sets
    held = held_out_from(load_manifest(exported), card, "test" if args.reviewed == "test" else None)
    selection = (
        f"test split at fraction {args.reviewed_test_fraction:g}"
        if args.reviewed == "test"
        else "all reviewed labels"
    )
    sets.append(HeldOut("the deployment's reviewed labels", selection, held.records))
    return sets


def _audit(args: argparse.Namespace, record: dict[str, Any]) -> None:
    dep: Deployment | None = args.deployment
    url = dep.database_url(args.database_url) if dep is not None else None
    if dep is None or url is None:
        return
    try:
        dep.audit(url, record)
    except Exception as exc:  # the switch is done and logged; the row is a copy
        print(
            f"warning: the change is in the promotions log but no audit row was written "
            f"to the database: {exc}",
            file=sys.stderr,
        )


def _champion(reg: Any) -> tuple[Any, Any]:
    """The champion's entry and loaded model. A champion whose file is gone or does not
    load cannot be served anyway: it is named on stderr and any loadable challenger may
    replace it without a comparison (the record says why)."""
    from vision.model import OnnxModel

    try:
        champion = reg.promoted()
    except ModelError as exc:
        if exc.code != "unknown_version":
            raise
        print(f"warning: {exc.message}; promoting without a comparison", file=sys.stderr)
        return None, None
    if champion is None:
        return None, None
    try:
        return champion, OnnxModel(champion.path, intra_op_threads=1)
    except ModelError as exc:
        print(
            f"warning: the champion {champion.version} does not load ({exc.message}); "
            "promoting without a comparison",
            file=sys.stderr,
        )
        return champion, None


def _model_promote(args: argparse.Namespace) -> int:
    from training.compare import METRIC_NAMES, card_threshold, check_same_labels, compare_models
    from vision.model import OnnxModel

    if args.tolerance < 0 or (args.threshold is not None and not 0 <= args.threshold <= 1):
        raise ModelError(
            "--tolerance must be at least 0 and --threshold between 0 and 1",
            code="invalid_argument",
        )
    reg = _registry(args, bootstrap=True)
    entry = reg.get(args.version)
    champion, champion_model = _champion(reg)
    if champion is not None and champion.version == entry.version:
        print(f"{entry.version} is already the champion; nothing to do")
        return 0
    try:
        challenger = OnnxModel(entry.path, intra_op_threads=1)
    except ModelError as exc:
        raise ModelError(
            f"version {entry.version!r} is refused: it does not load ({exc.message})",
            code="invalid_model",
        ) from exc
    comparison: dict[str, Any] | None = None
    if champion is not None and champion_model is None:
        comparison = {"skipped": f"the champion {champion.version} does not load"}
    elif champion is not None and champion_model is not None:
        check_same_labels(champion.card, challenger.card)
        with tempfile.TemporaryDirectory(prefix="returnlens-promote-") as tmp:
            sets = _held_out(args, champion.card, Path(tmp))
            if not any(h.records for h in sets):
                if not args.force:
                    raise ModelError(
                        f"there are no held-out labels to compare {entry.version} with the "
                        f"champion {champion.version} on: give --data MANIFEST or "
                        "--database-url, or --force to promote without a comparison",
                        code="nothing_to_compare",
                    )
            else:
                if args.threshold is not None:
                    value = float(args.threshold)

                    def threshold_for(card: ModelCard) -> tuple[float, str]:
                        return value, "--threshold"

                elif args.deployment is not None:
                    threshold_for = args.deployment.policy_threshold(args.policy)
                else:
                    threshold_for = card_threshold
                cmp = compare_models(
                    champion_model,
                    challenger,
                    sets,
                    threshold_for=threshold_for,
                    tolerance=args.tolerance,
                )
                comparison = cmp.to_dict()
                if args.json:
                    print(json.dumps(comparison, indent=2))
                else:
                    for line in cmp.lines():
                        print(line)
                if cmp.worse and not args.force:
                    print(
                        f"refused: challenger {entry.version} is worse than champion "
                        f"{champion.version} on {', '.join(METRIC_NAMES[m] for m in cmp.worse)}; "
                        "the champion stays "
                        "(--force overrides, and is recorded)",
                        file=sys.stderr,
                    )
                    return 2
    promoted = reg.promote(
        entry.version,
        by=args.by,
        reason=args.reason,
        comparison=comparison,
        forced=bool(args.force),
    )
    record = reg.promotion_log()[-1]
    _audit(args, record)
    over = f" over {champion.version}" if champion is not None else ""
    forced = " (forced)" if args.force else ""
    print(
        f"promoted {promoted.version}{over}{forced}: serving loads {promoted.path} on its "
        "next start or reload",
        file=sys.stderr if args.json else sys.stdout,
    )
    return 0


def _model_rollback(args: argparse.Namespace) -> int:
    reg = _registry(args, bootstrap=False)
    before = reg.promoted()
    entry = reg.rollback(by=args.by, reason=args.reason)
    _audit(args, reg.promotion_log()[-1])
    print(
        f"rolled back from {before.version if before else 'none'} to {entry.version}: "
        f"serving loads {entry.path} on its next start or reload"
    )
    return 0


def _model_history(args: argparse.Namespace) -> int:
    reg = _registry(args, bootstrap=False)
    log = reg.promotion_log()
    if args.json:
        print(json.dumps(log, indent=2))
        return 0
    if not log:
        print(f"no promotions recorded in {reg.root}")
        return 0
    for rec in log:
        worse = (rec.get("comparison") or {}).get("worse")
        compared = (
            "no comparison"
            if rec.get("comparison") is None
            else f"worse on {', '.join(worse)}"
            if worse
            else "not worse"
        )
        print(
            f"{rec.get('promoted_at')}  {rec.get('action', 'promote'):9}  {rec['version']}"
            f" (was {rec.get('previous') or 'none'})  by {rec.get('by')}"
            f"{'  FORCED' if rec.get('forced') else ''}  [{compared}]  {rec.get('reason') or ''}"
        )
    return 0
