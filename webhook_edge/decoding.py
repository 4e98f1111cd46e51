"""Decoding a webhook request into a `VapiMessage`: media type, body limits, JSON and Vapi's envelope.

Two steps, with authentication between them (the signature covers the raw bytes, so the body is read
before it is checked, and parsed only after):

    read_body(request)  -> bytes        415 for a non-JSON media type, 413 for a body over its limit
    decode(raw)         -> VapiMessage  400 for a body that is not a Vapi message (`parse_body`)

A refusal raises `Refused` (the 4xx to answer). A transfer request is never refused: one the edge cannot
read raises `UnreadableTransfer` instead, and the webhook answers it with the fallback line, because a
4xx leaves the caller in silence.

Body limits. The type of a body is not known before it is parsed, and parsing needs all of it, so the first
`max_body_bytes` (1 MiB) are read whatever the body is. When a body goes beyond that (or declares a longer
Content-Length), the bytes read are searched for `"type": "end-of-call-report"` or
`"type": "transfer-destination-request"` (a pair inside a JSON string has escaped quotes and cannot match):

    end-of-call-report            read on with `max_report_bytes` (16 MiB) as the running limit, then the
                                  usual path (reports carry whole transcripts; long calls pass 1 MB);
                                  beyond that 413 (nobody is waiting on a report's answer)
    transfer-destination-request  not read further (`UnreadableTransfer` with no body): answered with the
                                  fallback destination. The signature covers bytes the edge refuses to
                                  buffer, so only header credentials are checked (`WebhookAuth.check`
                                  without a body); nothing is routed
    anything else                 413, with at most `max_body_bytes` plus one chunk pulled

A body that was read on as a report but parses as another type is judged by `max_body_bytes` after all.
A transfer request that is not valid JSON (recognised by the same search) is an `UnreadableTransfer` too,
after the usual authentication.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from webhook_edge.vapi_models import (
    END_OF_CALL_REPORT,
    TRANSFER_DESTINATION_REQUEST,
    BadPayload,
    VapiMessage,
    parse_body,
)

__all__ = [
    "BodyTooLarge",
    "MessageDecoder",
    "Refused",
    "UnreadableTransfer",
    "is_json_media",
    "message_kind",
    "read_limited",
]


class Refused(Exception):
    """The request is answered with this 4xx (`{"error": {"code", "message", "fields"}}`)."""

    def __init__(self, status: int, code: str, message: str, fields: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []


class UnreadableTransfer(Exception):
    """A transfer request the edge cannot read; answered with the fallback line, never a 4xx.

    `body_read` is False when the body was not read whole (too large): only header credentials can then
    be checked."""

    def __init__(self, why: str, *, body_read: bool) -> None:
        super().__init__(why)
        self.why = why
        self.body_read = body_read


class BodyTooLarge(Exception):
    """The request body exceeds the limit that applies to it; `kind` is the message type its first bytes
    name (`message_kind`), or None."""

    def __init__(self, kind: str | None) -> None:
        super().__init__(kind or "unknown")
        self.kind = kind


_KIND = re.compile(rb'"type"\s*:\s*"(end-of-call-report|transfer-destination-request)"')


def message_kind(prefix: bytes) -> str | None:
    """`end-of-call-report` or `transfer-destination-request` when a `"type": "<that>"` pair appears in the
    bytes (inside a JSON string the quotes would be escaped, so transcript text cannot match), else None."""
    found = _KIND.search(prefix)
    return found.group(1).decode("ascii") if found else None


async def read_limited(request: Request, limit: int, report_limit: int | None = None) -> bytes:
    """The body, read with a running limit (see the module docstring, "Body limits").

    Up to `limit` bytes are read whatever the body is. A body that is longer (or declares a longer
    Content-Length) is classified by `message_kind` over what was read: an `end-of-call-report` declaring no
    more than `report_limit` is read on with `report_limit` as the running limit; anything else raises
    `BodyTooLarge` (at most `limit` plus one chunk pulled).
    """
    declared: int | None = None
    header = request.headers.get("content-length")
    if header is not None:
        try:
            declared = int(header)
        except ValueError:
            declared = None
    chunks: list[bytes] = []
    size = 0
    current = limit
    extended = False

    def too_large() -> None:
        nonlocal current, extended
        kind = message_kind(b"".join(chunks))
        fits = declared is None or report_limit is None or declared <= report_limit
        if kind == END_OF_CALL_REPORT and report_limit is not None and report_limit > limit and fits:
            current, extended = report_limit, True
            return
        raise BodyTooLarge(kind)

    async for chunk in request.stream():
        size += len(chunk)
        chunks.append(chunk)
        if size > current:
            if extended:
                raise BodyTooLarge(END_OF_CALL_REPORT)
            too_large()
            if size > current:
                raise BodyTooLarge(END_OF_CALL_REPORT)
    if not extended and declared is not None and declared > limit:
        too_large()  # the body ended early; what it declared still decides
    return b"".join(chunks)


def is_json_media(content_type: str | None) -> bool:
    """True for no Content-Type, an empty one, `application/json` and any `+json` type."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or media.endswith("+json")


class MessageDecoder:
    """The two decoding steps with the edge's limits (`max_body_bytes`, `max_report_bytes`)."""

    def __init__(self, *, max_body_bytes: int, max_report_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_report_bytes = max_report_bytes

    async def read_body(self, request: Request) -> bytes:
        """The raw body; raises `Refused` (415, 413), or `UnreadableTransfer` for a too-large transfer
        request."""
        if not is_json_media(request.headers.get("content-type")):
            raise Refused(415, "unsupported_media_type", "the body must be application/json")
        try:
            return await read_limited(request, self.max_body_bytes, self.max_report_bytes)
        except BodyTooLarge as exc:
            if exc.kind == TRANSFER_DESTINATION_REQUEST:
                raise UnreadableTransfer("the body exceeds max_body_bytes", body_read=False) from None
            limit = self.max_report_bytes if exc.kind == END_OF_CALL_REPORT else self.max_body_bytes
            raise Refused(413, "payload_too_large", f"the body exceeds {limit} bytes") from None

    def decode(self, raw: bytes) -> VapiMessage:
        """The Vapi message in an authenticated body; raises `Refused` (400, 413) or `UnreadableTransfer`."""
        try:
            message = parse_body(raw)
        except BadPayload as exc:
            if message_kind(raw[: self.max_body_bytes]) == TRANSFER_DESTINATION_REQUEST:
                raise UnreadableTransfer(exc.message, body_read=True) from None
            raise Refused(400, "invalid_request", exc.message, exc.fields) from None
        if message.type != END_OF_CALL_REPORT and len(raw) > self.max_body_bytes:
            # read on because its first bytes named a report, but it is something else
            if message.type == TRANSFER_DESTINATION_REQUEST:
                raise UnreadableTransfer("the body exceeds max_body_bytes", body_read=True)
            raise Refused(413, "payload_too_large", f"the body exceeds {self.max_body_bytes} bytes")
        return message
