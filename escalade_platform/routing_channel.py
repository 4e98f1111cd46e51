"""The channel every routing client dials (the edge, the worker, the CLI), built from `RoutingClientSettings`.

TLS when the settings ask for it (`grpc.ssl_channel_credentials`: the routing CA or the system's bundle, and
the client certificate for mutual TLS), plaintext otherwise. The bearer token travels as
`authorization: Bearer <token>` metadata added by a client interceptor on every call, the same way over TLS
and over a plaintext hop a service mesh encrypts (gRPC's call credentials would refuse the latter, and in
Python they run a thread per call). Without a token no interceptor is installed.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from escalade_platform.settings import RoutingClientSettings

__all__ = [
    "AUTHORIZATION_METADATA_KEY",
    "RoutingChannelError",
    "blocking_routing_channel",
    "read_pem",
    "routing_channel",
    "routing_channel_credentials",
]

AUTHORIZATION_METADATA_KEY = "authorization"
"""The metadata key carrying `Bearer <token>` (lower case, as gRPC requires)."""

ChannelOptions = Sequence[tuple[str, Any]]


class RoutingChannelError(OSError):
    """A TLS file of the routing settings could not be read or holds no PEM of its kind; the message names
    the setting and the file."""


_PEM_MARKERS = {"certificate": b"-----BEGIN CERTIFICATE-----", "private key": b"PRIVATE KEY-----"}


def read_pem(path: object, setting: str, kind: str) -> bytes:
    """The PEM file `path` named by `setting` (e.g. ESCALADE_ROUTING_CA), checked to hold a `kind`
    ("certificate" or "private key"): gRPC itself only says that it failed to bind or to connect."""
    try:
        with open(str(path), "rb") as file:
            data = file.read()
    except OSError as exc:
        raise RoutingChannelError(f"cannot read {setting} {path}: {exc.strerror or exc}") from None
    if _PEM_MARKERS[kind] not in data:
        raise RoutingChannelError(f"{setting} {path} holds no PEM {kind}")
    return data


def routing_channel_credentials(settings: RoutingClientSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials for the routing channel, or None for plaintext."""
    if not settings.routing_uses_tls:
        return None
    root = (
        read_pem(settings.routing_ca, "ESCALADE_ROUTING_CA", "certificate") if settings.routing_ca else None
    )
    key = cert = None
    if settings.routing_client_cert is not None and settings.routing_client_key is not None:
        cert = read_pem(settings.routing_client_cert, "ESCALADE_ROUTING_CLIENT_CERT", "certificate")
        key = read_pem(settings.routing_client_key, "ESCALADE_ROUTING_CLIENT_KEY", "private key")
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)


def _options(settings: RoutingClientSettings, options: ChannelOptions | None) -> list[tuple[str, Any]]:
    merged = list(options or ())
    if settings.routing_server_name and settings.routing_uses_tls:
        merged.append(("grpc.ssl_target_name_override", settings.routing_server_name))
    return merged


def _bearer(settings: RoutingClientSettings) -> tuple[str, str] | None:
    token = settings.routing_token.get_secret_value()
    return (AUTHORIZATION_METADATA_KEY, f"Bearer {token}") if token else None


def routing_channel(
    settings: RoutingClientSettings, *, options: ChannelOptions | None = None, address: str | None = None
) -> grpc.aio.Channel:
    """A `grpc.aio` channel to `address` (default `settings.routing_address`) with the settings' TLS and
    token; raises `RoutingChannelError` when a TLS file cannot be read."""
    target = address or settings.routing_address
    credentials = routing_channel_credentials(settings)
    bearer = _bearer(settings)
    interceptors: list[grpc.aio.ClientInterceptor] | None = None
    if bearer is not None:
        interceptors = [
            _AioBearerUnaryUnary(bearer),
            _AioBearerUnaryStream(bearer),
            _AioBearerStreamUnary(bearer),
            _AioBearerStreamStream(bearer),
        ]
    merged = _options(settings, options)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=merged, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=merged, interceptors=interceptors)


def blocking_routing_channel(
    settings: RoutingClientSettings, *, options: ChannelOptions | None = None, address: str | None = None
) -> grpc.Channel:
    """The blocking twin of `routing_channel`, for the CLI's one-shot commands."""
    target = address or settings.routing_address
    credentials = routing_channel_credentials(settings)
    merged = _options(settings, options)
    if credentials is None:
        channel = grpc.insecure_channel(target, options=merged)
    else:
        channel = grpc.secure_channel(target, credentials, options=merged)
    bearer = _bearer(settings)
    return channel if bearer is None else grpc.intercept_channel(channel, _BlockingBearer(bearer))


def _with_metadatum(metadata: Any, metadatum: tuple[str, str]) -> list[tuple[str, Any]]:
    """The call's metadata plus the token, dropping any authorization the caller set itself."""
    kept = [(key, value) for key, value in (metadata or ()) if key != AUTHORIZATION_METADATA_KEY]
    kept.append(metadatum)
    return kept


class _AioBearer:
    def __init__(self, metadatum: tuple[str, str]) -> None:
        self._metadatum = metadatum


class _AioBearerUnaryUnary(_AioBearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_aio_details(client_call_details, self._metadatum), request)


class _AioBearerUnaryStream(_AioBearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_aio_details(client_call_details, self._metadatum), request)


class _AioBearerStreamUnary(_AioBearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(_aio_details(client_call_details, self._metadatum), request_iterator)


class _AioBearerStreamStream(_AioBearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(_aio_details(client_call_details, self._metadatum), request_iterator)


def _aio_details(
    details: grpc.aio.ClientCallDetails, metadatum: tuple[str, str]
) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*_with_metadatum(details.metadata, metadatum)),
        details.credentials,
        details.wait_for_ready,
    )


class _BlockingCallDetails(
    collections.namedtuple(
        "_BlockingCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    """`grpc.ClientCallDetails` with the token added (the blocking API has no public constructor for it)."""


class _BlockingBearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, metadatum: tuple[str, str]) -> None:
        self._metadatum = metadatum

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _BlockingCallDetails(
            details.method,
            details.timeout,
            _with_metadatum(details.metadata, self._metadatum),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)
