"""Live Call Control client: transfers a live call through `call.monitor.controlUrl`.

Body (SDK `ClientInboundMessageMessage_Transfer`):
`{"type": "transfer", "destination": {...}, "content": "..."}`, POSTed as JSON to the control URL itself.
The webhook waits for the outcome (bounded by `timeout_seconds` in total) so the tool result it answers says
what really happened. Failures are logged and returned as a `ControlOutcome`, never raised.

At most one POST per (call id, tool call id) per process: a redelivered tool call waits for, and gets, the
first attempt's outcome (also while that attempt is still in flight).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from enum import StrEnum
from typing import Any

import httpx
import structlog

from webhook_edge.translate import control_transfer

__all__ = ["ControlClient", "ControlOutcome"]

log = structlog.get_logger(__name__)


class ControlOutcome(StrEnum):
    """What became of a transfer through the control URL."""

    SENT = "sent"
    """The control URL accepted the transfer (2xx)."""
    NO_CONTROL_URL = "no_control_url"
    """The call has no `call.monitor.controlUrl` (control disabled): nothing can be transferred here."""
    UNUSABLE_URL = "unusable_url"
    """The control URL is not http(s)."""
    FAILED = "failed"
    """The POST failed (connection error or a non-2xx answer)."""
    TIMED_OUT = "timed_out"
    """No answer within the timeout."""

    @property
    def started(self) -> bool:
        return self is ControlOutcome.SENT


class ControlClient:
    """Issues transfers through Vapi's control URL, at most once per (call id, tool call id) per process."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, timeout_seconds: float = 3.0) -> None:
        self._timeout = timeout_seconds
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_client = client is None
        self._attempts: OrderedDict[tuple[str, str], asyncio.Task[ControlOutcome]] = OrderedDict()
        self._remember = 10_000

    @property
    def timeout_seconds(self) -> float:
        return self._timeout

    async def close(self) -> None:
        for task in self._attempts.values():
            if not task.done():
                task.cancel()
        if self._owns_client:
            await self._client.aclose()

    async def transfer(
        self, control_url: str, destination: dict[str, Any], content: str, *, key: tuple[str, str]
    ) -> ControlOutcome:
        """POST the transfer (once per `key`) and return its outcome. Never raises."""
        if not control_url:
            log.info("control_transfer_skipped", reason="no call.monitor.controlUrl")
            return ControlOutcome.NO_CONTROL_URL
        if not control_url.startswith(("https://", "http://")):
            log.warning("control_transfer_skipped", reason="control URL is not http(s)")
            return ControlOutcome.UNUSABLE_URL
        attempt = self._attempts.get(key)
        if attempt is None:
            attempt = asyncio.create_task(self._post(control_url, control_transfer(destination, content)))
            self._attempts[key] = attempt
            while len(self._attempts) > self._remember:
                self._attempts.popitem(last=False)
        else:
            log.info("control_transfer_repeat", reason="already attempted for this tool call")
        return await asyncio.shield(attempt)

    async def _post(self, control_url: str, body: dict[str, Any]) -> ControlOutcome:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(control_url, json=body)
        except (TimeoutError, httpx.TimeoutException):
            log.warning("control_transfer_failed", cause="timeout", timeout_seconds=self._timeout)
            return ControlOutcome.TIMED_OUT
        except Exception as exc:  # httpx.HTTPError, InvalidURL, ...: reported as an outcome, never raised
            log.warning("control_transfer_failed", cause=type(exc).__name__, detail=str(exc)[:200])
            return ControlOutcome.FAILED
        if response.is_success:
            log.info("control_transfer_sent", status=response.status_code)
            return ControlOutcome.SENT
        log.warning("control_transfer_failed", status=response.status_code, body=response.text[:200])
        return ControlOutcome.FAILED
