"""`connect_temporal(settings)`: the one way an Escalade process opens a Temporal client.

The worker, the edge's outbox relay, the CLI's Temporal commands and the benchmarks all connect through it,
so every one of them reads the same `ESCALADE_TEMPORAL_*` variables (`TemporalConnectionSettings`): the
address and namespace, TLS (a server CA, a client certificate and key for mTLS, a server name override)
and a Temporal Cloud API key. The certificate files are read on each connect, so a rotated certificate is
picked up by the next connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from escalade_platform.routing_channel import RoutingChannelError, read_pem
from escalade_platform.settings import TemporalConnectionSettings
from escalade_platform.tracing import temporal_interceptors

__all__ = ["TemporalSettingsError", "connect_temporal", "temporal_tls"]


class TemporalSettingsError(ValueError):
    """The settings cannot make a connection: no address, or a TLS file that cannot be read or holds no
    PEM of its kind."""


def _read(variable: str, path: Path | None, kind: str) -> bytes | None:
    """The PEM file `path` (of setting `variable`), checked to hold a `kind`: temporalio only says that the
    connection failed."""
    if path is None:
        return None
    try:
        return read_pem(path, variable, kind)
    except RoutingChannelError as exc:
        raise TemporalSettingsError(str(exc)) from None


def temporal_tls(settings: TemporalConnectionSettings) -> TLSConfig | bool:
    """What `Client.connect(tls=...)` gets: False (plain), True (TLS with the system's trusted roots) or a
    `TLSConfig` carrying the CA, client certificate and key bytes and the server name."""
    if not settings.temporal_tls_enabled():
        return False
    ca = _read("ESCALADE_TEMPORAL_TLS_SERVER_CA_CERT", settings.temporal_tls_server_ca_cert, "certificate")
    cert = _read("ESCALADE_TEMPORAL_TLS_CLIENT_CERT", settings.temporal_tls_client_cert, "certificate")
    key = _read("ESCALADE_TEMPORAL_TLS_CLIENT_KEY", settings.temporal_tls_client_key, "private key")
    name = settings.temporal_tls_server_name
    if ca is None and cert is None and name is None:
        return True
    return TLSConfig(server_root_ca_cert=ca, client_cert=cert, client_private_key=key, domain=name)


async def connect_temporal(
    settings: TemporalConnectionSettings,
    *,
    interceptors: Sequence[Interceptor] | None = None,
    data_converter: DataConverter | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """A client of `settings.temporal_address` in `settings.temporal_namespace`, with the TLS and API key
    the settings give. `interceptors` default to the tracing ones (`temporal_interceptors()`, none without
    tracing); `data_converter` defaults to Temporal's; `runtime` (e.g. one exporting metrics) to the
    process's default. Raises `TemporalSettingsError` for an unset address or an unreadable TLS file, and
    temporalio's `RuntimeError` when the server cannot be reached or refuses the handshake."""
    address = settings.temporal_address
    if not address:
        raise TemporalSettingsError("ESCALADE_TEMPORAL_ADDRESS is not set")
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        address,
        namespace=settings.temporal_namespace,
        api_key=api_key,
        tls=temporal_tls(settings),
        interceptors=temporal_interceptors() if interceptors is None else interceptors,
        data_converter=data_converter or DataConverter.default,
        runtime=runtime,
    )
