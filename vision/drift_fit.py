"""Fit a model's drift reference on a manifest split and store it in the model card.

The photos go through the serving path itself (``Grader``: decode, the shopper quality
gate's measures, the card's preprocessing, ONNX Runtime with the unfamiliarity output),
so the reference counts exactly what the service will later count from its stored rows
(``vision/drift.py`` for the statistics). Torch-free, like ``fit-unfamiliarity``: a
deployment can refit the reference of a shipped model without the training extra.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from vision.drift import fit_reference, observation_of
from vision.errors import DataError
from vision.fsio import atomic_path
from vision.manifest import Manifest, ManifestRecord
from vision.pipeline import Grader
from vision.registry import card_of, write_card

log = logging.getLogger(__name__)
DEFAULT_MAX_PHOTOS = 2000


def _spaced(records: tuple[ManifestRecord, ...], limit: int) -> list[ManifestRecord]:
    """At most ``limit`` records, evenly spaced (deterministic)."""
    if len(records) <= limit:
        return list(records)
    step = len(records) / limit
    return [records[int(i * step)] for i in range(limit)]


def reference_from_manifest(
    model_path: Path,
    manifest: Manifest,
    *,
    split: str = "val",
    max_photos: int = DEFAULT_MAX_PHOTOS,
) -> dict[str, Any]:
    """The drift reference of ``model_path`` on the manifest's ``split`` photos."""
    records = _spaced(manifest.split(split), max_photos)
    if not records:
        raise DataError(
            f"the manifest has no {split!r} photos to fit a drift reference on",
            code="too_few_photos",
        )
    grader = Grader.load(model_path)
    card = grader.card
    index = {g: i for i, g in enumerate(card.grade_labels)}
    observations, labels = [], []
    for record in records:
        graded = grader.grade([record.image.read_bytes()]).photos[0]
        s, photo = graded.scores, graded.photo
        observations.append(
            observation_of(
                [{"name": c.name, "value": c.value} for c in graded.quality.checks],
                max(photo.original_width, photo.original_height),
                s.grade_probs.tolist(),
                s.damage_probs.tolist(),
                s.unfamiliarity,
                s.familiar,
            )
        )
        labels.append(index.get(record.grade) if record.grade else None)
    return fit_reference(
        observations,
        card.grade_labels,
        card.damage_labels,
        labels=labels,
        source=f"{manifest.path.name}:{split}",
    )


def write_drift_reference(model_path: Path, reference: dict[str, Any], out: Path) -> Path:
    """Copy ``model_path`` to ``out`` (may be the same file) with ``reference`` in its card.

    Only the card changes; the graph and weights stay byte-identical.
    """
    card = replace(card_of(model_path), drift_reference=reference)
    with atomic_path(out) as tmp:
        shutil.copyfile(model_path, tmp)
        write_card(tmp, card)
    return out


def add_drift_reference(model_path: Path, manifest: Manifest) -> dict[str, Any] | None:
    """Fit the reference on the val split into ``model_path`` in place (the export path).

    A manifest without val photos is not an export failure: the model ships without a
    reference (its drift report then says so) and a warning says how to add one.
    """
    try:
        reference = reference_from_manifest(model_path, manifest, split="val")
    except DataError as exc:
        if exc.code != "too_few_photos":
            raise
        log.warning("%s: no drift reference (`returnlens model fit-drift-reference`)", exc.message)
        return None
    write_drift_reference(model_path, reference, model_path)
    return reference
