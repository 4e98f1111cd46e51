"""Serve an ASGI app with uvicorn inside the running event loop, on 127.0.0.1 and a port the OS picks.

For in-process users that need a real socket rather than an ASGI transport: the Vapi stand-in
(`escalade_cli.vapi_standin`), and tests that dial the edge or a stand-in over HTTP.

    async with local_server(app, lifespan="on") as served:
        response = await client.get(f"{served.url}/healthz")

The server has started (its socket is bound) when the block is entered; leaving the block asks uvicorn to
exit and waits for it, so open connections are closed and the lifespan's shutdown has run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

__all__ = ["LocalServer", "local_server"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalServer:
    """A started uvicorn server: `url` is `http://127.0.0.1:<port>`."""

    url: str
    port: int
    server: uvicorn.Server


@contextlib.asynccontextmanager
async def local_server(
    app: ASGIApp,
    *,
    lifespan: Literal["auto", "on", "off"] = "off",
    own_logging: bool = True,
    capture_signals: bool = True,
) -> AsyncIterator[LocalServer]:
    """Serve `app` on 127.0.0.1:<free port> in the running event loop until the block ends.

    `lifespan`: uvicorn's lifespan mode ("on" runs the app's startup and shutdown, "off" skips them).
    `own_logging`: True applies uvicorn's default log configuration at level warning (with access logs);
    False leaves the process's logging configuration alone (no dictConfig, no levels, no access log).
    `capture_signals`: False leaves SIGINT/SIGTERM to the loop's owner instead of uvicorn's handlers.
    A server that fails to start raises here (uvicorn's own error, or RuntimeError).
    """
    import uvicorn

    if own_logging:
        config = uvicorn.Config(app, host=HOST, port=0, lifespan=lifespan, log_level="warning")
    else:
        config = uvicorn.Config(app, host=HOST, port=0, lifespan=lifespan, log_config=None, access_log=False)
    server = uvicorn.Server(config) if capture_signals else _signal_free_server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LocalServer(f"http://{HOST}:{port}", port, server)
    finally:
        server.should_exit = True
        await task


def _signal_free_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server that installs no signal handlers (the loop's owner keeps SIGINT/SIGTERM)."""
    import uvicorn

    class SignalFreeServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return SignalFreeServer(config)
