"""The codec server behind `escalade temporal codec-server`: Temporal's remote codec HTTP protocol over the
payload encryption codec, so that the Temporal UI (and `temporal workflow show --codec-endpoint ...`) shows
authorised operators the decrypted payloads that Temporal stores encrypted.

    POST /decode   {"payloads": [<Payload in protobuf JSON>, ...]}  ->  the same payloads, decrypted
    POST /encode   {"payloads": [...]}                              ->  the same payloads, encrypted

(also under a namespace segment, `/<namespace>/decode`, for an endpoint templated with `{namespace}`; every
namespace is served with the same keys.)

Each request needs `Authorization: Bearer <ESCALADE_CODEC_SERVER_TOKEN>` unless `ESCALADE_CODEC_SERVER_AUTH`
is false (meant for a server on the operator's own machine, bound to 127.0.0.1). Browsers reach it from the
Temporal UI's origin, which `ESCALADE_CODEC_SERVER_CORS_ORIGINS` must list (the preflight needs no token).
A body that is not a payload list is answered 400 with a JSON `detail`; a payload that cannot be decrypted
(unknown key, altered) 422 with the reason.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf import json_format
from pydantic import Field, SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from escalade_platform.payload_encryption import EncryptionCodec, PayloadDecryptionError
from escalade_platform.settings import PayloadEncryptionSettings

__all__ = ["CodecServerSettings", "codec_server_app"]

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]
_BEARER = HTTPBearer(auto_error=False)


class CodecServerSettings(PayloadEncryptionSettings):
    """What `escalade temporal codec-server` reads: the payload keys, where it listens and who may call it."""

    codec_server_address: str = "127.0.0.1:8081"
    """HOST:PORT the codec server listens on."""
    codec_server_token: SecretStr = SecretStr("")
    """The bearer token every request must carry (`Authorization: Bearer <token>`); required unless
    `ESCALADE_CODEC_SERVER_AUTH` is false."""
    codec_server_auth: bool = True
    """false: serve without a token; only for a server that no one but the operator reaches (127.0.0.1 on
    the operator's machine, as `escalade dev` runs it)."""
    codec_server_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"]
    )
    """Origins of the Temporal UI allowed to call the server from a browser, as a JSON list (the defaults are
    the dev server's UI)."""


def codec_server_app(codec: EncryptionCodec, *, token: str, cors_origins: Sequence[str]) -> FastAPI:
    """The codec server's application; an empty `token` serves every caller (auth turned off)."""
    app = FastAPI(title="Escalade codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cors_origins),
        allow_credentials=True,
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        if not token:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def transformed(request: Request, transform: Transform) -> JSONResponse:
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise HTTPException(
                status_code=400, detail=f'the body must be {{"payloads": [...]}} in protobuf JSON: {exc}'
            ) from None
        try:
            result = Payloads(payloads=await transform(payloads.payloads))
        except PayloadDecryptionError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return JSONResponse(json_format.MessageToDict(result))

    @app.post("/decode", dependencies=[Depends(authorised)])
    @app.post("/{namespace}/decode", dependencies=[Depends(authorised)])
    async def decode(request: Request) -> JSONResponse:
        return await transformed(request, codec.decode)

    @app.post("/encode", dependencies=[Depends(authorised)])
    @app.post("/{namespace}/encode", dependencies=[Depends(authorised)])
    async def encode(request: Request) -> JSONResponse:
        return await transformed(request, codec.encode)

    return app
