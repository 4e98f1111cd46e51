"""Typed search attributes that let ops filter escalations in the Temporal UI.

Keyword attributes, except `CallbackPromisedBy` (a Datetime: the latest time the callback should start,
so ops can filter `CallbackPromisedBy < now` or sort by it); `CallbackPromiseState` is on-track, at-risk,
breached or kept (`routing_service.domain.promises.PromiseState`). The namespace must know them
(`escalade dev` passes `--search-attribute`, and the worker registers missing ones at start-up through the
operator service).
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

__all__ = [
    "ALL_KEYS",
    "CALLBACK_PROMISED_BY",
    "CALLBACK_PROMISE_STATE",
    "CALLBACK_STATE",
    "CALLBACK_WIDENING",
    "ESCALATION_CATEGORY",
    "ESCALATION_COMPLEXITY",
    "ESCALATION_TIER",
    "dev_server_flag",
    "register_search_attributes",
]

ESCALATION_TIER = SearchAttributeKey.for_keyword("EscalationTier")
ESCALATION_CATEGORY = SearchAttributeKey.for_keyword("EscalationCategory")
ESCALATION_COMPLEXITY = SearchAttributeKey.for_keyword("EscalationComplexity")
CALLBACK_STATE = SearchAttributeKey.for_keyword("CallbackState")
CALLBACK_WIDENING = SearchAttributeKey.for_keyword("CallbackWidening")
"""The widening step in force (`step 2: overflow to team general after 10 min`); unset while not widened."""

CALLBACK_PROMISE_STATE = SearchAttributeKey.for_keyword("CallbackPromiseState")
CALLBACK_PROMISED_BY = SearchAttributeKey.for_datetime("CallbackPromisedBy")

ALL_KEYS: tuple[SearchAttributeKey[Any], ...] = (
    ESCALATION_TIER,
    ESCALATION_CATEGORY,
    ESCALATION_COMPLEXITY,
    CALLBACK_STATE,
    CALLBACK_WIDENING,
    CALLBACK_PROMISE_STATE,
    CALLBACK_PROMISED_BY,
)
"""In registration order, e.g. for `WorkflowEnvironment.start_local(search_attributes=ALL_KEYS)`."""

_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: (IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, "Keyword"),
    SearchAttributeIndexedValueType.DATETIME: (IndexedValueType.INDEXED_VALUE_TYPE_DATETIME, "Datetime"),
}


def dev_server_flag(key: SearchAttributeKey[Any]) -> str:
    """`Name=Type`, the dev server's `--search-attribute` value for `key`."""
    return f"{key.name}={_TYPES[key.indexed_value_type][1]}"


async def register_search_attributes(client: Client) -> list[str]:
    """Add the keys the namespace does not know yet (idempotent); returns the names asked for.

    Servers without the list call (the time-skipping test server) get every key added, and an
    ALREADY_EXISTS answer counts as success."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(listed.custom_attributes) | set(listed.system_attributes)
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {key.name: _TYPES[key.indexed_value_type][0] for key in ALL_KEYS if key.name not in known}
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
    return sorted(missing)
