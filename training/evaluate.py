"""Evaluate an exported ONNX model on a manifest split, exactly as serving runs it.

Photos go bytes -> ``vision.decode`` -> ``OnnxModel.predict_images`` (the card's
preprocess spec) -> outputs: the path serving takes, so the numbers describe the
artefact that ships, not the training graph. Torch-free: this runs in a serving
install. Writes ``metrics.json``, ``report.md`` and PNG plots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from training.metrics import (
    accuracy,
    auroc,
    class_scores,
    confusion_matrix,
    coverage_curve,
    expected_calibration_error,
    mean_absolute_grade_error,
    nll,
    reliability_bins,
    roc_curve,
    sku_pair_similarities,
    uncalibrated_probs,
)
from vision.card import ModelCard
from vision.errors import DataError, DecodeError
from vision.manifest import Manifest, ManifestHeader, ManifestRecord
from vision.model import ModelOutputs, OnnxModel
from vision.pipeline import decode_for_grading

COVERAGE_TABLE = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


def load_rgb(path: Path, input_size: int) -> np.ndarray:
    """Decode one photo file the way serving decodes an upload."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc}", code="missing_file") from exc
    try:
        photo = decode_for_grading(data, input_size)
    except DecodeError as exc:
        raise DataError(f"image {path}: {exc.message}", code=exc.code) from exc
    return photo.rgb


def _chunks(items: Sequence[ManifestRecord], size: int) -> Iterator[Sequence[ManifestRecord]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def concat_outputs(parts: Sequence[ModelOutputs]) -> ModelOutputs:
    """One ``ModelOutputs`` from batches; the optional score fields only when every batch
    has them (a model either scores unfamiliarity or does not)."""

    def joined(name: str) -> Any:
        arrays = [getattr(p, name) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    return ModelOutputs(**{f.name: joined(f.name) for f in dataclass_fields(ModelOutputs)})


def predict_records(
    model: OnnxModel,
    records: Sequence[ManifestRecord],
    *,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "evaluate",
) -> ModelOutputs:
    """Model outputs for every record, in order, in batches (one progress bar)."""
    if not records:
        raise DataError("there are no photos to evaluate", code="empty_split")
    size = model.card.preprocess.input_size
    parts: list[ModelOutputs] = []
    with tqdm(total=len(records), desc=desc, unit="img", disable=not progress) as bar:
        for chunk in _chunks(records, batch_size):
            parts.append(model.predict_images([load_rgb(r.image, size) for r in chunk]))
            bar.update(len(chunk))
    return concat_outputs(parts)


def check_labels(header: ManifestHeader, card: ModelCard) -> None:
    """The manifest's label lists must be the model's, in the same order."""
    if tuple(header.grade_labels) != tuple(card.grade_labels):
        raise DataError(
            f"the manifest's grade labels {list(header.grade_labels)} do not match "
            f"the model's {list(card.grade_labels)}",
            code="label_mismatch",
        )
    missing = [d for d in header.damage_labels if d not in card.damage_labels]
    if missing:
        raise DataError(
            f"the manifest's damage labels {missing} are not among the model's "
            f"{list(card.damage_labels)}",
            code="label_mismatch",
        )


def encode_labels(
    records: Sequence[ManifestRecord], card: ModelCard
) -> tuple[np.ndarray, np.ndarray]:
    """Grade indices (-1 = unlabelled) and a multi-hot damage matrix."""
    g_index = {g: i for i, g in enumerate(card.grade_labels)}
    d_index = {d: i for i, d in enumerate(card.damage_labels)}
    grades = np.array(
        [g_index.get(r.grade, -2) if r.grade is not None else -1 for r in records], dtype=np.int64
    )
    if (grades == -2).any():
        raise DataError("some records have grades the model does not know", code="label_mismatch")
    damage = np.zeros((len(records), len(card.damage_labels)), dtype=np.int64)
    for i, r in enumerate(records):
        for d in r.damage:
            damage[i, d_index[d]] = 1
    return grades, damage


def _num(x: float | None) -> float | None:
    """JSON-safe float (NaN -> None), rounded for readable files."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def compute_metrics(
    outputs: ModelOutputs,
    records: Sequence[ManifestRecord],
    card: ModelCard,
    *,
    split: str = "test",
) -> dict[str, Any]:
    """Every metric as plain JSON (floats rounded; undefined values are null)."""
    grades, damage = encode_labels(records, card)
    lab = grades >= 0
    probs, y = outputs.grade_probs[lab].astype(np.float64), grades[lab]
    pred = probs.argmax(axis=1)
    n_g = len(card.grade_labels)
    cm = confusion_matrix(y, pred, n_g)
    cs = class_scores(cm)
    raw = uncalibrated_probs(probs, card.temperature)
    curve = coverage_curve(probs.max(axis=1), pred == y) if len(y) else None
    aurocs, notes = {}, []
    for k, name in enumerate(card.damage_labels):
        aurocs[name] = auroc(outputs.damage_probs[:, k], damage[:, k])
        if aurocs[name] is None:
            notes.append(
                f"damage AUROC for {name!r} is undefined: the split has "
                f"{'no' if damage[:, k].sum() == 0 else 'only'} positive examples"
            )
    defined = [v for v in aurocs.values() if v is not None]
    pairs = sku_pair_similarities(outputs.embedding, [r.sku for r in records])
    return {
        "split": split,
        "count": len(records),
        "labelled": int(lab.sum()),
        "model_version": card.model_version,
        "grade": {
            "labels": list(card.grade_labels),
            "accuracy": _num(accuracy(y, pred)),
            "macro_f1": _num(cs.macro_f1),
            "mean_abs_error": _num(mean_absolute_grade_error(y, pred)),
            "per_class": {
                g: {
                    "precision": _num(cs.precision[k]),
                    "recall": _num(cs.recall[k]),
                    "f1": _num(cs.f1[k]),
                    "support": cs.support[k],
                }
                for k, g in enumerate(card.grade_labels)
            },
            "confusion_matrix": cm.tolist(),
        },
        "calibration": {
            "temperature": card.temperature,
            "bins": 15,
            "ece_before": _num(expected_calibration_error(raw, y)) if len(y) else None,
            "ece_after": _num(expected_calibration_error(probs, y)) if len(y) else None,
            "nll_before": _num(nll(raw, y)) if len(y) else None,
            "nll_after": _num(nll(probs, y)) if len(y) else None,
        },
        "damage": {
            "auroc": {k: _num(v) for k, v in aurocs.items()},
            "macro_auroc": _num(float(np.mean(defined))) if defined else None,
            "notes": notes,
        },
        "coverage": _coverage_json(curve, card),
        "embedding": {
            "sku_pair_auroc": _num(pairs.auroc),
            "same_pairs": len(pairs.same),
            "different_pairs": len(pairs.different),
            "mean_same": _num(float(pairs.same.mean())) if len(pairs.same) else None,
            "mean_different": (
                _num(float(pairs.different.mean())) if len(pairs.different) else None
            ),
        },
    }


def _coverage_json(curve: Any, card: ModelCard) -> dict[str, Any]:
    if curve is None or len(curve.thresholds) == 0:
        return {"grid": [], "table": []}
    suggested = card.thresholds.get("auto_approve_confidence")
    points = sorted({*COVERAGE_TABLE, *(() if suggested is None else (round(suggested, 6),))})
    rows = []
    for t in points:
        cov, acc = curve.at(t)
        rows.append({"threshold": t, "coverage": _num(cov), "accuracy": _num(acc)})
    grid = []
    for t in GRID:
        cov, acc = curve.at(float(t))
        grid.append([float(t), _num(cov), _num(acc)])
    return {"grid": grid, "table": rows}


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The short metric set that goes into the model card."""
    return {
        "split": metrics["split"],
        "count": metrics["count"],
        "accuracy": metrics["grade"]["accuracy"],
        "macro_f1": metrics["grade"]["macro_f1"],
        "mean_abs_grade_error": metrics["grade"]["mean_abs_error"],
        "ece": metrics["calibration"]["ece_after"],
        "ece_uncalibrated": metrics["calibration"]["ece_before"],
        "damage_macro_auroc": metrics["damage"]["macro_auroc"],
        "damage_auroc": metrics["damage"]["auroc"],
        "embedding_sku_auroc": metrics["embedding"]["sku_pair_auroc"],
    }


# --------------------------------------------------------------------------- plots + report


def _figure(width: float = 5.0, height: float = 4.0) -> Any:
    """A bare Agg figure: no pyplot, so no global state and no display needed."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _plot_confusion(cm: np.ndarray, labels: Sequence[str], path: Path) -> None:
    fig = _figure(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 2.0)
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            str(v),
            ha="center",
            va="center",
            color="white" if norm[i, j] > 0.5 else "black",
            fontsize=10,
        )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Grade confusion matrix (colour: row share)")
    fig.savefig(path)


def _plot_reliability(
    raw: np.ndarray, cal: np.ndarray, y: np.ndarray, temperature: float, path: Path
) -> None:
    fig = _figure(9.0, 4.0)
    for k, (probs, title) in enumerate(
        ((raw, "before calibration (T=1)"), (cal, f"after calibration (T={temperature:.3g})"))
    ):
        bins = reliability_bins(probs, y)
        ax = fig.add_subplot(1, 2, k + 1)
        centers = (bins.edges[:-1] + bins.edges[1:]) / 2
        width = bins.edges[1] - bins.edges[0]
        ax.bar(
            centers, np.nan_to_num(bins.accuracy), width=width * 0.9, alpha=0.7, label="accuracy"
        )
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}\nECE {bins.ece:.4f}")
        ax.legend(loc="upper left")
    fig.savefig(path)


def _plot_coverage(
    conf: np.ndarray, correct: np.ndarray, suggested: float | None, path: Path
) -> None:
    curve = coverage_curve(conf, correct)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(curve.coverage, curve.accuracy, drawstyle="steps-post")
    if suggested is not None:
        cov, acc = curve.at(suggested)
        if cov > 0:
            ax.plot([cov], [acc], "o", label=f"suggested threshold {suggested:.3f}")
            ax.legend(loc="lower left")
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("coverage (share of items decided automatically)")
    ax.set_ylabel("accuracy of decided items")
    ax.set_title("Auto-approval: precision vs coverage")
    fig.savefig(path)


def _plot_damage_roc(
    probs: np.ndarray, damage: np.ndarray, labels: Sequence[str], path: Path
) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    for k, name in enumerate(labels):
        auc = auroc(probs[:, k], damage[:, k])
        if auc is None:
            continue
        fpr, tpr = roc_curve(probs[:, k], damage[:, k])
        ax.plot(fpr, tpr, label=f"{name} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Damage ROC per label (AUROC)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path)


def write_plots(
    outputs: ModelOutputs, records: Sequence[ManifestRecord], card: ModelCard, out_dir: Path
) -> dict[str, str]:
    """PNG plots in ``out_dir``; returns {plot name: file name}."""
    grades, damage = encode_labels(records, card)
    lab = grades >= 0
    cal, y = outputs.grade_probs[lab].astype(np.float64), grades[lab]
    plots: dict[str, str] = {}
    if len(y):
        pred = cal.argmax(axis=1)
        _plot_confusion(
            confusion_matrix(y, pred, len(card.grade_labels)),
            card.grade_labels,
            out_dir / "confusion_matrix.png",
        )
        _plot_reliability(
            uncalibrated_probs(cal, card.temperature),
            cal,
            y,
            card.temperature,
            out_dir / "reliability.png",
        )
        _plot_coverage(
            cal.max(axis=1),
            pred == y,
            card.thresholds.get("auto_approve_confidence"),
            out_dir / "coverage.png",
        )
        plots.update(
            confusion_matrix="confusion_matrix.png",
            reliability="reliability.png",
            coverage="coverage.png",
        )
    if len(card.damage_labels):
        _plot_damage_roc(
            outputs.damage_probs, damage, card.damage_labels, out_dir / "damage_roc.png"
        )
        plots["damage_roc"] = "damage_roc.png"
    return plots


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.4f}"


def write_report(metrics: dict[str, Any], card: ModelCard, out_dir: Path) -> None:
    """A short human report: headline, per-class, coverage, damage, plots."""
    g, c, d = metrics["grade"], metrics["calibration"], metrics["damage"]
    emb = metrics["embedding"]
    lines = [
        f"# Evaluation of model {card.model_version}",
        "",
        f"Split `{metrics['split']}` of `{metrics.get('manifest', '')}`: {metrics['count']} "
        f"photos ({metrics['labelled']} with a grade). Evaluated through `vision` "
        "(decode, card preprocessing, ONNX Runtime), as serving runs the model.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| grade accuracy | {_fmt(g['accuracy'], True)} |",
        f"| macro-F1 | {_fmt(g['macro_f1'])} |",
        f"| mean absolute grade error | {_fmt(g['mean_abs_error'])} |",
        f"| ECE (15 bins) before / after calibration | {_fmt(c['ece_before'])} / "
        f"{_fmt(c['ece_after'])} (T = {c['temperature']:.4g}) |",
        f"| damage macro AUROC | {_fmt(d['macro_auroc'])} |",
        f"| same- vs different-SKU embedding ROC-AUC | {_fmt(emb['sku_pair_auroc'])} |",
        "",
        "## Per grade",
        "",
        "| grade | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, row in g["per_class"].items():
        lines.append(
            f"| {name} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | "
            f"{_fmt(row['f1'])} | {row['support']} |"
        )
    lines += [
        "",
        "## Auto-approval coverage",
        "",
        "Decide automatically when the top grade probability is at least the threshold.",
        "",
        "| threshold | decided | accuracy of decided |",
        "|---|---|---|",
    ]
    suggested = card.thresholds.get("auto_approve_confidence")
    for row in metrics["coverage"]["table"]:
        mark = (
            " (suggested)"
            if suggested is not None and row["threshold"] == round(suggested, 6)
            else ""
        )
        lines.append(
            f"| {row['threshold']:.3f}{mark} | {_fmt(row['coverage'], True)} | "
            f"{_fmt(row['accuracy'], True)} |"
        )
    lines += ["", "## Damage AUROC", "", "| label | AUROC |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in d["auroc"].items()]
    if d["notes"]:
        lines += ["", *(f"- {n}." for n in d["notes"])]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({file})" for name, file in metrics.get("plots", {}).items()]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def evaluate_model(
    model_path: Path,
    manifest: Manifest,
    out_dir: Path,
    *,
    split: str = "test",
    progress: bool = True,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Evaluate ``model_path`` on ``split``; write metrics.json, report.md and plots."""
    model = OnnxModel(model_path)
    check_labels(manifest.header, model.card)
    records = manifest.split(split)
    if not records:
        raise DataError(
            f"split {split!r} of {manifest.path} has no records; choose one of train, val, test",
            code="empty_split",
        )
    outputs = predict_records(
        model, records, batch_size=batch_size, progress=progress, desc=f"evaluate {split}"
    )
    metrics = compute_metrics(outputs, records, model.card, split=split)
    metrics["model_path"] = str(model_path)
    metrics["manifest"] = str(manifest.path)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        plots = write_plots(outputs, records, model.card, out_dir)
        metrics["plots"] = plots
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
        write_report(metrics, model.card, out_dir)
    except OSError as exc:
        raise DataError(
            f"cannot write the evaluation to {out_dir}: {exc}", code="write_failed"
        ) from exc
    return metrics
