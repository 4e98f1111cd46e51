"""`escalade temporal codec-server|new-key`: reading and keying the encrypted payloads Temporal stores.

`codec-server` serves `escalade_cli.codec_server` with the payload keys of the settings until SIGTERM/SIGINT;
`new-key` prints a fresh key for `ESCALADE_TEMPORAL_PAYLOAD_KEYS` (docs/operations.md has the rotation steps).
Also holds `temporal_data_converter_or_fail`, the converter the CLI's Temporal commands connect with.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from escalade_cli.console import console, err_console, fail, settings_or_fail

if TYPE_CHECKING:
    from temporalio.converter import DataConverter

    from escalade_platform.settings import PayloadEncryptionSettings

__all__ = [
    "DEV_KEY_FILE",
    "DEV_KEY_FILE_NAME",
    "check_payload_keys_or_fail",
    "register",
    "temporal_data_converter_or_fail",
]

DEV_KEY_FILE_NAME = "temporal-payload-keys.json"
"""The payload key file `escalade dev` keeps in its state directory."""
DEV_KEY_FILE = Path(".escalade") / DEV_KEY_FILE_NAME
"""Where the CLI's Temporal commands look for the dev stack's keys when the settings name none (relative to
the working directory, like `escalade simulate`'s `.escalade/webhook-secret`)."""


def temporal_data_converter_or_fail(settings: PayloadEncryptionSettings) -> DataConverter:
    """The data converter of the CLI's Temporal commands: the settings' payload keys, else the dev stack's key
    file `.escalade/temporal-payload-keys.json` when it exists, else plain payloads. Unusable keys end in a
    readable `invalid payload keys` (exit 2)."""
    from escalade_platform.payload_encryption import (
        PayloadKeyError,
        PayloadKeys,
        payload_keys,
        temporal_data_converter,
    )

    try:
        keys = payload_keys(settings)
        if keys is None and DEV_KEY_FILE.is_file():
            keys = PayloadKeys.from_file(DEV_KEY_FILE)
    except PayloadKeyError as exc:
        fail(f"invalid payload keys: {exc}", code=2)
    return temporal_data_converter(keys)


def check_payload_keys_or_fail(settings: PayloadEncryptionSettings) -> None:
    """Stop a serving command (edge, worker) with a readable `invalid payload keys` (exit 2) when the
    settings' payload keys are unusable, before it starts."""
    from escalade_platform.payload_encryption import PayloadKeyError, payload_keys

    try:
        payload_keys(settings)
    except PayloadKeyError as exc:
        fail(f"invalid payload keys: {exc}", code=2)


def codec_server_command(
    address: Annotated[
        str | None,
        typer.Option("--address", help="HOST:PORT to listen on (default: ESCALADE_CODEC_SERVER_ADDRESS)."),
    ] = None,
) -> None:
    """Serve Temporal's codec protocol (POST /decode, /encode) so the Temporal UI shows decrypted payloads."""
    import uvicorn

    from escalade_cli.codec_server import CodecServerSettings, codec_server_app
    from escalade_platform.payload_encryption import EncryptionCodec, PayloadKeyError, payload_keys

    overrides: dict[str, Any] = {"codec_server_address": address} if address else {}
    settings = settings_or_fail(CodecServerSettings, **overrides)
    try:
        keys = payload_keys(settings)
    except PayloadKeyError as exc:
        fail(f"invalid payload keys: {exc}", code=2)
    if keys is None:
        fail(
            "no payload keys are configured (ESCALADE_TEMPORAL_PAYLOAD_KEYS or "
            "ESCALADE_TEMPORAL_PAYLOAD_KEY_FILE): there is nothing to decode with",
            code=2,
        )
    token = settings.codec_server_token.get_secret_value()
    if settings.codec_server_auth and not token:
        fail(
            "ESCALADE_CODEC_SERVER_TOKEN is not set: set a bearer token, or ESCALADE_CODEC_SERVER_AUTH=false "
            "for a server that only this machine reaches",
            code=2,
        )
    host, _, port_text = settings.codec_server_address.rpartition(":")
    if not host or not port_text.isdigit():
        fail(f"invalid codec server address {settings.codec_server_address!r} (HOST:PORT)", code=2)
    if not settings.codec_server_auth:
        token = ""
        err_console.print("warning: the codec server asks no token (ESCALADE_CODEC_SERVER_AUTH=false)")
    app = codec_server_app(
        EncryptionCodec(keys), token=token, cors_origins=settings.codec_server_cors_origins
    )
    config = uvicorn.Config(
        app,
        host=host.strip("[]"),
        port=int(port_text),
        log_config=None,
        access_log=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # As `escalade edge serve`: uvicorn re-raises the shutdown signal to the previous handler, a no-op here.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    console.print(
        f"codec server on http://{settings.codec_server_address} (current key {keys.current_key_id!r}, "
        f"{len(keys.keys)} key(s); CORS: {', '.join(settings.codec_server_cors_origins) or 'none'})",
        highlight=False,
    )
    try:
        server.run()
    except OSError as exc:  # pragma: no cover - e.g. port in use
        fail(f"cannot listen on {settings.codec_server_address}: {exc}")
    if not server.started:
        fail(f"the codec server did not start on {settings.codec_server_address}")


def new_key_command() -> None:
    """Print a fresh random AES-256 payload key (base64) for ESCALADE_TEMPORAL_PAYLOAD_KEYS."""
    from escalade_platform.payload_encryption import new_key

    typer.echo(new_key())


def register(app: typer.Typer) -> None:
    """Add `escalade temporal ...` to the application."""
    temporal = typer.Typer(
        help="Encrypted Temporal payloads: the codec server and keys.", no_args_is_help=True
    )
    temporal.command("codec-server")(codec_server_command)
    temporal.command("new-key")(new_key_command)
    app.add_typer(temporal, name="temporal")
