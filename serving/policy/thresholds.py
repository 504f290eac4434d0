"""Operating thresholds the model card suggests and a policy may override.

Two policy numbers depend on the model more than on the business: the grade confidence
below which a person decides (``confidence.min_grade_confidence``) and the catalog
similarity below which an item looks like another SKU (``wrong_item.min_similarity``).
Export measures both on validation photos and writes them into the model card
(``auto_approve_confidence`` for a target auto-decision precision,
``wrong_item_similarity`` for a target false-flag rate). A fixed number in the YAML goes
stale at the next retraining; so a policy that leaves one of them out (or writes
``null``) takes the card's suggestion, and a number written in the policy always wins.

Each effective value carries its source: ``policy`` (written in the YAML), ``model
card`` (the card's suggestion) or ``default`` (neither: the fallback below, the value
the shipped policy used before cards carried suggestions). Resolution is values in,
values out; the service does it once per model (``serving.services.decide``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

Source = Literal["policy", "model card", "default"]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ThresholdRule:
    """One card-driven policy threshold: its YAML path, card key, bounds and fallback."""

    path: str  # "section.field" in the policy YAML
    card_key: str  # key in ModelCard.thresholds
    fallback: float
    low: float
    high: float

    @property
    def section(self) -> str:
        return self.path.split(".")[0]

    @property
    def key(self) -> str:
        return self.path.split(".")[1]


RULES = (
    ThresholdRule("confidence.min_grade_confidence", "auto_approve_confidence", 0.7, 0.0, 1.0),
    ThresholdRule("wrong_item.min_similarity", "wrong_item_similarity", 0.7, -1.0, 1.0),
)
FALLBACK = {r.path: r.fallback for r in RULES}


@dataclass(frozen=True)
class EffectiveThreshold:
    path: str
    value: float
    source: Source
    card_key: str
    note: str = ""  # why a card value was not used, or what it was fitted for

    def line(self) -> str:
        """``confidence.min_grade_confidence = 0.8215 (model card: auto_approve_confidence)``"""
        where = f"model card: {self.card_key}" if self.source == "model card" else self.source
        return f"{self.path} = {self.value:g} ({where}){f'; {self.note}' if self.note else ''}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "value": self.value,
            "source": self.source,
            "card_key": self.card_key,
            "note": self.note,
        }


def written_thresholds(data: Mapping[str, Any]) -> dict[str, float | None]:
    """The values the raw YAML mapping writes for each rule (None: absent or ``null``).

    Read before validation fills in the fallbacks, since a spelled-out fallback and an
    absent key validate to the same number but resolve differently.
    """
    out: dict[str, float | None] = {}
    for rule in RULES:
        section = data.get(rule.section)
        value = section.get(rule.key) if isinstance(section, Mapping) else None
        out[rule.path] = None if value is None else float(value)
    return out


def without_null_thresholds(data: Mapping[str, Any]) -> dict[str, Any]:
    """The raw mapping with each rule's ``key: null`` removed, so the schema reads it as
    absent (and validates the other keys of its section as written)."""
    out = dict(data)
    for rule in RULES:
        section = out.get(rule.section)
        if isinstance(section, Mapping) and rule.key in section and section[rule.key] is None:
            out[rule.section] = {k: v for k, v in section.items() if k != rule.key}
    return out


def resolve_thresholds(
    written: Mapping[str, float | None], card: Mapping[str, float] | None = None
) -> dict[str, EffectiveThreshold]:
    """Policy value, else the card's suggestion, else the fallback; with the source.

    A card value outside the field's bounds or not finite is not used (the fallback is,
    and the note says why): a broken card must not steer decisions, and an older card
    without suggestions simply yields the fallbacks.
    """
    out: dict[str, EffectiveThreshold] = {}
    for rule in RULES:
        mine = written.get(rule.path)
        suggested = (card or {}).get(rule.card_key)
        if mine is not None:
            over = f"overrides the model card's {suggested:g}" if suggested is not None else ""
            out[rule.path] = EffectiveThreshold(
                rule.path, float(mine), "policy", rule.card_key, over
            )
        elif suggested is not None:
            if math.isfinite(suggested) and rule.low <= suggested <= rule.high:
                out[rule.path] = EffectiveThreshold(
                    rule.path, float(suggested), "model card", rule.card_key
                )
            else:
                out[rule.path] = EffectiveThreshold(
                    rule.path,
                    rule.fallback,
                    "default",
                    rule.card_key,
                    f"the card's {rule.card_key} {suggested:g} is not a number in "
                    f"[{rule.low:g}, {rule.high:g}]",
                )
        else:
            why = (
                f"left to the model card's {rule.card_key}; no model given"
                if card is None
                else f"the policy leaves it to the model card, which has no {rule.card_key}"
            )
            out[rule.path] = EffectiveThreshold(
                rule.path, rule.fallback, "default", rule.card_key, why
            )
    return out


def apply_thresholds(spec: M, effective: Mapping[str, EffectiveThreshold]) -> M:
    """A copy of the validated policy with each effective value in place.

    The engine reads the spec's plain numbers, so it needs no idea of sources. The values
    were bounds-checked (by the schema or ``resolve_thresholds``), hence ``model_copy``.
    """
    sections: dict[str, dict[str, float]] = {}
    for eff in effective.values():
        section, key = eff.path.split(".")
        sections.setdefault(section, {})[key] = eff.value
    update = {
        name: getattr(spec, name).model_copy(update=values) for name, values in sections.items()
    }
    return spec.model_copy(update=update)
