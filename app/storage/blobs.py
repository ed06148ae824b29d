"""The bytes of files, in a store chosen by URL (as the database and the broker are).

``file:///path`` keeps them on local disk, ``s3://bucket`` in any S3-compatible server;
both through obstore, one code path. Names are content-addressed
(``sha256/ab/abcdef...``): nothing the user sent ever becomes part of a path. A body is
streamed: written as it arrives (multipart for S3), hashed on the way, and cut off one
byte past its limit; memory holds a few chunks, never the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, from_url

# Parts of a multipart write held at once: bounds memory to about CHUNK * CONCURRENCY.
CHUNK_BYTES = 5 * 1024 * 1024
CONCURRENCY = 2


class TooLarge(Exception):
    """The body ran past the size it was allowed."""


@dataclass(frozen=True)
class Stored:
    key: str
    sha256: str
    size: int


def content_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256}"


class Blobs:
    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme == "file":
            root = Path(parsed.path)
            root.mkdir(parents=True, exist_ok=True)
            self.store: Any = LocalStore(root)
        elif parsed.scheme == "s3":
            self.store = from_url(url, **dict(options or {}))
        else:
            raise ValueError(f"Unsupported STORAGE_URL scheme: {parsed.scheme or url!r}")

    async def put(self, chunks: AsyncIterable[bytes], limit: int) -> Stored:
        """Write a stream under its content hash; ``TooLarge`` past ``limit`` bytes."""
        incoming = f"incoming/{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"more than {limit} bytes")
                digest.update(chunk)
                yield chunk

        try:
            await obstore.put_async(
                self.store,
                incoming,
                counted(),
                chunk_size=CHUNK_BYTES,
                max_concurrency=CONCURRENCY,
            )
        except BaseException:
            await self._discard(incoming)
            raise
        key = content_key(digest.hexdigest())
        # Same name, same bytes: overwriting an existing copy changes nothing.
        await obstore.rename_async(self.store, incoming, key)
        return Stored(key, digest.hexdigest(), size)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        result = await obstore.get_async(self.store, key)
        async for chunk in result.stream(min_chunk_size=256 * 1024):
            yield bytes(chunk)

    async def delete(self, key: str) -> None:
        await self._discard(key)

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self.store, key)
        except (NotFoundError, FileNotFoundError):
            return False
        return True

    async def _discard(self, key: str) -> None:
        with contextlib.suppress(NotFoundError, FileNotFoundError):
            await obstore.delete_async(self.store, key)
