"""A local stand-in for Vapi's call API: `POST /call`, `GET /call/{id}`, `GET /call`.

One implementation serves three users: `escalade dev` when no Vapi API key is configured
(`escalade_cli.dev_vapi`), the workflow tests that dial through a real worker, and the callbacks benchmark
that times "specialist freed -> dial request sent". Dials are kept in memory (`dials`, the request bodies,
with the time each arrived in `arrivals`); optionally appended, numbers masked, to a JSON-lines file.

    standin = VapiStandin(ended_reason="customer-ended-call")
    async with serve_standin(standin):      # uvicorn on 127.0.0.1:0 in this event loop
        ... standin.url ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from escalade_cli.local_server import local_server
from routing_service.domain.phone import mask_number

__all__ = ["VapiStandin", "serve_standin"]

log = logging.getLogger("escalade.vapi_standin")


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class VapiStandin:
    """The stand-in's behaviour and what it saw.

    `api_key`: when set, `POST /call` without `Authorization: Bearer <api_key>` gets 401, as from Vapi.
    `ended_reason`: what `GET /call/{id}` reports; the call is `ended` with this reason, or `in-progress`
    (the customer still talking to the specialist) when None.
    `record`: a JSON-lines file each dial is appended to (customer number masked); `log_dials` also logs a
    warning per dial (what `escalade dev` wants: the dial was recorded, not placed).
    """

    api_key: str | None = None
    ended_reason: str | None = "customer-ended-call"
    record: Path | None = None
    log_dials: bool = False
    id_prefix: str = "vapi"
    dials: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """time.perf_counter() when each dial's request arrived."""
    url: str = ""
    _arrived: asyncio.Event | None = None

    @property
    def arrived(self) -> asyncio.Event:
        """Set on every dial (clear it before waiting for the next)."""
        if self._arrived is None:
            self._arrived = asyncio.Event()
        return self._arrived

    def app(self) -> Starlette:
        calls: dict[str, dict[str, Any]] = {}

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
            call_id = f"{self.id_prefix}-{len(calls) + 1}"
            calls[call_id] = {
                "id": call_id,
                "name": body.get("name", ""),
                "createdAt": datetime.now(UTC).isoformat(),
            }
            self.dials.append({"id": call_id, **body})
            self.arrivals.append(arrived)
            self.arrived.set()
            self._note(call_id, body)
            return JSONResponse({**calls[call_id], "status": "queued"}, status_code=201)

        def state(call: dict[str, Any]) -> dict[str, Any]:
            if self.ended_reason is None:
                return {**call, "status": "in-progress"}
            return {**call, "status": "ended", "endedReason": self.ended_reason}

        async def show(request: Request) -> JSONResponse:
            call = calls.get(request.path_params["call_id"])
            if call is None:
                return JSONResponse({"message": "not found"}, status_code=404)
            return JSONResponse(state(call))

        async def listing(request: Request) -> JSONResponse:
            return JSONResponse([state(call) for call in calls.values()])

        return Starlette(
            routes=[
                Route("/call", create, methods=["POST"]),
                Route("/call", listing, methods=["GET"]),
                Route("/call/{call_id}", show, methods=["GET"]),
            ]
        )

    def _note(self, call_id: str, body: dict[str, Any]) -> None:
        if self.record is None and not self.log_dials:
            return
        variables = _object(_object(body.get("assistantOverrides")).get("variableValues"))
        entry = {
            "at": datetime.now(UTC).isoformat(),
            "vapi_call_id": call_id,
            "name": body.get("name", ""),
            "customer": mask_number(str(_object(body.get("customer")).get("number", ""))),
            "attempt_key": variables.get("callbackAttemptKey", ""),
            "specialist": variables.get("specialistId", ""),
        }
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            with self.record.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        if self.log_dials:
            log.warning(
                "no Vapi API key configured: recorded (not placed) the callback dial of %s, attempt %s, "
                "specialist %s; it ends as %s",
                entry["customer"],
                entry["attempt_key"],
                entry["specialist"] or "-",
                self.ended_reason,
            )


@contextlib.asynccontextmanager
async def serve_standin(standin: VapiStandin) -> AsyncIterator[VapiStandin]:
    """Serve `standin` with uvicorn on 127.0.0.1 (a free port) in the running event loop; sets its `url`."""
    async with local_server(standin.app()) as served:
        standin.url = served.url
        yield standin
