"""Start-up checks: what must stop the service with one sentence before it serves.

A model that does not load, a policy that does not fit its labels, a challenger (shadow)
model with other labels than the champion, a database that cannot be opened or migrated,
a photo store that cannot be opened. ``serving.app.build_runtime`` runs these as it
builds a worker's runtime. ``returnlens serve`` with several workers runs them through
:func:`check_start` alone, in a process of their own beside the workers' start
(``serving/commands/startcheck.py``): each worker imports the service and builds its own
runtime anyway, and this module's imports (model, policy, storage) take about a third of
the time of ``serving.app``'s (FastAPI, every router and service).

Kept light at import: nothing here imports FastAPI or the services.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vision.card import ModelCard
from vision.errors import ConfigError

if TYPE_CHECKING:
    from serving.policy import Policy
    from serving.settings import Settings
    from vision.model import OnnxModel


@dataclass(frozen=True)
class Started:
    """What ``returnlens serve`` prints of a checked start."""

    model_version: str
    policy_version: str  # the policy as the model's card resolves it


def served_model_and_policy(settings: Settings) -> tuple[OnnxModel, Policy]:
    """The model to serve, loaded, and the policy, checked against its labels."""
    from serving.policy import load_policy
    from vision.model import OnnxModel

    model_path = settings.resolve_model_path()
    policy = load_policy(settings.policy_path)
    model = OnnxModel(model_path, intra_op_threads=settings.threads_per_worker())
    policy.require_compatible(model.card.grade_labels, model.card.damage_labels)
    return model, policy


def check_same_labels(champion: ModelCard, challenger: ModelCard) -> None:
    """ConfigError (one sentence) unless the challenger grades with the champion's labels."""
    for kind, a, b in (
        ("grades", champion.grade_labels, challenger.grade_labels),
        ("damage labels", champion.damage_labels, challenger.damage_labels),
    ):
        if tuple(a) != tuple(b):
            raise ConfigError(
                f"shadow model {challenger.model_version} {kind} {', '.join(b)} but champion "
                f"{champion.model_version} {kind} {', '.join(a)}, and a shadow must use the "
                "champion's labels in the same order",
                code="shadow_labels_differ",
            )


def _check_shadow(settings: Settings, champion: ModelCard) -> None:
    """The challenger's labels, as ``serving.services.shadow.load_shadow`` checks them, read
    from its card without starting a session: one that cannot be found or read is only a
    warning there (no shadow runs), so it is left to that warning here."""
    from vision.registry import card_of

    try:
        path = settings.resolve_shadow_model_path()
        challenger = card_of(path) if path is not None else None
    except Exception:  # each worker logs why and serves without a shadow
        return
    if challenger is not None:
        check_same_labels(champion, challenger)


def check_start(settings: Settings) -> Started:
    """Every start-up check, and the database migrated (``migrate_on_start``), without
    building a runtime."""
    from serving.services.decide import check_policy_fits, policy_for_model
    from serving.storage.db import Database
    from serving.storage.photostore import open_photo_store

    model, policy = served_model_and_policy(settings)
    resolved = policy_for_model(policy, model.card)  # as ReturnLensService resolves it
    check_policy_fits(resolved, model.card)
    _check_shadow(settings, model.card)
    db = Database(settings.database_url)
    try:
        if settings.migrate_on_start:
            db.upgrade()
    finally:
        db.dispose()
    open_photo_store(settings)
    return Started(model_version=model.version, policy_version=resolved.version)


GATE_POLL_S = 0.02  # the start gate is a file; polled, as the checks take about a second


def wait_for_start(gate: Path) -> None:
    """Wait until the start-up checks have passed (``gate`` exists). A worker whose
    supervisor is gone (the checks failed, or it was killed) leaves quietly: there is
    nothing to serve and nobody to report to."""
    parent = os.getppid()
    while not gate.exists():
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(GATE_POLL_S)
