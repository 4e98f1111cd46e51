"""The routing server's TLS: its certificate and key, and for mutual TLS the CA that signs client
certificates, read from the files the settings name and re-read when they change.

gRPC asks `ServerCertificates.fetch` for the current configuration at each new connection's handshake; it
compares the files' (modification time, size) with those it loaded and reloads them when any differs, so a
rotated certificate is served to every connection opened after the files are replaced, without a restart
(open connections keep the certificate they were made with). Files that cannot be read or hold no PEM of
their kind (mid-way through a copy) keep the last good set until they can.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import structlog

from escalade_platform.routing_channel import read_pem
from routing_service.policy.loader import file_stamp
from routing_service.settings import RoutingSettings

__all__ = ["ServerCertificates", "server_credentials"]

log = structlog.get_logger(__name__)


class ServerCertificates:
    """The server certificate, its key and the optional client CA, reloaded on change (see module doc)."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.cert = cert
        self.key = key
        self.client_ca = client_ca
        self.reloads = 0
        """How many times changed files were loaded after the first time."""
        self._stamps = self._current_stamps()
        self.initial = self._configuration()

    @property
    def _paths(self) -> tuple[Path, ...]:
        return (self.cert, self.key) if self.client_ca is None else (self.cert, self.key, self.client_ca)

    def _current_stamps(self) -> tuple[tuple[int, int] | None, ...]:
        return tuple(file_stamp(path) for path in self._paths)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        """Raises OSError (naming the setting and the file) when one cannot be read or holds no PEM."""
        cert = read_pem(self.cert, "ESCALADE_ROUTING_SERVER_CERT", "certificate")
        key = read_pem(self.key, "ESCALADE_ROUTING_SERVER_KEY", "private key")
        ca = None
        if self.client_ca is not None:
            ca = read_pem(self.client_ca, "ESCALADE_ROUTING_CLIENT_CA", "certificate")
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when a file changed since the last load, else None (keep the current)."""
        stamps = self._current_stamps()
        if stamps == self._stamps or None in stamps:
            return None
        try:
            configuration = self._configuration()
        except OSError as exc:
            log.warning("routing_tls_reload_failed", cause=str(exc)[:200])
            return None
        self._stamps = stamps
        self.reloads += 1
        log.info("routing_tls_reloaded", cert=str(self.cert))
        return configuration

    def credentials(self) -> grpc.ServerCredentials:
        fetch: Any = self.fetch  # gRPC takes None for "unchanged"; the stubs say otherwise
        return grpc.dynamic_ssl_server_credentials(
            self.initial, fetch, require_client_authentication=self.client_ca is not None
        )


def server_credentials(settings: RoutingSettings) -> tuple[grpc.ServerCredentials, ServerCertificates] | None:
    """TLS credentials when the settings name a server certificate and key, else None (plaintext)."""
    if settings.routing_server_cert is None or settings.routing_server_key is None:
        return None
    certificates = ServerCertificates(
        settings.routing_server_cert, settings.routing_server_key, settings.routing_client_ca
    )
    return certificates.credentials(), certificates
