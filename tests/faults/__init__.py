"""Fault-injection tests: routing, database and outbox outages against the real stack."""
