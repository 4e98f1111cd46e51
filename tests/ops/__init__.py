"""Operability tests: logs, metrics, traces and the status screen."""
