"""What the services' Prometheus metrics share: the latency histogram buckets and `PrometheusEndpoint`, the
small HTTP server each service answers `GET /metrics` with on its own port (each service keeps its own
metrics and registry)."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod

import structlog
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["LATENCY_BUCKETS", "PrometheusEndpoint"]

log = structlog.get_logger(__name__)

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Seconds; a decision normally takes a few milliseconds, the edge's deadline is 1.5 s."""


class PrometheusEndpoint(ABC):
    """`GET /metrics` (and `GET /`) on HOST:PORT answered with `scrape()`, anything else 404: a tiny asyncio
    HTTP/1.1 server, one request per connection, so a service's metrics never share its public port."""

    name = "metrics"
    """Names the endpoint in the `<name>_started` log line."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    @abstractmethod
    async def scrape(self) -> bytes:
        """The registry in the Prometheus text format (refreshing what is read at scrape time)."""

    async def start(self, host: str, port: int) -> int:
        """Listen (port 0: any free port); returns the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(f"{self.name}_started", address=f"{host}:{self.port}")
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            if len(parts) >= 2 and parts[0] == "GET" and path in ("/metrics", "/"):
                body, status, content_type = await self.scrape(), "200 OK", CONTENT_TYPE_LATEST
            else:
                body, status, content_type = b"not found\n", "404 Not Found", "text/plain"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
