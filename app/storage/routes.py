"""The endpoints the signed file URLs point at.

``POST /files/upload/{token}``: the bytes of one file, streamed to storage; 201
``{"fileId"}``. ``GET /files/{token}``: the bytes back, with headers that keep a browser
from running them. Every refusal is a small JSON error with ``extensions.code``; a bad,
used, expired or foreign token is 403, whatever the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app import tenancy
from app.errors import BAD_USER_INPUT, FORBIDDEN
from app.ids import parse_id
from app.services import Services
from app.storage import signing
from app.storage.blobs import TooLarge
from app.transaction import transact
from app.tx import Tx

if TYPE_CHECKING:
    from app.view import ServicesRef

# Shown in the browser rather than downloaded: types a browser will not execute.
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "text/plain"}
)


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status
    )


def _forbidden() -> Response:
    return _error(403, FORBIDDEN, "This link is not valid (anymore)")


def file_routes(ref: ServicesRef) -> list[Route]:
    async def upload(request: Request) -> Response:
        return await _upload(ref.get(), request)

    async def download(request: Request) -> Response:
        return await _download(ref.get(), request)

    return [
        Route("/files/upload/{token}", upload, methods=["POST"]),
        Route("/files/{token}", download, methods=["GET"]),
    ]


async def _upload(services: Services, request: Request) -> Response:
    settings = services.settings
    claims = signing.verify(settings.secret_key, signing.UPLOAD, request.path_params["token"])
    if claims is None or await _ticket_used(services, claims):
        return _forbidden()
    declared_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if declared_type != claims["t"]:
        return _error(415, BAD_USER_INPUT, f"Content-Type must be {claims['t']}")
    size: int = claims["s"]
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > size:
        return _error(413, BAD_USER_INPUT, f"The body is larger than the declared {size} bytes")
    try:
        stored = await services.blobs.put(request.stream(), limit=size)
    except TooLarge:
        return _error(413, BAD_USER_INPUT, f"The body is larger than the declared {size} bytes")
    if stored.size != size:
        return _error(400, BAD_USER_INPUT, f"The body has {stored.size} bytes, not {size}")

    File = services.domain.require_files()

    async def record(tx: Tx) -> int:
        file = File(
            workspace_id=claims["w"],
            uploader_id=claims["u"],
            name=claims["n"],
            content_type=claims["t"],
            size=stored.size,
            sha256=stored.sha256,
            storage_key=stored.key,
            ticket=claims["k"],
        )
        tx.add(file)
        await tx.flush()
        assert file.id is not None
        file_id: int = file.id
        return file_id

    try:
        async with services.drain.track():
            file_id, batch = await transact(
                services.db,
                record,
                workspace_id=claims["w"],
                retries=settings.transaction_retries,
            )
            if batch is not None:
                services.live.committed(batch)
    except IntegrityError:
        # The same ticket, raced by two uploads: the other one won.
        return _forbidden()
    return JSONResponse({"fileId": str(file_id)}, status_code=201)


async def _ticket_used(services: Services, claims: dict[str, Any]) -> bool:
    File = services.domain.require_files()
    async with services.db.reading() as session:
        tenancy.scope(session.sync_session, claims["w"])
        found = (await session.exec(select(File.id).where(File.ticket == claims["k"]))).first()
    return found is not None


async def _download(services: Services, request: Request) -> Response:
    settings = services.settings
    claims = signing.verify(settings.secret_key, signing.DOWNLOAD, request.path_params["token"])
    ident = parse_id(claims.get("f")) if claims else None
    if claims is None or ident is None:
        return _forbidden()
    File = services.domain.require_files()
    async with services.db.reading() as session:
        # Scoped to the workspace the link was made for: another's file is not found.
        tenancy.scope(session.sync_session, claims["w"])
        file = (await session.exec(select(File).where(File.id == ident))).first()
    if file is None:
        return _forbidden()
    inline = file.content_type in INLINE_TYPES
    disposition = "inline" if inline else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(file.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=300",
        "Content-Length": str(file.size),
    }
    return StreamingResponse(
        _chunks(services, file.storage_key), media_type=file.content_type, headers=headers
    )


async def _chunks(services: Services, key: str) -> AsyncIterator[bytes]:
    async for chunk in services.blobs.stream(key):
        yield chunk
        # Let other tasks run between chunks of a large file.
        await asyncio.sleep(0)
