"""SQLite's analogue of a database outage: another process holds the write lock. Edge callers get the
fallback line within the routing deadline, a direct caller gets UNAVAILABLE once the busy timeout runs out
(never INTERNAL), and when the lock is released the same routing process decides again, with no specialist
reserved twice."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.faults.fault_support import (
    FALLBACK,
    active_assignments,
    decisions,
    destination_of,
    post_all,
    request_for,
    running_stack,
)
from tests.service.grpc_helpers import resolve

pytestmark = pytest.mark.timeout(90)


async def test_fallback_then_unavailable_then_decisions_when_another_process_holds_the_sqlite_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "escalade.db"
    async with running_stack(f"sqlite+aiosqlite:///{path}", deadline_ms=300) as stack:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
            locked = await post_all(stack.edge, (request_for(f"locked-{i}") for i in range(30)))
            assert [destination_of(r) for r in locked] == [FALLBACK] * 30

            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await resolve(stack.stub, "direct-while-locked")
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value.details()
        finally:
            holder.execute("ROLLBACK")
            holder.close()

        async def routed(call_id: str) -> str:
            while True:
                target = destination_of(await stack.edge.post(request_for(call_id)))
                if target != FALLBACK:
                    return target
                await asyncio.sleep(0.2)

        async with asyncio.timeout(45):
            targets = await asyncio.gather(*(routed(f"unlocked-{i}") for i in range(10)))
        assert FALLBACK not in targets
        held = sum((await active_assignments(stack.stub)).values())
        assert held == len(await decisions(stack.stub, pb.DECISION_KIND_TRANSFER_AGENT)) > 0
