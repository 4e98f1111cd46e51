"""A stand-in for Vapi's call API that `escalade dev` runs when no `ESCALADE_VAPI_API_KEY` is configured.

Without a Vapi account a callback still waits, claims its specialist and dials, but the dial lands here:

    POST /call        recorded (masked number, attempt, specialist) in <state>/logs/vapi-dials.jsonl and
                      logged; answered 201 with a call id
    GET  /call/{id}   the call, `ended` with endedReason `call.start.error-escalade-dev-no-vapi-api-key`
    GET  /call        every recorded call (the worker looks calls up by name after a crash)

The worker classifies that ended reason as "not reached", so the callback retries on the policy's spacing
and ends `unreachable`, visibly, in the Temporal UI, instead of dialling the real Vapi API with no key.
Run: `python -m escalade_cli.dev_vapi --port 8234 --record .escalade/logs/vapi-dials.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from routing_service.domain.phone import mask_number

__all__ = ["ENDED_REASON", "build_app", "main"]

ENDED_REASON = "call.start.error-escalade-dev-no-vapi-api-key"

log = logging.getLogger("escalade.dev_vapi")


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def build_app(record: Path | None = None) -> Starlette:
    """The stand-in application; dials are appended to `record` (JSON lines) when given."""
    calls: dict[str, dict[str, Any]] = {}

    async def create(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"message": "the body must be JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"message": "the body must be a JSON object"}, status_code=400)
        call_id = f"dev-call-{len(calls) + 1}"
        now = datetime.now(UTC).isoformat()
        customer = _object(body.get("customer"))
        variables = _object(_object(body.get("assistantOverrides")).get("variableValues"))
        masked = mask_number(str(customer.get("number", "")))
        calls[call_id] = {
            "id": call_id,
            "name": body.get("name", ""),
            "createdAt": now,
            "status": "ended",
            "endedReason": ENDED_REASON,
        }
        entry = {
            "at": now,
            "vapi_call_id": call_id,
            "name": body.get("name", ""),
            "customer": masked,
            "attempt_key": variables.get("callbackAttemptKey", ""),
            "specialist": variables.get("specialistId", ""),
        }
        if record is not None:
            record.parent.mkdir(parents=True, exist_ok=True)
            with record.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        log.warning(
            "no Vapi API key configured: recorded (not placed) the callback dial of %s, attempt %s, "
            "specialist %s; it ends as %s",
            masked,
            entry["attempt_key"],
            entry["specialist"] or "-",
            ENDED_REASON,
        )
        return JSONResponse({**calls[call_id], "status": "queued"}, status_code=201)

    async def show(request: Request) -> JSONResponse:
        call = calls.get(request.path_params["call_id"])
        if call is None:
            return JSONResponse({"message": "not found"}, status_code=404)
        return JSONResponse(call)

    async def listing(request: Request) -> JSONResponse:
        return JSONResponse(list(calls.values()))

    return Starlette(
        routes=[
            Route("/call", create, methods=["POST"]),
            Route("/call", listing, methods=["GET"]),
            Route("/call/{call_id}", show, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in on 127.0.0.1 until SIGTERM/SIGINT."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    uvicorn.run(build_app(args.record), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
