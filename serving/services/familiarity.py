"""Can the served model tell a photo it has never seen from a familiar one?

A model whose card carries ``UnfamiliaritySpec`` and whose graph has the output it names
scores every photo, and the policy abstains on the unfamiliar ones. An older model (no
card entry, or a card that names an output the graph lacks) still loads and grades, but
nobody can tell, so every decision abstains (``model_cannot_tell``) until a model with
the score is promoted. That state must not be discovered from a queue full of reviews:
the service logs it once at start-up and ``/readyz`` and ``/v1/model`` say it in a
sentence. This module builds that sentence; it reads only the loaded models.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.services.service import ReturnLensService
from vision.pipeline import Grader


@dataclass(frozen=True)
class UnfamiliarityStatus:
    available: bool  # every grader's model scores unfamiliarity
    note: str  # one sentence for operators


def grader_status(grader: Grader) -> UnfamiliarityStatus:
    card, spec = grader.card, grader.card.unfamiliarity
    if spec is not None and grader.model.has_unfamiliarity:
        return UnfamiliarityStatus(
            True,
            f"Model {card.model_version} scores how unfamiliar each photo is ({spec.method}, "
            f"threshold {spec.threshold:g}); photos above it go to a person.",
        )
    why = (
        "its model card has no unfamiliarity parameters"
        if spec is None
        else f"its card names the output {spec.output!r}, which its graph lacks"
    )
    return UnfamiliarityStatus(
        False,
        f"Model {card.model_version} cannot tell photos it has never seen from familiar "
        f"ones ({why}), so every photo goes to a person (model_cannot_tell) until a model "
        "with an unfamiliarity score is promoted.",
    )


def unfamiliarity_status(svc: ReturnLensService) -> UnfamiliarityStatus:
    """The shopper model's status, and the dock model's when it is another one."""
    shopper = grader_status(svc.grader)
    if svc.dock_grader.model is svc.grader.model:
        return shopper
    dock = grader_status(svc.dock_grader)
    if shopper.available and dock.available:
        return UnfamiliarityStatus(True, f"{shopper.note} Dock: {dock.note}")
    notes = [s.note for s in (shopper, dock) if not s.available]
    return UnfamiliarityStatus(False, " ".join(notes))
