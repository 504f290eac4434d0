"""Guided capture: the views a category asks the shopper to photograph, and the
``missing_views`` flag.

A category may list ``views`` (``{name, prompt, outline}``): a phone's front with the
screen on, its back, the box. The shopper page walks through them one at a time; each
uploaded photo may say which view it shows. A view counts as covered once a photo of it
passed the quality gate (a blurry photo of the back leaves the back missing). While a
required view is missing the decision is ``retake`` with ``missing_views``, naming the
missing views' prompts; after ``quality.max_retakes`` retakes it goes to a person
instead, as photo-quality retakes do. A category without ``views`` is unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from serving.policy.types import Flag, ReturnContext

# The drawings the shopper page has (serving/web/static/js/outlines.js); "generic" is a
# plain frame for anything else.
Outline = Literal["phone_front", "phone_back", "box", "shoe_side", "shoe_sole", "generic"]
# At most 40 characters: the photo row's ``view`` column (serving/storage/lengths.LABEL).
ViewName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]{0,39}$")]
MAX_VIEWS = 6  # a return takes at most six photos


class CaptureView(BaseModel):
    """One view a category asks for: a short key, the shopper's sentence, a drawing."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: ViewName
    prompt: Annotated[str, Field(min_length=1, max_length=200)]
    outline: Outline = "generic"


Views = Annotated[list[CaptureView], Field(max_length=MAX_VIEWS)]


def unique_names(views: Sequence[CaptureView]) -> None:
    """Raise ValueError when two views share a name (the upload names them)."""
    names = [v.name for v in views]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"view names must be unique; repeated: {', '.join(twice)}")


def covered_views(ctx: ReturnContext) -> set[str]:
    """The views shown by photos that passed the quality gate."""
    return {p.view for p in ctx.photos if p.passed and p.view is not None}


def missing_views(
    views: Sequence[CaptureView] | None, max_retakes: int, ctx: ReturnContext
) -> list[Flag]:
    """``missing_views``: retake (review after ``max_retakes`` retakes) while a required
    view has no usable photo; nothing for a category without views."""
    if not views:
        return []
    covered = covered_views(ctx)
    missing = [v for v in views if v.name not in covered]
    if not missing:
        return []
    prompts = "; ".join(v.prompt.rstrip(".") for v in missing)
    evidence = {
        "missing": [v.name for v in missing],
        "missing_prompts": [v.prompt for v in missing],
        "required": [v.name for v in views],
        "covered": sorted(covered),
        "previous_retakes": ctx.previous_retakes,
        "max_retakes": max_retakes,
    }
    if ctx.previous_retakes >= max_retakes:
        return [
            Flag(
                "missing_views",
                f"Still missing {len(missing)} of {len(views)} required views after "
                f"{ctx.previous_retakes} retakes ({prompts}); a person should look.",
                "review",
                evidence,
            )
        ]
    return [
        Flag(
            "missing_views",
            f"Missing {len(missing)} of {len(views)} required views ({prompts}); asking the "
            "shopper for them.",
            "retake",
            evidence,
        )
    ]


def missing_sentence(prompts: Sequence[str]) -> str:
    """The shopper's sentence: which photos to add."""
    parts = [p.strip().rstrip(".") for p in prompts]
    parts = [p[:1].lower() + p[1:] if p[1:2].islower() else p for p in parts]
    return f"Please add a photo of each view we still need: {'; '.join(parts)}."
