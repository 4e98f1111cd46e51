"""A local stand-in for Vapi's REST API (tools, assistants, credentials, structured outputs), served by
uvicorn on 127.0.0.1:0 in a thread.

It keeps state (so a second provisioning run finds what the first created), records every request (method,
path, query, headers, parsed JSON body), checks the bearer API key, and can be told to fail a route with a
status. `GET /structured-output` answers Vapi's paginated shape (`{"results": [...], "metadata": {...}}`,
filtered by `name`); the other collections answer bare lists, as Vapi's API does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

STAMP = "2026-01-01T00:00:00.000Z"
ORG = "6f1d2c4b-8a3e-4f7b-9d21-5c0e8b7a1f36"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class VapiStandIn:
    api_key: str
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    assistants: dict[str, dict[str, Any]] = field(default_factory=dict)
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    structured_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    """(method, collection) -> (status, body), e.g. ("POST", "assistant") -> (400, {...})."""
    url: str = ""

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in {"POST", "PATCH"}]

    def app(self) -> Starlette:
        async def handle(request: Request) -> JSONResponse:
            raw = await request.body()
            body: Any = json.loads(raw) if raw else None
            collection = request.path_params["collection"]
            item_id = request.path_params.get("item_id")
            self.requests.append(
                Recorded(
                    request.method, request.url.path, dict(request.headers), body, dict(request.query_params)
                )
            )
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse(
                    {
                        "message": "Invalid Key. Hot tip, you may be using the private key "
                        "instead of the public key, or vice versa.",
                        "error": "Unauthorized",
                        "statusCode": 401,
                    },
                    status_code=401,
                )
            failure = self.failures.get((request.method, collection))
            if failure is not None:
                return JSONResponse(failure[1], status_code=failure[0])
            stores = {
                "tool": self.tools,
                "assistant": self.assistants,
                "credential": self.credentials,
                "structured-output": self.structured_outputs,
            }
            store = stores.get(collection)
            if store is None:
                return JSONResponse({"message": "Not Found", "statusCode": 404}, status_code=404)
            if request.method == "GET" and item_id is None:
                items = list(store.values())
                if collection != "structured-output":
                    return JSONResponse(items)
                name = request.query_params.get("name")
                items = [i for i in items if name is None or i.get("name") == name]
                meta = {"itemsPerPage": 100, "totalItems": len(items), "currentPage": 1, "totalPages": 1}
                return JSONResponse({"results": items, "metadata": meta})
            if request.method == "POST" and item_id is None:
                new = {"id": str(uuid.uuid4()), "orgId": ORG, "createdAt": STAMP, "updatedAt": STAMP, **body}
                store[new["id"]] = new
                return JSONResponse(new, status_code=201)
            if item_id not in store:
                return JSONResponse({"message": "Not Found", "statusCode": 404}, status_code=404)
            if request.method == "PATCH":
                store[item_id] = {**store[item_id], **body}
            return JSONResponse(store[item_id])

        routes = [
            Route("/{collection:str}", handle, methods=["GET", "POST"]),
            Route("/{collection:str}/{item_id:str}", handle, methods=["GET", "PATCH"]),
        ]
        return Starlette(routes=routes)


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # runs in a thread: no signal handlers
        pass


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1:<free port> in a thread; yields its base URL."""
    server = _ThreadServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_vapi(api_key: str = "vapi-private-key-1234") -> Iterator[VapiStandIn]:
    stand_in = VapiStandIn(api_key=api_key)
    with serve_in_thread(stand_in.app()) as url:
        stand_in.url = url
        yield stand_in
