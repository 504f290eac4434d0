"""What a category renderer hands to its damage painters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Geometry:
    """Regions (uint8 masks) and named points/polygons of one drawn item.

    ``extent`` is the item's characteristic size in pixels, which sets damage sizes.
    """

    rect: tuple[float, float, float, float]
    extent: float
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, Any] = field(default_factory=dict)
