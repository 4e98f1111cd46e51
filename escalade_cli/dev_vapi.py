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
import logging
from pathlib import Path

from starlette.applications import Starlette

from escalade_cli.vapi_standin import VapiStandin

__all__ = ["ENDED_REASON", "build_app", "main"]

ENDED_REASON = "call.start.error-escalade-dev-no-vapi-api-key"


def build_app(record: Path | None = None) -> Starlette:
    """The stand-in application; dials are appended to `record` (JSON lines) when given."""
    standin = VapiStandin(ended_reason=ENDED_REASON, record=record, log_dials=True, id_prefix="dev-call")
    return standin.app()


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
