"""Guided capture on the service side: the views a return's category asks for, and the
views an upload names, checked against them (``serving.policy.views`` decides)."""

from __future__ import annotations

from collections.abc import Sequence

from serving.domain_errors import Invalid
from serving.policy import Policy
from serving.services.outputs import ViewOut


def required_views(policy: Policy, category: str) -> list[ViewOut]:
    """The category's views in the policy's order; empty when it asks for none."""
    _, cat = policy.category(category)
    return [ViewOut(name=v.name, prompt=v.prompt, outline=v.outline) for v in cat.views or ()]


def check_views(
    policy: Policy, category: str, views: Sequence[str] | None, n_photos: int
) -> tuple[str | None, ...]:
    """One view per photo (an empty name: not said), each one the category asks for.

    No ``views`` at all: no photo names a view. Otherwise there must be one entry per
    photo (422 ``views_mismatch``), and a name the category does not ask for is a 422
    ``unknown_view`` listing the allowed names.
    """
    if not views:
        return (None,) * n_photos
    if len(views) != n_photos:
        raise Invalid(
            f"send one view per photo in the field 'views' ({n_photos} photos, "
            f"{len(views)} views); leave a view empty when the photo shows none of them",
            code="views_mismatch",
            details={"photos": n_photos, "views": len(views)},
        )
    allowed = [v.name for v in required_views(policy, category)]
    out: list[str | None] = []
    for i, name in enumerate(views):
        name = name.strip()
        if name and name not in allowed:
            listed = ", ".join(allowed) if allowed else "none: this item needs no particular views"
            raise Invalid(
                f"photo {i + 1} names the view {name[:40]!r}, which this item does not ask "
                f"for (allowed: {listed})",
                code="unknown_view",
                details={"index": i, "view": name[:40], "allowed": allowed},
            )
        out.append(name or None)
    return tuple(out)
