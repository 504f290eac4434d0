"""Dock-simulator settings the dock tests share."""

from __future__ import annotations

from serving.dock.sim import SimTiming

# A brisk simulated dock: each phase long enough for the trigger to see it (the item
# settles for 1.2 s, longer than the station's rest time), short enough for a test.
FAST = SimTiming(
    lead_in=0.8,
    gap=0.6,
    enter=0.8,
    retract=0.5,
    rest=1.2,
    fetch=0.5,
    exit=0.7,
    hand_pass=1.0,
    flicker=1.2,
)
