"""Scale-out across processes: two `escalade routing serve` replicas, two `escalade edge serve` and two
`escalade worker` processes on one PostgreSQL database and one Temporal dev server, every gRPC hop over TLS
(a trustme CA) with a token per role. While signed escalations and end-of-call reports stream in, one routing
replica, one worker and one edge are killed (SIGKILL); a delivery that meets a dead edge is delivered again
to the other one, as Vapi would.

Half A (routing A, the worker and edge pointed at it) is killed; half B carries on. What must hold: every
escalation answered 200 with a number to dial (the fallback line while an edge's routing is gone), at most
one active assignment per call and no specialist over capacity (read from PostgreSQL), every queued
callback dialled exactly once by the Vapi stand-in, and every end-of-call report's review workflow in
Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from escalade_cli.vapi_standin import VapiStandin, serve_standin
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from escalade_platform.routing_channel import routing_channel
from escalade_platform.settings import RoutingClientSettings
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.edge.edge_support import SECRET, dumps, load_fixture, signed_headers
from tests.faults.fault_support import ENTERPRISE, ESCALADE, EXAMPLES, FALLBACK, free_port, request_for
from tests.service.security_support import TOKENS, Pki, issue
from tests.support.routing import seed_techcorp
from tests.workflow.callback_support import VAPI_KEY
from workflows.inputs import review_workflow_id

pytestmark = [pytest.mark.postgres, pytest.mark.temporal, pytest.mark.timeout(150)]

CALLS = 36
"""Escalations streamed in (each one a call of its own)."""
IN_FLIGHT = 6
END_OF_CALL = "end-of-call-report.escalated.json"
DIAL_HEARTBEAT_TIMEOUT_S = 10
"""The edges' dial heartbeat timeout (the workflow's floor), so the killed worker's dial moves on in 10 s."""


DOUBLE_ASSIGNED = (
    "SELECT call_id, count(*) AS active FROM assignments WHERE state = 'active' "
    "GROUP BY call_id HAVING count(*) > 1"
)
"""Calls holding more than one specialist right now (one statement: one snapshot)."""
OVER_CAPACITY = (
    "SELECT a.agent_id, a.capacity, count(s.assignment_id) AS held FROM agents a "
    "JOIN assignments s ON s.agent_id = a.agent_id AND s.state = 'active' "
    "GROUP BY a.agent_id, a.capacity HAVING count(s.assignment_id) > a.capacity"
)
"""Specialists holding more calls than their capacity right now."""


def caller_number(index: int) -> str:
    """A dialable number of its own per call (the fixture's +1234567890 is no possible number, so its
    callbacks would end unreachable without a dial); each is an enterprise customer of the seed."""
    return f"+1415555{1000 + index}"


def escalation(index: int) -> dict[str, Any]:
    doc = request_for(f"scale-{index}", ENTERPRISE)
    doc["message"]["customer"]["number"] = caller_number(index)
    doc["message"]["call"]["customer"]["number"] = caller_number(index)
    return doc


@dataclass
class Process:
    """One `escalade` subprocess, its output in a log file; `kill()` is SIGKILL."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(ESCALADE), *self.args, env=self.env, stdout=log, stderr=log
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def kill(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


@dataclass
class Cluster:
    pki: Pki
    database_url: str
    routing: list[Process]
    edges: list[Process]
    edge_urls: list[str]
    workers: list[Process]
    processes: list[Process] = field(default_factory=list)
    dead_edges: set[int] = field(default_factory=set)
    redelivered: int = 0
    """Deliveries that met a dead edge and went to the other one."""


def _client_settings(pki: Pki, address: str, role: str) -> RoutingClientSettings:
    return RoutingClientSettings(
        routing_address=address, routing_ca=pki.ca, routing_token=SecretStr(TOKENS[role])
    )


async def _wait_routing(pki: Pki, process: Process, address: str) -> None:
    async with routing_channel(_client_settings(pki, address, "reader")) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.process is not None and process.process.returncode is None, process.log()
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{process.name} never became SERVING:\n{process.log()}")


async def _wait_edge(process: Process, url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=1.0) as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.process is not None and process.process.returncode is None, process.log()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{process.name} never became ready:\n{process.log()}")


@pytest.fixture
async def pg_database_url() -> AsyncIterator[str]:
    name = await create_pg_database()
    try:
        yield pg_url(name)
    finally:
        await drop_pg_database(name)


@contextlib.asynccontextmanager
async def running_cluster(
    database_url: str, dev_env: WorkflowEnvironment, vapi_url: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    pki = issue(tmp_path / "pki", client_names=())
    base = {key: value for key, value in os.environ.items() if not key.startswith("ESCALADE_ROUTING_")} | {
        "ESCALADE_DATABASE_URL": database_url,
        "ESCALADE_POLICY": str(EXAMPLES / "techcorp.yaml"),
        "ESCALADE_LOG_LEVEL": "warning",
        "ESCALADE_METRICS_PORT": "0",
        "ESCALADE_ROUTING_CA": str(pki.ca),
        "ESCALADE_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "ESCALADE_TASK_QUEUE": f"tq-{uuid.uuid4()}",
    }
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    routing = [
        Process(
            f"routing-{name}",
            ["routing", "serve", "--address", address],
            base
            | {
                "ESCALADE_ROUTING_SERVER_CERT": str(pki.server_cert),
                "ESCALADE_ROUTING_SERVER_KEY": str(pki.server_key),
                "ESCALADE_ROUTING_TOKENS": json.dumps(TOKENS),
                "ESCALADE_SHUTDOWN_GRACE_SECONDS": "0.5",
            },
            tmp_path / f"routing-{name}.log",
        )
        for name, address in zip("ab", addresses, strict=True)
    ]
    workers = [
        Process(
            f"worker-{name}",
            ["worker"],
            base
            | {
                "ESCALADE_ROUTING_ADDRESS": address,
                "ESCALADE_ROUTING_TOKEN": TOKENS["worker"],
                "ESCALADE_VAPI_API_URL": vapi_url,
                "ESCALADE_VAPI_API_KEY": VAPI_KEY,
                "ESCALADE_VAPI_ASSISTANT_ID": "asst-1",
                "ESCALADE_VAPI_PHONE_NUMBER_ID": "pn-1",
                "ESCALADE_VAPI_POLL_SECONDS": "0.05",
            },
            tmp_path / f"worker-{name}.log",
        )
        for name, address in zip("ab", addresses, strict=True)
    ]
    edge_ports = [free_port() for _ in range(2)]
    edges = [
        Process(
            f"edge-{name}",
            ["edge", "serve", "--port", str(port)],
            base
            | {
                "ESCALADE_ROUTING_ADDRESS": address,
                "ESCALADE_ROUTING_TOKEN": TOKENS["edge"],
                "ESCALADE_VAPI_SECRET": SECRET,
                "ESCALADE_ROUTING_DEADLINE_MS": "1000",
                "ESCALADE_RELAY_POLL_SECONDS": "0.2",
                # The callbacks the edges record: a dial whose worker was killed is retried on the other
                # worker after 10 s without a heartbeat (production waits a minute); workers heartbeat
                # every 50 ms (ESCALADE_VAPI_POLL_SECONDS).
                "ESCALADE_DIAL_HEARTBEAT_TIMEOUT_SECONDS": str(DIAL_HEARTBEAT_TIMEOUT_S),
            },
            tmp_path / f"edge-{name}.log",
        )
        for name, address, port in zip("ab", addresses, edge_ports, strict=True)
    ]
    cluster = Cluster(
        pki, database_url, routing, edges, [f"http://127.0.0.1:{p}" for p in edge_ports], workers
    )
    cluster.processes = [*routing, *workers, *edges]
    try:
        # Routing A first: it applies the migrations before B starts on the same database.
        for process, address in zip(routing, addresses, strict=True):
            await process.start()
            await _wait_routing(pki, process, address)
        async with routing_channel(_client_settings(pki, addresses[1], "admin")) as channel:
            admin = pb_grpc.RoutingServiceStub(channel)
            await seed_techcorp(admin)
            for index in range(CALLS):
                customer = pb.Customer(number=caller_number(index), tier="enterprise", account_name="Scale")
                await admin.UpsertCustomer(pb.UpsertCustomerRequest(customer=customer))
        for process in workers:
            await process.start()
        for process in edges:
            await process.start()
        await asyncio.gather(*(_wait_edge(p, url) for p, url in zip(edges, cluster.edge_urls, strict=True)))
        yield cluster
    finally:
        for process in reversed(cluster.processes):
            await process.kill()


async def _deliver(
    cluster: Cluster, http: httpx.AsyncClient, doc: dict[str, Any], first: int
) -> httpx.Response:
    """Deliver `doc` (signed) to edge `first`; when that edge is gone (connection refused or reset), deliver
    it again to the other edge, as Vapi redelivers a webhook that got no answer."""
    body = dumps(doc)
    for index in (first, 1 - first):
        if index in cluster.dead_edges:
            continue
        try:
            return await http.post(
                f"{cluster.edge_urls[index]}/webhook/vapi", content=body, headers=signed_headers(body)
            )
        except httpx.TransportError:
            cluster.redelivered += 1
            continue
    raise AssertionError(f"no edge answered {doc['message']['call']['id']}")


def _end_of_call(call_id: str) -> dict[str, Any]:
    doc = copy.deepcopy(load_fixture(END_OF_CALL))
    doc["message"]["call"]["id"] = call_id
    doc["message"]["timestamp"] = int(time.time() * 1000)
    return doc


async def _pg_rows(database_url: str, query: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def _eventually(check: Callable[[], Awaitable[bool]], budget: float, what: str) -> None:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {budget}s: {what}")


async def test_two_of_everything_survive_losing_one_of_each_with_sigkill_mid_stream(
    pg_database_url: str, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    started = time.monotonic()
    standin = VapiStandin(api_key=VAPI_KEY)
    async with (
        serve_standin(standin) as vapi,
        running_cluster(pg_database_url, dev_env, vapi.url, tmp_path) as cluster,
        routing_channel(_client_settings(cluster.pki, cluster.routing[1].args[-1], "agent")) as agent_channel,
        httpx.AsyncClient(timeout=10.0) as http,
    ):
        agent_stub = pb_grpc.RoutingServiceStub(agent_channel)
        answers: dict[str, str] = {}
        reported: list[str] = []
        answered = 0
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def kill_edge_a() -> None:
            cluster.dead_edges.add(0)
            await cluster.edges[0].kill()

        faults = {
            CALLS // 6: cluster.routing[0].kill,
            CALLS // 3: cluster.workers[0].kill,
            CALLS // 2: kill_edge_a,
        }

        async def one(index: int) -> None:
            nonlocal answered
            call_id = f"scale-{index}"
            async with slots:
                response = await _deliver(cluster, http, escalation(index), index % 2)
                assert response.status_code == 200, response.text
                destination = response.json().get("destination") or {}
                answers[call_id] = destination.get("number") or destination.get("sipUri") or ""
                answered += 1
                if (fault := faults.pop(answered, None)) is not None:
                    await fault()
                # Every call ends: Vapi's end-of-call report (its review starts), then the agent side frees
                # the specialist if the call held one (which lets a queued callback claim them).
                report = await _deliver(cluster, http, _end_of_call(call_id), (index + 1) % 2)
                assert report.status_code == 200, report.text
                reported.append(call_id)
                await agent_stub.ReleaseAssignment(
                    pb.ReleaseAssignmentRequest(call_id=call_id, reason="ended"), timeout=10
                )

        samples = 0
        violations: list[Any] = []

        async def sample() -> None:
            nonlocal samples
            for query in (DOUBLE_ASSIGNED, OVER_CAPACITY):
                violations.extend(dict(r) for r in await _pg_rows(pg_database_url, query))
            samples += 1

        async def watch() -> None:
            while True:
                await sample()
                await asyncio.sleep(0.1)

        monitor = asyncio.create_task(watch())
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(CALLS))), 60)
        stream_done = time.monotonic()
        assert not faults, f"faults never applied: {faults}"
        killed = [cluster.routing[0], cluster.workers[0], cluster.edges[0]]
        for process in cluster.processes:
            assert process.process is not None
            expected = -signal.SIGKILL if process in killed else None
            assert process.process.returncode == expected, f"{process.name}:\n{process.log()}"

        # Every escalation was answered 200 with a number to dial (a CALLBACK decision's answer carries one
        # too); some calls queued callbacks, some reached a specialist, some fell back.
        queued = {r["call_id"] for r in await _pg_rows(pg_database_url, "SELECT call_id FROM callbacks")}
        assert len(answers) == CALLS
        assert [call_id for call_id, target in answers.items() if not target] == [], (
            "answers without a number"
        )
        assert FALLBACK in answers.values(), "the routing kill landed mid-stream (its edge fell back)"
        assert queued, "some escalations found every specialist busy and queued a callback"
        kinds = Counter(r["kind"] for r in await _pg_rows(pg_database_url, "SELECT kind FROM decisions"))
        assert any("TRANSFER_AGENT" in kind.upper() for kind in kinds), kinds

        def dialled() -> Counter[str]:
            return Counter(
                str(dial.get("assistantOverrides", {}).get("variableValues", {}).get("originalCallId"))
                for dial in standin.dials
            )

        async def all_dialled() -> bool:
            return set(dialled()) >= queued

        try:
            # A worker killed in the middle of a dial is noticed by the dial's heartbeat timeout (10 s here,
            # `DIAL_HEARTBEAT_TIMEOUT_S`) before the other worker takes the dial over from its ledger.
            await _eventually(all_dialled, 75, "every queued callback dialled")
        except AssertionError:
            # What the callbacks, specialists and workflows looked like, for whoever reads the failure.
            rows = await _pg_rows(pg_database_url, "SELECT call_id, state, agent_id, note FROM callbacks")
            agents = await _pg_rows(
                pg_database_url, "SELECT agent_id, status, capacity, active_assignments FROM agents"
            )
            active = await _pg_rows(
                pg_database_url,
                "SELECT call_id, agent_id, purpose, stage FROM assignments WHERE state='active'",
            )
            states: list[tuple[Any, ...]] = []
            for call_id in sorted(queued)[:5]:
                try:
                    d = await dev_env.client.get_workflow_handle(f"callback-{call_id}").describe()
                    states.append((call_id, d.status, d.search_attributes))
                except Exception as exc:
                    states.append((call_id, repr(exc)))
            raise AssertionError(
                f"undialled {queued - set(dialled())}\n{rows}\n{agents}\n{active}\n{states}"
            ) from None
        await asyncio.sleep(1.0)  # a second dial of any of them would arrive by now
        counts = dialled()
        assert {call_id: n for call_id, n in counts.items() if n != 1} == {}, "each callback dialled once"
        assert set(counts) == queued

        # PostgreSQL, sampled all along the stream and the dialling: never two active assignments for a
        # call, never a specialist holding more than their capacity.
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        await sample()
        assert samples > 10, samples
        assert violations == [], violations

        # Temporal: every end-of-call report started its review. That includes the calls answered with the
        # fallback line while a routing replica was down, whose reports reached an edge with routing up:
        # routing holds no decision for them, and the report's own escalation evidence keeps the review.
        decided = {
            r["call_id"] for r in await _pg_rows(pg_database_url, "SELECT DISTINCT call_id FROM decisions")
        } & set(reported)
        assert len(decided) >= CALLS // 2, decided
        undecided = set(reported) - decided
        missing: list[str] = []

        async def reviews_exist() -> bool:
            missing.clear()
            for call_id in sorted(reported):
                try:
                    await dev_env.client.get_workflow_handle(review_workflow_id(call_id)).describe()
                except RPCError:
                    missing.append(call_id)
            return not missing

        try:
            await _eventually(reviews_exist, 30, "every end-of-call report's review workflow exists")
        except AssertionError:
            outbox = await _pg_rows(
                pg_database_url,
                "SELECT workflow_id, attempts, delivered_at, last_error FROM edge_outbox "
                "WHERE kind = 'review'",
            )
            raise AssertionError(f"no review for {missing}: outbox {outbox}; kinds {kinds}") from None
        print(
            f"scale-out: {CALLS} escalations, {len(queued)} callbacks, {len(reported)} reviews "
            f"({len(undecided)} of calls routing never decided), "
            f"{cluster.redelivered} redelivered; "
            f"stream {stream_done - started:.1f}s, total {time.monotonic() - started:.1f}s"
        )
