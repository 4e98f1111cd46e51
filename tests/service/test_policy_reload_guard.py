"""The routing server's reload guard: a policy change that would move more than the policy's
`reload_guard.max_moved_share` of the recorded calls is held until the file is confirmed; a smaller one
applies and logs its diff summary."""

from __future__ import annotations

from pathlib import Path

import grpc
from structlog.testing import capture_logs

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.app.policy_source import PolicySource, ReloadHeld
from routing_service.domain.models import Decision
from routing_service.grpc.server import RoutingServer
from routing_service.policy.confirmation import confirm
from tests.service.grpc_helpers import TECHCORP, resolve, routing_settings
from tests.service.test_grpc_server import eventually

GUARD = "reload_guard:\n  max_moved_share: 0.2\n  replay_last: 500\n"
PRODUCT_TO_GENERAL = (
    "    when: {categories: [product]}\n    team: product",
    "    when: {categories: [product]}\n    team: general",
)
ACCOUNT_TO_GENERAL = ("categories: [billing, account]}", "categories: [billing]}")
PRODUCT_TO_GENERAL_AND_ACCOUNT = (PRODUCT_TO_GENERAL, ACCOUNT_TO_GENERAL)
NEW_QUEUE_LINE = ('line: {number: "+15550100600"}', 'line: {number: "+15550100601"}')


def guarded(*changes: tuple[str, str]) -> str:
    """TechCorp's policy (its reload guard: 20 %) with `changes` applied (each must apply)."""
    text = TECHCORP.read_text()
    assert GUARD in text
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    return text


async def test_a_change_moving_too_many_calls_waits_for_confirmation(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(guarded())
    settings = routing_settings(database_url, policy=path, policy_poll_seconds=0.05)
    server = RoutingServer(settings, run_sweeps=False)
    port = await server.start()
    try:
        policies = server.policies
        assert policies is not None and policies.current.reload_guard is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            basic = pb.COMPLEXITY_BASIC
            for n, category in enumerate(["account", "account", "billing", "product", "general"], start=1):
                await resolve(stub, f"call-{n}", category=category, complexity=basic)

            # 1 of 5 recorded calls moves (product -> general): 20 %, within the guard: applied and logged.
            with capture_logs() as logs:
                path.write_text(guarded(PRODUCT_TO_GENERAL))
                await eventually(lambda: policies.reloads == 1)
            applied = next(e for e in logs if e["event"] == "policy_reloaded")
            assert (applied["replayed"], applied["moved"], applied["moved_share"]) == (5, 1, 0.2)
            assert applied["moves"] == {"product->general": 1}
            assert applied["rules_losing"] == {} and applied["rules_gaining"] == {}  # rule product, new team
            assert (await resolve(stub, "call-6", category="product", complexity=basic)).team_id == "general"

            # Account calls too: compared with the policy in use, 2 of the 6 recorded calls would move (33 %):
            # held, the policy in use keeps routing.
            with capture_logs() as logs:
                path.write_text(guarded(PRODUCT_TO_GENERAL, ACCOUNT_TO_GENERAL))
                await eventually(lambda: isinstance(policies.last_error, ReloadHeld))
            held = next(e for e in logs if e["event"] == "policy_reload_held")
            assert held["log_level"] == "warning" and (held["moved"], held["replayed"]) == (2, 6)
            assert held["moves"] == {"billing->general": 2}
            assert f"escalade policy confirm {path}" in held["reason"]
            assert f"escalade policy check {path} --replay" in held["reason"]
            assert "2 of the last 6 recorded calls (33%)" in str(policies.last_error)
            assert policies.reloads == 1
            assert (await resolve(stub, "call-7", category="account", complexity=basic)).team_id == "billing"

            # The operator confirms this content: the watcher sees the marker and applies it.
            with capture_logs() as logs:
                confirm(path)
                await eventually(lambda: policies.reloads == 2)
            assert any(e["event"] == "policy_reload_confirmed" for e in logs)
            assert policies.last_error is None
            assert (await resolve(stub, "call-8", category="account", complexity=basic)).team_id == "general"

            # The next edit is judged on its own change: the account calls recorded for billing before the
            # confirmed change do not count against it (a new queue line moves nobody).
            applied_now = (*PRODUCT_TO_GENERAL_AND_ACCOUNT, NEW_QUEUE_LINE)
            with capture_logs() as logs:
                path.write_text(guarded(*applied_now))
                await eventually(lambda: policies.reloads == 3)
            applied = next(e for e in logs if e["event"] == "policy_reloaded")
            assert (applied["replayed"], applied["moved"]) == (8, 0)

            # A confirmation covers the content it was given for: a further large edit is held again
            # (everything the general rule catches to billing: 5 of the 8 calls).
            path.write_text(
                guarded(
                    *applied_now, ("  - id: general\n    team: general", "  - id: general\n    team: billing")
                )
            )
            await eventually(lambda: isinstance(policies.last_error, ReloadHeld))
            assert "5 of the last 8 recorded calls" in str(policies.last_error)
            assert policies.reloads == 3
    finally:
        await server.stop(0.5)


async def test_without_a_guard_a_large_change_applies_and_logs_its_summary(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    unguarded = TECHCORP.read_text().replace(GUARD, "")
    path.write_text(unguarded)
    server = RoutingServer(routing_settings(sqlite_url, policy=path), run_sweeps=False, watch_policy=False)
    port = await server.start()
    try:
        policies = server.policies
        assert policies is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            await resolve(stub, "call-1", category="account", complexity=pb.COMPLEXITY_BASIC)
        path.write_text(unguarded.replace(*ACCOUNT_TO_GENERAL))
        with capture_logs() as logs:
            assert await policies.reload() is True
        applied = next(e for e in logs if e["event"] == "policy_reloaded")
        assert (applied["replayed"], applied["moved"], applied["moved_share"]) == (1, 1, 1.0)
    finally:
        await server.stop(0.5)


async def test_when_the_decisions_cannot_be_read_a_guarded_change_waits_for_confirmation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(guarded())
    source = PolicySource.load(path)

    async def store_down(limit: int) -> list[Decision]:
        raise ConnectionError("the routing store is unavailable")

    source.follow_decisions(store_down)
    path.write_text(guarded(ACCOUNT_TO_GENERAL))
    assert await source.reload() is False
    assert isinstance(source.last_error, ReloadHeld) and "could not be read" in str(source.last_error)
    confirm(path)
    assert await source.reload() is True and source.current.rules[3].categories == frozenset({"billing"})
