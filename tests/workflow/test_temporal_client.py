"""`connect_temporal`: the `ESCALADE_TEMPORAL_*` settings reach the Temporal client.

The TLS tests put a TLS-terminating proxy (tests.support.tls_proxy, certificates from the system's
openssl) in front of the session's dev server, so the handshake, the CA check, the server name override
and the client certificate (mTLS) are exercised for real; the dev server itself has no TLS option.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from escalade_platform.settings import TemporalConnectionSettings
from escalade_platform.temporal_client import TemporalSettingsError, connect_temporal, temporal_tls
from tests.support.tls_proxy import SERVER_NAME, Pki, make_pki, tls_proxy
from webhook_edge.outbox import Outbox
from webhook_edge.relay import OutboxRelay, temporal_connector
from webhook_edge.settings import EdgeSettings
from workflows.inputs import EscalationReviewInput

CONNECT_LIMIT_SECONDS = 30


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def target(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def mtls_settings(pki: Pki, address: str, **changes: object) -> TemporalConnectionSettings:
    fields: dict[str, object] = {
        "temporal_address": address,
        "temporal_tls_server_ca_cert": pki.ca_cert,
        "temporal_tls_client_cert": pki.client_cert,
        "temporal_tls_client_key": pki.client_key,
        "temporal_tls_server_name": SERVER_NAME,
        **changes,
    }
    return TemporalConnectionSettings(**fields)  # type: ignore[arg-type]


async def refused(settings: TemporalConnectionSettings) -> str:
    with pytest.raises(RuntimeError) as caught:
        async with asyncio.timeout(CONNECT_LIMIT_SECONDS):
            await connect_temporal(settings)
    return str(caught.value)


def test_the_tls_config_carries_the_bytes_of_the_files_and_the_server_name(pki: Pki) -> None:
    tls = temporal_tls(mtls_settings(pki, "temporal:7233"))
    assert tls == TLSConfig(
        server_root_ca_cert=pki.ca_cert.read_bytes(),
        client_cert=pki.client_cert.read_bytes(),
        client_private_key=pki.client_key.read_bytes(),
        domain=SERVER_NAME,
    )


def test_tls_is_off_by_default_and_on_with_an_api_key_or_a_tls_file(pki: Pki) -> None:
    assert temporal_tls(TemporalConnectionSettings()) is False
    assert temporal_tls(TemporalConnectionSettings(temporal_api_key=SecretStr("k"))) is True
    assert temporal_tls(TemporalConnectionSettings(temporal_tls=True)) is True
    assert temporal_tls(TemporalConnectionSettings(temporal_tls_server_ca_cert=pki.ca_cert)) == TLSConfig(
        server_root_ca_cert=pki.ca_cert.read_bytes()
    )
    api_key_without_tls = TemporalConnectionSettings(temporal_api_key=SecretStr("k"), temporal_tls=False)
    assert temporal_tls(api_key_without_tls) is False


def test_the_environment_variables_fill_the_settings(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_TEMPORAL_ADDRESS", "ns.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("ESCALADE_TEMPORAL_NAMESPACE", "ns.a1b2c")
    monkeypatch.setenv("ESCALADE_TEMPORAL_TLS_SERVER_CA_CERT", str(pki.ca_cert))
    monkeypatch.setenv("ESCALADE_TEMPORAL_TLS_CLIENT_CERT", str(pki.client_cert))
    monkeypatch.setenv("ESCALADE_TEMPORAL_TLS_CLIENT_KEY", str(pki.client_key))
    monkeypatch.setenv("ESCALADE_TEMPORAL_TLS_SERVER_NAME", SERVER_NAME)
    monkeypatch.setenv("ESCALADE_TEMPORAL_API_KEY", "cloud-key")
    settings = TemporalConnectionSettings()
    assert settings.temporal_address == "ns.a1b2c.tmprl.cloud:7233"
    assert settings.temporal_namespace == "ns.a1b2c"
    assert settings.temporal_api_key == SecretStr("cloud-key")
    assert temporal_tls(settings) == temporal_tls(mtls_settings(pki, "x:1"))


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"temporal_tls_server_ca_cert": "/nonexistent/ca.pem"}, "no file at /nonexistent/ca.pem"),
        ({"temporal_tls_client_key": None}, "go together"),
        ({"temporal_tls": False}, "ESCALADE_TEMPORAL_TLS is false"),
    ],
)
def test_inconsistent_tls_settings_are_refused_with_a_reason(
    pki: Pki, changes: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        mtls_settings(pki, "temporal:7233", **changes)


def test_a_tls_file_that_became_unreadable_is_named_in_the_error(pki: Pki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca_cert.read_bytes())
    settings = TemporalConnectionSettings(temporal_tls_server_ca_cert=ca)
    ca.unlink()
    with pytest.raises(
        TemporalSettingsError, match=f"cannot read ESCALADE_TEMPORAL_TLS_SERVER_CA_CERT {ca}: "
    ):
        temporal_tls(settings)


def test_a_tls_file_without_a_pem_of_its_kind_is_named_in_the_error(pki: Pki) -> None:
    swapped = mtls_settings(pki, "temporal:7233", temporal_tls_client_key=pki.client_cert)
    with pytest.raises(
        TemporalSettingsError,
        match=f"ESCALADE_TEMPORAL_TLS_CLIENT_KEY {pki.client_cert} holds no PEM private key",
    ):
        temporal_tls(swapped)


async def test_an_unset_address_is_refused_before_connecting() -> None:
    with pytest.raises(TemporalSettingsError, match="ESCALADE_TEMPORAL_ADDRESS is not set"):
        await connect_temporal(TemporalConnectionSettings(temporal_address=None))


async def test_a_plain_connection_reaches_the_dev_server(dev_env: WorkflowEnvironment) -> None:
    client = await connect_temporal(TemporalConnectionSettings(temporal_address=target(dev_env)))
    assert client.namespace == "default"
    assert client.service_client.config.tls is False
    await client.count_workflows()


async def test_mtls_with_the_servers_ca_and_name_reaches_temporal_through_tls(
    dev_env: WorkflowEnvironment, pki: Pki
) -> None:
    async with tls_proxy(target(dev_env), pki) as proxy:
        client = await connect_temporal(
            mtls_settings(pki, proxy.address, temporal_api_key=SecretStr("cloud-key"))
        )
        await client.count_workflows()
    assert client.service_client.config.api_key == "cloud-key"
    assert isinstance(client.service_client.config.tls, TLSConfig)


async def test_tls_handshakes_that_must_fail_do(dev_env: WorkflowEnvironment, pki: Pki) -> None:
    tls_to_plain = await refused(mtls_settings(pki, target(dev_env)))  # the dev server speaks no TLS
    async with tls_proxy(target(dev_env), pki) as proxy:
        plain = await refused(TemporalConnectionSettings(temporal_address=proxy.address))
        no_client_cert = await refused(
            mtls_settings(pki, proxy.address, temporal_tls_client_cert=None, temporal_tls_client_key=None)
        )
        no_name = await refused(mtls_settings(pki, proxy.address, temporal_tls_server_name=None))
        other_ca = await refused(
            mtls_settings(pki, proxy.address, temporal_tls_server_ca_cert=pki.other_ca_cert)
        )
        await connect_temporal(mtls_settings(pki, proxy.address))  # and the right settings still connect
    assert "Failed client connect" in tls_to_plain
    assert "transport error" in plain or "connection closed" in plain  # the proxy drops a plaintext client
    # The proxy closes the connection after the handshake: reported as a transport error, or as the call
    # cancelled by the closed connection, depending on when the client notices.
    assert "transport error" in no_client_cert or "connection closed" in no_client_cert
    assert "NotValidForName" in no_name  # the certificate names temporal.escalade.test, not 127.0.0.1
    assert "UnknownIssuer" in other_ca


async def test_the_outbox_relay_delivers_a_start_over_mtls_when_the_edge_settings_say_so(
    dev_env: WorkflowEnvironment, pki: Pki, tmp_path: Path
) -> None:
    call_id = f"mtls-{uuid.uuid4()}"
    outbox = await Outbox.open(f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}")
    try:
        assert await outbox.record(EscalationReviewInput(call_id=call_id, ended_reason="hangup"))
        async with tls_proxy(target(dev_env), pki) as proxy:
            settings = EdgeSettings(
                vapi_secret=SecretStr("s" * 32),
                temporal_address=proxy.address,
                temporal_tls_server_ca_cert=pki.ca_cert,
                temporal_tls_client_cert=pki.client_cert,
                temporal_tls_client_key=pki.client_key,
                temporal_tls_server_name=SERVER_NAME,
            )
            relay = OutboxRelay(outbox, temporal_connector(settings), task_queue=f"tq-{uuid.uuid4()}")
            assert await relay.deliver_due() == 1
    finally:
        await outbox.close()
    handle = dev_env.client.get_workflow_handle(f"review-{call_id}")
    assert (await handle.describe()).id == f"review-{call_id}"


async def test_the_outbox_relay_keeps_the_start_pending_when_a_tls_file_disappears(
    pki: Pki, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca_cert.read_bytes())
    outbox = await Outbox.open(f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}")
    try:
        assert await outbox.record(EscalationReviewInput(call_id="gone", ended_reason="hangup"))
        settings = TemporalConnectionSettings(temporal_address="127.0.0.1:1", temporal_tls_server_ca_cert=ca)
        relay = OutboxRelay(outbox, temporal_connector(settings))  # the file is read here first
        ca.unlink()
        assert await relay.deliver_due() == 0
        entry = await outbox.get("review-gone")
        assert entry is not None and entry.delivered_at is None and entry.attempts == 1
    finally:
        await outbox.close()
