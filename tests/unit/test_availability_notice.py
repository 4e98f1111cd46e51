"""The NOTIFY payload of availability notices between routing processes (routing_service/store/notify.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from routing_service.app.ports import AgentFreed
from routing_service.store.notify import MAX_PAYLOAD_BYTES, decode_notice, encode_notices

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_notice_round_trips_with_its_origin_when_encoded() -> None:
    freed = AgentFreed(agent_id="ann", team_ids=("technical", "billing"), free_slots=2, at=AT)
    [payload] = encode_notices("origin-a", freed)
    assert json.loads(payload) == {
        "origin": "origin-a",
        "agent_id": "ann",
        "team_ids": ["technical", "billing"],
        "free_slots": 2,
        "at": "2026-11-23T10:00:00+00:00",
    }
    assert " " not in payload
    assert decode_notice(payload) == ("origin-a", freed)


def test_notice_is_split_by_teams_when_it_exceeds_the_notify_limit() -> None:
    teams = tuple(f"team-{i:03d}-" + "x" * 120 for i in range(100))
    freed = AgentFreed(agent_id="ann", team_ids=teams, free_slots=1, at=AT)
    payloads = encode_notices("o", freed)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    decoded = [decode_notice(p)[1] for p in payloads]
    assert tuple(t for d in decoded for t in d.team_ids) == teams
    assert {(d.agent_id, d.free_slots, d.at) for d in decoded} == {("ann", 1, AT)}


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[]",
        '{"origin": "o", "agent_id": "a", "team_ids": ["t"], "free_slots": 1}',
        '{"origin": "o", "agent_id": "a", "team_ids": "t", "free_slots": 1, "at": "2026-11-23T10:00Z"}',
        '{"origin": "o", "agent_id": "a", "team_ids": ["t"], "free_slots": 1, "at": "2026-11-23T10:00:00"}',
    ],
)
def test_decoding_refuses_a_payload_when_it_is_not_a_notice(payload: str) -> None:
    with pytest.raises(ValueError, match="not an availability notice"):
        decode_notice(payload)
