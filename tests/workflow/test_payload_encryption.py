"""On the Temporal dev server: with payload keys configured, the history Temporal stores for a callback
holds neither the caller's raw number nor the escalation's free-text context (inputs, activity arguments,
results, memo, search attributes and failure messages), while the workflow runs to the same end; without
keys the same history shows both (so the check can fail)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from escalade_platform.payload_encryption import (
    PayloadDecryptionError,
    PayloadKeys,
    new_key,
    temporal_data_converter,
)
from tests.workflow.workflow_fakes import FakeRouting, FakeVapi, callback_input, new_worker
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
    assert described.typed_search_attributes is not None
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
    assert b"binary/encrypted" in stored


async def test_without_keys_the_same_history_shows_the_number_and_the_context(
    dev_env: WorkflowEnvironment,
) -> None:
    stored, (result, _), _ = await run_callback(client_with(dev_env.client, None))

    assert result.state == "connected"
    assert NUMBER.encode() in stored
    assert CONTEXT.encode() in stored
    assert b"Vapi refused to dial " + NUMBER.encode() in stored


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
