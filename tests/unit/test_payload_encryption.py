"""The payload codec: round trip through Temporal's data converter, key rotation, tampering, and the key
settings' readable errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload

from escalade_platform.payload_encryption import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    PayloadKeys,
    new_key,
    payload_keys,
    temporal_data_converter,
)
from escalade_platform.settings import PayloadEncryptionSettings
from workflows.inputs import QueueCallbackInput

NUMBER = "+14155550123"
CONTEXT = "webhooks stopped after the v2 migration"


def keys(current: str, *ids: str) -> PayloadKeys:
    return PayloadKeys(current, {key_id: base64.b64decode(KEY_TEXT[key_id]) for key_id in ids or (current,)})


KEY_TEXT = {
    "2026-11": base64.b64encode(bytes(range(32))).decode(),
    "2026-12": base64.b64encode(bytes(range(32, 64))).decode(),
}
"""Fixed test keys (the test ids that show them must be the same in every pytest-xdist worker)."""


def callback() -> QueueCallbackInput:
    return QueueCallbackInput(
        call_id="call-1", customer_number=NUMBER, masked_number="+1*******0123", team_id="t", context=CONTEXT
    )


async def test_round_trip_through_the_data_converter_hides_the_number_and_the_context() -> None:
    converter = temporal_data_converter(keys("2026-11"))

    [encoded] = await converter.encode([callback()])

    assert encoded.metadata["encoding"] == ENCODING
    assert encoded.metadata[KEY_ID_METADATA] == b"2026-11"
    assert NUMBER.encode() not in encoded.SerializeToString()
    assert CONTEXT.encode() not in encoded.SerializeToString()
    assert await converter.decode([encoded], [QueueCallbackInput]) == [callback()]


def test_the_repr_of_keys_shows_no_key_material() -> None:
    shown = repr(keys("2026-12", "2026-11", "2026-12"))

    assert "2026-12" in shown
    assert "keys=" not in shown and KEY_TEXT["2026-12"] not in shown


def test_new_keys_are_random_aes_256_keys() -> None:
    first, second = new_key(), new_key()

    assert first != second
    assert len(base64.b64decode(first, validate=True)) == 32


async def test_same_payload_encrypts_differently_each_time() -> None:
    codec = EncryptionCodec(keys("2026-11"))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')

    first, second = await codec.encode([plain, plain])

    assert first.data != second.data
    assert await codec.decode([first, second]) == [plain, plain]


async def test_rotation_opens_old_payloads_with_their_key_and_seals_new_ones_with_the_current_key() -> None:
    before = temporal_data_converter(keys("2026-11"))
    [old] = await before.encode([callback()])

    after = temporal_data_converter(keys("2026-12", "2026-11", "2026-12"))
    [new] = await after.encode([callback()])

    assert new.metadata[KEY_ID_METADATA] == b"2026-12"
    assert await after.decode([old, new], [QueueCallbackInput, QueueCallbackInput]) == [
        callback(),
        callback(),
    ]
    with pytest.raises(PayloadDecryptionError, match="key '2026-12', which is not among the configured keys"):
        await before.decode([new], [QueueCallbackInput])


async def test_tampered_ciphertext_fails_authentication_with_a_clear_message() -> None:
    codec = EncryptionCodec(keys("2026-11"))
    [sealed] = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"secret"')])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 0x01
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))

    with pytest.raises(PayloadDecryptionError, match="key '2026-11' fails authentication: it was altered"):
        await codec.decode([tampered])


async def test_a_key_swapped_under_the_same_id_fails_authentication() -> None:
    [sealed] = await EncryptionCodec(keys("2026-11")).encode([Payload(data=b"x")])
    impostor = PayloadKeys("2026-11", {"2026-11": base64.b64decode(KEY_TEXT["2026-12"])})

    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await EncryptionCodec(impostor).decode([sealed])


async def test_without_keys_payloads_stay_plain_and_an_encrypted_one_names_the_missing_setting() -> None:
    plain_converter = temporal_data_converter(None)
    [plain] = await plain_converter.encode([callback()])
    assert plain.metadata["encoding"] == b"json/plain"
    assert NUMBER.encode() in plain.data

    [sealed] = await temporal_data_converter(keys("2026-11")).encode([callback()])
    with pytest.raises(PayloadDecryptionError, match="ESCALADE_TEMPORAL_PAYLOAD_KEYS"):
        await plain_converter.decode([sealed], [QueueCallbackInput])


async def test_plain_payloads_written_before_encryption_still_decode() -> None:
    [plain] = await temporal_data_converter(None).encode([callback()])

    assert await temporal_data_converter(keys("2026-11")).decode([plain], [QueueCallbackInput]) == [
        callback()
    ]


def test_settings_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_TEMPORAL_PAYLOAD_KEYS", json.dumps(KEY_TEXT))
    monkeypatch.setenv("ESCALADE_TEMPORAL_PAYLOAD_KEY_ID", "2026-12")

    found = payload_keys(PayloadEncryptionSettings())

    assert found is not None
    assert found.current_key_id == "2026-12"
    assert set(found.keys) == {"2026-11", "2026-12"}


def test_settings_without_keys_mean_plain_payloads() -> None:
    assert payload_keys(PayloadEncryptionSettings()) is None


def test_one_key_needs_no_current_id_but_several_do() -> None:
    one = PayloadEncryptionSettings(
        temporal_payload_keys=SecretStr(json.dumps({"only": KEY_TEXT["2026-11"]}))
    )
    assert (found := payload_keys(one)) is not None and found.current_key_id == "only"

    several = PayloadEncryptionSettings(temporal_payload_keys=SecretStr(json.dumps(KEY_TEXT)))
    with pytest.raises(PayloadKeyError, match="none is named current"):
        payload_keys(several)


def test_key_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(keys("2026-12", "2026-11", "2026-12").to_file_document()))

    found = payload_keys(PayloadEncryptionSettings(temporal_payload_key_file=path))

    assert found == keys("2026-12", "2026-11", "2026-12")


@pytest.mark.parametrize(
    ("keys_json", "key_id", "reason"),
    [
        ('{"k": "' + base64.b64encode(b"sixteen byte key").decode() + '"}', "k", "is 16 bytes long; AES-256"),
        ('{"k": "not base64!"}', "k", "'k' is not valid base64"),
        ('{"k": 42}', "k", "'k' must be a base64 string"),
        ("[1, 2]", "", "must be a JSON object"),
        ("{not json", "", "ESCALADE_TEMPORAL_PAYLOAD_KEYS is not JSON"),
        ('{"k": "' + KEY_TEXT["2026-11"] + '"}', "other", "current payload key id 'other' is not among"),
    ],
)
def test_unusable_keys_are_refused_with_a_readable_reason(keys_json: str, key_id: str, reason: str) -> None:
    settings = PayloadEncryptionSettings(
        temporal_payload_keys=SecretStr(keys_json), temporal_payload_key_id=key_id
    )

    with pytest.raises(PayloadKeyError, match=reason):
        payload_keys(settings)


def test_unusable_key_files_are_refused_with_a_readable_reason(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(PayloadKeyError, match="cannot read the payload key file"):
        payload_keys(PayloadEncryptionSettings(temporal_payload_key_file=missing))

    broken = tmp_path / "broken.json"
    broken.write_text('{"current_key_id": "k"}')
    with pytest.raises(PayloadKeyError, match='needs a "keys" object'):
        payload_keys(PayloadEncryptionSettings(temporal_payload_key_file=broken))


def test_a_key_id_without_keys_is_refused() -> None:
    with pytest.raises(PayloadKeyError, match="KEY_ID is set but no keys are"):
        payload_keys(PayloadEncryptionSettings(temporal_payload_key_id="2026-12"))
