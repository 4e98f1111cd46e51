"""Routing domain: plain dataclasses and pure functions. No I/O, no protobuf, no frameworks."""
