"""schemathesis against the edge's own OpenAPI schema (`app.openapi()`, served at /openapi.json) over real
HTTP: every generated request, unsigned as generated and again signed with the webhook secret, gets an
answer below 500, and every rejection is JSON with a code and a reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Result
from schemathesis.schemas import APIOperation

from tests.edge.edge_support import signed_headers
from tests.hostile.hostile_support import LiveEdge, assert_no_server_error, live_edge, usable_destination

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEdge]:
    with live_edge(Path(tmp_path_factory.mktemp("openapi-fuzz"))) as edge:
        yield edge


@pytest.fixture(scope="module")
def http(live: LiveEdge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def body_bytes(case: Any) -> bytes:
    body = case.body
    if body is None or type(body).__name__ == "NotSet":
        return b""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def _operation(
    result: Result[APIOperation[Any, Any, Any, Any], InvalidSchema],
) -> APIOperation[Any, Any, Any, Any]:
    """The operation, or the schema error that kept schemathesis from building it."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def operations_strategy(url: str) -> st.SearchStrategy[Any]:
    """Cases for every operation of the schema the running edge serves (schemathesis' generator; its
    pytest integration is not used)."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [_operation(result) for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {("POST", "/webhook/vapi")}
    return st.one_of(*(op.as_strategy() for op in operations))


def test_no_5xx_and_json_reasons_when_schemathesis_generates_requests(
    live: LiveEdge, http: httpx.Client
) -> None:
    seen: list[tuple[str, str, int, int]] = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(operations_strategy(live.url))
    def check(case: Any) -> None:
        response = case.call(base_url=live.url)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500

        raw = body_bytes(case)
        signed = http.request(
            case.method, case.formatted_path, content=raw, headers=signed_headers(raw), params=case.query
        )
        assert_no_server_error(signed)
        seen.append((case.method.upper(), case.path, response.status_code, signed.status_code))
        message = case.body.get("message") if isinstance(case.body, dict) else None
        if (
            case.method.upper() == "POST"
            and signed.status_code == 200
            and isinstance(message, dict)
            and message.get("type") == "transfer-destination-request"
        ):
            usable_destination(signed)

    check()
    # the signed half reached past authentication: some bodies parsed, some were refused as invalid
    signed_codes = {code for method, _, _, code in seen if method == "POST"}
    assert 200 in signed_codes and 400 in signed_codes, sorted(set(seen))
