"""A real local HTTP receiver for review notifications: a Starlette app served by uvicorn on 127.0.0.1:0 in a
thread. It records every POST (path, headers, JSON body) and answers each path with the statuses it was
scripted with, in order (then 200)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.edge.vapi_api_standin import serve_in_thread


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookReceiver:
    url: str = ""
    script: dict[str, list[int]] = field(default_factory=dict)
    """Per path, the statuses of its next answers (200 once they are used up)."""
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            body = await request.json()
            path = request.url.path
            with self._lock:
                self.received.append(Received(path, dict(request.headers), body))
                statuses = self.script.get(path) or []
                status = statuses.pop(0) if statuses else 200
            return JSONResponse({"ok": status < 300}, status_code=status)

        return Starlette(routes=[Route("/{name:str}", hook, methods=["POST"])])


@contextmanager
def running_receiver(**script: list[int]) -> Iterator[WebhookReceiver]:
    """`running_receiver(lead=[500])`: `/lead` answers 500 once, then 200."""
    receiver = WebhookReceiver(script={f"/{name}": list(codes) for name, codes in script.items()})
    with serve_in_thread(receiver.app()) as url:
        receiver.url = url
        yield receiver
