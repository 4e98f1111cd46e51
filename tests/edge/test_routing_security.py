"""The edge against a real routing service that serves TLS and authorizes callers: with the routing CA and
the edge's token (or, with mutual TLS, a client certificate whose name has the edge role) the seed's
enterprise call gets its specialist; without credentials routing refuses the edge, which answers Vapi with
the fallback line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from escalade_platform.routing_channel import routing_channel
from routing_service.grpc.server import RoutingServer
from tests.edge.edge_support import SECRET, load_fixture, running_edge
from tests.service.security_support import TOKENS, Pki, client, issue, serving
from tests.support.routing import seed_techcorp
from webhook_edge.settings import DEFAULT_FALLBACK_NUMBER, EdgeSettings

ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return issue(tmp_path / "pki")


@pytest.fixture
async def secured(sqlite_url: str, pki: Pki) -> AsyncIterator[RoutingServer]:
    security = {
        "routing_server_cert": pki.server_cert,
        "routing_server_key": pki.server_key,
        "routing_client_ca": pki.ca,
        "routing_tokens": {"edge": TOKENS["edge"], "admin": TOKENS["admin"]},
        "routing_cert_roles": {"edge": ["edge.internal"]},
    }
    async with serving(sqlite_url, **security) as server:
        admin_cert, admin_key = pki.clients["stranger.internal"]  # mutual TLS needs a certificate; the token
        admin = client(  # gives the role
            server,
            routing_ca=pki.ca,
            routing_client_cert=admin_cert,
            routing_client_key=admin_key,
            routing_token=TOKENS["admin"],
        )
        async with routing_channel(admin) as channel:
            await seed_techcorp(pb_grpc.RoutingServiceStub(channel))
        yield server


def _edge(server: RoutingServer, tmp_path: Path, **routing: Any) -> EdgeSettings:
    return EdgeSettings(
        vapi_secret=SecretStr(SECRET),
        routing_address=f"127.0.0.1:{server.port}",
        routing_deadline_ms=5000,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
        **routing,
    )


@pytest.mark.parametrize("identity", ["token", "certificate"])
async def test_edge_routes_through_tls_and_its_role_when_it_holds_credentials(
    secured: RoutingServer, pki: Pki, tmp_path: Path, identity: str
) -> None:
    cert_name = "edge.internal" if identity == "certificate" else "stranger.internal"
    cert, key = pki.clients[cert_name]
    credentials: dict[str, Any] = {
        "routing_ca": pki.ca,
        "routing_client_cert": cert,
        "routing_client_key": key,
    }
    if identity == "token":
        credentials["routing_token"] = TOKENS["edge"]
    async with running_edge(_edge(secured, tmp_path, **credentials)) as edge:
        response = await edge.post(load_fixture(ENTERPRISE))
        ready = await edge.client.get("/readyz")
        decision = await edge.app.state.webhook.state.routing.get_decision(
            load_fixture(ENTERPRISE)["message"]["call"]["id"]
        )
    assert response.status_code == 200
    assert response.json()["destination"]["number"].startswith("+155501001")
    assert ready.status_code == 200
    assert decision is not None and decision.kind == pb.DECISION_KIND_TRANSFER_AGENT


async def test_edge_answers_the_fallback_line_when_routing_refuses_it(
    secured: RoutingServer, pki: Pki, tmp_path: Path
) -> None:
    cert, key = pki.clients["stranger.internal"]  # a valid certificate without a role, and no token
    settings = _edge(secured, tmp_path, routing_ca=pki.ca, routing_client_cert=cert, routing_client_key=key)
    async with running_edge(settings) as edge:
        with capture_logs() as logs:
            response = await edge.post(load_fixture(ENTERPRISE))
    assert response.status_code == 200
    assert response.json()["destination"]["number"] == DEFAULT_FALLBACK_NUMBER
    [event] = [entry for entry in logs if entry["event"] == "fallback_destination"]
    assert event["grpc_code"] == "UNAUTHENTICATED"
