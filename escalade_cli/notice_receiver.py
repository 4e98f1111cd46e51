"""A local receiver of review notifications for `escalade simulate review-notice`: a minimal HTTP server on
127.0.0.1 (a port given, so that the dev stack's worker can be pointed at it) that answers every POST 200
and keeps each JSON body, standing in for a supervisor's webhook (Slack, a ticket system)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NoticeReceiver", "notice_receiver"]

_MAX_BODY = 1_000_000


@dataclass
class NoticeReceiver:
    """What the receiver was sent: (path, JSON body) per POST, in order."""

    port: int
    received: list[tuple[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = [*lines[0].split(" "), "", "", ""][:3]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = min(int(value.strip() or 0), _MAX_BODY)
            body = await reader.readexactly(length) if length else b""
            if method == "POST":
                try:
                    document = json.loads(body) if body else None
                except ValueError:
                    document = body.decode("utf-8", "replace")
                self.received.append((path, document))
                self.arrived.set()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n")
            writer.write(b'connection: close\r\n\r\n{"ok":true}')
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def notice_receiver(port: int) -> AsyncIterator[NoticeReceiver]:
    """Serve on 127.0.0.1:`port` for the block (OSError when the port is taken)."""
    receiver = NoticeReceiver(port)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port)
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
