"""Confirming a reviewed policy file: `FILE.confirmed` holds the sha256 of the content an operator reviewed.

The routing service applies a policy change that its `reload_guard` holds back only when the marker next to
the policy file holds the digest of the file's current content (`escalade policy confirm FILE` writes it),
so a confirmation covers exactly the content that was reviewed and a later edit needs a new one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["confirm", "confirmation_marker", "content_digest", "is_confirmed"]


def confirmation_marker(policy_file: Path) -> Path:
    """The marker file next to `policy_file`."""
    return policy_file.with_name(policy_file.name + ".confirmed")


def content_digest(content: bytes) -> str:
    """The sha256 (hex) of a policy file's content."""
    return hashlib.sha256(content).hexdigest()


def confirm(policy_file: Path) -> str:
    """Write the marker for the file's current content; returns the digest."""
    digest = content_digest(policy_file.read_bytes())
    confirmation_marker(policy_file).write_text(digest + "\n", encoding="utf-8")
    return digest


def is_confirmed(policy_file: Path, content: bytes) -> bool:
    """Whether the marker next to `policy_file` confirms `content` (False when it is absent or unreadable)."""
    try:
        recorded = confirmation_marker(policy_file).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return recorded == content_digest(content)
