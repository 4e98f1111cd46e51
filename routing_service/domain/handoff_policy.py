"""The policy's `handoff` section as data: what the handoff packet extracts and what its logs must hide.

Plain data, no I/O (see routing_service.domain.handoff for the packet itself). Every setting has a default,
so a policy without the section builds packets with the built-in entity patterns and masks phone numbers
only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PACKET_LOG_FIELDS", "HandoffPolicy"]

PACKET_LOG_FIELDS: frozenset[str] = frozenset(
    {
        "summary",
        "escalation_reason",
        "customer_context",
        "steps_tried",
        "account_name",
        "caller_number",
    }
)
"""Packet fields a policy may list as sensitive (besides entity kinds such as `account` or `order`)."""


@dataclass(frozen=True, slots=True)
class HandoffPolicy:
    """What the packet extracts from the call's texts, and what is masked wherever the packet is logged."""

    entity_patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    """Extra (kind, compiled pattern) pairs, searched after the built-in ones (account, order, error code);
    the pattern's first group is the value when it has one, else the whole match."""
    sensitive_fields: frozenset[str] = frozenset()
    """Packet fields (`PACKET_LOG_FIELDS`) and entity kinds masked whole in logs (last 4 characters kept)."""
    sensitive_patterns: tuple[re.Pattern[str], ...] = ()
    """Text matching any of these is masked in every logged string of the packet (last 4 characters kept)."""
