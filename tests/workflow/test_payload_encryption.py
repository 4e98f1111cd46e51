"""On the Temporal dev server: with payload keys configured, the history Temporal stores for a callback
holds neither the caller's raw number nor the escalation's free-text context (inputs, activity arguments,
results, memo, search attributes and failure messages), while the workflow runs to the same end; its memo
holds the masked number only and its search attributes no number. Without keys the same history shows both
(so the check can fail)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio import activity
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from escalade_cli.codec_server import codec_server_app
from escalade_cli.local_server import local_server
from escalade_cli.vapi_standin import VapiStandin, serve_standin
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.payload_encryption import (
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeys,
    new_key,
    temporal_data_converter,
)
from tests.conftest import installed_binary
from tests.workflow.callback_support import (
    VAPI_KEY,
    queue_a_callback,
    routing_server,
    worker_env,
    worker_processes,
)
from tests.workflow.workflow_fakes import FakeRouting, FakeVapi, callback_input, eventually, new_worker
from webhook_edge.outbox import Outbox
from webhook_edge.relay import run_standalone
from webhook_edge.settings import EdgeSettings
from workflows import client as helpers
from workflows.callback import QueueCallbackWorkflow
from workflows.client import prepare_callback, start_callback
from workflows.inputs import callback_workflow_id
from workflows.payloads import ClaimOutcome, DialParams, DialResult

pytestmark = pytest.mark.temporal

NUMBER = "+15550100003"
CONTEXT = "duplicate charge on the November invoice"
KEYS = PayloadKeys("2026-12", {"2026-12": base64.b64decode(new_key())})


class RefusedOnceVapi(FakeVapi):
    """Vapi refuses the first dial with the number in its message (as a real API error could), then
    connects."""

    @activity.defn(name="place_callback_call")
    async def place_callback_call(self, params: DialParams) -> DialResult:
        if not self.dials:
            self.dials.append((params, activity.info().current_attempt_scheduled_time))
            raise ApplicationError(
                f"Vapi refused to dial {params.customer_number}", type="VapiRejected", non_retryable=True
            )
        return await super().place_callback_call(params)


def client_with(client: Client, keys: PayloadKeys | None) -> Client:
    config: dict[str, Any] = {**client.config(), "data_converter": temporal_data_converter(keys)}
    return Client(**config)


async def run_callback(client: Client) -> tuple[bytes, Any, RefusedOnceVapi]:
    routing, vapi = FakeRouting(outcome=ClaimOutcome.RESERVED), RefusedOnceVapi()
    data = prepare_callback(callback_input(customer_number=NUMBER, context=CONTEXT, retry_spacing_seconds=1))
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        started = await start_callback(client, data, task_queue=worker.task_queue)
        handle = client.get_workflow_handle_for(QueueCallbackWorkflow.run, started.workflow_id)
        result = await handle.result()
        described = await handle.describe()
    history = await handle.fetch_history()
    stored = History(events=history.events).SerializeToString()
    visible = json.dumps(await described.memo()) + repr(described.typed_search_attributes)
    assert NUMBER not in visible and NUMBER[-10:] not in visible and CONTEXT not in visible
    assert data.masked_number in visible
    assert started.workflow_id == callback_workflow_id(data.call_id)
    return stored, (result, await described.memo()), vapi


async def test_encrypted_history_holds_no_raw_number_or_context_and_the_callback_still_connects(
    dev_env: WorkflowEnvironment,
) -> None:
    encrypted = client_with(dev_env.client, KEYS)

    stored, (result, memo), vapi = await run_callback(encrypted)

    assert result.state == "connected"
    assert result.attempts == 2
    assert result.masked_number == "+1*******0003"
    assert memo["masked_number"] == "+1*******0003"
    assert [params.customer_number for params, _ in vapi.dials] == [NUMBER, NUMBER]
    assert vapi.dials[1][0].variable_values["customerContext"] == CONTEXT
    assert NUMBER.encode() not in stored
    assert NUMBER[1:].encode() not in stored
    assert CONTEXT.encode() not in stored
    assert b"Vapi refused" not in stored  # failure messages travel encrypted too
    assert b"+1*******0003" not in stored  # the memo (masked number only) is encrypted as well
    assert b"binary/encrypted" in stored


async def test_without_keys_the_same_history_shows_the_number_and_the_context(
    dev_env: WorkflowEnvironment,
) -> None:
    stored, (result, _), _ = await run_callback(client_with(dev_env.client, None))

    assert result.state == "connected"
    assert NUMBER.encode() in stored
    assert CONTEXT.encode() in stored
    assert b"Vapi refused to dial " + NUMBER.encode() in stored
    assert b"+1*******0003" in stored


async def test_a_client_without_the_keys_cannot_read_the_encrypted_result(
    dev_env: WorkflowEnvironment,
) -> None:
    encrypted = client_with(dev_env.client, KEYS)
    routing, vapi = FakeRouting(outcome=ClaimOutcome.RESERVED), FakeVapi()
    data = prepare_callback(callback_input(customer_number=NUMBER, context=CONTEXT))
    async with new_worker(encrypted, routing.activities(), [vapi.place_callback_call]) as worker:
        started = await start_callback(encrypted, data, task_queue=worker.task_queue)
        assert (
            await encrypted.get_workflow_handle_for(QueueCallbackWorkflow.run, started.workflow_id).result()
        ).state == "connected"

    with pytest.raises(PayloadDecryptionError, match="no payload keys are configured"):
        await (
            client_with(dev_env.client, None)
            .get_workflow_handle_for(QueueCallbackWorkflow.run, started.workflow_id)
            .result()
        )


async def test_callbacks_are_listed_by_a_client_that_cannot_read_their_encrypted_memo(
    dev_env: WorkflowEnvironment,
) -> None:
    """One workflow whose memo is encrypted under keys this client lacks (another deployment's, or keys
    since removed) must not stop `escalade callbacks list`: it is listed with an empty memo."""
    encrypted = client_with(dev_env.client, KEYS)
    routing, vapi = FakeRouting(outcome=ClaimOutcome.RESERVED), FakeVapi()
    data = prepare_callback(callback_input(customer_number=NUMBER, context=CONTEXT))
    async with new_worker(encrypted, routing.activities(), [vapi.place_callback_call]) as worker:
        started = await start_callback(encrypted, data, task_queue=worker.task_queue)
        await encrypted.get_workflow_handle_for(QueueCallbackWorkflow.run, started.workflow_id).result()

    for reader in (client_with(dev_env.client, None), dev_env.client):  # keys missing; no codec at all
        rows = [
            r
            for r in await helpers.list_callbacks(reader, limit=1000)
            if r.workflow_id == started.workflow_id
        ]
        assert len(rows) == 1 and rows[0].memo == {}
    (readable,) = [
        r for r in await helpers.list_callbacks(encrypted, limit=1000) if r.workflow_id == started.workflow_id
    ]
    assert readable.memo["masked_number"].endswith(NUMBER[-4:]) and NUMBER not in str(readable.memo)


@pytest.mark.timeout(300)
async def test_the_edge_relay_the_worker_and_the_cli_encrypt_with_the_keys_of_their_settings(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> None:
    """The real path: the edge's outbox relay starts the callback, an `escalade worker` process keeps it,
    `escalade callbacks show` reads it, each with the keys of its environment; nothing faked but Vapi."""
    call_id, task_queue = f"call-{uuid.uuid4()}", f"tq-{uuid.uuid4()}"
    keys_json = json.dumps({"2026-12": base64.b64encode(KEYS.keys["2026-12"]).decode()})
    temporal = dev_env.client.service_client.config.target_host
    encrypted = client_with(dev_env.client, KEYS)
    outbox = await Outbox.open(f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}")
    async with (
        routing_server(sqlite_url) as (stub, address),
        serve_standin(VapiStandin(api_key=VAPI_KEY)) as vapi,
    ):
        data = await queue_a_callback(stub, call_id)
        assert await outbox.record(data)
        edge = EdgeSettings(
            vapi_secret=SecretStr("edge-secret"),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
            temporal_address=temporal,
            task_queue=task_queue,
            relay_poll_seconds=0.2,
            temporal_payload_keys=SecretStr(keys_json),
        )
        stop = asyncio.Event()
        relay = asyncio.create_task(run_standalone(edge, stop))
        env = {
            **worker_env(dev_env.client, task_queue, address, vapi, tmp_path / "worker.db"),
            "ESCALADE_TEMPORAL_PAYLOAD_KEYS": keys_json,
        }
        try:
            async with worker_processes(env) as workers:
                await workers.start()

                async def waiting() -> bool:
                    try:
                        return (await helpers.callback_status(encrypted, call_id)).state == "waiting"
                    except Exception:  # not started or not visible yet
                        return False

                await eventually(waiting, within=60)
                await stub.ReleaseAssignment(
                    pb.ReleaseAssignmentRequest(call_id=f"live-{call_id}", reason="ended")
                )
                handle = encrypted.get_workflow_handle_for(
                    QueueCallbackWorkflow.run, callback_workflow_id(call_id)
                )
                result = await handle.result(rpc_timeout=timedelta(seconds=60))
                # the `status` query is answered by the worker: while it runs
                shown = await escalade(env, "callbacks", "show", call_id, cwd=tmp_path)
                without_keys = {k: v for k, v in env.items() if k != "ESCALADE_TEMPORAL_PAYLOAD_KEYS"}
                refused = await escalade(without_keys, "callbacks", "show", call_id, cwd=tmp_path)
        finally:
            stop.set()
            await asyncio.wait_for(relay, 10)
            await outbox.close()

    assert result.state == "connected" and result.agent_name == "Ann"
    assert [dial["customer"] for dial in vapi.dials] == [{"number": "+14155550123"}]
    stored = History(events=(await handle.fetch_history()).events).SerializeToString()
    assert b"+14155550123" not in stored and b"14155550123" not in stored
    assert data.context.encode() not in stored and data.reason.encode() not in stored
    assert shown[0] == 0 and "connected" in shown[1] and re.search(r"\+1\*+0123", shown[1]), shown
    assert "+14155550123" not in shown[1]
    assert refused[0] == 1 and "no payload keys are configured" in refused[1], refused
    assert "Traceback" not in refused[1]


async def escalade(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str]:
    """Run the `escalade` console script; its exit code and its output (stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("escalade")),
        *args,
        env={**env, "COLUMNS": "200", "NO_COLOR": "1"},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_the_temporal_cli_shows_the_history_decrypted_through_the_codec_server(
    dev_env: WorkflowEnvironment,
) -> None:
    """`temporal workflow show --codec-endpoint ... --codec-auth "Bearer ..."`, as docs/operations.md says."""
    encrypted = client_with(dev_env.client, KEYS)
    workflow_id = f"callback-cli-{uuid.uuid4()}"
    data = prepare_callback(callback_input(customer_number=NUMBER, context=CONTEXT))
    await encrypted.start_workflow(QueueCallbackWorkflow.run, data, id=workflow_id, task_queue="nobody-polls")
    app = codec_server_app(EncryptionCodec(KEYS), token="operator-token", cors_origins=[])
    async with local_server(app, capture_signals=False) as codec:
        plain = await show_input(dev_env, workflow_id)
        decoded = await show_input(
            dev_env, workflow_id, "--codec-endpoint", codec.url, "--codec-auth", "Bearer operator-token"
        )
        templated = await show_input(
            dev_env,
            workflow_id,
            "--codec-endpoint",
            codec.url + "/{namespace}",
            "--codec-auth",
            "Bearer operator-token",
        )
    await encrypted.get_workflow_handle(workflow_id).terminate()

    assert base64.b64decode(plain["metadata"]["encoding"]) == b"binary/encrypted"
    for shown in (decoded, templated):
        assert json.loads(base64.b64decode(shown["data"]))["customer_number"] == NUMBER


async def show_input(env: WorkflowEnvironment, workflow_id: str, *codec: str) -> dict[str, Any]:
    """The first input payload of `temporal workflow show -o json` (protobuf JSON)."""
    process = await asyncio.create_subprocess_exec(
        installed_binary("temporal"),
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--address",
        env.client.service_client.config.target_host,
        "--output",
        "json",
        *codec,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output, errors = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, errors.decode()
    started = json.loads(output)["events"][0]["workflowExecutionStartedEventAttributes"]
    payload: dict[str, Any] = started["input"]["payloads"][0]
    return payload
