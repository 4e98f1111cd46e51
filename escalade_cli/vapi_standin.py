"""A local stand-in for Vapi's call API: `POST /call`, `GET /call/{id}`, `GET /call`, and Live Call Control.

One implementation serves three users: `escalade dev` when no Vapi API key is configured
(`escalade_cli.dev_vapi`), the workflow tests that dial through a real worker, and the callbacks benchmark
that times "specialist freed -> dial request sent". Dials are kept in memory (`dials`, the request bodies,
with the time each arrived in `arrivals`); optionally appended, numbers masked, to a JSON-lines file.

    standin = VapiStandin(ended_reason="customer-ended-call")
    async with serve_standin(standin):      # uvicorn on 127.0.0.1:0 in this event loop
        ... standin.url ...

**Playing a callback call's lifecycle.** Without an outcome, a dial ends at once with `ended_reason` (the
customer's turn in `artifact.messages` when `customer_spoke`), as before. With an outcome (a script entry,
else `default_outcome`), the stand-in plays the call as Vapi would, posting server messages to `edge_url`
signed with `edge_secret` like Vapi's HMAC credential (`x-signature`/`x-timestamp` over
`{timestamp}.{body}`, webhook_edge.auth.sign_hmac), and `GET /call/{id}` follows it (`ringing`,
`in-progress`, `forwarding`, `ended`):

    reached           the customer answers (a user turn). The assistant escalates: a `tool-calls`
                      (`request_style="tool-calls"`, the default provisioned function tool; the edge transfers
                      with POST {call.monitor.controlUrl}, which is this stand-in's
                      `/call/{id}/control`) or a `transfer-destination-request` (the edge answers the
                      destination), for the NEW call id with `call.assistantOverrides.variableValues` of the
                      dial body (so `originalCallId` links it to the callback's held specialist). With a
                      destination: `status-update` forwarding, then `ended` `assistant-forwarded-call`.
                      Without one (the edge declined): `ended` `customer-ended-call`.
    specialist-no-answer
                      as reached, but the specialist does not pick up: `transfer-update` no-answer, then the
                      assistant (kept on the line by transferPlan.fallbackPlan) escalates again in the same
                      call; the second destination is forwarded to and the call ends
                      `assistant-forwarded-call`.
    customer-hangs-up the customer answers and hangs up before any escalation: `customer-ended-call`.
    voicemail         an answering machine (voicemailDetection on): `ended` `voicemail`, no user turn.
    no-answer         `ended` `customer-did-not-answer`, no user turn.
    busy              `ended` `customer-busy`, no user turn.

Every ending posts its `status-update` `ended` to the edge (as Vapi does for the assistant's server URL).

**Choosing the outcome** (`PUT /escalade/outcomes/{originalCallId}` with `{"outcomes": [...]}`, which
`escalade simulate` sends): attempt n of the callback of that original call (n-th dial whose
`assistantOverrides.variableValues.originalCallId` is that id) plays `outcomes[n-1]`; the last entry
repeats. `GET /escalade/outcomes` lists the scripts; a dial no script names plays `default_outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from escalade_cli.local_server import local_server
from escalade_cli.scenarios import ORG_ID, event, status_update, tool_calls_request, transfer_update
from escalade_platform.masking import mask_number
from webhook_edge.auth import sign_hmac

__all__ = ["CallOutcome", "VapiStandin", "serve_standin"]

log = logging.getLogger("escalade.vapi_standin")

CALLBACK_REPLY = "Yes, now is a good time. Thanks for calling back."
GREETING = "Hello, this is TechCorp calling you back about your issue. Do you have a moment now?"


class CallOutcome(enum.StrEnum):
    REACHED = "reached"
    SPECIALIST_NO_ANSWER = "specialist-no-answer"
    CUSTOMER_HANGS_UP = "customer-hangs-up"
    VOICEMAIL = "voicemail"
    NO_ANSWER = "no-answer"
    BUSY = "busy"

    @property
    def answered(self) -> bool:
        """A person (not a machine) picked up: the call's messages carry a user turn."""
        return self in (CallOutcome.REACHED, CallOutcome.SPECIALIST_NO_ANSWER, CallOutcome.CUSTOMER_HANGS_UP)


UNANSWERED_REASONS = {
    CallOutcome.VOICEMAIL: "voicemail",
    CallOutcome.NO_ANSWER: "customer-did-not-answer",
    CallOutcome.BUSY: "customer-busy",
}


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _iso(moment: float | None = None) -> str:
    stamp = datetime.fromtimestamp(time.time() if moment is None else moment, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _turn(role: str, text: str, started_ms: int, offset_s: float) -> dict[str, Any]:
    """One `artifact.messages[]` entry as Vapi records it (SDK BotMessage / UserMessage / ToolCallMessage)."""
    moment = started_ms + int(offset_s * 1000)
    duration = 1000 + 40 * len(text)
    entry: dict[str, Any] = {"role": role, "message": text, "time": moment, "secondsFromStart": offset_s}
    if role in ("bot", "user"):
        entry.update(endTime=moment + duration, duration=duration)
    return entry


def _conversation(call: dict[str, Any], *, customer: bool) -> list[dict[str, Any]]:
    """The first message, then (when a person answered) the customer's reply."""
    started = int(time.time() * 1000)
    turns = [_turn("bot", VapiStandin.first_message(call), started, 0.4)]
    if customer:
        turns.append(_turn("user", CALLBACK_REPLY, started, 6.0))
    return turns


def parse_outcomes(value: object) -> list[CallOutcome]:
    """A script from JSON: a non-empty list of outcome names; ValueError naming the known ones."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("outcomes must be a non-empty list of outcome names")
    try:
        return [CallOutcome(v.strip().lower()) for v in value]
    except ValueError:
        known = ", ".join(o.value for o in CallOutcome)
        raise ValueError(f"unknown outcome in {value!r}; known: {known}") from None


@dataclass
class VapiStandin:
    """The stand-in's behaviour and what it saw.

    `api_key`: when set, `POST /call` without `Authorization: Bearer <api_key>` gets 401, as from Vapi.
    `ended_reason`: for a dial without an outcome, what `GET /call/{id}` reports; the call is `ended` with
    this reason, or `in-progress` (the customer still talking to the specialist) when None.
    `customer_spoke`: for such a dial, whether `artifact.messages` carries a customer turn.
    `default_outcome` / `scripts` / `edge_url` / `edge_secret` / `request_style` / `pace`: the lifecycle
    (module docstring); `pace` is the pause in seconds between two steps of a played call.
    `record`: a JSON-lines file each dial is appended to (customer number masked); `log_dials` also logs a
    warning per dial (what `escalade dev` wants: the dial was recorded, not placed).
    """

    api_key: str | None = None
    ended_reason: str | None = "customer-ended-call"
    customer_spoke: bool = True
    default_outcome: CallOutcome | None = None
    scripts: dict[str, list[CallOutcome]] = field(default_factory=dict)
    edge_url: str | None = None
    edge_secret: str | None = None
    request_style: str = "tool-calls"
    pace: float = 0.2
    control_wait: float = 5.0
    record: Path | None = None
    log_dials: bool = False
    id_prefix: str = "vapi"
    dials: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """time.perf_counter() when each dial's request arrived."""
    posted: list[dict[str, Any]] = field(default_factory=list)
    """Every server message posted to the edge, with the edge's answer: {"message", "status", "reply"}."""
    controls: list[dict[str, Any]] = field(default_factory=list)
    """Every Live Call Control message received: {"call_id", **body}."""
    url: str = ""
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    _arrived: asyncio.Event | None = None
    _attempts: dict[str, int] = field(default_factory=dict)
    _control_events: dict[str, asyncio.Queue[dict[str, Any]]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def arrived(self) -> asyncio.Event:
        """Set on every dial (clear it before waiting for the next)."""
        if self._arrived is None:
            self._arrived = asyncio.Event()
        return self._arrived

    def outcome_for(self, original_call_id: str) -> CallOutcome | None:
        """The outcome of the next dial for `original_call_id` (counts the attempt)."""
        attempt = self._attempts.get(original_call_id, 0) + 1
        self._attempts[original_call_id] = attempt
        script = self.scripts.get(original_call_id)
        if script:
            return script[min(attempt, len(script)) - 1]
        return self.default_outcome

    async def wait_ended(self, call_id: str, within: float = 30.0) -> dict[str, Any]:
        """The call once `ended` (tests)."""
        deadline = time.monotonic() + within
        while self.calls.get(call_id, {}).get("status") != "ended":
            if time.monotonic() > deadline:
                raise TimeoutError(f"call {call_id} did not end within {within} s")
            await asyncio.sleep(0.02)
        return self.calls[call_id]

    # --------------------------------------------------------------------------------------------
    # HTTP
    # --------------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        async def create(request: Request) -> JSONResponse:
            arrived = time.perf_counter()
            if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse({"message": "Invalid Key"}, status_code=401)
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"message": "the body must be JSON"}, status_code=400)
            if not isinstance(body, dict):
                return JSONResponse({"message": "the body must be a JSON object"}, status_code=400)
            # unique across restarts: a dev stack keeps its decisions, and a reused id would replay one
            call_id = f"{self.id_prefix}-{len(self.calls) + 1}-{uuid.uuid4().hex[:8]}"
            overrides = _object(body.get("assistantOverrides"))
            variables = _object(overrides.get("variableValues"))
            original = str(variables.get("originalCallId", ""))
            outcome = self.outcome_for(original) if original else self.default_outcome
            call: dict[str, Any] = {
                "id": call_id,
                "orgId": ORG_ID,
                "type": "outboundPhoneCall",
                "name": body.get("name", ""),
                "createdAt": _iso(),
                "updatedAt": _iso(),
                "status": "queued",
                "customer": _object(body.get("customer")),
                "assistantOverrides": overrides,
            }
            for key in ("assistantId", "phoneNumberId"):
                if isinstance(body.get(key), str):
                    call[key] = body[key]
            if self.url:
                call["monitor"] = {"controlUrl": f"{self.url}/call/{call_id}/control"}
            if outcome is None:
                call["_at_once"] = True
                self._finish_at_once(call)
            self.calls[call_id] = call
            self.dials.append({"id": call_id, **body})
            self.arrivals.append(arrived)
            self.arrived.set()
            self._note(call_id, body, outcome)
            if outcome is not None:
                task = asyncio.get_running_loop().create_task(self._play(call_id, outcome))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return JSONResponse({**self._public(call), "status": "queued"}, status_code=201)

        async def show(request: Request) -> JSONResponse:
            call = self.calls.get(request.path_params["call_id"])
            if call is None:
                return JSONResponse({"message": "not found"}, status_code=404)
            if call.get("_at_once") and call["status"] == "in-progress":
                self._finish_at_once(call)  # a test may end the call later by setting `ended_reason`
            return JSONResponse(self._public(call))

        async def listing(request: Request) -> JSONResponse:
            return JSONResponse([self._public(call) for call in self.calls.values()])

        async def control(request: Request) -> JSONResponse:
            call_id = request.path_params["call_id"]
            if call_id not in self.calls:
                return JSONResponse({"message": "not found"}, status_code=404)
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"message": "the body must be JSON"}, status_code=400)
            if not isinstance(body, dict) or not isinstance(body.get("type"), str):
                return JSONResponse({"message": "a control message needs a type"}, status_code=400)
            self.controls.append({"call_id": call_id, **body})
            self._control_queue(call_id).put_nowait(body)
            return JSONResponse({"ok": True})

        async def put_script(request: Request) -> JSONResponse:
            try:
                outcomes = parse_outcomes(_object(await request.json()).get("outcomes"))
            except ValueError as exc:
                return JSONResponse({"message": str(exc)}, status_code=400)
            original = request.path_params["original_call_id"]
            self.scripts[original] = outcomes
            return JSONResponse({"originalCallId": original, "outcomes": [o.value for o in outcomes]})

        async def list_scripts(request: Request) -> JSONResponse:
            return JSONResponse({key: [o.value for o in value] for key, value in self.scripts.items()})

        return Starlette(
            routes=[
                Route("/call", create, methods=["POST"]),
                Route("/call", listing, methods=["GET"]),
                Route("/call/{call_id}", show, methods=["GET"]),
                Route("/call/{call_id}/control", control, methods=["POST"]),
                Route("/escalade/outcomes", list_scripts, methods=["GET"]),
                Route("/escalade/outcomes/{original_call_id}", put_script, methods=["PUT"]),
            ]
        )

    @staticmethod
    def _public(call: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in call.items() if not key.startswith("_")}

    def _control_queue(self, call_id: str) -> asyncio.Queue[dict[str, Any]]:
        return self._control_events.setdefault(call_id, asyncio.Queue())

    def _finish_at_once(self, call: dict[str, Any]) -> None:
        """The dial without an outcome: ended with `ended_reason` at once (or in progress when None)."""
        if self.ended_reason is None:
            call["status"] = "in-progress"
            return
        call.update(status="ended", endedReason=self.ended_reason, endedAt=_iso())
        call["artifact"] = {"messages": _conversation(call, customer=self.customer_spoke)}

    # --------------------------------------------------------------------------------------------
    # The played lifecycle
    # --------------------------------------------------------------------------------------------
    async def _play(self, call_id: str, outcome: CallOutcome) -> None:
        call = self.calls[call_id]
        try:
            await asyncio.sleep(self.pace)
            call.update(status="ringing", updatedAt=_iso())
            await asyncio.sleep(self.pace)
            if not outcome.answered:
                await self._end(call, UNANSWERED_REASONS[outcome], [])
                return
            call.update(status="in-progress", startedAt=_iso(), updatedAt=_iso())
            turns = _conversation(call, customer=True)
            call["artifact"] = {"messages": turns}
            if outcome is CallOutcome.CUSTOMER_HANGS_UP or not self.edge_url:
                await asyncio.sleep(self.pace)
                await self._end(call, "customer-ended-call", turns)
                return
            destination = await self._escalate(call)
            if destination is not None and outcome is CallOutcome.SPECIALIST_NO_ANSWER:
                await self._post(status_update(self._live(call), "forwarding", destination=destination))
                await asyncio.sleep(self.pace)
                await self._post(transfer_update(self._live(call), destination, "no-answer"))
                call.update(status="in-progress")
                destination = await self._escalate(call)
            if destination is None:
                await self._end(call, "customer-ended-call", turns)
                return
            call["status"] = "forwarding"
            await self._post(status_update(self._live(call), "forwarding", destination=destination))
            await asyncio.sleep(self.pace)
            call["destination"] = destination
            await self._end(call, "assistant-forwarded-call", turns)
        except Exception:  # a played call must end, whatever the edge did
            log.exception("the stand-in's call %s failed while playing %s", call_id, outcome.value)
            if call.get("status") != "ended":
                call.update(status="ended", endedReason="pipeline-error-escalade-standin", endedAt=_iso())

    @staticmethod
    def first_message(call: dict[str, Any]) -> str:
        """The dial's `assistantOverrides.firstMessage`, else a generic callback greeting."""
        first = _object(call.get("assistantOverrides")).get("firstMessage")
        return first if isinstance(first, str) and first.strip() else GREETING

    def _live(self, call: dict[str, Any]) -> dict[str, Any]:
        """The call as a server message carries it."""
        return {k: v for k, v in self._public(call).items() if k not in ("artifact", "destination")}

    async def _escalate(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The assistant calls escalateToSupport; the destination the edge chose, or None."""
        variables = _object(_object(call.get("assistantOverrides")).get("variableValues"))
        arguments = {
            "issue_category": str(variables.get("issueCategory") or "general"),
            "complexity_level": str(variables.get("complexityLevel") or "basic"),
            "customer_context": str(variables.get("customerContext") or ""),
            "escalation_reason": str(variables.get("callbackReason") or "callback: the customer is ready"),
        }
        await asyncio.sleep(self.pace)
        if self.request_style == "transfer-destination-request":
            messages = [*call["artifact"]["messages"]]
            tool = tool_calls_request(self._live(call), arguments)["message"]["toolCallList"][0]
            tool_turn = _turn("tool_calls", "", int(time.time() * 1000), 9.0)
            messages.append({**tool_turn, "toolCalls": [tool]})
            request = event(self._live(call), "transfer-destination-request", artifact={"messages": messages})
            reply = await self._post(request)
            destination = _object(reply).get("destination")
            return destination if isinstance(destination, dict) and destination else None
        queue = self._control_queue(call["id"])
        while not queue.empty():
            queue.get_nowait()
        await self._post(tool_calls_request(self._live(call), arguments))
        try:
            message = await asyncio.wait_for(queue.get(), self.control_wait)
        except TimeoutError:
            return None
        destination = message.get("destination") if message.get("type") == "transfer" else None
        return destination if isinstance(destination, dict) and destination else None

    async def _end(self, call: dict[str, Any], reason: str, turns: list[dict[str, Any]]) -> None:
        """Post the ending to the edge first, then show it on `GET /call/{id}` (the worker polls that: by
        then the edge has recorded the ending, as with Vapi, whose webhook precedes the poll that sees it)."""
        if self.edge_url:
            ending = {**self._live(call), "endedReason": reason}
            await self._post(status_update(ending, "ended", ended_reason=reason))
        call["artifact"] = {"messages": turns}
        call.update(status="ended", endedReason=reason, endedAt=_iso(), updatedAt=_iso())

    async def _post(self, doc: dict[str, Any]) -> Any:
        """Post one server message to the edge, signed like Vapi's HMAC credential; the decoded reply."""
        assert self.edge_url is not None
        body = json.dumps(doc, separators=(",", ":")).encode()
        headers = {"content-type": "application/json"}
        if self.edge_secret:
            headers.update(sign_hmac(self.edge_secret, body, int(time.time() * 1000)))
        entry: dict[str, Any] = {"message": doc["message"], "status": None, "reply": None}
        self.posted.append(entry)
        try:
            async with httpx.AsyncClient(timeout=15.0) as client:
                response = await client.post(self.edge_url, content=body, headers=headers)
        except httpx.TransportError as exc:
            log.warning("the edge at %s is not reachable: %s", self.edge_url, type(exc).__name__)
            return None
        entry["status"] = response.status_code
        try:
            entry["reply"] = response.json()
        except ValueError:
            entry["reply"] = response.text
        if not response.is_success:
            log.warning("the edge answered %s to %s", response.status_code, doc["message"]["type"])
        return entry["reply"]

    def _note(self, call_id: str, body: dict[str, Any], outcome: CallOutcome | None) -> None:
        if self.record is None and not self.log_dials:
            return
        variables = _object(_object(body.get("assistantOverrides")).get("variableValues"))
        ending = outcome.value if outcome is not None else self.ended_reason
        entry = {
            "at": datetime.now(UTC).isoformat(),
            "vapi_call_id": call_id,
            "name": body.get("name", ""),
            "customer": mask_number(str(_object(body.get("customer")).get("number", ""))),
            "attempt_key": variables.get("callbackAttemptKey", ""),
            "original_call_id": variables.get("originalCallId", ""),
            "specialist": variables.get("specialistId", ""),
            "outcome": ending,
        }
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            with self.record.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        if self.log_dials:
            log.warning(
                "no Vapi API key configured: the stand-in plays the callback dial of %s, attempt %s, "
                "specialist %s, as: %s",
                entry["customer"],
                entry["attempt_key"],
                entry["specialist"] or "-",
                ending,
            )

    async def aclose(self) -> None:
        """Cancel calls still playing."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def serve_standin(standin: VapiStandin) -> AsyncIterator[VapiStandin]:
    """Serve `standin` with uvicorn on 127.0.0.1 (a free port) in the running event loop; sets its `url`."""
    async with local_server(standin.app()) as served:
        standin.url = served.url
        try:
            yield standin
        finally:
            await standin.aclose()
