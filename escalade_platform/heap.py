"""The garbage collector in a long-running server process.

A served process imports its frameworks, models and settings once and keeps them for its whole life, yet
the collector's full (generation-2) passes walk all of it again and again, and under load those long pauses
set the edge's tail latency. `freeze_startup_heap`, called once the server has
started, collects and then moves everything alive into the permanent generation (`gc.freeze`), so later
full passes walk only what was allocated since. Only for a process that a server owns (`escalade edge
serve`, `escalade routing serve`, the benchmarks that stand in for them): in a host such as a test run it
would keep that host's objects alive for good.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> int:
    """Collect, then freeze every object alive; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
