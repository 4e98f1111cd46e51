"""What the services' Prometheus metrics share: the latency histogram buckets (each service keeps its own
metrics, registry and `/metrics` port)."""

from __future__ import annotations

__all__ = ["LATENCY_BUCKETS"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Seconds; a decision normally takes a few milliseconds, the edge's deadline is 1.5 s."""
