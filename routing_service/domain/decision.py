"""Decisions: rendering the policy's templates and building the `Decision` for each outcome.

Templates use `{name}` for the fields in `TEMPLATE_FIELDS`; Vapi's own placeholders such as
`{{transcript}}` pass through untouched, as does any unknown `{name}` (the policy loader rejects unknown
names, so that only happens with hand-built policies). `render` never raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

__all__ = ["TEMPLATE_FIELDS", "placeholders", "render"]

TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {
        "issue_category",
        "complexity_level",
        "claimed_complexity_level",
        "customer_context",
        "escalation_reason",
        "tier",
        "account_name",
        "team_name",
        "agent_name",
        "estimated_wait_minutes",
    }
)
"""The names a policy template may use."""

_TOKEN = re.compile(r"\{\{[^{}]*\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    """Replace `{name}` for the names in `values`; keep `{{x}}` and unknown names as they are."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None or name not in values:
            return match.group(0)
        return str(values[name])

    return _TOKEN.sub(substitute, template)


def placeholders(template: str) -> list[str]:
    """The `{name}` placeholders used in `template`, in order (Vapi's `{{x}}` ones excluded)."""
    return [m.group(1) for m in _TOKEN.finditer(template) if m.group(1) is not None]


def wait_minutes(seconds: float) -> int:
    """Whole minutes, rounded up: 5 min 1 s -> 6 (a caller would rather wait less than promised)."""
    return max(0, math.ceil(seconds / 60 - 1e-9))
