"""Helpers shared by several test layers (kept out of conftest so they can be imported explicitly)."""
