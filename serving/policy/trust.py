"""Can the grade be trusted, and is this the ordered item? Shared by shopper and dock.

These checks come before anything that reads the grade:

=================== ======== =========================================================
code                effect   fires when
=================== ======== =========================================================
unfamiliar_photo    review   a scored photo lies outside the model's training world
                             (its unfamiliarity score is above the model card's
                             threshold: ``Scores.familiar`` is False)
model_cannot_tell   review   the model has no unfamiliarity score (an older model:
                             ``Scores.familiar`` is None), so nobody can tell
wrong_item          review   similarity to the SKU's reference < wrong_item.min_similarity
no_reference_photo  per rule the SKU has no catalog reference photo, so the wrong-item
                             check cannot run (``wrong_item.no_reference``: review|note)
=================== ======== =========================================================

The first two are abstentions: when either fires, the engine does not decide on the
grade at all (no condition, reason-mismatch, confidence or discrepancy check, and so no
automatic approval or grade-based refusal), because a grade of a photo the model has
never seen is a guess however confident it looks. They are not configurable.
"""

from __future__ import annotations

from serving.policy.config import Policy
from serving.policy.types import Flag, Scores

# A flag with one of these codes and effect "review" keeps the dock from routing the item.
HOLD_CODES = ("unfamiliar_photo", "model_cannot_tell", "wrong_item", "no_reference_photo")


def familiarity(scores: Scores) -> list[Flag]:
    """The abstention flag when the photos are unfamiliar or the model cannot tell."""
    if scores.familiar is True:
        return []
    known = [round(u, 4) for u in scores.unfamiliarity if u is not None]
    if scores.familiar is False:
        listed = ", ".join(f"{u:.2f}" for u in known)
        return [
            Flag(
                "unfamiliar_photo",
                "The photos lie outside what the model was trained on"
                f"{f' (unfamiliarity {listed})' if listed else ''}; its grade "
                f"({scores.grade}, p={scores.confidence:.2f}) is not used: "
                "a person should grade the item.",
                "review",
                {
                    "unfamiliarity": known,
                    "model_grade": scores.grade,
                    "model_confidence": round(scores.confidence, 4),
                },
            )
        ]
    return [
        Flag(
            "model_cannot_tell",
            "The model has no unfamiliarity score (an older model), so it cannot tell "
            "whether these photos lie within what it was trained on; its grade "
            f"({scores.grade}, p={scores.confidence:.2f}) is not used until a model with "
            "one is promoted: a person should grade the item.",
            "review",
            {"model_grade": scores.grade, "model_confidence": round(scores.confidence, 4)},
        )
    ]


def wrong_item(policy: Policy, sku: str | None, similarity: float | None) -> list[Flag]:
    limit = policy.spec.wrong_item.min_similarity
    if similarity is None or similarity >= limit:
        return []
    return [
        Flag(
            "wrong_item",
            f"The photos do not look like SKU {sku!r} (similarity {similarity:.2f} < {limit:.2f}).",
            "review",
            {"sku": sku, "similarity": round(similarity, 4), "min_similarity": limit},
        )
    ]


def no_reference(policy: Policy, sku: str | None, has_reference: bool | None) -> list[Flag]:
    if has_reference is not False:
        return []
    return [
        Flag(
            "no_reference_photo",
            f"SKU {sku!r} has no catalog reference photo, so the photos could not be "
            "checked against the ordered item; add one to the catalog.",
            policy.spec.wrong_item.no_reference,
            {"sku": sku},
        )
    ]
