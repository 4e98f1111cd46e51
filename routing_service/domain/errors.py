"""Errors raised by the routing domain and its use cases.

    EscalationError
     ├── InvalidRequest      bad input; carries (field, description) violations
     ├── NotFound            an id that is not on record
     ├── Conflict            the state forbids the operation (e.g. finishing a finished callback)
     └── Unavailable         a dependency (the store) cannot be reached right now

Adapters map them in one place each: `routing_service.grpc.errors` to gRPC status codes, the CLI to
readable messages.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Conflict", "EscalationError", "InvalidRequest", "NotFound", "Unavailable"]


class EscalationError(Exception):
    """Base class of every error the routing domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(EscalationError):
    def __init__(self, message: str, violations: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.violations: tuple[tuple[str, str], ...] = tuple(violations)


class NotFound(EscalationError):
    pass


class Conflict(EscalationError):
    pass


class Unavailable(EscalationError):
    pass
