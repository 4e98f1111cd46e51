"""Encryption of the payloads Escalade's processes exchange through Temporal: workflow and activity inputs
and results, queries, signals, updates, memos and failure messages.

Temporal stores every payload in the workflow history and shows it in its UI. A callback's input carries the
customer's raw number and the free-text context of the escalation, so every Temporal client of Escalade
(the worker, the edge's outbox relay, the CLI) encodes payloads with `EncryptionCodec`, Temporal's
documented encryption pattern: the serialized payload is sealed with AES-256-GCM and wrapped in a payload
whose metadata says `encoding: binary/encrypted` and `encryption-key-id: <key id>`. Search attributes are
never encoded (the server indexes them): they hold no number (`workflows.search_attributes`).

Keys (`PayloadKeys`) come from the settings (`PayloadEncryptionSettings`): named 32-byte keys, one of them
current. New payloads are sealed with the current key; a payload is opened with the key its metadata names,
so rotating (adding a key and making it current) leaves older histories readable as long as their key stays
listed. Without any key configured payloads stay plain, as Temporal's default converter writes them, and an
encrypted payload met then fails with a message naming the setting to give.

`escalade temporal codec-server` serves the same codec over HTTP for the Temporal UI and CLI.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)
from temporalio.converter import default as default_data_converter

from escalade_platform.settings import PayloadEncryptionSettings

__all__ = [
    "ENCODING",
    "KEY_BYTES",
    "KEY_ID_METADATA",
    "EncryptionCodec",
    "PayloadDecryptionError",
    "PayloadKeyError",
    "PayloadKeys",
    "new_key",
    "payload_keys",
    "temporal_data_converter",
]

ENCODING = b"binary/encrypted"
"""The `encoding` metadata of an encrypted payload (as in Temporal's encryption sample)."""
KEY_ID_METADATA = "encryption-key-id"
"""The metadata entry naming the key a payload was sealed with."""
KEY_BYTES = 32
"""AES-256: every key is 32 bytes (44 characters of standard base64)."""
_NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """The configured payload keys are unusable (malformed, wrong length, current key missing)."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be opened: its key is unknown, or it fails authentication (altered, or
    sealed with another key under the same id)."""


@dataclass(frozen=True)
class PayloadKeys:
    """Named AES-256 keys: `current_key_id` seals new payloads, each of `keys` opens those naming it."""

    current_key_id: str
    keys: Mapping[str, bytes] = field(repr=False)
    """Key id -> 32 key bytes (left out of the repr, so a logged object shows no key material)."""

    def __post_init__(self) -> None:
        if not self.keys:
            raise PayloadKeyError("no payload keys given")
        for key_id, key in self.keys.items():
            if not key_id:
                raise PayloadKeyError("a payload key has an empty id")
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(
                    f"payload key {key_id!r} is {len(key)} bytes long; AES-256 needs {KEY_BYTES} "
                    "(44 characters of base64)"
                )
        if self.current_key_id not in self.keys:
            raise PayloadKeyError(
                f"the current payload key id {self.current_key_id!r} is not among the keys "
                f"({', '.join(sorted(self.keys))})"
            )

    @classmethod
    def parse(cls, current_key_id: str, encoded_keys: Mapping[str, Any]) -> PayloadKeys:
        """From key id -> base64 text; `current_key_id` may be empty when there is exactly one key."""
        if not isinstance(encoded_keys, Mapping):
            raise PayloadKeyError("payload keys must be a JSON object of key id -> base64 key")
        keys: dict[str, bytes] = {}
        for key_id, text in encoded_keys.items():
            if not isinstance(text, str):
                raise PayloadKeyError(f"payload key {key_id!r} must be a base64 string")
            try:
                keys[str(key_id)] = base64.b64decode(text.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise PayloadKeyError(f"payload key {key_id!r} is not valid base64") from None
        if not current_key_id and len(keys) == 1:
            current_key_id = next(iter(keys))
        if not current_key_id:
            raise PayloadKeyError(
                "several payload keys are configured but none is named current "
                "(ESCALADE_TEMPORAL_PAYLOAD_KEY_ID, or `current_key_id` in the key file)"
            )
        return cls(current_key_id, keys)

    @classmethod
    def from_file(cls, path: Path) -> PayloadKeys:
        """A key file: `{"current_key_id": "...", "keys": {"<id>": "<base64 key>", ...}}`."""
        try:
            document = json.loads(path.read_text())
        except OSError as exc:
            raise PayloadKeyError(f"cannot read the payload key file {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise PayloadKeyError(f"the payload key file {path} is not JSON: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), dict):
            raise PayloadKeyError(
                f'the payload key file {path} needs a "keys" object of key id -> base64 key'
            )
        current = document.get("current_key_id", "")
        if not isinstance(current, str):
            raise PayloadKeyError(f'"current_key_id" in the payload key file {path} must be a string')
        return cls.parse(current, document["keys"])

    def to_file_document(self) -> dict[str, Any]:
        """The key file form of these keys (`from_file` reads it back)."""
        return {
            "current_key_id": self.current_key_id,
            "keys": {key_id: base64.b64encode(key).decode() for key_id, key in self.keys.items()},
        }


def new_key() -> str:
    """A fresh random AES-256 key, base64-encoded as the settings take it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def payload_keys(settings: PayloadEncryptionSettings) -> PayloadKeys | None:
    """The keys the settings configure: `temporal_payload_keys` (with `temporal_payload_key_id`) when set,
    else the key file `temporal_payload_key_file` when set, else None (payloads stay plain).

    Raises `PayloadKeyError` with a readable reason when the configured keys are unusable."""
    keys_json = settings.temporal_payload_keys.get_secret_value().strip()
    if keys_json:
        try:
            encoded = json.loads(keys_json)
        except ValueError as exc:
            raise PayloadKeyError(
                f"ESCALADE_TEMPORAL_PAYLOAD_KEYS is not JSON (a key id -> base64 key object): {exc}"
            ) from None
        return PayloadKeys.parse(settings.temporal_payload_key_id, encoded)
    if settings.temporal_payload_key_file is not None:
        return PayloadKeys.from_file(settings.temporal_payload_key_file)
    if settings.temporal_payload_key_id:
        raise PayloadKeyError(
            "ESCALADE_TEMPORAL_PAYLOAD_KEY_ID is set but no keys are "
            "(ESCALADE_TEMPORAL_PAYLOAD_KEYS or ESCALADE_TEMPORAL_PAYLOAD_KEY_FILE)"
        )
    return None


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM payload codec (Temporal's encryption sample): the serialized payload, sealed with a random
    12-byte nonce in front, under the metadata `encoding: binary/encrypted` and `encryption-key-id`.

    With `keys=None` it encodes nothing and only explains, on decode, that an encrypted payload needs keys.
    Payloads that are not encrypted decode as they are, so histories written before encryption was turned on
    stay readable."""

    def __init__(self, keys: PayloadKeys | None) -> None:
        self._keys = keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()} if keys else {}

    @property
    def current_key_id(self) -> str | None:
        return self._keys.current_key_id if self._keys else None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """`payload` sealed under the current key (as is when no key is configured)."""
        if self._keys is None:
            return payload
        key_id = self._keys.current_key_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The payload `payload` seals, or `payload` itself when it is not encrypted."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            if self._keys is None:
                raise PayloadDecryptionError(
                    f"a payload is encrypted (key {key_id!r}) but no payload keys are configured: set "
                    "ESCALADE_TEMPORAL_PAYLOAD_KEYS or ESCALADE_TEMPORAL_PAYLOAD_KEY_FILE"
                )
            raise PayloadDecryptionError(
                f"a payload is encrypted with key {key_id!r}, which is not among the configured keys "
                f"({', '.join(sorted(self._ciphers))}): keep retired keys listed while histories use them"
            )
        data = payload.data
        try:
            opened = cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], None)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"a payload encrypted with key {key_id!r} fails authentication: it was altered, or sealed "
                "with a different key under the same id"
            ) from None
        return Payload.FromString(opened)


def temporal_data_converter(keys: PayloadKeys | None) -> DataConverter:
    """Temporal's default data converter with `EncryptionCodec(keys)`; with keys, failure messages and stack
    traces travel inside the encrypted payloads too (`DefaultFailureConverterWithEncodedAttributes`)."""
    converter = dataclasses.replace(default_data_converter(), payload_codec=EncryptionCodec(keys))
    if keys is not None:
        converter = dataclasses.replace(
            converter, failure_converter_class=DefaultFailureConverterWithEncodedAttributes
        )
    return converter
