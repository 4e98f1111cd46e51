"""`place_callback_call` without a Temporal server (`ActivityEnvironment`), Vapi's API replaced by an
`httpx.MockTransport`, and the dial ledger on a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.workflow.workflow_fakes import eventually
from workflows.activities import VapiActivities, classify_ended_reason, vapi_call_name
from workflows.ledger import DialLedger
from workflows.payloads import DialOutcome, DialParams

API_KEY = "vapi-test-key"
CALL_ID = "7d3e1a90-6f8b-4de5-9bc3-0e9f8d7c6bf8"


@dataclass
class FakeVapiApi:
    """Answers POST /call, GET /call/{id} and GET /call like Vapi, recording every request."""

    post_status: list[int] = field(default_factory=lambda: [201])
    ended_reason: str = "customer-ended-call"
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
                return httpx.Response(status, json={"message": "nope"})
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
            return httpx.Response(
                200, json={"id": path[6:], "status": "ended", "endedReason": self.ended_reason}
            )
        return httpx.Response(404, json={"message": "not found"})

    @property
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[DialLedger]:
    engine = create_async_engine(database_url)
    store = DialLedger(engine)
    await store.create_tables()
    yield store
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
        variable_values={"originalCallId": CALL_ID, "specialistName": "Ana", "callbackAttemptKey": key},
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
        "assistantOverrides": {"variableValues": params().variable_values},
    }
    assert len(body["name"]) <= 40


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
    assert entry is not None and (entry.state, entry.vapi_call_id) == ("ended", "vapi-42")


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


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("customer-ended-call", DialOutcome.CONNECTED),
        ("assistant-forwarded-call", DialOutcome.CONNECTED),
        ("customer-did-not-answer", DialOutcome.NOT_REACHED),
        ("customer-busy", DialOutcome.NOT_REACHED),
        ("voicemail", DialOutcome.NOT_REACHED),
        ("twilio-failed-to-connect-call", DialOutcome.NOT_REACHED),
        ("call.start.error-get-transport", DialOutcome.NOT_REACHED),
        ("", DialOutcome.NOT_REACHED),
    ],
)
def test_ended_reason_classified_when_call_ends(reason: str, outcome: str) -> None:
    assert classify_ended_reason(reason) == outcome


def test_vapi_name_is_key_when_short_and_stable_digest_when_long() -> None:
    assert vapi_call_name("callback-abc-attempt-1") == "callback-abc-attempt-1"
    long_key = params().attempt_key
    assert vapi_call_name(long_key) == vapi_call_name(long_key)
    assert vapi_call_name(long_key) != vapi_call_name(params(2).attempt_key)
    assert len(vapi_call_name(long_key)) <= 40
