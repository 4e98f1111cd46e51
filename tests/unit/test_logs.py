"""Logging: phone numbers and secrets are masked in real structlog and stdlib output."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from structlog.testing import capture_logs

from escalade_platform.logs import configure_logging, mask_phone_numbers


def test_processor_masks_numbers_and_secrets_when_called_directly() -> None:
    event = mask_phone_numbers(
        None,
        "info",
        {
            "event": "call from +15551234567 transferred to +44 20 7946 0000",
            "caller_number": "+15551234567",
            "customer_number": "+0987654321",
            "number": "5551234567",
            "api_key": "sk-live-123",
            "x-vapi-signature": "abc",
            "Authorization": "Bearer t",
            "vapi_secret": "s3cret",
            "count": 15551234567,
            "ok": True,
            "nested": {"phone": "+15550100100", "note": ["ring +15550100200"], "token": "t"},
        },
    )
    assert event["event"] == "call from +1******4567 transferred to +44******0000"
    assert event["caller_number"] == "+1******4567"
    assert event["customer_number"] == "+******4321"
    assert event["number"] == "******4567"
    assert (
        event["api_key"]
        == event["x-vapi-signature"]
        == event["Authorization"]
        == event["vapi_secret"]
        == "***"
    )
    assert event["count"] == 15551234567 and event["ok"] is True
    assert event["nested"] == {"phone": "+1******0100", "note": ["ring +1******0200"], "token": "***"}


def test_processor_masks_numbers_when_used_with_capture_logs() -> None:
    with capture_logs(processors=[mask_phone_numbers]) as logs:
        structlog.get_logger().info(
            "resolved", caller_number="+15551234567", reason="callback for +15550100100"
        )
    assert logs == [
        {
            "event": "resolved",
            "caller_number": "+1******4567",
            "reason": "callback for +1******0100",
            "log_level": "info",
        }
    ]


def test_processor_masks_objects_whose_text_holds_a_number_when_logged() -> None:
    class Customer:
        def __str__(self) -> str:
            return "Customer(+15551234567)"

    event = mask_phone_numbers(None, "info", {"event": "x", "customer": Customer(), "when": 3.5})
    assert event["customer"] == "Customer(+1******4567)"
    assert event["when"] == 3.5


@pytest.mark.usefixtures("restore_logging")
def test_json_output_is_masked_for_structlog_and_stdlib_when_configured() -> None:
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    with structlog.contextvars.bound_contextvars(call_id="call-1"):
        structlog.get_logger("escalade.test").info("escalation", caller_number="+15551234567", api_key="k")
    logging.getLogger("uvicorn.error").warning("caller %s hung up", "+15550100100")
    structlog.get_logger().debug("not shown +15550100300")
    try:
        raise RuntimeError("lookup failed for +15550100400")
    except RuntimeError:
        structlog.get_logger().exception("boom")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    first, second, third = lines
    assert first["caller_number"] == "+1******4567"
    assert first["api_key"] == "***"
    assert first["call_id"] == "call-1"
    assert first["level"] == "info" and first["timestamp"].endswith("Z")
    assert second["event"] == "caller +1******0100 hung up"
    assert second["level"] == "warning"
    assert "+1******0400" in third["exception"] and "+15550100400" not in third["exception"]
    for raw in ("+15551234567", "+15550100100", "+15550100300", "+15550100400"):
        assert raw not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_console_output_is_masked_when_configured_twice() -> None:
    configure_logging(json=True, stream=io.StringIO())
    stream = io.StringIO()
    configure_logging(json=False, level="DEBUG", stream=stream)
    structlog.get_logger().debug("dialling", number="+15551234567")
    text = stream.getvalue()
    assert "dialling" in text and "number=+1******4567" in text
    assert len([h for h in logging.getLogger().handlers if getattr(h, "_escalade_handler", False)]) == 1


def test_configure_logging_rejects_an_unknown_level_when_given_one() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(json=True, level="chatty")


@pytest.mark.usefixtures("restore_logging")
def test_uvicorn_records_are_masked_when_uvicorn_configured_its_own_handlers_first() -> None:
    import logging.config

    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)  # what uvicorn.Config does with its default log_config
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    logging.getLogger("uvicorn.error").warning("caller %s hung up", "+15550100100")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["caller +1******0100 hung up"]
