"""A stand-in for Vapi's call API that `escalade dev` runs when no `ESCALADE_VAPI_API_KEY` is configured.

Without a Vapi account a callback still waits, claims its specialist and dials, and the dial lands here,
where it plays a real callback call's lifecycle (escalade_cli.vapi_standin) against the local edge:

    POST /call                           recorded (masked number, attempt, specialist, outcome) in
                                         <state>/logs/vapi-dials.jsonl and logged; answered 201 with a call
                                         id; then the call plays its outcome
    GET  /call/{id}                      the call as it plays: ringing, in-progress, forwarding, ended
                                         (endedReason, artifact.messages)
    GET  /call                           every call (the worker looks calls up by name after a crash)
    POST /call/{id}/control              Live Call Control (the edge's transfer of a tool-calls escalation)
    PUT  /escalade/outcomes/{callId}     the outcomes of the successive callback attempts of that original
                                         call, e.g. {"outcomes": ["voicemail", "reached"]} (escalade simulate)

A dial no script names plays `--default-outcome` (default `reached`: the customer answers, the assistant
escalates with `originalCallId`, the edge hands them to the specialist held for the callback, and the call
ends `assistant-forwarded-call`). Server messages go to `--edge-url`, signed with ESCALADE_VAPI_SECRET like
Vapi's HMAC credential.
Run: `python -m escalade_cli.dev_vapi --port 8234 --edge-url http://127.0.0.1:3000/webhook/vapi`.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from starlette.applications import Starlette

from escalade_cli.vapi_standin import CallOutcome, VapiStandin

__all__ = ["build_app", "build_standin", "main"]


def build_standin(
    record: Path | None = None,
    *,
    edge_url: str | None = None,
    edge_secret: str | None = None,
    default_outcome: CallOutcome = CallOutcome.REACHED,
    url: str = "",
    request_style: str = "tool-calls",
    pace: float = 0.5,
) -> VapiStandin:
    """The stand-in `escalade dev` runs; dials are appended to `record` (JSON lines) when given."""
    return VapiStandin(
        default_outcome=default_outcome,
        edge_url=edge_url,
        edge_secret=edge_secret,
        request_style=request_style,
        pace=pace,
        record=record,
        log_dials=True,
        id_prefix="dev-call",
        url=url,
    )


def build_app(record: Path | None = None) -> Starlette:
    """The stand-in application with the default options and no edge (calls end without posting)."""
    return build_standin(record).app()


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in on 127.0.0.1 until SIGTERM/SIGINT."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument("--edge-url", default=None, help="The edge's webhook URL the calls post to.")
    parser.add_argument(
        "--default-outcome",
        default=CallOutcome.REACHED.value,
        choices=[o.value for o in CallOutcome],
        help="What a dial no script names plays.",
    )
    parser.add_argument(
        "--request-style",
        default="tool-calls",
        choices=["tool-calls", "transfer-destination-request"],
        help="How the assistant escalates on a reached call (the provisioned tool style).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    standin = build_standin(
        args.record,
        edge_url=args.edge_url,
        edge_secret=os.environ.get("ESCALADE_VAPI_SECRET") or None,
        default_outcome=CallOutcome(args.default_outcome),
        url=f"http://127.0.0.1:{args.port}",
        request_style=args.request_style,
    )
    uvicorn.run(standin.app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
