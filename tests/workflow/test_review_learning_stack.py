"""Verdict feedback across the real processes' code: the real edge (signed Vapi messages, its outbox relaying
to Temporal), the real routing service (SQLite file and PostgreSQL, TechCorp policy and specialists), the
real worker (`run_worker`, routing over gRPC) and the Temporal dev server.

A premium customer's call stated as technical goes to the technical team; its end-of-call report says it
was about billing; the review finds the mismatch and waits; a supervisor's `wrong-category` verdict teaches
routing a preferred team; the customer's next technical call goes to billing, and its trace says why.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from tests.edge.edge_support import Edge, load_fixture, running_edge, stack_edge_settings
from tests.support.routing import techcorp_routing
from tests.workflow.workflow_fakes import eventually
from workflows import client as helpers
from workflows.inputs import ReviewState, Verdict
from workflows.settings import WorkerSettings
from workflows.worker import run_worker

pytestmark = pytest.mark.temporal

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PREMIUM = "transfer-destination-request.premium-technical-advanced.json"
CALLER = "+1111111111"  # the premium fixture's caller


@dataclass
class Stack:
    edge: Edge
    stub: pb_grpc.RoutingServiceAsyncStub


@asynccontextmanager
async def full_stack(dev_env: WorkflowEnvironment, database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """Routing (TechCorp, demo specialists), the edge relaying to the dev server, and a worker on the same
    task queue."""
    task_queue = f"tq-{uuid.uuid4()}"
    address = dev_env.client.service_client.config.target_host
    async with techcorp_routing(database_url) as routing:
        edge_settings = stack_edge_settings(
            routing.address,
            database_url,
            temporal_address=address,
            task_queue=task_queue,
            relay_poll_seconds=0.2,
            policy=EXAMPLES / "techcorp.yaml",
        )
        worker_settings = WorkerSettings(
            task_queue=task_queue,
            routing_address=routing.address,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
            policy=EXAMPLES / "techcorp.yaml",
            worker_metrics_address="",
        )
        stop = asyncio.Event()
        async with running_edge(edge_settings) as edge:
            worker = asyncio.create_task(run_worker(worker_settings, stop=stop, client=dev_env.client))
            try:
                yield Stack(edge, routing.stub)
            finally:
                stop.set()
                await asyncio.wait_for(worker, 30)


def escalation(call_id: str) -> dict[str, Any]:
    doc = copy.deepcopy(load_fixture(PREMIUM))
    doc["message"]["call"]["id"] = call_id
    return doc


def ended_about_billing(call_id: str) -> dict[str, Any]:
    doc = copy.deepcopy(load_fixture("end-of-call-report.escalated.json"))
    doc["message"]["call"]["id"] = call_id
    doc["message"]["artifact"]["structuredOutputs"] = {
        "out-1": {"name": "issue_category", "result": "billing"}
    }
    return doc


async def test_a_wrong_category_verdict_sends_the_customers_next_call_to_the_learned_team(
    dev_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    client = dev_env.client
    first_call, next_call = f"call-{uuid.uuid4()}", f"call-{uuid.uuid4()}"
    async with full_stack(dev_env, database_url, tmp_path) as stack:
        assert (await stack.edge.post(escalation(first_call))).status_code == 200
        first = (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=first_call))).decision
        assert (first.team_id, first.rule_id) == ("technical", "technical-specialists")

        assert (await stack.edge.post(ended_about_billing(first_call))).status_code == 200

        async def awaiting() -> bool:
            try:
                status = await helpers.review_findings(client, first_call)
            except Exception:  # not started yet: the relay delivers it shortly
                return False
            return status.state == ReviewState.AWAITING_REVIEW

        await eventually(awaiting, within=60)
        findings = await helpers.review_findings(client, first_call)
        assert "category_mismatch" in {f.rule for f in findings.findings}

        done = await helpers.complete_review(client, first_call, Verdict.WRONG_CATEGORY, "it was an invoice")
        assert done.outcome == "overturned", done
        assert any(
            line.startswith("preferred team billing for calls stated as technical") for line in done.learned
        )

        customer = (await stack.stub.GetCustomer(pb.GetCustomerRequest(number=CALLER))).customer
        assert [(item.kind, item.value, item.source_call_id) for item in customer.learnings] == [
            ("preferred-team", "billing", first_call)
        ]

        response = await stack.edge.post(escalation(next_call))
        assert response.status_code == 200
        second = (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=next_call))).decision
        assert second.team_id == "billing"
        learned = [step for step in second.trace if step.stage == "learned"]
        assert len(learned) == 1 and f"review of call {first_call}" in learned[0].detail

        outcomes = (await stack.stub.GetReviewOutcomes(pb.GetReviewOutcomesRequest())).outcomes
        assert [(o.team_id, o.rule_id, o.overturned) for o in outcomes] == [
            ("technical", "technical-specialists", 1)
        ]
