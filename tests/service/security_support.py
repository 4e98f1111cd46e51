"""Certificates and servers for the routing security tests: a trustme CA that signs the server's and the
clients' certificates (and a second, unrelated CA), written as PEM files, and a real routing server
started with given security settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from escalade_platform.settings import RoutingClientSettings
from routing_service.grpc.server import RoutingServer
from tests.service.grpc_helpers import routing_settings

TOKENS = {
    "edge": "edge-token-0123456789abcdef",
    "worker": "worker-token-0123456789abcdef",
    "agent": "agent-token-0123456789abcdef",
    "admin": "admin-token-0123456789abcdef",
    "reader": "reader-token-0123456789abcdef",
}
"""One token per role."""


@dataclass(frozen=True)
class Pki:
    """PEM files: the CA, the server's certificate and key (localhost, 127.0.0.1), clients' pairs by name,
    and another CA that signed none of them."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]
    authority: trustme.CA


def issue(directory: Path, client_names: tuple[str, ...] = ("edge.internal", "stranger.internal")) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(directory / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(directory / "other-ca.pem"))
    server = authority.issue_cert("localhost", "127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    clients = {}
    for name in client_names:
        client = authority.issue_cert(name, common_name=name)
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        client.cert_chain_pems[0].write_to_path(str(cert))
        client.private_key_pem.write_to_path(str(key))
        clients[name] = (cert, key)
    return Pki(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        clients=clients,
        authority=authority,
    )


@asynccontextmanager
async def serving(database_url: str, **security: Any) -> AsyncIterator[RoutingServer]:
    """A routing server on 127.0.0.1:<free port> with `security` settings added."""
    server = RoutingServer(routing_settings(database_url, **security), watch_policy=False, run_sweeps=False)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0.2)


def client(server: RoutingServer, **fields: Any) -> RoutingClientSettings:
    """Client settings that dial `server` (on 127.0.0.1) with `fields` (routing_ca, routing_token, ...)."""
    return RoutingClientSettings(routing_address=f"127.0.0.1:{server.port}", **fields)
