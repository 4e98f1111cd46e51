"""A local stand-in for Vapi's call API (`POST /call`, `GET /call/{id}`, `GET /call`) served by uvicorn on
127.0.0.1:0 inside the test's event loop. It records every dial; a dialled call reports `ended` with the
configured `endedReason` on the first status read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class VapiStandin:
    api_key: str = "vapi-test-key"
    ended_reason: str = "customer-ended-call"
    dials: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def create(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse({"message": "Invalid Key"}, status_code=401)
            body = await request.json()
            call = {"id": f"vapi-{len(self.dials) + 1}", "status": "queued", **body}
            self.dials.append(call)
            return JSONResponse(call, status_code=201)

        async def show(request: Request) -> JSONResponse:
            call_id = request.path_params["call_id"]
            for call in self.dials:
                if call["id"] == call_id:
                    return JSONResponse({**call, "status": "ended", "endedReason": self.ended_reason})
            return JSONResponse({"message": "not found"}, status_code=404)

        async def listing(request: Request) -> JSONResponse:
            return JSONResponse(self.dials)

        return Starlette(
            routes=[
                Route("/call", create, methods=["POST"]),
                Route("/call", listing, methods=["GET"]),
                Route("/call/{call_id}", show, methods=["GET"]),
            ]
        )


@contextlib.asynccontextmanager
async def serve_vapi(standin: VapiStandin) -> AsyncIterator[VapiStandin]:
    config = uvicorn.Config(standin.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    standin.url = f"http://127.0.0.1:{port}"
    try:
        yield standin
    finally:
        server.should_exit = True
        await task
