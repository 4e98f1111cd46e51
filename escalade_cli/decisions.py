"""`escalade decisions packet CALL_ID` (or `--decision DECISION_ID`): the handoff packet of a call's latest
decision, as the specialist's desktop gets it from `GetHandoffPacket`. Phone numbers are masked in what is
printed (all but the country code and the last four digits), as everywhere the CLI shows them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from escalade_cli.console import console, fail, readable_errors
from escalade_cli.routing import ADDRESS_OPTION, RPC_TIMEOUT, routing_stub

__all__ = ["packet_lines", "register"]


def packet_lines(reply: Any) -> list[str]:
    """The packet of a `GetHandoffPacketResponse` as the lines `escalade decisions packet` prints."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.masking import mask_number, mask_numbers_in_text

    packet = reply.packet

    def level(value: int) -> str:
        return pb.Complexity.Name(value).removeprefix("COMPLEXITY_").lower()  # type: ignore[arg-type]

    kind = pb.DecisionKind.Name(reply.kind).removeprefix("DECISION_KIND_").lower()
    where = reply.team_id + (f" / specialist {reply.agent_id}" if reply.agent_id else "")
    lines = [
        f"call {packet.call_id}  decision {packet.decision_id}  ({kind}: {where or '-'})",
        f"caller      {mask_number(packet.caller_number) if packet.caller_number else 'anonymous'}",
        f"customer    tier {packet.tier or '-'}"
        + (f", {packet.account_name}" if packet.account_name else "")
        + f", {packet.previous_escalations} previous escalation(s)"
        + (f", last with {packet.last_agent_id}" if packet.last_agent_id else ""),
        f"category    {packet.issue_category} ({packet.category_source})",
        f"complexity  {level(packet.complexity)}",
    ]
    lines += [f"  {s.source:<9} {level(s.level):<12} {s.detail}" for s in packet.complexity_sources]
    confidence = []
    if packet.HasField("stated_confidence"):
        confidence.append(f"assistant {packet.stated_confidence:.2f}")
    if packet.HasField("decision_confidence"):
        confidence.append(f"routing {packet.decision_confidence:.2f}")
    if confidence:
        lines.append(f"confidence  {', '.join(confidence)}")
    for label, text in (
        ("summary", packet.summary),
        ("reason", packet.escalation_reason),
        ("context", packet.customer_context),
    ):
        if text:
            lines.append(f"{label:<11} {mask_numbers_in_text(text)}")
    if packet.steps_tried:
        lines.append("tried")
        lines += [f"  - {mask_numbers_in_text(step)}" for step in packet.steps_tried]
    if packet.entities:
        lines.append("entities")
        lines += [f"  {e.kind:<11} {e.value:<24} ({e.source})" for e in packet.entities]
    if packet.earlier_call_id:
        lines.append(f"calls back  call {packet.earlier_call_id} (decision {packet.earlier_decision_id})")
    if packet.truncated:
        lines.append(f"cut to size {', '.join(packet.truncated)}")
    return lines


def packet_command(
    call_id: Annotated[
        str | None, typer.Argument(help="The Vapi call id (its latest decision's packet).")
    ] = None,
    decision: Annotated[
        str | None, typer.Option("--decision", help="A decision id instead of a call id.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the packet as JSON (numbers masked).")
    ] = False,
    address: Annotated[str | None, ADDRESS_OPTION] = None,
) -> None:
    """Show the handoff packet of a call's latest decision (or of one decision)."""
    from google.protobuf.json_format import MessageToDict

    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.masking import mask_number, mask_numbers_in_text

    if bool(call_id) == bool(decision):
        fail("decisions packet: give a CALL_ID or --decision DECISION_ID (one of them)")
    what = f"call {call_id}" if call_id else f"decision {decision}"
    with readable_errors(f"handoff packet of {what}"), routing_stub(address) as stub:
        reply = stub.GetHandoffPacket(
            pb.GetHandoffPacketRequest(call_id=call_id or "", decision_id=decision or ""), timeout=RPC_TIMEOUT
        )
    if as_json:
        data = MessageToDict(reply.packet, preserving_proto_field_name=True)
        if data.get("caller_number"):
            data["caller_number"] = mask_number(data["caller_number"])
        for key in ("summary", "escalation_reason", "customer_context", "text"):
            if key in data:
                data[key] = mask_numbers_in_text(data[key])
        data["steps_tried"] = [mask_numbers_in_text(step) for step in data.get("steps_tried", [])]
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    for line in packet_lines(reply):
        console.print(line, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `escalade decisions ...` to the application."""
    decisions = typer.Typer(
        help="Decisions routing took, and what each told the specialist.", no_args_is_help=True
    )
    decisions.command("packet")(packet_command)
    app.add_typer(decisions, name="decisions")
