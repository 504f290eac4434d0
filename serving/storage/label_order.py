"""The label order of stored photo scores (score JSON is a dict; order is kept beside it).

Lives in storage because both the services and the reviewed-label export read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def stored_label_order(
    scores: dict[str, Any], *, fallback: Sequence[str] | None = None, kind: str = "damage"
) -> tuple[str, ...] | None:
    """The ``kind`` ("grade" | "damage") labels of stored photo scores in model order.

    Scores written since the lists were stored carry them; for older rows ``fallback``
    (e.g. the current model card's list, when it names the same labels) is used, and
    without one None: the probability dict's key order is not trustworthy on PostgreSQL.
    """
    probs: dict[str, float] = scores.get(f"{kind}_probs") or {}
    stored = scores.get(f"{kind}_labels")
    if isinstance(stored, list) and set(stored) == set(probs):
        return tuple(str(x) for x in stored)
    if fallback is not None and set(fallback) == set(probs):
        return tuple(fallback)
    return None
