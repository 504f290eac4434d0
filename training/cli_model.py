"""``returnlens evaluate``, ``export`` and ``model list|show|promote|fit-unfamiliarity``.

``evaluate`` and ``model`` are torch-free (they run in a serving install); only
``export`` imports torch, inside its handler.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vision.errors import ModelError


def register(sub: Any) -> None:  # argparse._SubParsersAction
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

    mo = sub.add_parser("model", help="the model registry: list, show, promote; fit-unfamiliarity")
    mo.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="registry folder (default $RETURNLENS_MODELS_DIR or ./models)",
    )
    msub = mo.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    ls = msub.add_parser("list", help="registered versions")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_model_list)
    sh = msub.add_parser("show", help="a version's model card")
    sh.add_argument("version")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(handler=_model_show)
    pr = msub.add_parser("promote", help="make VERSION the model serving loads")
    pr.add_argument("version")
    pr.set_defaults(handler=_model_promote)
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
    from vision.registry import ModelRegistry

    reg = ModelRegistry(args.models_dir)
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


def _model_promote(args: argparse.Namespace) -> int:
    from vision.registry import ModelRegistry

    reg = ModelRegistry(args.models_dir)
    entry = reg.promote(args.version)
    print(f"promoted {entry.version}: serving loads {entry.path} on its next start or reload")
    return 0
