"""The callback path's pieces shared by the integration and fault tests: a TechCorp routing server, a queued
callback, and `escalade worker` subprocesses pointed at them and at a Vapi stand-in."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeAlias

from temporalio.client import Client

from escalade_cli.vapi_standin import VapiStandin
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from tests.support.routing import techcorp_routing
from tests.workflow.workflow_fakes import eventually
from webhook_edge.translate import callback_input
from workflows import client as helpers
from workflows.inputs import CallbackPhase, QueueCallbackInput
from workflows.settings import WorkerSettings

VAPI_KEY = "vapi-test-key"

# The grpc.aio stub type exists only in the generated .pyi, hence the string.
Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"


@asynccontextmanager
async def routing_server(database_url: str) -> AsyncIterator[tuple[Stub, str]]:
    async with techcorp_routing(database_url, seed=False) as routing:
        yield routing.stub, routing.address


async def queue_a_callback(stub: Stub, call_id: str) -> QueueCallbackInput:
    """Ann takes a live call; the next technical escalation finds nobody free and gets a CALLBACK decision.
    Returns the callback input the edge builds for it."""
    await stub.UpsertAgent(
        pb.UpsertAgentRequest(
            agent=pb.Agent(
                agent_id="ann",
                display_name="Ann",
                number="+15550100201",
                team_ids=["technical"],
                max_complexity=pb.COMPLEXITY_CRITICAL,
                capacity=1,
                status=pb.AGENT_STATUS_AVAILABLE,
            )
        )
    )
    live = pb.ResolveEscalationRequest(
        call_id=f"live-{call_id}",
        tool_call_id="t1",
        issue_category="technical",
        complexity=pb.COMPLEXITY_ADVANCED,
    )
    assert (await stub.ResolveEscalation(live)).decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
    request = pb.ResolveEscalationRequest(
        call_id=call_id,
        tool_call_id="t1",
        caller_number="+14155550123",
        issue_category="technical",
        complexity=pb.COMPLEXITY_ADVANCED,
        customer_context="webhooks stopped after the v2 migration",
        escalation_reason="needs an integration specialist",
    )
    decision = (await stub.ResolveEscalation(request)).decision
    assert decision.kind == pb.DECISION_KIND_CALLBACK
    return callback_input(decision, request)


def worker_settings(
    address: str, vapi: VapiStandin, database_url: str, task_queue: str, *, policy: Path | None = None
) -> WorkerSettings:
    """An in-process worker's settings: routing at `address`, Vapi's stand-in `vapi` (polled every 50 ms),
    its dial ledger at `database_url`, and the routing policy file `policy` (None: no policy)."""
    return WorkerSettings(
        task_queue=task_queue,
        routing_address=address,
        vapi_api_url=vapi.url,
        vapi_api_key=vapi.api_key,  # type: ignore[arg-type]
        vapi_assistant_id="asst-1",
        vapi_phone_number_id="pn-1",
        database_url=database_url,
        vapi_poll_seconds=0.05,
        policy=policy,
    )


def worker_env(
    client: Client, task_queue: str, routing_address: str, vapi: VapiStandin, database: Path
) -> dict[str, str]:
    """The environment of an `escalade worker` subprocess for this test's queue, routing and stand-in."""
    return {
        **os.environ,
        "ESCALADE_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "ESCALADE_TASK_QUEUE": task_queue,
        "ESCALADE_ROUTING_ADDRESS": routing_address,
        "ESCALADE_VAPI_API_URL": vapi.url,
        "ESCALADE_VAPI_API_KEY": VAPI_KEY,  # the key the stand-in was built with
        "ESCALADE_VAPI_ASSISTANT_ID": "asst-1",
        "ESCALADE_VAPI_PHONE_NUMBER_ID": "pn-1",
        "ESCALADE_VAPI_POLL_SECONDS": "0.05",
        "ESCALADE_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }


class WorkerProcesses:
    """`escalade worker` subprocesses for one test, all with the same environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[asyncio.subprocess.Process] = []

    async def start(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("escalade")),
            "worker",
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.started.append(process)
        return process


@asynccontextmanager
async def worker_processes(env: dict[str, str]) -> AsyncIterator[WorkerProcesses]:
    """Workers started inside the block; those still running at its end get SIGTERM (a graceful exit)."""
    workers = WorkerProcesses(env)
    try:
        yield workers
    finally:
        for process in workers.started:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 30)


async def start_waiting_callback(
    client: Client, call_id: str, data: QueueCallbackInput, task_queue: str
) -> None:
    """Start the callback's workflow as the edge's relay does, and return once it waits for a specialist."""
    await helpers.start_follow_up(client, data, task_queue=task_queue)

    async def waiting() -> bool:
        try:
            return (await helpers.callback_status(client, call_id)).state == CallbackPhase.WAITING
        except Exception:  # not visible yet
            return False

    await eventually(waiting, within=60)
