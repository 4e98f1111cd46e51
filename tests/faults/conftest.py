"""Fixtures of the fault suite: the edge and service test helpers are reused from their folders (their
directories go on `sys.path` here, as pytest does for the folders themselves)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _folder in ("edge", "service"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))
