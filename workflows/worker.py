"""`run_worker(settings)`: the Temporal worker process behind `escalade worker`.

It connects to Temporal through `escalade_platform.temporal_client.connect_temporal` (with a runtime that
serves Prometheus metrics on `worker_metrics_address`, see `workflows.metrics`), the routing service
(gRPC) and the worker's database, registers both workflows and all activities on the task queue, runs the
availability relay and the callback reconciler next to them, and on `stop` (SIGINT or SIGTERM in the CLI)
shuts down gracefully: the relay and the reconciler stop, the worker lets running activities finish for
`shutdown_grace_seconds`, then the channels and the engine close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from escalade_platform.migrations import upgrade_database
from escalade_platform.payload_encryption import payload_keys, temporal_data_converter
from escalade_platform.routing_channel import routing_channel
from escalade_platform.temporal_client import connect_temporal
from routing_service.domain.models import Policy
from routing_service.domain.review_notifications import ReviewNotifications
from workflows.activities import (
    NotifierActivities,
    ReviewActivities,
    RoutingActivities,
    VapiActivities,
)
from workflows.callback import QueueCallbackWorkflow
from workflows.ledger import DialLedger
from workflows.metrics import metrics_runtime, reconciled_counter
from workflows.reconcile import CallbackReconciler
from workflows.relay import AvailabilityRelay, signal_callback
from workflows.review import EscalationReviewWorkflow
from workflows.review_store import ReviewStore
from workflows.search_attributes import register_search_attributes
from workflows.settings import WorkerSettings

__all__ = [
    "WORKFLOWS",
    "build_activities",
    "load_policy_or_none",
    "open_engine",
    "review_notifications",
    "run_worker",
    "workflow_runner",
]

log = logging.getLogger(__name__)

WORKFLOWS: Sequence[type] = (QueueCallbackWorkflow, EscalationReviewWorkflow)


def workflow_runner(settings: WorkerSettings) -> WorkflowRunner:
    """Temporal's sandbox, sharing modules across workflow runs unless `workflow_sandbox` is `strict`."""
    if settings.workflow_sandbox == "strict":
        return SandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())


async def open_engine(database_url: str) -> AsyncEngine:
    """The worker's engine, its database brought to the newest revision (the dial ledger and review tables
    with the rest; a SQLite file and its folder created when missing)."""
    engine = create_async_engine(database_url)
    try:
        await upgrade_database(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


def load_policy_or_none(settings: WorkerSettings) -> Policy | None:
    """The policy for the start helpers; None (the workflows' built-in defaults) when unset or unreadable."""
    if settings.policy is None:
        return None
    from routing_service.policy.loader import load_policy

    try:
        return load_policy(settings.policy)
    except Exception as exc:  # reconciled starts still go through, with the workflows' defaults
        log.warning(
            "policy %s unreadable (%s); starting callbacks with built-in defaults", settings.policy, exc
        )
        return None


def review_notifications(settings: WorkerSettings) -> ReviewNotifications:
    """The policy file's `review_notifications`, read when a notification is sent (so an edited contact
    list or URL applies without restarting the worker); empty without a policy file. Raises `PolicyError`
    for an unreadable file (the notification is retried)."""
    if settings.policy is None:
        return ReviewNotifications()
    from routing_service.policy.loader import load_policy

    return load_policy(settings.policy).review_notifications


def build_activities(
    settings: WorkerSettings,
    stub: routing_pb2_grpc.RoutingServiceAsyncStub,
    http: httpx.AsyncClient,
    engine: AsyncEngine,
) -> list[Any]:
    """The bound activity methods the worker registers."""
    routing = RoutingActivities(stub, rpc_timeout=settings.rpc_timeout_seconds)
    vapi = VapiActivities(
        http,
        DialLedger(engine),
        api_url=settings.vapi_api_url,
        api_key=settings.vapi_api_key.get_secret_value(),
        assistant_id=settings.vapi_assistant_id,
        phone_number_id=settings.vapi_phone_number_id,
        poll_interval=settings.vapi_poll_seconds,
    )
    reviews = ReviewActivities(ReviewStore(engine))
    notifier = NotifierActivities(
        http, lambda: review_notifications(settings), ui_url=settings.temporal_ui_url
    )
    return [
        routing.claim_callback,
        routing.finish_callback,
        routing.get_decision,
        routing.record_escalation_outcome,
        routing.record_review_outcome,
        vapi.place_callback_call,
        reviews.record_review,
        notifier.notify_supervisor,
    ]


async def run_worker(
    settings: WorkerSettings, *, stop: asyncio.Event | None = None, client: Client | None = None
) -> None:
    """Run until `stop` is set (forever without one); `client` overrides connecting to Temporal (else the
    client encrypts payloads with the settings' keys, `escalade_platform.payload_encryption`)."""
    stop = stop or asyncio.Event()
    runtime = None
    if client is None:
        runtime = metrics_runtime(settings.worker_metrics_address)
        keys = payload_keys(settings)
        if keys is None:
            log.warning("Temporal payloads are stored unencrypted: ESCALADE_TEMPORAL_PAYLOAD_KEYS is not set")
        client = await connect_temporal(
            settings, runtime=runtime, data_converter=temporal_data_converter(keys)
        )
        if runtime is not None:
            log.info("worker metrics on http://%s/metrics", settings.worker_metrics_address)
    if settings.register_search_attributes:
        try:
            added = await register_search_attributes(client)
        except Exception as exc:  # a cluster where the worker may not add them: they must exist already
            log.warning("could not register search attributes: %s", exc)
        else:
            if added:
                log.info("registered search attributes %s", ", ".join(added))
    engine = await open_engine(settings.database_url)
    channel = routing_channel(settings)
    http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
    try:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=list(WORKFLOWS),
            activities=build_activities(settings, stub, http, engine),
            graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_seconds),
            max_cached_workflows=settings.max_cached_workflows,
            workflow_runner=workflow_runner(settings),
        )
        relay = AvailabilityRelay(
            stub,
            lambda call_id: signal_callback(client, call_id),
            rpc_timeout=settings.rpc_timeout_seconds,
            backoff_max=settings.relay_backoff_max_seconds,
        )
        reconciler = (
            CallbackReconciler(
                stub,
                client,
                interval=settings.reconcile_seconds,
                grace=settings.reconcile_grace_seconds,
                policy=load_policy_or_none(settings),
                task_queue=settings.task_queue,
                rpc_timeout=settings.rpc_timeout_seconds,
                on_reconciled=reconciled_counter(runtime) if runtime is not None else None,
            )
            if settings.reconcile_seconds > 0
            else None
        )
        log.info(
            "worker on task queue %s (Temporal %s, routing %s)",
            settings.task_queue,
            settings.temporal_address,
            settings.routing_address,
        )
        async with worker:
            tasks = [asyncio.create_task(relay.run(), name="availability-relay")]
            if reconciler is not None:
                tasks.append(asyncio.create_task(reconciler.run(), name="callback-reconciler"))
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        log.info("worker stopped")
    finally:
        await http.aclose()
        await channel.close()
        await engine.dispose()
