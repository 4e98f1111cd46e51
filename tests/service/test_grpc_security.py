"""The routing service's TLS, mutual TLS and per-role authorization, against a real server on an ephemeral
port: handshakes with the right and a wrong CA, certificates rotated while serving, every method of the
proto called by every role (allowed or PERMISSION_DENIED as `METHOD_ROLES` says), missing and wrong
credentials (UNAUTHENTICATED), health open, reflection off or authenticated, tokens kept out of the logs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from escalade_platform.routing_channel import RoutingChannelError, routing_channel
from escalade_platform.settings import RoutingClientSettings
from routing_service.grpc.authorization import METHOD_ROLES, Authorizer, guard_authorization
from routing_service.grpc.server import RoutingServer, warn_if_exposed
from routing_service.settings import Role, RoutingSettings
from tests.service.grpc_helpers import TECHCORP
from tests.service.security_support import TOKENS, Pki, client, issue, serving
from workflows.settings import WorkerSettings

_SERVICE = pb.DESCRIPTOR.services_by_name["RoutingService"]
_AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return issue(tmp_path_factory.mktemp("pki"))


def _tls(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {"routing_server_cert": pki.server_cert, "routing_server_key": pki.server_key, **extra}


def _tokens() -> dict[str, Any]:
    return {"routing_tokens": dict(TOKENS)}


async def _health(settings: RoutingClientSettings) -> int:
    async with routing_channel(settings) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return int(reply.status)


async def _code_of(stub: Any, method: str) -> grpc.StatusCode:
    """The status `method` answers an empty request with (OK when it answers)."""
    request = getattr(pb, _SERVICE.methods_by_name[method].input_type.name)()
    try:
        if _SERVICE.methods_by_name[method].server_streaming:
            call = getattr(stub, method)(request, timeout=0.5)
            async for _ in call:
                break
        else:
            await getattr(stub, method)(request, timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


# --------------------------------------------------------------------------------------------------------
# The method table
# --------------------------------------------------------------------------------------------------------
def test_every_rpc_of_the_proto_has_roles_in_the_method_table() -> None:
    methods = {method.name for method in _SERVICE.methods}
    assert set(METHOD_ROLES) == methods
    assert all(METHOD_ROLES[name] for name in methods), "a method no role may call"


def test_a_method_missing_from_the_table_cannot_be_registered() -> None:
    handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(lambda r, c: None)
    with pytest.raises(LookupError, match="NewMethod has no entry"):
        guard_authorization("NewMethod", handler, Authorizer({Role.EDGE: [TOKENS["edge"]]}))


# --------------------------------------------------------------------------------------------------------
# TLS and mutual TLS
# --------------------------------------------------------------------------------------------------------
async def test_tls_handshake_succeeds_with_the_ca_that_signed_the_server(sqlite_url: str, pki: Pki) -> None:
    async with serving(sqlite_url, **_tls(pki)) as server:
        assert server.certificates is not None
        assert await _health(client(server, routing_ca=pki.ca)) == health_pb2.HealthCheckResponse.SERVING


async def test_tls_handshake_fails_with_another_ca_or_in_plaintext(sqlite_url: str, pki: Pki) -> None:
    async with serving(sqlite_url, **_tls(pki)) as server:
        for settings in (client(server, routing_ca=pki.other_ca), client(server)):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _health(settings)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_server_name_override_checks_the_certificate_against_that_name(
    sqlite_url: str, pki: Pki
) -> None:
    async with serving(sqlite_url, **_tls(pki)) as server:
        right = client(server, routing_ca=pki.ca, routing_server_name="localhost")
        assert await _health(right) == health_pb2.HealthCheckResponse.SERVING
        wrong = client(server, routing_ca=pki.ca, routing_server_name="elsewhere.example")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _health(wrong)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_refuses_a_client_without_a_certificate(sqlite_url: str, pki: Pki) -> None:
    async with serving(sqlite_url, **_tls(pki, routing_client_ca=pki.ca)) as server:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _health(client(server, routing_ca=pki.ca))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        cert, key = pki.clients["edge.internal"]
        with_cert = client(server, routing_ca=pki.ca, routing_client_cert=cert, routing_client_key=key)
        assert await _health(with_cert) == health_pb2.HealthCheckResponse.SERVING


async def test_mutual_tls_identity_maps_the_certificate_name_to_its_role(sqlite_url: str, pki: Pki) -> None:
    security = _tls(pki, routing_client_ca=pki.ca, routing_cert_roles={"reader": ["edge.internal"]})
    async with serving(sqlite_url, **security) as server:
        for name, expected in (
            ("edge.internal", grpc.StatusCode.OK),
            ("stranger.internal", grpc.StatusCode.UNAUTHENTICATED),
        ):
            cert, key = pki.clients[name]
            settings = client(server, routing_ca=pki.ca, routing_client_cert=cert, routing_client_key=key)
            async with routing_channel(settings) as channel:
                stub = routing_pb2_grpc.RoutingServiceStub(channel)
                assert await _code_of(stub, "ListAgents") == expected, name
                if name == "edge.internal":  # a reader may list, not administer
                    assert await _code_of(stub, "UpsertAgent") == grpc.StatusCode.PERMISSION_DENIED
                    denied = stub.UpsertAgent(pb.UpsertAgentRequest(), timeout=5)
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await denied
                    assert "role reader may not call UpsertAgent" in (refused.value.details() or "")
                else:
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.ListAgents(pb.ListAgentsRequest(), timeout=5)
                    assert "stranger.internal" in (refused.value.details() or "")


async def test_a_rotated_server_certificate_is_served_to_new_connections(
    sqlite_url: str, pki: Pki, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(pki.server_cert, served / "server.pem")
    shutil.copy(pki.server_key, served / "server.key")
    security = {"routing_server_cert": served / "server.pem", "routing_server_key": served / "server.key"}
    async with serving(sqlite_url, **security) as server:
        assert await _health(client(server, routing_ca=pki.ca)) == health_pb2.HealthCheckResponse.SERVING
        renewed = issue(tmp_path / "renewed", client_names=())
        shutil.copy(renewed.server_key, served / "server.key")
        shutil.copy(renewed.server_cert, served / "server.pem")
        assert await _health(client(server, routing_ca=renewed.ca)) == health_pb2.HealthCheckResponse.SERVING
        assert server.certificates is not None and server.certificates.reloads == 1
        with pytest.raises(grpc.aio.AioRpcError):
            await _health(client(server, routing_ca=pki.ca))  # the old CA no longer matches
        (served / "server.pem").write_text("half-copied")  # unreadable as PEM: the last good pair stays
        assert await _health(client(server, routing_ca=renewed.ca)) == health_pb2.HealthCheckResponse.SERVING
        assert server.certificates.reloads == 1


async def test_files_that_hold_no_pem_are_refused_naming_the_setting(
    sqlite_url: str, pki: Pki, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    no_certificate = r"ESCALADE_ROUTING_SERVER_CERT .* holds no PEM certificate"
    with pytest.raises(RoutingChannelError, match=no_certificate):
        async with serving(sqlite_url, routing_server_cert=garbage, routing_server_key=pki.server_key):
            pass
    with pytest.raises(RoutingChannelError, match=r"ESCALADE_ROUTING_CLIENT_KEY .* holds no PEM private key"):
        routing_channel(
            RoutingClientSettings(routing_client_cert=pki.server_cert, routing_client_key=pki.server_cert)
        )


# --------------------------------------------------------------------------------------------------------
# Tokens and roles
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [role.value for role in Role])
async def test_each_role_may_call_its_methods_and_is_denied_the_others(
    sqlite_url: str, pki: Pki, role: str
) -> None:
    async with serving(sqlite_url, **_tls(pki), **_tokens()) as server:
        settings = client(server, routing_ca=pki.ca, routing_token=TOKENS[role])
        async with routing_channel(settings) as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            for method, roles in METHOD_ROLES.items():
                code = await _code_of(stub, method)
                if Role(role) in roles:
                    assert code not in _AUTH_CODES, f"{role} refused {method}"
                else:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, f"{role} got {code} from {method}"


async def test_a_token_listed_under_two_roles_holds_both(sqlite_url: str) -> None:
    shared = "operator-token-0123456789abcdef"
    tokens = {"agent": shared, "admin": [shared]}
    async with (
        serving(sqlite_url, routing_tokens=tokens) as server,
        routing_channel(client(server, routing_token=shared)) as channel,
    ):
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        assert await _code_of(stub, "SetAgentStatus") not in _AUTH_CODES
        assert await _code_of(stub, "UpsertAgent") not in _AUTH_CODES
        assert await _code_of(stub, "ResolveEscalation") == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ((), "no credentials"),
        ((("authorization", "Bearer not-a-configured-token-at-all"),), "not one this server accepts"),
        ((("authorization", f"Bearer {TOKENS['admin']}x"),), "not one this server accepts"),
        ((("authorization", f"Basic {TOKENS['admin']}"),), "must read 'Bearer <token>'"),
        ((("authorization", "Bearer "),), "must read 'Bearer <token>'"),
    ],
)
async def test_missing_wrong_or_malformed_credentials_are_unauthenticated(
    sqlite_url: str, metadata: tuple[tuple[str, str], ...], says: str
) -> None:
    async with (
        serving(sqlite_url, **_tokens()) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ListAgents(pb.ListAgentsRequest(), metadata=metadata, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert says in (refused.value.details() or "")
        watch = stub.WatchAvailability(pb.WatchAvailabilityRequest(), metadata=metadata, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in watch:
                pass
        assert streamed.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_tokens_never_reach_the_logs(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "a-wrong-token-that-must-not-be-logged"
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        async with serving(sqlite_url, **_tokens()) as server:
            for token in (wrong, TOKENS["edge"], TOKENS["reader"]):
                async with routing_channel(client(server, routing_token=token)) as channel:
                    stub = routing_pb2_grpc.RoutingServiceStub(channel)
                    await _code_of(stub, "ListAgents")
                    await _code_of(stub, "UpsertAgent")
    refusals = [entry for entry in logs if entry["event"] == "routing_call_refused"]
    assert {entry["code"] for entry in refusals} == {"UNAUTHENTICATED", "PERMISSION_DENIED"}
    text = json.dumps(logs, default=str) + caplog.text
    for token in (wrong, *TOKENS.values()):
        assert token not in text


async def test_health_answers_without_credentials_when_authorization_is_on(sqlite_url: str, pki: Pki) -> None:
    async with serving(sqlite_url, **_tls(pki), **_tokens()) as server:
        assert await _health(client(server, routing_ca=pki.ca)) == health_pb2.HealthCheckResponse.SERVING


async def test_without_tokens_or_certificate_roles_every_caller_may_call_everything(
    sqlite_url: str,
) -> None:
    async with serving(sqlite_url) as server, routing_channel(client(server)) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        for method in METHOD_ROLES:
            assert await _code_of(stub, method) not in _AUTH_CODES, method


async def test_the_workers_settings_reach_routing_with_tls_and_the_worker_role(
    sqlite_url: str, pki: Pki
) -> None:
    async with serving(sqlite_url, **_tls(pki), **_tokens()) as server:
        settings = WorkerSettings(
            routing_address=f"127.0.0.1:{server.port}",
            routing_ca=pki.ca,
            routing_token=SecretStr(TOKENS["worker"]),
        )
        async with routing_channel(settings) as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            assert await _code_of(stub, "ListCallbacks") == grpc.StatusCode.OK
            assert await _code_of(stub, "WatchAvailability") == grpc.StatusCode.DEADLINE_EXCEEDED
            assert await _code_of(stub, "UpsertAgent") == grpc.StatusCode.PERMISSION_DENIED


# --------------------------------------------------------------------------------------------------------
# Reflection
# --------------------------------------------------------------------------------------------------------
async def _reflected_services(channel: grpc.aio.Channel) -> set[str]:
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names: set[str] = set()
    async for response in call:
        names |= {service.name for service in response.list_services_response.service}
    return names


async def test_reflection_is_off_when_authorization_is_on(sqlite_url: str) -> None:
    async with (
        serving(sqlite_url, **_tokens()) as server,
        routing_channel(client(server, routing_token=TOKENS["admin"])) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _reflected_services(channel)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_enabled_with_authorization_answers_authenticated_callers_only(
    sqlite_url: str,
) -> None:
    async with serving(sqlite_url, routing_reflection=True, **_tokens()) as server:
        async with routing_channel(client(server)) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _reflected_services(anonymous)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        async with routing_channel(client(server, routing_token=TOKENS["reader"])) as channel:
            assert _SERVICE.full_name in await _reflected_services(channel)


# --------------------------------------------------------------------------------------------------------
# Settings and the start-up warning
# --------------------------------------------------------------------------------------------------------
def _settings(**fields: Any) -> RoutingSettings:
    return RoutingSettings(policy=TECHCORP, **fields)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"routing_tokens": {"editor": "x" * 20}}, "unknown role 'editor'"),
        ({"routing_tokens": {"edge": "short"}}, "shorter than 16 characters"),
        ({"routing_tokens": {"edge": "with spaces inside it"}}, "holds spaces"),
        ({"routing_cert_roles": {"reader": ["x"]}}, "needs ESCALADE_ROUTING_CLIENT_CA"),
    ],
)
def test_bad_security_settings_are_refused_without_echoing_tokens(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(**fields)
    assert says in str(refused.value)
    assert "x" * 20 not in str(refused.value) and "short" not in str(refused.value).replace("shorter", "")


def test_a_certificate_without_its_key_is_refused(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="go together"):
        _settings(routing_server_cert=pki.server_cert)
    with pytest.raises(ValidationError, match="needs ESCALADE_ROUTING_SERVER_CERT"):
        _settings(routing_client_ca=pki.ca)


def test_the_tokens_file_adds_to_the_tokens_setting(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    in_file = {"edge": "file-edge-token-0123456789", "admin": ["file-admin-token-01234567"]}
    path.write_text(json.dumps(in_file))
    settings = _settings(routing_tokens={"edge": TOKENS["edge"]}, routing_tokens_file=path)
    tokens = {role: [t.get_secret_value() for t in held] for role, held in settings.routing_tokens.items()}
    assert tokens == {
        "edge": [TOKENS["edge"], "file-edge-token-0123456789"],
        "admin": ["file-admin-token-01234567"],
    }
    authorizer = Authorizer.from_settings(settings)
    assert authorizer is not None and authorizer.roles_of_token("file-admin-token-01234567") == {Role.ADMIN}
    path.write_text('{"edge": "secret-but-not-json')
    with pytest.raises(ValidationError) as refused:
        _settings(routing_tokens_file=path)
    assert "not valid JSON" in str(refused.value) and "secret-but" not in str(refused.value)


@pytest.mark.parametrize(
    ("address", "fields", "event"),
    [
        ("0.0.0.0:50051", {}, "routing_authorization_off"),
        ("10.0.0.5:50051", _tokens(), "routing_tokens_in_plaintext"),
        ("127.0.0.1:50051", {}, None),
        ("localhost:50051", {}, None),
        ("[::1]:50051", {}, None),
    ],
)
def test_serving_beyond_loopback_without_authorization_is_warned_once(
    address: str, fields: dict[str, Any], event: str | None
) -> None:
    with capture_logs() as logs:
        warn_if_exposed(_settings(routing_address=address, **fields))
    assert [entry["event"] for entry in logs] == ([event] if event else [])
    assert all(entry["log_level"] == "warning" for entry in logs)


async def test_start_up_log_says_what_security_is_on(sqlite_url: str, pki: Pki) -> None:
    with capture_logs() as logs:
        async with serving(sqlite_url, **_tls(pki, routing_client_ca=pki.ca), **_tokens()):
            pass
    [started] = [entry for entry in logs if entry["event"] == "routing_started"]
    assert (started["tls"], started["access"], started["reflection"]) == ("mutual", "by role", "off")


def test_server_object_reports_plaintext_without_certificates(sqlite_url: str) -> None:
    assert RoutingServer(_settings(database_url=sqlite_url)).certificates is None
