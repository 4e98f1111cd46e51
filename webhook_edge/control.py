"""Live Call Control client: transfers a live call through `call.monitor.controlUrl`.

Body (SDK `ClientInboundMessageMessage_Transfer`):
`{"type": "transfer", "destination": {...}, "content": "..."}`, POSTed as JSON to the control URL itself.
Failures are logged, never raised: this runs after the webhook has answered Vapi.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import httpx
import structlog

from webhook_edge.translate import control_transfer

__all__ = ["ControlClient"]

log = structlog.get_logger(__name__)


class ControlClient:
    """Issues transfers through Vapi's control URL, at most once per (call id, tool call id) per process."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, timeout_seconds: float = 5.0) -> None:
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_client = client is None
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._remember = 10_000

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _first_time(self, key: tuple[str, str]) -> bool:
        if key in self._done:
            return False
        self._done[key] = None
        while len(self._done) > self._remember:
            self._done.popitem(last=False)
        return True

    async def transfer(
        self, control_url: str, destination: dict[str, Any], content: str, *, key: tuple[str, str]
    ) -> bool:
        """POST the transfer; True when the control URL accepted it (2xx). Never raises."""
        if not control_url:
            log.info("control_transfer_skipped", reason="no call.monitor.controlUrl")
            return False
        if not control_url.startswith(("https://", "http://")):
            log.warning("control_transfer_skipped", reason="control URL is not http(s)")
            return False
        if not self._first_time(key):
            log.info("control_transfer_skipped", reason="already transferred for this tool call")
            return False
        try:
            response = await self._client.post(control_url, json=control_transfer(destination, content))
        except Exception as exc:  # httpx.HTTPError, InvalidURL, ...: runs after the reply, must not raise
            self._done.pop(key, None)
            log.warning("control_transfer_failed", cause=type(exc).__name__, detail=str(exc)[:200])
            return False
        if response.is_success:
            log.info("control_transfer_sent", status=response.status_code)
            return True
        self._done.pop(key, None)
        log.warning("control_transfer_failed", status=response.status_code, body=response.text[:200])
        return False
