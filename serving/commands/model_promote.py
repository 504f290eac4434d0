"""What ``returnlens model promote|rollback`` needs from the deployment.

The ``model`` commands live in ``training`` (``training/cli_model.py``), which may not
import ``serving``; the CLI root passes :data:`DEPLOYMENT` in. It answers, the way the
service itself would: the shipped default model, the deployment's reviewed labels (the
same export as ``returnlens dataset export-reviewed``), the grade-confidence threshold of
the deployment's policy for a given model card (policy value, else the card's
suggestion, else the default: ``serving/policy/thresholds.py``), and an audit row for a
change of champion. Torch-free. Every value comes from the ``RETURNLENS_*`` settings the
service reads unless the command passes one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vision.card import ModelCard

MIN_CONFIDENCE = "confidence.min_grade_confidence"


def shipped_model() -> Path:
    from serving.models import default_model_path

    return default_model_path()


def database_url(explicit: str | None) -> str | None:
    """The database whose reviewed labels count: the flag, else RETURNLENS_DATABASE_URL
    when set; None when neither (a development machine has no deployment)."""
    if explicit:
        return explicit
    from serving.settings import Settings

    settings = Settings()
    return settings.database_url if "database_url" in settings.model_fields_set else None


def reviewed_labels(
    url: str, photo_dir: Path | None, out_dir: Path, test_fraction: float
) -> Path | None:
    """Export the reviewed labels to ``out_dir`` (splits as ``dataset export-reviewed
    --test-fraction`` assigns them); None when nobody has reviewed anything yet."""
    from serving.settings import Settings
    from serving.storage.photostore import command_photos
    from serving.storage.review_export import ExportOptions, export_reviewed
    from vision.errors import DataError

    settings = Settings()
    photos = command_photos(settings, photo_dir)  # the folder, or the S3 bucket
    val = min(0.2, max(0.0, 1.0 - test_fraction))
    try:
        report = export_reviewed(
            url, photos, out_dir, ExportOptions(val_fraction=val, test_fraction=test_fraction)
        )
    except DataError as exc:
        if exc.code == "nothing_to_export":
            return None
        raise
    return report.manifest


def policy_threshold(policy: Path | None) -> Callable[[ModelCard], tuple[float, str]]:
    """Card -> (threshold below which a person decides, its source), from the policy."""
    from serving.policy.config import load_policy
    from serving.settings import Settings

    loaded = load_policy(policy or Settings().policy_path)

    def resolve(card: ModelCard) -> tuple[float, str]:
        effective = loaded.for_model(card.thresholds).thresholds[MIN_CONFIDENCE]
        return effective.value, effective.source

    return resolve


def audit(url: str, record: dict[str, Any]) -> None:
    """One audit row for a change of champion (subject: the model version)."""
    from serving.storage.db import Database
    from serving.storage.repo import append_audit

    db = Database(url)
    try:
        with db.write() as s:
            append_audit(
                s,
                at=datetime.now(UTC),
                actor=f"cli:{record.get('by') or 'unknown'}",
                action=f"model_{record.get('action', 'promote')}",
                subject_type="model",
                subject_id=str(record["version"]),
                payload=record,
            )
    finally:
        db.dispose()
