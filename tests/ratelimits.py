"""Rate-limit settings for tests that count requests up to a 429.

The sliding-window counter (``serving.ratelimit``) numbers its windows from the epoch, as
``limits`` does: right after a window's edge the previous window's count weighs a little
less than 1, so a test that crossed an edge during its few requests could be let one
request more. ``mid_window_rate(burst)`` gives the per-minute rate whose window
(``burst * 60 / rate`` seconds, at least a day) has the present moment in its middle
half, so a test that lasts less than six hours never sees an edge.
"""

from __future__ import annotations

import time

DAY_S = 86_400


def mid_window_rate(burst: int, *, now: float | None = None) -> float:
    """A ``rate_limit_per_*`` value (per minute) for ``burst`` whose window holds ``now``
    in its middle half."""
    at = time.time() if now is None else now
    for window in range(DAY_S, 2 * DAY_S):
        if 0.25 <= (at / window) % 1.0 <= 0.75:
            return burst * 60.0 / window
    raise AssertionError("no window length in [1, 2) days puts now mid-window")
