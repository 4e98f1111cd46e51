"""Prometheus metrics of the routing service and the edge, scraped after real webhook requests through
the real edge and the real routing service (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.policy.loader import load_policy
from tests.conftest import free_port
from tests.edge.edge_support import SECRET, dumps, load_fixture, running_edge, signed_headers
from tests.ops.ops_support import CALLER, ENTERPRISE, PREMIUM, Stack, edge_metrics, running_stack, sample
from webhook_edge.settings import EdgeSettings

DECISIONS = "escalade_routing_decisions_total"
RESERVATIONS = "escalade_routing_reservations_total"
RELEASES = "escalade_routing_releases_total"
COMPLETED = "escalade_routing_conversations_completed_total"
LATENCY_COUNT = "escalade_routing_decision_latency_seconds_count"
EDGE_LATENCY_COUNT = "escalade_edge_webhook_latency_seconds_count"
FALLBACKS = "escalade_edge_fallbacks_total"
AUTH_FAILURES = "escalade_edge_auth_failures_total"
OLDEST = "escalade_routing_oldest_waiting_seconds"


async def test_decision_reservation_and_completion_are_counted_when_a_call_is_routed_and_handed_over(
    stack: Stack,
) -> None:
    """Vapi's `ended` with `assistant-forwarded-call` is the hand-over, not the end of the conversation:
    nothing is released; the specialist's side completes it, and that is counted by team."""
    before_routing, before_edge = await stack.routing_metrics(), await stack.edge_metrics()

    response = await stack.edge.post(load_fixture(ENTERPRISE))
    assert response.status_code == 200
    ended = await stack.edge.post(load_fixture("status-update.ended.json"))
    assert ended.status_code == 200
    call_id = str(load_fixture("status-update.ended.json")["message"]["call"]["id"])
    handed_over = await stack.routing_metrics()
    await stack.stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id=call_id, skip_wrap_up=True))

    routing, edge = await stack.routing_metrics(), await stack.edge_metrics()

    def moved(text_after: str, text_before: str, name: str, **labels: str) -> float:
        return sample(text_after, name, **labels) - sample(text_before, name, **labels)

    assert moved(routing, before_routing, DECISIONS, team="enterprise", kind="transfer_agent") == 1
    assert moved(routing, before_routing, RESERVATIONS, team="enterprise") == 1
    assert moved(handed_over, before_routing, RELEASES, released="true") == 0, "the hand-over frees nobody"
    assert moved(routing, handed_over, COMPLETED, team="enterprise") == 1
    assert moved(routing, before_routing, LATENCY_COUNT, method="ResolveEscalation") == 1
    assert moved(routing, before_routing, LATENCY_COUNT, method="RecordCallEvent") == 1
    assert moved(routing, before_routing, LATENCY_COUNT, method="CompleteAssignment") == 1
    assert moved(edge, before_edge, EDGE_LATENCY_COUNT) == 2
    assert moved(edge, before_edge, "escalade_edge_webhook_requests_total", status="2xx") == 2
    assert sum(moved(edge, before_edge, FALLBACKS, cause=c) for c in ("routing_unavailable", "internal")) == 0


async def test_replayed_decision_is_not_counted_twice_when_vapi_retries(stack: Stack) -> None:
    before = await stack.routing_metrics()
    doc = load_fixture(ENTERPRISE)
    await stack.edge.post(doc)
    await stack.edge.post(doc)
    after = await stack.routing_metrics()
    labels = {"team": "enterprise", "kind": "transfer_agent"}
    assert sample(after, DECISIONS, **labels) - sample(before, DECISIONS, **labels) == 1
    assert (
        sample(after, RESERVATIONS, team="enterprise") - sample(before, RESERVATIONS, team="enterprise") == 1
    )


async def test_queue_gauges_and_outbox_depth_show_the_callback_when_specialists_are_busy(
    stack: Stack,
) -> None:
    for agent_id in ("tech-1", "tech-2"):
        await stack.stub.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
        )
    empty = await stack.routing_metrics()
    assert sample(empty, "escalade_routing_waiting_callbacks", team="technical") == 0
    assert sample(empty, "escalade_routing_free_specialists", team="technical") == 0
    assert sample(empty, "escalade_routing_free_specialists", team="enterprise") >= 1
    assert OLDEST in empty and sample(empty, OLDEST, team="technical") == 0

    posted = time.monotonic()
    response = await stack.edge.post(load_fixture(PREMIUM))
    assert response.status_code == 200

    first_scrape = time.monotonic()
    routing, edge = await stack.routing_metrics(), await stack.edge_metrics()
    assert (
        sample(routing, DECISIONS, team="technical", kind="callback")
        - sample(empty, DECISIONS, team="technical", kind="callback")
        == 1
    )
    assert sample(routing, "escalade_routing_waiting_callbacks", team="technical") == 1
    assert sample(routing, "escalade_routing_waiting_callbacks", team="billing") == 0
    assert sample(edge, "escalade_edge_outbox_depth", kind="callback") == 1
    assert sample(edge, "escalade_edge_outbox_depth", kind="review") == 0

    # The oldest-waiting gauge is the callback's age, read at each scrape: it grows with the clock between two
    # scrapes, and never exceeds the time since the call came in (plus a second for stored timestamps).
    await asyncio.sleep(1.0)
    later = await stack.routing_metrics()
    between_scrapes = time.monotonic() - first_scrape
    age, later_age = sample(routing, OLDEST, team="technical"), sample(later, OLDEST, team="technical")
    assert 0.95 <= later_age - age <= between_scrapes + 0.05
    assert later_age <= time.monotonic() - posted + 1.0
    assert sample(later, OLDEST, team="billing") == 0


async def test_fallback_is_counted_as_routing_unavailable_when_routing_is_down(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    settings = EdgeSettings(
        vapi_secret=SecretStr(SECRET),
        routing_address=f"127.0.0.1:{dead}",
        routing_deadline_ms=2000,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
        edge_metrics_port=free_port(),
    )
    async with running_edge(settings) as edge:
        before = await edge_metrics(edge)
        response = await edge.post(load_fixture(ENTERPRISE))
        assert response.status_code == 200
        assert settings.policy is not None  # the checkout's example policy
        policy_line = load_policy(settings.policy).fallback.destination.number
        assert response.json()["destination"]["number"] == policy_line
        after = await edge_metrics(edge)
    assert (
        sample(after, FALLBACKS, cause="routing_unavailable")
        - sample(before, FALLBACKS, cause="routing_unavailable")
        == 1
    )
    assert sample(after, FALLBACKS, cause="internal") == sample(before, FALLBACKS, cause="internal")


async def test_auth_failures_are_counted_by_reason_when_credentials_are_bad_or_missing(stack: Stack) -> None:
    before = await stack.edge_metrics()
    body = dumps(load_fixture(ENTERPRISE))
    wrong = await stack.edge.client.post(
        "/webhook/vapi", content=body, headers=signed_headers(body, "not-the-secret")
    )
    missing = await stack.edge.client.post(
        "/webhook/vapi", content=body, headers={"content-type": "application/json"}
    )
    assert (wrong.status_code, missing.status_code) == (401, 401)
    after = await stack.edge_metrics()
    for reason in ("mismatch", "missing"):
        assert sample(after, AUTH_FAILURES, reason=reason) - sample(before, AUTH_FAILURES, reason=reason) == 1
    assert (
        sample(after, "escalade_edge_webhook_requests_total", status="4xx")
        - sample(before, "escalade_edge_webhook_requests_total", status="4xx")
        == 2
    )


async def test_metrics_carry_no_number_or_secret_when_calls_were_routed(stack: Stack) -> None:
    await stack.edge.post(load_fixture(ENTERPRISE))
    await stack.edge.post(load_fixture(PREMIUM))
    text = await stack.routing_metrics() + await stack.edge_metrics()
    assert CALLER not in text and CALLER[1:] not in text and "1111111111" not in text
    assert SECRET not in text


async def test_the_webhook_port_serves_no_metrics_and_no_docs_when_the_defaults_apply(stack: Stack) -> None:
    for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
        reply = await stack.edge.client.get(path)
        assert reply.status_code == 404, path
        assert reply.json()["error"]["code"] == "not_found"
    assert "/metrics" not in stack.edge.app.openapi()["paths"]


async def test_the_api_docs_are_served_on_the_webhook_port_when_turned_on(sqlite_url: str) -> None:
    async with running_stack(sqlite_url, api_docs=True) as stack:
        schema = (await stack.edge.client.get("/openapi.json")).json()
        assert "/webhook/vapi" in schema["paths"]
        assert "/metrics" not in schema["paths"]
        for page in ("/docs", "/redoc"):
            reply = await stack.edge.client.get(page)
            assert reply.status_code == 200 and "text/html" in reply.headers["content-type"], page


async def test_the_edge_serves_no_metrics_port_when_it_is_0(sqlite_url: str) -> None:
    async with running_stack(sqlite_url, edge_metrics_port=0) as stack:
        assert stack.edge.app.state.metrics_endpoint is None


async def test_edge_metrics_endpoint_answers_404_when_the_path_is_unknown(stack: Stack) -> None:
    port = stack.edge.app.state.metrics_endpoint.port
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/webhook/vapi")).status_code == 404
        assert (await client.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200


async def test_request_id_is_echoed_or_generated_when_a_webhook_arrives(stack: Stack) -> None:
    body = dumps(load_fixture(ENTERPRISE))
    given = await stack.edge.client.post(
        "/webhook/vapi", content=body, headers={**signed_headers(body), "x-request-id": "req-42"}
    )
    made = await stack.edge.client.post(
        "/webhook/vapi", content=body, headers={**signed_headers(body), "x-request-id": "bad id\twith spaces"}
    )
    assert given.headers["x-request-id"] == "req-42"
    assert made.headers["x-request-id"] not in ("", "bad id\twith spaces")


async def test_routing_metrics_endpoint_answers_404_when_the_path_is_unknown(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        reply = await client.get(stack.metrics_url.replace("/metrics", "/nope"))
    assert reply.status_code == 404
