"""The ``teach`` order of the review queue: the items whose label teaches most first,
with a deterministic random slice so that accuracy estimates stay unbiased.

Label value (``teach_score``) is a weighted sum of three terms, each in [0, 1]:

- uncertainty: ``1 - confidence`` (the top calibrated grade probability; 1 when the
  model gave no grade);
- unfamiliarity: 1 for an ``unfamiliar_photo`` flag (a photo's unfamiliarity score
  above the model card's threshold), 0.5 for ``model_cannot_tell`` (a model without the
  score), else 0;
- item value: ``log1p(price) / log1p(value_ref)``, capped at 1.

The random slice: an item whose key ``sha256(salt:subject_type:subject_id)`` (as a
number in [0, 1)) is below ``random_fraction`` is placed by that key instead of by its
label value, and the two lists are interleaved so that every head of the queue holds
``random_fraction`` of random items (while both lists last). Membership depends on the
item alone, not on the other items or the time of the call, so the random items form a
uniform sample of everything queued, and reviews of them (``why == "random"``) give
unbiased accuracy estimates: ``review_stats`` reports agreement on them separately.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

T = TypeVar("T")

Why = Literal["value", "random"]


@dataclass(frozen=True)
class ReviewOrder:
    """Weights and the random slice (``RETURNLENS_REVIEW_*`` settings)."""

    weight_uncertainty: float = 1.0
    weight_unfamiliar: float = 1.0
    weight_value: float = 1.0
    random_fraction: float = 0.1
    salt: str = "returnlens-review"
    value_ref: float = 1000.0  # a price at or above this scores the full value term

    def score(self, confidence: float | None, flags: Iterable[str], price: float) -> float:
        codes = set(flags)
        uncertainty = 1.0 if confidence is None else min(1.0, max(0.0, 1.0 - confidence))
        unfamiliar = (
            1.0 if "unfamiliar_photo" in codes else 0.5 if "model_cannot_tell" in codes else 0.0
        )
        value = min(1.0, math.log1p(max(0.0, price)) / math.log1p(self.value_ref))
        return (
            self.weight_uncertainty * uncertainty
            + self.weight_unfamiliar * unfamiliar
            + self.weight_value * value
        )

    def random_key(self, subject_type: str, subject_id: str) -> float:
        digest = hashlib.sha256(f"{self.salt}:{subject_type}:{subject_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def in_random_slice(self, subject_type: str, subject_id: str) -> bool:
        return self.random_key(subject_type, subject_id) < self.random_fraction


def interleave(by_value: Sequence[T], by_chance: Sequence[T], fraction: float) -> list[T]:
    """Position ``i`` (0-based) takes a random item when fewer than
    ``floor((i + 1) * fraction)`` have been placed; the rest of either list follows when
    the other runs out."""
    out: list[T] = []
    v = r = 0
    while v < len(by_value) or r < len(by_chance):
        want_random = r < math.floor((len(out) + 1) * fraction)
        if r < len(by_chance) and (want_random or v >= len(by_value)):
            out.append(by_chance[r])
            r += 1
        else:
            out.append(by_value[v])
            v += 1
    return out
