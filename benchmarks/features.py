"""Feature costs: what each feature of issues 18 and 19 adds to a decision's CPU on the routing benchmark.

    .venv/bin/python -m benchmarks.features                         # both databases, 5 rounds, ~10 min
    .venv/bin/python -m benchmarks.features --databases sqlite --rounds 3 --batches 5   # a quick look
    .venv/bin/python -m benchmarks.features --features packet --other-code ../main   # before/after a change

The routing benchmark's workload (`benchmarks.routing`: its server child process, its seeding of
`--specialists` specialists, `--customers` customers and `--history` releases in the last hour, its
technical request, the routing process's CPU per call from /proc), run by one routing server per variant
on the same seeded database:

- `all`: the TechCorp policy (examples/techcorp.yaml) as shipped;
- one variant per feature without it: the policy minus the feature's section where the policy can turn
  it off, else the server with the feature's use-case step replaced (`PATCHES`; each feature's `how`
  says which, and the table repeats it).

Each variant's server has its own copy of one seeded database (SQLite: the file copied; PostgreSQL: a
database made from it as a template). The variants run in lockstep: each batch of `--concurrency` requests
goes to every variant at once (the same requests, the same callers), and the next batch starts when every
variant has answered, so every server has the same calls in flight at the same moments and shares the
machine's state (its load from other work, its clock speed) with the others; and every server runs on the
same CPU, the machine's last (`--pin`), so none is luckier in where the scheduler puts it. On this shared
2-core machine, two servers doing the same work differed by up to 10 % per round when they took turns or
ran at their own pace and wherever the scheduler put them; in lockstep on one CPU by about 3 %. The
`control` variant is such a second server with everything on: its "cost" is the run's noise.

Each feature's cost is measured against `all` of the same round (paired): the cost printed is the median
over `--rounds` rounds (at least 3) of (CPU per decision of `all` / CPU per decision without the feature
- 1), in % of the decision without it (what "adds less than 10 % to a decision's CPU" means). On
PostgreSQL each server's pool is capped at `--pg-pool` connections (nine servers at the store's default
30 would pass the server's 100). Rows:

- reserving decisions, benchmark request: `benchmarks.routing.technical_request` (an advanced technical
  call, short context): each round `--batches` batches per variant, each decision reserving a specialist
  (the reservations are released, untimed, after the round);
- reserving decisions, realistic request: a `tool-calls` message as Vapi sends it (the escalation tool
  with every optional argument provisioning defines: summary, steps tried, account and order ids, error
  codes, confidence; and `artifact.transcript`, a `--transcript-chars` long conversation), read by the
  edge's own code (`webhook_edge.vapi_models.parse_body`, `webhook_edge.translate.resolve_request`) into
  the routing request; what the handoff packet reads grows with it;
- queueing decisions: every specialist busy, so each decision queues a callback (position, wait estimate,
  promise). These run after all the reserving rounds, since waiting callbacks make later calls queue.

The servers freeze their start-up heap and log at warning level, as `benchmarks.routing`'s do. Each run
prints its table and writes `benchmarks/results/features-<date>.json` (`benchmarks.results`).
`--profile` runs the `all` server under cProfile and writes `benchmarks/profiles/features-<database>.txt`
(its figures are then not comparable: the profiler slows that one variant).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import yaml

from benchmarks.floor import customer_number
from benchmarks.results import Column, Result, add_results_option, write
from benchmarks.routing import (
    PG,
    POLICY,
    ChildServer,
    Database,
    process_cpu_seconds,
    seed,
    technical_request,
)

REPO = Path(__file__).resolve().parents[1]
PROFILES = Path(__file__).resolve().parent / "profiles"
TARGET_PCT = 10.0
"""Each feature adds less than this to a decision's CPU (issues 18 and 19)."""


@dataclass(frozen=True)
class Feature:
    key: str
    name: str
    how: str
    """How the benchmark turns it off (shown with its rows)."""
    section: str = ""
    """The top-level policy section removed for the variant without it ("" when the policy cannot)."""
    patch: str = ""
    """The `PATCHES` entry applied in the variant's server process."""
    reserving: bool = True
    """Measured on reserving decisions (else on queueing decisions only)."""
    control: bool = False
    """Not a feature: a second server with everything on, whose "cost" is the measurement's noise."""


FEATURES: tuple[Feature, ...] = (
    Feature(
        "packet",
        "handoff packet",
        "not switchable by policy (built with every decision): the server's decision step that builds it "
        "(`handoff_packet`, `with_packet`) is skipped, so nothing is built, rendered, stored or sent",
        patch="no-packet",
    ),
    Feature(
        "handoff",
        "handoff policy section",
        "policy section `handoff` removed (the packet is still built, without the policy's entity pattern "
        "and sensitive fields)",
        section="handoff",
    ),
    Feature("fair_load", "fair load", "policy section `fair_load` removed", section="fair_load"),
    Feature(
        "widening", "widening", "policy section `widening` removed (it acts on claims)", section="widening"
    ),
    Feature(
        "review_learning",
        "review learning",
        "policy section `review_learning` removed (the customer row's learning columns are still read)",
        section="review_learning",
    ),
    Feature("uncertainty", "uncertainty", "policy section `uncertainty` removed", section="uncertainty"),
    Feature(
        "promises",
        "promises",
        "not switchable by policy (`queue.promises` has defaults): the server's queueing step makes no "
        "promise (`keep_promise` returns the ticket as it is) and reads no recent wait ratios",
        patch="no-promises",
        reserving=False,
    ),
    Feature(
        "control",
        "control (nothing off)",
        "nothing turned off: a second server with the TechCorp policy, so its cost is the noise of the run",
        control=True,
    ),
)
ALL = "all"


# ---------------------------------------------------------------------------------------------------------
# Server side (one child process per variant)
# ---------------------------------------------------------------------------------------------------------
def _no_handoff_packet(ctx: Any, decision: Any) -> None:
    return None


def _with_no_packet(decision: Any, packet: Any) -> Any:
    return decision


def _keep_no_promise(policy: Any, ticket: Any, wait: Any, *, now: Any, trace: Any) -> Any:
    return ticket


async def _no_wait_ratios(self: Any, team_id: str, since: Any, limit: int) -> list[float]:
    return []


REPLACEMENTS: dict[str, tuple[tuple[str, str, Callable[..., Any]], ...]] = {
    "no-packet": (
        ("routing_service.app.resolve", "handoff_packet", _no_handoff_packet),
        ("routing_service.app.resolve", "with_packet", _with_no_packet),
    ),
    "no-promises": (
        ("routing_service.app.resolve", "keep_promise", _keep_no_promise),
        ("routing_service.store.callbacks:SqlCallbackRepository", "recent_wait_ratios", _no_wait_ratios),
    ),
}
"""What each patch replaces (`module` or `module:Class`, the attribute, the stand-in). Each stand-in takes
what the original takes (`tests/unit/test_benchmark_features.py` compares their signatures, so a change to
the use case cannot quietly break a variant)."""


def replaced_target(where: str) -> Any:
    """The module or class `where` names (`module` or `module:Class`)."""
    module_name, _, class_name = where.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name) if class_name else module


def _patch(name: str) -> Callable[[], None]:
    def apply() -> None:
        for where, attribute, stand_in in REPLACEMENTS[name]:
            setattr(replaced_target(where), attribute, stand_in)

    return apply


PATCHES: dict[str, Callable[[], None]] = {name: _patch(name) for name in REPLACEMENTS}


def _serve_child(
    url: str, policy: str, patch: str, profile: str, pool: int, code: str, conn: Connection
) -> None:
    if code:  # before anything imports routing_service in this process
        sys.path.insert(0, code)
    from routing_service.grpc.server import run_event_loop
    from routing_service.store import postgres

    postgres.PG_POOL_MAX = pool
    if patch:
        PATCHES[patch]()
    run_event_loop(_serve(url, policy, profile, conn), os.environ.get("ESCALADE_EVENT_LOOP", "auto"))


async def _serve(url: str, policy: str, profile: str, conn: Connection) -> None:
    import cProfile
    import io
    import pstats

    from escalade_platform.heap import freeze_startup_heap
    from escalade_platform.logs import configure_logging
    from routing_service.grpc.server import RoutingServer
    from routing_service.settings import RoutingSettings

    configure_logging(json=True, level="warning")
    loop = asyncio.get_running_loop()
    routing = RoutingServer(
        RoutingSettings(database_url=url, policy=Path(policy), routing_address="127.0.0.1:0"),
        watch_policy=False,
        run_sweeps=False,
    )
    port = await routing.start()
    freeze_startup_heap()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    conn.send(port)
    await loop.run_in_executor(None, conn.recv)
    if profiler is not None:
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(40)
        await loop.run_in_executor(None, Path(profile).write_text, out.getvalue())
    await routing.stop(1)


class VariantServer(ChildServer):
    """A routing server (child process) on `url` with the policy file `policy` and a `PATCHES` entry."""

    def __init__(
        self, url: str, policy: Path, patch: str = "", profile: str = "", pool: int = 8, code: str = ""
    ) -> None:
        super().__init__(_serve_child, url, str(policy), patch, profile, pool, code, stop_timeout=60)


# ---------------------------------------------------------------------------------------------------------
# Policies and requests
# ---------------------------------------------------------------------------------------------------------
def policy_without(section: str, source: Path = POLICY) -> dict[str, Any]:
    """The policy document of `source` without its top-level `section` (KeyError when it has none)."""
    doc: dict[str, Any] = yaml.safe_load(source.read_text())
    del doc[section]
    return doc


def write_policies(folder: Path, features: tuple[Feature, ...] = FEATURES) -> dict[str, Path]:
    """Variant -> policy file: `all` is the TechCorp file itself; each policy-switchable feature's variant
    a copy without its section, written into `folder`."""
    files = {ALL: POLICY}
    for feature in features:
        if feature.section:
            path = folder / f"policy-without-{feature.key}.yaml"
            path.write_text(yaml.safe_dump(policy_without(feature.section), sort_keys=False))
            files[feature.key] = path
        else:
            files[feature.key] = POLICY
    return files


_TURNS = (
    ("AI", "Thank you for calling TechCorp support. How can I help you today?"),
    ("User", "Hi, our API integration stopped syncing orders into our warehouse system this morning."),
    ("AI", "I'm sorry to hear that. Can you tell me your account number so I can look into it?"),
    ("User", "Sure, the account number is 7731-4410. We're on the premium plan."),
    ("AI", "Thank you. I can see the account. What exactly happens when the integration tries to sync?"),
    ("User", "Our logs show the webhook calls failing. The first failure was a little after six."),
    ("AI", "Do you see any message in the response body when a delivery fails?"),
    ("User", "Yes, it says error code E-4031, and some of the retries come back as status 502."),
    ("AI", "Got it. E-4031 usually means the signature on the delivery could not be verified."),
    ("User", "That's odd, we haven't touched the signing secret in months as far as I know."),
    ("AI", "Has anything else changed on your side recently, for example the endpoint or a proxy?"),
    ("User", "Our infrastructure team moved the endpoint behind a new reverse proxy last week."),
    ("AI", "That can matter. Some proxies rewrite headers or re-encode the body before it arrives."),
    ("User", "I wouldn't know. I'm on the operations side, not the infrastructure side."),
    ("AI", "No problem. Have you tried regenerating the API key in the dashboard?"),
    ("User", "Yes, we regenerated it twice and cleared the cache on our side. Same result."),
    ("AI", "Thanks for trying that. Which order did you notice first? An order number helps us trace it."),
    ("User", "The first one was order 55-20931, and a few dozen after it since then."),
    ("AI", "I can see that delivery attempt. It was retried five times and then parked."),
    ("User", "Will those be sent again once this is fixed, or do we have to re-enter them?"),
    ("AI", "Parked deliveries can be replayed from the dashboard once the endpoint accepts them again."),
    ("User", "Good. Our finance team relies on these syncing to their reporting tool every evening."),
    ("AI", "Understood. Let me check whether the deliveries reach your proxy or stop before it."),
    ("User", "Okay. I can stay on the line, I have the monitoring screen open here."),
    ("AI", "The deliveries reach your address and get an answer, so the proxy is answering."),
    ("User", "So the problem is between the proxy and our application?"),
    ("AI", "Most likely. The answer says the signature check failed, which happens in your application."),
    ("AI", "Let me look at the timing as well. The answers come back within forty milliseconds."),
    ("User", "Is that fast or slow? I honestly have no idea what is normal here."),
    ("AI", "That's fast, which tells me your application answers right away instead of timing out."),
    ("User", "So it's rejecting them on purpose, not failing to process them?"),
    ("AI", "Yes, it looks like a deliberate rejection after checking the request."),
    ("User", "Our developers wrote that check when we first set up the integration two years ago."),
    ("AI", "Do you know whether they compare the signature against the body as received?"),
    ("User", "I'd guess so, but the person who wrote it has since left the company."),
    ("AI", "That's common. Our specialist can show your team how to test the check with a sample delivery."),
    ("User", "That would be really useful. Can they send the sample to our team's shared inbox?"),
    ("AI", "I'm sure they can arrange that with you once you're connected."),
    ("User", "Good. We also have a second integration for returns, but that one seems fine."),
    ("AI", "That's useful to know. Does the returns integration go through the same proxy?"),
    ("User", "No, it still points at the old address, it wasn't moved with the rest."),
    ("AI", "Then the proxy is even more likely to be the difference between the two."),
    ("User", "Could the proxy be changing something in the request?"),
    ("AI", "That is the usual cause. Compression or a changed content type breaks the signature check."),
    ("User", "Can you tell me which header your signature covers, so I can pass it on?"),
    ("AI", "The signature covers the raw body and the timestamp header. Any change to either breaks it."),
    ("User", "Right. I'll need someone who can look at this with our infrastructure team."),
    ("AI", "I think a specialist on our integration team should look at the deliveries with you."),
    ("User", "Yes please. Can they call me back if we get disconnected? My number is 415 555 0134."),
    ("AI", "Of course. I'll note that number. Is there anything else they should know before they join?"),
    ("User", "Only that this is blocking our evening reporting run, so today matters."),
    ("AI", "Understood. I'm summarising what we found so they don't have to ask you again."),
    ("User", "Thanks, that helps. I've been explaining this to three people already today."),
    ("AI", "I'm sorry about that. The specialist will have the account, the order and the codes."),
    ("User", "Great. And the proxy change, please mention that, I think it's the key."),
    ("AI", "I've noted the proxy move last week and the regenerated key as well."),
    ("User", "Perfect. How long will it take for someone to pick up?"),
    ("AI", "I'm connecting you to an integration specialist now. Please stay on the line."),
    ("User", "Okay, I'll wait."),
    ("AI", "While we wait, do you know if the proxy compresses the request bodies?"),
    ("User", "I believe it does compression on everything by default, but I'd have to check with them."),
    ("AI", "That would explain it. I'll add that to the notes for the specialist too."),
    ("User", "Thanks. I'm still here."),
    ("AI", "One moment please, I'm transferring you to the integration team now."),
)
"""One support call, about 5,300 characters, each turn said once: the account named twice, one order, two
error codes and a phone number, as a troubleshooting call goes."""


def realistic_transcript(chars: int) -> str:
    """The latest `chars` characters of the call (`_TURNS`; a longer one repeats it from the start), in Vapi's
    `artifact.transcript` form ("User: ...\nAI: ...")."""
    lines: list[str] = []
    size = 0
    turn = 0
    while size < chars:
        who, said = _TURNS[turn % len(_TURNS)]
        line = f"{who}: {said}"
        lines.append(line)
        size += len(line) + 1
        turn += 1
    return "\n".join(lines)[-chars:]


def realistic_message(transcript_chars: int) -> dict[str, Any]:
    """A `tool-calls` message as Vapi sends it when the assistant escalates (tests/edge/fixtures'
    tool-calls.escalate-to-support.json), with every optional argument of the escalation tool and the
    call's transcript so far."""
    fixture = REPO / "tests" / "edge" / "fixtures" / "tool-calls.escalate-to-support.json"
    doc: dict[str, Any] = json.loads(fixture.read_text())
    arguments = {
        "issue_category": "technical",
        "complexity_level": "advanced",
        "customer_context": (
            "Premium customer; order sync through the API integration fails since their proxy migration; "
            "webhook deliveries fail the signature check."
        ),
        "escalation_reason": "Custom integration failure after a migration needs an integration specialist.",
        "summary": (
            "Order sync via webhooks has failed since the customer moved their endpoint behind a new proxy;"
            " deliveries fail with E-4031 and 502. Key regenerated twice, cache cleared."
        ),
        "steps_tried": ["regenerated the API key twice", "cleared the client cache", "checked deliveries"],
        "account_id": "7731-4410",
        "order_id": "55-20931",
        "error_codes": ["E-4031", "502"],
        "confidence": 0.8,
    }
    message = doc["message"]
    for call in (message["toolCallList"][0], message["toolWithToolCallList"][0]["toolCall"]):
        call["function"]["arguments"] = json.dumps(arguments)
    message["artifact"] = {"transcript": realistic_transcript(transcript_chars)}
    return doc


def realistic_request_factory(transcript_chars: int, customers: int) -> Callable[[str, random.Random], Any]:
    """(call id, rng) -> the routing request the edge makes of `realistic_message` for that call, from a
    customer drawn as `technical_request` draws them."""
    from webhook_edge.translate import resolve_request
    from webhook_edge.vapi_models import parse_body

    message = parse_body(json.dumps(realistic_message(transcript_chars)).encode())
    (call,) = message.tool_calls()
    template = resolve_request(message, call.arguments, tool_call_id=call.id, can_confirm=True)

    def request(call_id: str, rng: random.Random) -> Any:
        made = type(template)()
        made.CopyFrom(template)
        made.call_id = call_id
        made.caller_number = (
            customer_number(rng.randrange(customers))
            if rng.random() < 0.9
            else f"+1212555{rng.randrange(10_000):04d}"
        )
        return made

    return request


# ---------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Samples:
    """CPU ms per decision of each variant in each round, for one (database, workload)."""

    per_round: list[dict[str, float]] = field(default_factory=list)
    reserved_pct: dict[str, list[float]] = field(default_factory=dict)


def paired_cost_pct(per_round: list[dict[str, float]], variant: str) -> float:
    """The median over rounds of (all / without the feature - 1) x 100, rounds where both ran."""
    costs = [
        100.0 * (r[ALL] / r[variant] - 1.0) for r in per_round if r.get(variant) and ALL in r and r[ALL] > 0
    ]
    return statistics.median(costs) if costs else float("nan")


def median_cpu(per_round: list[dict[str, float]], variant: str) -> float:
    values = [r[variant] for r in per_round if variant in r]
    return statistics.median(values) if values else float("nan")


@dataclass
class Tally:
    """One variant's share of a window: decisions answered, those that reserved, errors, server CPU."""

    decisions: int = 0
    reserved: list[str] = field(default_factory=list)
    errors: int = 0
    cpu_s: float = 0.0


async def lockstep(
    stubs: dict[str, Any],
    pids: dict[str, int | None],
    make: Callable[[str], Any],
    run: str,
    batches: int,
    concurrency: int,
    *,
    reserving: bool,
) -> dict[str, Tally]:
    """`batches` batches of `concurrency` decisions; each batch's requests go to every variant at once
    (request by request, the first variant rotating from batch to batch), and the next batch starts once
    every variant has answered, so every server has the same number of
    calls in flight at the same moments. Each variant's server CPU from /proc over the whole window."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    tallies = {variant: Tally() for variant in stubs}

    async def one(variant: str, call_id: str, request: Any) -> None:
        tally = tallies[variant]
        try:
            reply = await stubs[variant].ResolveEscalation(request, timeout=60)
        except grpc.RpcError:
            tally.errors += 1
            return
        tally.decisions += 1
        if reply.decision.kind == pb.DECISION_KIND_TRANSFER_AGENT:
            tally.reserved.append(call_id)
        elif not reserving and reply.decision.kind != pb.DECISION_KIND_CALLBACK:
            raise RuntimeError(f"a queueing decision did not queue: {reply.decision.kind}")

    started = {variant: process_cpu_seconds(pid) for variant, pid in pids.items()}
    for batch in range(batches):
        calls = [(call_id, make(call_id)) for call_id in (f"{run}-{batch}-{i}" for i in range(concurrency))]
        order = list(stubs)
        order = order[batch % len(order) :] + order[: batch % len(order)]  # no variant always goes first
        await asyncio.gather(*(one(v, call_id, request) for call_id, request in calls for v in order))
    for variant, pid in pids.items():
        tallies[variant].cpu_s = process_cpu_seconds(pid) - started[variant]
    return tallies


class Copies:
    """One copy per variant of the seeded database `url`: SQLite files copied after a checkpoint,
    PostgreSQL databases created from it as a template (and dropped afterwards)."""

    def __init__(self, kind: str, url: str, names: list[str]) -> None:
        self.kind, self.url, self.names = kind, url, names
        self.created: list[str] = []

    async def __aenter__(self) -> dict[str, str]:
        if self.kind == "sqlite":
            import sqlite3

            path = Path(self.url.split("///", 1)[1])
            with contextlib.closing(sqlite3.connect(path)) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            copies = {}
            for name in self.names:
                copy = path.with_name(f"{path.stem}-{name}.db")
                shutil.copyfile(path, copy)
                copies[name] = f"sqlite+aiosqlite:///{copy}"
            return copies
        import asyncpg

        source = self.url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(
            host=PG["host"], port=PG["port"], user=PG["user"], database=PG["admin_db"]
        )
        try:
            copies = {}
            for name in self.names:
                target = f"{source}_{re.sub(r'[^a-z0-9_]', '_', name.lower())}"[:63]
                await conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
                self.created.append(target)
                copies[name] = self.url.rsplit("/", 1)[0] + f"/{target}"
            return copies
        finally:
            await conn.close()

    async def __aexit__(self, *exc: object) -> None:
        if not self.created:
            return
        import asyncpg

        conn = await asyncpg.connect(
            host=PG["host"], port=PG["port"], user=PG["user"], database=PG["admin_db"]
        )
        try:
            for target in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        finally:
            await conn.close()


async def run_database(args: argparse.Namespace, kind: str) -> dict[str, Samples]:
    """Seed one database of `kind`, copy it for each variant, start one server per variant on its copy, and
    run the rounds (`lockstep`); workload -> samples."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc

    features = selected(args.features)
    other = other_variant(args.other_code)
    variants = [ALL] + [f.key for f in features] + ([other] if other else [])
    samples = {w: Samples() for w in WORKLOADS}
    realistic = realistic_request_factory(args.transcript_chars, args.customers)
    with tempfile.TemporaryDirectory(prefix="escalade-features-") as tmp:
        policies = write_policies(Path(tmp), features)
        patches = {f.key: f.patch for f in features}
        if other:
            policies[other] = POLICY
        async with Database(kind, Path(tmp)) as url:
            await seed(url, specialists=args.specialists, customers=args.customers, history=args.history)
            print(f"  seeded {kind}", flush=True)
            async with Copies(kind, url, variants) as urls, contextlib.AsyncExitStack() as stack:
                servers: dict[str, VariantServer] = {}
                stubs: dict[str, Any] = {}
                for variant in variants:
                    profile = (
                        str(PROFILES / f"features-{kind}.txt") if args.profile and variant == ALL else ""
                    )
                    server = VariantServer(
                        urls[variant],
                        policies[variant],
                        patches.get(variant, ""),
                        profile,
                        args.pg_pool,
                        args.other_code if variant == other else "",
                    )
                    address = stack.enter_context(server)
                    servers[variant] = server
                    if args.pin and server.pid is not None:
                        os.sched_setaffinity(server.pid, {args.pin - 1})
                    channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
                    stubs[variant] = routing_pb2_grpc.RoutingServiceStub(channel)

                async def round_of(workload: str, rnd: int, which: list[str]) -> None:
                    rng = random.Random(f"{kind}-{workload}-{rnd}")

                    def make(call_id: str) -> Any:
                        if workload == "realistic":
                            return realistic(call_id, rng)
                        return technical_request(call_id, False, rng, args.customers)

                    chosen = {v: stubs[v] for v in which}
                    pids = {v: servers[v].pid for v in which}
                    reserves = workload != "queueing"
                    run = f"{workload}-{rnd}-{uuid.uuid4().hex[:6]}"
                    if rnd == 0:  # warm-up: one batch, not counted
                        warm = await lockstep(
                            chosen, pids, make, f"{run}-w", 1, args.concurrency, reserving=reserves
                        )
                        await _release(chosen, warm)
                    tallies = await lockstep(
                        chosen, pids, make, run, args.batches, args.concurrency, reserving=reserves
                    )
                    await _release(chosen, tallies)
                    bucket = samples[workload]
                    bucket.per_round.append({})
                    for variant, tally in tallies.items():
                        bucket.per_round[-1][variant] = 1000 * tally.cpu_s / max(1, tally.decisions)
                        bucket.reserved_pct.setdefault(variant, []).append(
                            100 * len(tally.reserved) / max(1, tally.decisions)
                        )
                        if tally.errors:
                            print(f"  {kind} {workload} {variant}: {tally.errors} errors", flush=True)
                    print(
                        f"  {kind} {workload} round {rnd + 1}: "
                        + " ".join(f"{v}={ms:.3f}" for v, ms in bucket.per_round[-1].items())
                        + " ms CPU/decision",
                        flush=True,
                    )

                reserving = [ALL] + [f.key for f in features if f.reserving] + ([other] if other else [])
                for rnd in range(args.rounds):
                    for workload in ("benchmark", "realistic"):
                        await round_of(workload, rnd, reserving)
                for variant in variants:
                    await _set_all(stubs[variant], args.specialists, pb.AGENT_STATUS_BUSY)
                for rnd in range(args.rounds):
                    await round_of("queueing", rnd, variants)
    return samples


async def _release(stubs: dict[str, Any], tallies: dict[str, Tally]) -> None:
    """Release every reservation of the window (untimed), so the next one finds the same free slots."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    for variant, tally in tallies.items():
        for start in range(0, len(tally.reserved), 64):
            await asyncio.gather(
                *(
                    stubs[variant].ReleaseAssignment(
                        pb.ReleaseAssignmentRequest(call_id=call_id, reason="bench"), timeout=60
                    )
                    for call_id in tally.reserved[start : start + 64]
                )
            )


async def _set_all(stub: Any, specialists: int, status: Any) -> None:
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    ids = [f"s{i:05d}" for i in range(specialists)]
    for start in range(0, len(ids), 64):
        await asyncio.gather(
            *(
                stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id=a, status=status), timeout=30)
                for a in ids[start : start + 64]
            )
        )


WORKLOADS = {
    "benchmark": "reserving, benchmark request",
    "realistic": "reserving, realistic request",
    "queueing": "queueing (all busy)",
}


def other_variant(code: str) -> str:
    """The variant name of `--other-code DIR` ("all@DIR's name"), "" without it."""
    return f"{ALL}@{Path(code).resolve().name}" if code else ""


def selected(names: str) -> tuple[Feature, ...]:
    """The features named in the comma list `names` ("" or "all": every one); SystemExit for an unknown."""
    wanted = [n.strip() for n in names.split(",") if n.strip() and n.strip() != ALL]
    known = {f.key: f for f in FEATURES}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(known[n] for n in wanted) if wanted else FEATURES


# ---------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------
COLUMNS = [
    Column("cpu_all_ms", "CPU ms/decision, all features", ".3f"),
    Column("cpu_without_ms", "CPU ms/decision, without it", ".3f"),
    Column("cost_pct", "cost % (median of paired rounds)", "+.1f"),
    Column("rounds", "rounds", ""),
    Column("how", "how it is turned off", ""),
]


def rows_and_checks(
    found: Result,
    kind: str,
    samples: dict[str, Samples],
    features: tuple[Feature, ...],
    other: str = "",
) -> Iterator[str]:
    """Add the rows and checks of one database to `found`; yields the printed lines. With `other` (the
    `--other-code` variant), each feature's cost is also given with that code's `all` (no check)."""
    for workload, label in WORKLOADS.items():
        bucket = samples[workload]
        if not bucket.per_round:
            continue
        for feature in features:
            if workload != "queueing" and not feature.reserving:
                continue
            if not any(feature.key in r for r in bucket.per_round):
                continue
            cost = paired_cost_pct(bucket.per_round, feature.key)
            name = f"{kind}: {feature.name}, {label}"
            cpu_all, cpu_without = (
                median_cpu(bucket.per_round, ALL),
                median_cpu(bucket.per_round, feature.key),
            )
            found.add_row(
                name,
                cpu_all_ms=round(cpu_all, 4),
                cpu_without_ms=round(cpu_without, 4),
                cost_pct=round(cost, 2),
                rounds=len([r for r in bucket.per_round if feature.key in r]),
                how=feature.how,
            )
            if feature.control:
                found.check(name, round(cost, 2), "%", headline=False)
                verdict = "(the noise)"
            else:
                met = cost < TARGET_PCT
                found.check(name, round(cost, 2), "%", f"< {TARGET_PCT:g} %", met, headline=False)
                verdict = "OK" if met else "ABOVE TARGET"
            yield f"{name:<70} {cpu_all:>8.3f} {cpu_without:>8.3f} {cost:>+7.1f} %  {verdict}"
            if other and any(other in r for r in bucket.per_round):
                ratios = [
                    {ALL: r[other], feature.key: r[feature.key]} for r in bucket.per_round if other in r
                ]
                before = paired_cost_pct([r for r in ratios if feature.key in r], feature.key)
                found.add_row(
                    f"{name} ({other})",
                    cpu_all_ms=round(median_cpu(bucket.per_round, other), 4),
                    cpu_without_ms=round(cpu_without, 4),
                    cost_pct=round(before, 2),
                    rounds=len(ratios),
                    how=f"{feature.how}; all features with the routing code of {other.split('@', 1)[1]}",
                )
                cpu_other = median_cpu(bucket.per_round, other)
                yield f"{'  with ' + other:<70} {cpu_other:>8.3f} {'':>8} {before:>+7.1f} %"
        reserved = [p for ps in bucket.reserved_pct.values() for p in ps]
        if workload != "queueing" and reserved and min(reserved) < 100:
            yield f"  note: {kind} {label}: some decisions did not reserve (min {min(reserved):.0f} %)"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma list: sqlite,postgresql")
    parser.add_argument(
        "--features", default="all", help="comma list of " + ", ".join(f.key for f in FEATURES)
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds (at least 3): medians")
    parser.add_argument(
        "--batches", type=int, default=20, help="batches of --concurrency decisions per variant and round"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="decisions in flight per variant")
    parser.add_argument("--pg-pool", type=int, default=6, help="PostgreSQL connections per server (at most)")
    parser.add_argument("--specialists", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=100_000, help="releases seeded over the last hour")
    parser.add_argument(
        "--transcript-chars", type=int, default=5000, help="length of the realistic request's transcript"
    )
    parser.add_argument(
        "--pin",
        type=int,
        default=os.cpu_count() or 0,
        help="run every variant's server on CPU N-1 (default: the last CPU; 0: where the system puts them)",
    )
    parser.add_argument(
        "--other-code",
        default="",
        metavar="DIR",
        help="one more variant: all features with routing_service from checkout DIR (e.g. main's), in the "
        "same rounds, to compare a change before and after",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the all-features server (its figures then skew)"
    )
    add_results_option(parser)
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (the costs are medians)")
    if not 1 <= args.batches * args.concurrency <= 800:
        parser.error("--batches x --concurrency must be 1-800 (below the specialists' free qualified slots)")
    features = selected(args.features)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    print(
        f"escalade feature costs: {os.cpu_count()} CPUs, Python {sys.version.split()[0]},"
        f" {args.rounds} rounds of {args.batches} x {args.concurrency} decisions per variant",
        flush=True,
    )
    parameters = {k: v for k, v in vars(args).items() if k != "results_dir"}
    found = Result("features", parameters, COLUMNS, packages=("grpcio", "protobuf", "sqlalchemy", "asyncpg"))
    lines: list[str] = []
    for kind in kinds:
        samples = await run_database(args, kind)
        lines += list(rows_and_checks(found, kind, samples, features, other_variant(args.other_code)))
    print()
    print(f"{'feature, workload':<70} {'all ms':>8} {'w/o ms':>8} {'cost':>9}")
    for line in lines:
        print(line)
    if args.profile:
        print("\n(--profile: the all-features server ran under cProfile; these costs are skewed)")
    write(found, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
