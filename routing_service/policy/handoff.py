"""The policy file's `handoff` section: pydantic models, and the domain `HandoffPolicy` they build.

    handoff:
      entity_patterns:                 # kinds of entity beyond account, order and error_code
        ticket: "\\bINC-\\d{5,8}\\b"     # the first group is the value when there is one, else the match
      sensitive_fields: [account, customer_context]   # masked whole wherever the packet is logged
      sensitive_patterns: ["\\b\\d{4}[- ]?\\d{4}[- ]?\\d{4}[- ]?\\d{4}\\b"]   # masked wherever they occur

Phone numbers are always masked in logged packets; this section adds what else a business deems
sensitive. The patterns are Python regular expressions, compiled once when the policy loads.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from routing_service.domain.handoff import BUILTIN_ENTITY_KINDS
from routing_service.domain.handoff_policy import PACKET_LOG_FIELDS, HandoffPolicy
from routing_service.policy.errors import Problem

__all__ = ["HandoffDoc", "check_handoff"]

_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _kind(value: str) -> str:
    if not _KIND.fullmatch(value):
        raise ValueError(
            "must be lower-case letters, digits and underscores (at most 32), starting with a letter"
        )
    return value


def _pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


Kind = Annotated[str, AfterValidator(_kind)]
Pattern = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_pattern)]


class HandoffDoc(BaseModel):
    """What the handoff packet extracts (`entity_patterns`) and what its logs mask (`sensitive_fields`,
    `sensitive_patterns`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_patterns: Annotated[dict[Kind, Pattern], Field(max_length=20)] = Field(default_factory=dict)
    sensitive_fields: Annotated[list[Kind], Field(max_length=50)] = Field(default_factory=list)
    sensitive_patterns: Annotated[list[Pattern], Field(max_length=20)] = Field(default_factory=list)

    def to_domain(self) -> HandoffPolicy:
        return HandoffPolicy(
            entity_patterns=tuple((kind, re.compile(text)) for kind, text in self.entity_patterns.items()),
            sensitive_fields=frozenset(self.sensitive_fields),
            sensitive_patterns=tuple(re.compile(text) for text in self.sensitive_patterns),
        )


def check_handoff(doc: HandoffDoc | None) -> list[Problem]:
    """Sensitive fields must name a packet field or an entity kind the packet can hold."""
    if doc is None:
        return []
    known = PACKET_LOG_FIELDS | {kind for kind, _, _ in BUILTIN_ENTITY_KINDS} | set(doc.entity_patterns)
    return [
        Problem(
            f"handoff.sensitive_fields[{index}]",
            f"unknown field {name!r}; known: {', '.join(sorted(known))}",
        )
        for index, name in enumerate(doc.sensitive_fields)
        if name not in known
    ]
