"""`place_callback_call` without a Temporal server (`ActivityEnvironment`), Vapi's API replaced by an
`httpx.MockTransport`, and the dial ledger on a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.edge.edge_support import load_fixture
from tests.workflow.test_worker_metrics import free_port, scrape_until
from tests.workflow.workflow_fakes import eventually
from workflows.activities import UNKNOWN_ENDED_REASONS, VapiActivities, classify_ended_reason, vapi_call_name
from workflows.evidence import KNOWN_ENDED_REASONS, NOT_REACHED_REASONS, REACHED_REASONS, judge_call
from workflows.ledger import DialLedger, DialState
from workflows.metrics import metrics_runtime
from workflows.payloads import DialOutcome, DialParams
from workflows.worker import open_engine

API_KEY = "vapi-test-key"
FIRST_MESSAGE = "Hello, this is TechCorp calling back about the billing issue you called us about earlier."
CALL_ID = "7d3e1a90-6f8b-4de5-9bc3-0e9f8d7c6bf8"


CUSTOMER_TURN = "Yes, now is a good time."


def ended_call(call_id: str, reason: str, customer_said: str | None) -> dict[str, Any]:
    """`GET /call/{id}` of an ended call: the assistant's greeting, then the customer's turn if any."""
    messages: list[dict[str, Any]] = [
        {"role": "bot", "message": "Hello, this is the call back.", "time": 1.0}
    ]
    if customer_said is not None:
        messages.append({"role": "user", "message": customer_said, "time": 2.0})
    return {"id": call_id, "status": "ended", "endedReason": reason, "artifact": {"messages": messages}}


@dataclass
class FakeVapiApi:
    """Answers POST /call, GET /call/{id} and GET /call like Vapi, recording every request."""

    post_status: list[int] = field(default_factory=lambda: [201])
    post_error: str = "nope"
    ended_reason: str = "customer-ended-call"
    customer_said: str | None = CUSTOMER_TURN
    """The customer's turn in `artifact.messages` (None: no customer turn)."""
    listed: list[dict[str, Any]] = field(default_factory=list)
    in_progress_polls: int = 0
    requests: list[httpx.Request] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return httpx.Response(401, json={"message": "Invalid Key"})
        path = request.url.path
        if request.method == "POST" and path == "/call":
            status = self.post_status.pop(0) if len(self.post_status) > 1 else self.post_status[0]
            if status >= 300:
                return httpx.Response(status, json={"message": self.post_error, "statusCode": status})
            body = json.loads(request.content)
            call = {"id": f"vapi-{len(self.created) + 1}", "status": "queued", **body}
            self.created.append(call)
            return httpx.Response(status, json=call)
        if request.method == "GET" and path == "/call":
            return httpx.Response(200, json=self.listed)
        if request.method == "GET" and path.startswith("/call/"):
            if self.in_progress_polls > 0:
                self.in_progress_polls -= 1
                return httpx.Response(200, json={"id": path[6:], "status": "in-progress"})
            return httpx.Response(200, json=ended_call(path[6:], self.ended_reason, self.customer_said))
        return httpx.Response(404, json={"message": "not found"})

    @property
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[DialLedger]:
    """The ledger on the worker's engine, as the worker opens it (the database migrated)."""
    engine = await open_engine(database_url)
    yield DialLedger(engine)
    await engine.dispose()


def activities(api: FakeVapiApi, ledger: DialLedger) -> VapiActivities:
    http = httpx.AsyncClient(transport=httpx.MockTransport(api.handle))
    return VapiActivities(
        http,
        ledger,
        api_url="https://vapi.test/",
        api_key=API_KEY,
        assistant_id="asst-1",
        phone_number_id="pn-1",
        poll_interval=0.01,
    )


def params(attempt: int = 1) -> DialParams:
    key = f"callback-{CALL_ID}-attempt-{attempt}"
    return DialParams(
        call_id=CALL_ID,
        attempt=attempt,
        attempt_key=key,
        customer_number="+15550100003",
        masked_number="+1*******0003",
        variable_values={"originalCallId": CALL_ID, "specialistId": "agent-ana", "callbackAttemptKey": key},
        first_message=FIRST_MESSAGE,
    )


async def test_dial_sends_vapi_call_body_when_attempt_is_new(ledger: DialLedger) -> None:
    api = FakeVapiApi()
    result = await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())

    assert (result.outcome, result.vapi_call_id, result.dialled_now) == (
        DialOutcome.CONNECTED,
        "vapi-1",
        True,
    )
    [post] = api.posts
    assert str(post.url) == "https://vapi.test/call"
    body = json.loads(post.content)
    assert body == {
        "assistantId": "asst-1",
        "phoneNumberId": "pn-1",
        "customer": {"number": "+15550100003"},
        "name": vapi_call_name(params().attempt_key),
        "assistantOverrides": {
            "firstMessage": FIRST_MESSAGE,
            "voicemailDetection": {"provider": "vapi"},
            "variableValues": params().variable_values,
        },
    }
    assert len(body["name"]) <= 40


async def test_dial_leaves_the_assistants_first_message_when_none_is_given(ledger: DialLedger) -> None:
    api = FakeVapiApi()
    await ActivityEnvironment().run(
        activities(api, ledger).place_callback_call, replace(params(), first_message="")
    )
    overrides = json.loads(api.posts[0].content)["assistantOverrides"]
    assert "firstMessage" not in overrides and overrides["voicemailDetection"] == {"provider": "vapi"}


async def test_no_second_dial_when_attempt_runs_again_after_it_ended(ledger: DialLedger) -> None:
    api = FakeVapiApi(ended_reason="customer-did-not-answer")
    acts = activities(api, ledger)
    first = await ActivityEnvironment().run(acts.place_callback_call, params())
    again = await ActivityEnvironment().run(acts.place_callback_call, params())

    assert first.outcome == again.outcome == DialOutcome.NOT_REACHED
    assert (again.vapi_call_id, again.dialled_now) == ("vapi-1", False)
    assert len(api.posts) == 1


async def test_no_second_dial_when_worker_dies_while_call_in_progress(ledger: DialLedger) -> None:
    api = FakeVapiApi(in_progress_polls=10_000)
    crashed = asyncio.create_task(
        ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())
    )

    async def watching() -> bool:
        return any(r.method == "GET" for r in api.requests)

    await eventually(watching)
    crashed.cancel()  # the worker goes away mid-call
    with pytest.raises(asyncio.CancelledError):
        await crashed

    api.in_progress_polls = 2
    retried = await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())

    assert (retried.outcome, retried.vapi_call_id, retried.dialled_now) == (
        DialOutcome.CONNECTED,
        "vapi-1",
        False,
    )
    assert len(api.posts) == 1


async def test_adopts_listed_call_when_crash_hit_between_post_and_ledger_update(ledger: DialLedger) -> None:
    key = params().attempt_key
    await ledger.claim(key, CALL_ID)  # the earlier try wrote `dialling`, its POST reached Vapi, then it died
    api = FakeVapiApi(
        listed=[{"id": "vapi-77", "name": "someone-else"}, {"id": "vapi-42", "name": vapi_call_name(key)}]
    )
    result = await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())

    assert (result.outcome, result.vapi_call_id, result.dialled_now) == (
        DialOutcome.CONNECTED,
        "vapi-42",
        False,
    )
    assert api.posts == []
    entry = await ledger.get(key)
    assert entry is not None and (entry.state, entry.vapi_call_id) == (DialState.CONNECTED, "vapi-42")


async def test_no_dial_when_earlier_try_may_have_dialled_and_vapi_lists_nothing(ledger: DialLedger) -> None:
    key = params().attempt_key
    await ledger.claim(key, CALL_ID)
    api = FakeVapiApi(listed=[])
    acts = activities(api, ledger)
    result = await ActivityEnvironment().run(acts.place_callback_call, params())
    again = await ActivityEnvironment().run(acts.place_callback_call, params())

    assert result.outcome == again.outcome == DialOutcome.UNCERTAIN
    assert api.posts == []
    listing = [r for r in api.requests if r.method == "GET" and r.url.path == "/call"]
    assert len(listing) == 1 and listing[0].url.params["phoneNumberId"] == "pn-1"


async def test_next_attempt_dials_when_previous_attempt_is_uncertain(ledger: DialLedger) -> None:
    await ledger.claim(params(1).attempt_key, CALL_ID)
    await ledger.mark_uncertain(params(1).attempt_key)
    api = FakeVapiApi()
    result = await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params(2))

    assert (result.outcome, result.dialled_now) == (DialOutcome.CONNECTED, True)
    assert len(api.posts) == 1


async def test_retry_may_dial_when_vapi_answered_server_error(ledger: DialLedger) -> None:
    api = FakeVapiApi(post_status=[503, 201])
    acts = activities(api, ledger)
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(acts.place_callback_call, params())
    assert not failed.value.non_retryable
    result = await ActivityEnvironment().run(acts.place_callback_call, params())

    assert (result.outcome, result.dialled_now) == (DialOutcome.CONNECTED, True)
    assert len(api.posts) == 2 and len(api.created) == 1


async def test_rejection_is_not_retried_when_vapi_answers_bad_request(ledger: DialLedger) -> None:
    api = FakeVapiApi(post_status=[400])
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())

    assert failed.value.non_retryable and failed.value.type == "VapiRejected"
    assert await ledger.get(params().attempt_key) is None


async def test_activity_heartbeats_vapi_call_id_when_watching(ledger: DialLedger) -> None:
    api = FakeVapiApi(in_progress_polls=3)
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    await env.run(activities(api, ledger).place_callback_call, params())

    assert len(beats) >= 4 and all(b == ("vapi-1",) for b in beats)


def test_vapi_name_is_key_when_short_and_stable_digest_when_long() -> None:
    assert vapi_call_name("callback-abc-attempt-1") == "callback-abc-attempt-1"
    long_key = params().attempt_key
    assert vapi_call_name(long_key) == vapi_call_name(long_key)
    assert vapi_call_name(long_key) != vapi_call_name(params(2).attempt_key)
    assert len(vapi_call_name(long_key)) <= 40


# ---------------------------------------------------------------- reached only on evidence


@pytest.mark.parametrize("reason", sorted(REACHED_REASONS))
def test_allow_listed_reason_is_reached_only_when_the_customer_spoke(reason: str) -> None:
    assert classify_ended_reason(reason, customer_spoke=True) == DialOutcome.CONNECTED
    assert classify_ended_reason(reason, customer_spoke=False) == DialOutcome.NOT_REACHED
    assert classify_ended_reason(reason) == DialOutcome.NOT_REACHED


@pytest.mark.parametrize(
    "reason",
    [
        "silence-timed-out",
        "voicemail",
        "customer-did-not-answer",
        "customer-busy",
        "call.in-progress.error-sip-outbound-call-failed-to-connect",
        "call.in-progress.error-providerfault-outbound-sip-403-forbidden",
        "call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable",
        "call.in-progress.error-providerfault-outbound-sip-503-service-unavailable",
        "twilio-reported-customer-misdialed",
        "pipeline-error-openai-llm-failed",
        "call.start.error-subscription-concurrency-limit-reached",
        "call.forwarding.operator-busy",
        "assistant-error",  # not a Vapi reason at all
        "some-reason-vapi-adds-next-year",
        "",
    ],
)
def test_any_other_reason_is_not_reached_even_with_a_customer_turn(reason: str) -> None:
    assert classify_ended_reason(reason, customer_spoke=True) == DialOutcome.NOT_REACHED


def test_allow_list_is_part_of_the_pinned_sdks_enum_and_disjoint_from_the_named_misses() -> None:
    assert REACHED_REASONS <= KNOWN_ENDED_REASONS
    assert NOT_REACHED_REASONS <= KNOWN_ENDED_REASONS
    assert not REACHED_REASONS & NOT_REACHED_REASONS
    assert len(KNOWN_ENDED_REASONS) > 500  # the whole enum was read, not a fragment


def test_voicemail_fixture_is_not_reached() -> None:
    call = load_fixture("outbound-call.get-response.ended-voicemail.json")
    verdict = judge_call(call)
    assert (verdict.reached, verdict.ended_reason, verdict.known) == (False, "voicemail", True)


def test_customer_turn_needs_role_user_and_text() -> None:
    def call(*messages: dict[str, Any]) -> dict[str, Any]:
        return {"endedReason": "customer-ended-call", "artifact": {"messages": list(messages)}}

    assert judge_call(call({"role": "user", "message": "hi"})).reached
    assert not judge_call(call({"role": "user", "message": "   "})).reached
    assert not judge_call(
        call({"role": "bot", "message": "Hello?"}, {"role": "system", "message": "x"})
    ).reached
    assert not judge_call({"endedReason": "customer-ended-call", "messages": [{"role": "user"}]}).reached
    assert not judge_call({"endedReason": "customer-ended-call", "artifact": {"messages": "user"}}).reached


async def test_answering_machine_without_customer_turn_is_not_reached(ledger: DialLedger) -> None:
    api = FakeVapiApi(ended_reason="customer-ended-call", customer_said=None)
    result = await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())

    assert (result.outcome, result.ended_reason) == (DialOutcome.NOT_REACHED, "customer-ended-call")
    assert result.detail == "no customer turn in the call's messages"
    entry = await ledger.get(params().attempt_key)
    assert entry is not None and (entry.state, entry.ended_reason) == (
        DialState.NOT_REACHED,
        "customer-ended-call",
    )


async def test_stored_verdict_is_reused_without_asking_vapi_again(ledger: DialLedger) -> None:
    api = FakeVapiApi(ended_reason="silence-timed-out", customer_said=CUSTOMER_TURN)
    acts = activities(api, ledger)
    first = await ActivityEnvironment().run(acts.place_callback_call, params())
    seen = len(api.requests)
    again = await ActivityEnvironment().run(acts.place_callback_call, params())

    assert first == replace(again, dialled_now=True)
    assert (again.outcome, again.detail) == (
        DialOutcome.NOT_REACHED,
        "nobody spoke (an answering machine, or silence)",
    )
    assert len(api.requests) == seen  # the ledger answered


async def test_ended_row_of_an_older_version_is_judged_on_the_call_read_again(ledger: DialLedger) -> None:
    key = params().attempt_key
    await ledger.claim(key, CALL_ID)
    await ledger.mark_dialled(key, "vapi-9")
    await ledger._update(key, state="ended", ended_reason="customer-ended-call")  # what older code wrote
    api = FakeVapiApi(ended_reason="customer-ended-call", customer_said=None)
    result = await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())

    assert (result.outcome, result.vapi_call_id, result.dialled_now) == (
        DialOutcome.NOT_REACHED,
        "vapi-9",
        False,
    )
    assert api.posts == [] and [r.url.path for r in api.requests] == ["/call/vapi-9"]
    entry = await ledger.get(key)
    assert entry is not None and entry.state is DialState.NOT_REACHED


async def test_reached_row_of_an_older_version_is_reused_as_connected(ledger: DialLedger) -> None:
    """Before the ledger spelled its verdict as the dial's outcome, a reached customer was `reached`."""
    key = params().attempt_key
    await ledger.claim(key, CALL_ID)
    await ledger.mark_dialled(key, "vapi-5")
    await ledger._update(key, state="reached", ended_reason="customer-ended-call")  # what older code wrote
    assert (entry := await ledger.get(key)) is not None and entry.state is DialState.CONNECTED
    api = FakeVapiApi(ended_reason="customer-did-not-answer", customer_said=None)
    result = await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())

    assert (result.outcome, result.vapi_call_id, result.detail) == (
        DialOutcome.CONNECTED,
        "vapi-5",
        "the customer spoke",
    )
    assert api.requests == [], "the stored verdict answered"


async def test_unknown_reason_is_logged_once_and_counted_by_label(
    ledger: DialLedger, caplog: pytest.LogCaptureFixture
) -> None:
    reason = f"call.new-reason-{uuid.uuid4().hex[:8]}"
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    assert runtime is not None
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    api = FakeVapiApi(ended_reason=reason)
    acts = activities(api, ledger)
    with caplog.at_level(logging.WARNING):
        first = await env.run(acts.place_callback_call, params(1))
        second = await env.run(acts.place_callback_call, params(2))

    assert first.outcome == second.outcome == DialOutcome.NOT_REACHED
    assert "does not know" in first.detail
    assert sum(reason in r.getMessage() for r in caplog.records) == 1
    text = await scrape_until(f"http://{address}/metrics", reason)
    [line] = [x for x in text.splitlines() if x.startswith(UNKNOWN_ENDED_REASONS) and reason in x]
    assert f'ended_reason="{reason}"' in line and line.endswith(" 2")


# ---------------------------------------------------------------- POST /call errors


async def test_concurrency_limit_is_retried_and_the_retry_dials(ledger: DialLedger) -> None:
    api = FakeVapiApi(post_status=[400, 201], post_error="Over Concurrency Limit.")
    acts = activities(api, ledger)
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(acts.place_callback_call, params())
    assert (failed.value.type, failed.value.non_retryable) == ("VapiConcurrencyLimit", False)
    assert "Over Concurrency Limit" in str(failed.value)
    assert await ledger.get(params().attempt_key) is None  # Vapi created nothing: the retry may dial

    result = await ActivityEnvironment().run(acts.place_callback_call, params())
    assert (result.outcome, result.dialled_now) == (DialOutcome.CONNECTED, True)
    assert len(api.created) == 1


async def test_other_bad_request_stays_permanent_and_its_text_is_masked(ledger: DialLedger) -> None:
    api = FakeVapiApi(
        post_status=[400], post_error="customer.number +15550100003 must be a valid phone number"
    )
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(activities(api, ledger).place_callback_call, params())

    assert (failed.value.type, failed.value.non_retryable) == ("VapiRejected", True)
    assert "must be a valid phone number" in str(failed.value) and "+15550100003" not in str(failed.value)
