"""`escalade temporal codec-server`: Temporal's remote codec protocol over real HTTP, its bearer-token check,
the CORS answer the Temporal UI's browser needs, and the command's refusals; and every command that is a
Temporal client (worker, edge, CLI) refusing unusable payload keys with one readable line."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from escalade_cli.codec_server import codec_server_app
from escalade_cli.local_server import LocalServer, local_server
from escalade_platform.payload_encryption import (
    ENCODING,
    EncryptionCodec,
    PayloadKeys,
    temporal_data_converter,
)
from tests.e2e.devstack import clean_env, free_port
from workflows.inputs import QueueCallbackInput

TOKEN = "operator-token"
UI = "http://localhost:8233"
KEY = base64.b64encode(bytes(range(32))).decode()
"""A fixed key: test ids show it, and they must be the same in every pytest-xdist worker."""
KEYS = PayloadKeys("k1", {"k1": base64.b64decode(KEY)})
DATA = QueueCallbackInput(
    call_id="call-7", customer_number="+14155550123", masked_number="+1*******0123", team_id="technical"
)
ESCALADE = str(Path(sys.executable).with_name("escalade"))


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    app = codec_server_app(EncryptionCodec(KEYS), token=TOKEN, cors_origins=[UI])
    async with local_server(app, capture_signals=False) as served:
        yield served


async def encrypted_body() -> dict[str, object]:
    payloads = await temporal_data_converter(KEYS).encode([DATA])
    return json_format.MessageToDict(Payloads(payloads=payloads))


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/decode", "/default/decode"])
async def test_decode_returns_the_plain_payloads_the_ui_shows(server: LocalServer, path: str) -> None:
    body = await encrypted_body()
    assert "+14155550123" not in json.dumps(body)

    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}{path}", json=body, headers=auth())

    assert response.status_code == 200
    [payload] = json_format.ParseDict(response.json(), Payloads()).payloads
    assert payload.metadata["encoding"] == b"json/plain"
    assert json.loads(payload.data)["customer_number"] == "+14155550123"


async def test_encode_seals_payloads_that_the_workers_converter_opens(server: LocalServer) -> None:
    [plain] = await temporal_data_converter(None).encode([DATA])
    body = json_format.MessageToDict(Payloads(payloads=[plain]))

    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}/encode", json=body, headers=auth())

    assert response.status_code == 200
    sealed = json_format.ParseDict(response.json(), Payloads()).payloads
    assert sealed[0].metadata["encoding"] == ENCODING
    assert await temporal_data_converter(KEYS).decode(sealed, [QueueCallbackInput]) == [DATA]


@pytest.mark.parametrize("headers", [{}, auth("wrong"), {"Authorization": "Basic b3A6b3A="}])
async def test_a_request_without_the_token_is_refused(server: LocalServer, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}/decode", json=await encrypted_body(), headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token is required" in response.json()["detail"]
    assert "+14155550123" not in response.text


async def test_the_ui_origin_passes_the_cors_preflight_without_a_token(server: LocalServer) -> None:
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    async with httpx.AsyncClient() as http:
        allowed = await http.options(f"{server.url}/decode", headers=preflight)
        other = await http.options(
            f"{server.url}/decode", headers={**preflight, "Origin": "https://evil.test"}
        )
        answer = await http.post(
            f"{server.url}/decode", json=await encrypted_body(), headers={**auth(), "Origin": UI}
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers
    assert answer.headers["access-control-allow-origin"] == UI


async def test_a_body_that_is_no_payload_list_gets_400_with_a_reason(server: LocalServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}/decode", content=b"{not json", headers=auth())

    assert response.status_code == 400
    assert '{"payloads": [...]}' in response.json()["detail"]


async def test_a_tampered_payload_gets_422_with_the_reason(server: LocalServer) -> None:
    body = await encrypted_body()
    payload = body["payloads"][0]  # type: ignore[index]
    data = bytearray(base64.b64decode(payload["data"]))
    data[-1] ^= 1
    payload["data"] = base64.b64encode(bytes(data)).decode()

    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}/decode", json=body, headers=auth())

    assert response.status_code == 422
    assert "fails authentication" in response.json()["detail"]


async def test_with_auth_turned_off_no_token_is_asked() -> None:
    app = codec_server_app(EncryptionCodec(KEYS), token="", cors_origins=[UI])
    async with local_server(app, capture_signals=False) as served, httpx.AsyncClient() as http:
        response = await http.post(f"{served.url}/decode", json=await encrypted_body())

    assert response.status_code == 200


async def test_the_command_serves_with_the_keys_and_token_of_the_environment() -> None:
    port = free_port()
    env = {
        **clean_env(),
        "ESCALADE_TEMPORAL_PAYLOAD_KEYS": json.dumps({"k1": KEY}),
        "ESCALADE_CODEC_SERVER_TOKEN": TOKEN,
        "ESCALADE_CODEC_SERVER_ADDRESS": f"127.0.0.1:{port}",
    }
    process = await asyncio.create_subprocess_exec(
        ESCALADE, "temporal", "codec-server", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        async with httpx.AsyncClient() as http:
            response = None
            for _ in range(200):
                try:
                    response = await http.post(
                        f"http://127.0.0.1:{port}/decode", json=await encrypted_body(), headers=auth()
                    )
                    break
                except httpx.ConnectError:
                    assert process.returncode is None, "the codec server exited"
                    await asyncio.sleep(0.05)
        assert response is not None and response.status_code == 200
        [payload] = json_format.ParseDict(response.json(), Payloads()).payloads
        assert json.loads(payload.data)["customer_number"] == "+14155550123"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, output.decode()
    assert "current key 'k1'" in output.decode()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ESCALADE_CODEC_SERVER_TOKEN": TOKEN}, "no payload keys are configured"),
        (
            {"ESCALADE_TEMPORAL_PAYLOAD_KEYS": json.dumps({"k1": KEY})},
            "ESCALADE_CODEC_SERVER_TOKEN is not set",
        ),
        (
            {"ESCALADE_TEMPORAL_PAYLOAD_KEYS": '{"k1": "c2hvcnQ="}', "ESCALADE_CODEC_SERVER_TOKEN": TOKEN},
            "invalid payload keys: payload key 'k1' is 5 bytes long",
        ),
    ],
)
def test_the_command_refuses_to_start_without_usable_keys_or_a_token(
    env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [ESCALADE, "temporal", "codec-server"],
        env={**clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_new_key_prints_a_usable_key() -> None:
    done = subprocess.run(
        [ESCALADE, "temporal", "new-key"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert len(base64.b64decode(done.stdout.strip(), validate=True)) == 32


@pytest.mark.parametrize(
    "command", [["worker"], ["edge", "serve", "--port", "0"], ["callbacks", "list"], ["reviews", "list"]]
)
def test_every_temporal_client_command_refuses_unusable_keys_before_it_starts(
    command: list[str], tmp_path: Path
) -> None:
    env = {
        **clean_env(),
        "ESCALADE_TEMPORAL_PAYLOAD_KEYS": json.dumps({"k1": KEY, "k2": KEY}),
        "ESCALADE_TEMPORAL_PAYLOAD_KEY_ID": "k3",
        "ESCALADE_VAPI_SECRET": "edge-secret",
        "ESCALADE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e.db'}",
    }
    done = subprocess.run(
        [ESCALADE, *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "invalid payload keys: the current payload key id 'k3' is not among the keys (k1, k2)" in done.stderr
    )
    assert "Traceback" not in done.stderr
