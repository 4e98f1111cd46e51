"""Fixtures of the edge tests: the Vapi SDK (imported once), a controllable routing servicer on
127.0.0.1:0, the real edge app behind an httpx ASGI client, and that edge in front of the real routing
service (`stack`)."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from tests.edge.edge_support import (
    PREVIOUS_SECRET,
    SECRET,
    Edge,
    RealStack,
    RunningFake,
    fake_routing_server,
    real_routing_stack,
    running_edge,
)
from webhook_edge.settings import EdgeSettings


@pytest.fixture(scope="session")
def vapi_sdk() -> SimpleNamespace:
    """The Vapi SDK models the contract tests need (the import is slow: once per session)."""
    from vapi.types import (
        ServerMessage,
        ServerMessageResponseToolCalls,
        ServerMessageResponseTransferDestinationRequest,
    )
    from vapi.types.client_inbound_message_message import ClientInboundMessageMessage_Transfer
    from vapi.types.server_message_message import ServerMessageMessage

    from tests.edge.edge_support import literal_values

    by_type: dict[str, type] = {}
    for cls in typing.get_args(ServerMessageMessage):
        for literal in literal_values(cls.model_fields["type"].annotation)[0]:
            by_type[literal] = cls
    return SimpleNamespace(
        ServerMessage=ServerMessage,
        TransferResponse=ServerMessageResponseTransferDestinationRequest,
        ToolCallsResponse=ServerMessageResponseToolCalls,
        ControlTransfer=ClientInboundMessageMessage_Transfer,
        by_type=by_type,
    )


@pytest.fixture
async def fake_routing() -> AsyncIterator[RunningFake]:
    async with fake_routing_server() as running:
        yield running


@pytest.fixture
def edge_settings(fake_routing: RunningFake, tmp_path: Path) -> EdgeSettings:
    return EdgeSettings(
        vapi_secret=SecretStr(SECRET),
        vapi_previous_secret=SecretStr(PREVIOUS_SECRET),
        routing_address=fake_routing.address,
        routing_deadline_ms=400,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
    )


@pytest.fixture
async def edge(edge_settings: EdgeSettings) -> AsyncIterator[Edge]:
    async with running_edge(edge_settings) as running:
        yield running


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[RealStack]:
    """The edge in front of the REAL routing service on each database (`real_routing_stack`)."""
    async with real_routing_stack(database_url) as running:
        yield running
