"""Structured logging for every Escalade process, with phone numbers and secrets masked.

    configure_logging(json=True)                      # once per process, from the CLI
    log = structlog.get_logger(__name__)
    log.info("escalation resolved", caller_number="+15551234567")   # -> caller_number="+1******4567"

Processors: merge_contextvars, add_trace_ids (OpenTelemetry trace/span id), add_log_level,
TimeStamper(iso, UTC), mask_phone_numbers, then a JSON or console renderer. Standard-library loggers
(uvicorn, grpc, temporalio, ...) go through the same chain, so their messages are masked and rendered alike.

`mask_phone_numbers` is a pure processor. Test it directly or with
`structlog.testing.capture_logs(processors=[mask_phone_numbers])`: a bare `capture_logs()` turns off the
configured processors and would miss the masking.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from escalade_platform.masking import mask_number, mask_numbers_in_text

__all__ = ["NUMBER_KEYS", "add_trace_ids", "configure_logging", "mask_phone_numbers"]

NUMBER_KEYS: frozenset[str] = frozenset(
    {
        "caller",
        "caller_number",
        "customer_number",
        "number",
        "phone",
        "phone_number",
        "from_number",
        "to_number",
        "destination_number",
    }
)
"""Keys whose string values are phone numbers: masked whole (country code and last 4 digits kept)."""
_SECRET_PARTS = ("secret", "token", "api_key", "apikey", "authorization", "signature", "password")
_SKIP = frozenset({"exc_info", "stack_info", "_record", "_from_structlog", "timestamp", "level"})
_MAX_DEPTH = 6
_HANDLER_MARK = "_escalade_handler"


def mask_phone_numbers(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Mask phone numbers (all but country code and last 4 digits) and secrets ("***") in an event."""
    masked: EventDict = {}
    for key, value in event_dict.items():
        masked[key] = value if key in _SKIP else _mask_value(str(key), value, 0)
    return masked


def _mask_exception(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Mask phone numbers in a formatted traceback (`exception`), the one value formatted after masking."""
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = mask_numbers_in_text(exception)
    return event_dict


def add_trace_ids(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """`trace_id` and `span_id` of the current OpenTelemetry span, when tracing is on and one is active."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


_SECRET, _NUMBER, _TEXT = 0, 1, 2


@functools.lru_cache(maxsize=1024)
def _key_kind(key: str) -> int:
    """What a key's values are: secrets, phone numbers, or text that may contain numbers (keys are few and
    repeat on every line, so this is decided once per key)."""
    lowered = key.lower().replace("-", "_")
    if any(part in lowered for part in _SECRET_PARTS):
        return _SECRET
    return _NUMBER if key.lower() in NUMBER_KEYS else _TEXT


def _mask_value(key: str, value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    kind = _key_kind(key)
    if kind == _SECRET:
        return "***"
    if isinstance(value, str):
        if kind == _NUMBER:
            return mask_number(value)
        return mask_numbers_in_text(value)
    if depth >= _MAX_DEPTH:
        return mask_numbers_in_text(str(value))
    if isinstance(value, MutableMapping | dict):
        return {k: _mask_value(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_mask_value(key, v, depth + 1) for v in value]
        return items if isinstance(value, list | set | frozenset) else tuple(items)
    text = str(value)
    cleaned = mask_numbers_in_text(text)
    return cleaned if cleaned != text else value


# Libraries that install handlers of their own (uvicorn's default log config gives "uvicorn" a stderr handler
# and stops propagation). Their records must reach the root handler above, or they would bypass masking.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _adopt_server_loggers() -> None:
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True


def configure_logging(*, json: bool, level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog and stdlib logging once per process (calling again replaces the setup).

    `level` is a name such as "debug", "info" or "warning"; `stream` defaults to stderr.
    """
    levelno = logging.getLevelNamesMapping().get(level.strip().upper())
    if levelno is None:
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning, error or critical")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        # Events arrive masked (below); a traceback is text only from here on, so it is masked here.
        final += [structlog.processors.format_exc_info, _mask_exception]
    else:
        final.append(mask_phone_numbers)  # the console renderer formats tracebacks itself
    final.append(renderer)

    # Masked once per event: structlog's events in its own chain (below), other libraries' records in the
    # formatter's chain for foreign records.
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), mask_phone_numbers], processors=final
        )
    )
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    _adopt_server_loggers()

    structlog.configure(
        processors=[*shared, mask_phone_numbers, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=False,
    )
