"""Large documents: refused within the token limit on every transport, without stalling
anyone else, and held by caches bounded in bytes.

A document is parsed with the token limit before anything else looks at it; a 900 KB
document once took seconds to parse, whole, on the event loop, and every other client
waited that long for a trivial query.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets

from app.schema import documents
from app.schema.documents import WeightedLRU, parse_document
from app.schema.limits import MAX_TOKENS
from tests.harness import Server, User

LARGE_BYTES = 900_000
FIELD = "viewer { id } "
PROBE = "{ __typename }"
PROBES = 20
# A probe answers in milliseconds on an idle server. The bound leaves room for a loaded
# 2-core machine; a document parsed whole, without the limit, takes seconds.
PROBE_BOUND_S = 1.0
ANSWER_TIMEOUT_S = 30.0
_sequence = itertools.count()


def large(live: bool) -> str:
    """A distinct ~900 KB document (no cache helps), far over the token limit."""
    head = f"query Big{next(_sequence)} {'@live ' if live else ''}{{ "
    return head + FIELD * ((LARGE_BYTES - len(head)) // len(FIELD)) + "}"


def codes(errors: list[dict[str, Any]]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in errors]


# -- one large document per transport ---------------------------------------------------


async def over_http(
    server: Server, user: User, query: str, client: httpx.AsyncClient
) -> list[dict[str, Any]]:
    response = await client.post(server.http, json={"query": query}, headers=user.headers)
    assert response.status_code == 200, response.text
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


async def over_sse(
    server: Server, user: User, query: str, client: httpx.AsyncClient
) -> list[dict[str, Any]]:
    headers = {**user.headers, "accept": "text/event-stream"}
    async with client.stream(
        "POST", server.http, json={"query": query}, headers=headers
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:") and line[5:].strip():
                errors: list[dict[str, Any]] = json.loads(line[5:])["errors"]
                return errors
    raise AssertionError("the event stream ended without a result")


class Socket:
    """One WebSocket, graphql-transport-ws or the legacy graphql-ws, as a user."""

    def __init__(self, ws: websockets.ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.legacy = protocol == "graphql-ws"
        self.ids = itertools.count(1)

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, server: Server, user: User, protocol: str) -> AsyncIterator[Socket]:
        async with websockets.connect(
            server.ws,
            subprotocols=[protocol],  # type: ignore[list-item]
            max_size=None,
        ) as ws:
            init = {"authorization": f"Bearer {user.token}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
            assert ack["type"] == "connection_ack", ack
            yield cls(ws, protocol)

    async def errors(self, query: str) -> list[dict[str, Any]]:
        """The errors the server answers ``query`` with."""
        op = str(next(self.ids))
        kind = "start" if self.legacy else "subscribe"
        await self.ws.send(json.dumps({"id": op, "type": kind, "payload": {"query": query}}))
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("id") != op:
                    continue
                if message["type"] == "error":
                    payload = message["payload"]
                    return payload if isinstance(payload, list) else [payload]
                if message["type"] in ("next", "data"):
                    errors: list[dict[str, Any]] = message["payload"]["errors"]
                    return errors
                raise AssertionError(f"unexpected {message}")


async def over_websocket(
    server: Server, user: User, query: str, protocol: str
) -> list[dict[str, Any]]:
    async with Socket.connect(server, user, protocol) as socket:
        return await socket.errors(query)


@pytest.mark.parametrize("live", [True, False], ids=["live", "not-live"])
@pytest.mark.parametrize("transport", ["http", "sse", "graphql-transport-ws", "graphql-ws"])
async def test_a_document_over_the_token_limit_is_a_parse_error(
    sqlite_server: Server, transport: str, live: bool
) -> None:
    user = await sqlite_server.sign_up("large")
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client:
        if transport == "http":
            errors = await over_http(sqlite_server, user, large(live), client)
        elif transport == "sse":
            errors = await over_sse(sqlite_server, user, large(live), client)
        else:
            errors = await over_websocket(sqlite_server, user, large(live), transport)
    assert codes(errors) == ["GRAPHQL_PARSE_FAILED"], errors
    assert f"more than {MAX_TOKENS} tokens" in errors[0]["message"]


async def test_a_large_document_within_the_token_limit_still_answers(
    sqlite_server: Server,
) -> None:
    """The limit counts tokens, not bytes: a long comment is one token."""
    user = await sqlite_server.sign_up("within")
    query = "query @live { viewer { id } } # " + "x" * LARGE_BYTES
    for errors_or_data in (
        await sqlite_server.post(query, user=user),
        await sqlite_server.post(query.replace("@live", ""), user=user),
    ):
        assert errors_or_data == {"data": {"viewer": {"id": user.id}}}


# -- a small request stays fast ---------------------------------------------------------


async def probe_waits(server: Server, client: httpx.AsyncClient) -> list[float]:
    """How long each of ``PROBES`` trivial queries, one after the other, waits."""
    waits: list[float] = []
    for _ in range(PROBES):
        started = time.perf_counter()
        response = await client.post(server.http, json={"query": PROBE})
        waits.append(time.perf_counter() - started)
        assert response.json() == {"data": {"__typename": "Query"}}
    return waits


class Flood:
    """Large documents from one client, one after the other, until cancelled."""

    def __init__(self, send: Callable[[], Awaitable[list[dict[str, Any]]]]) -> None:
        self.send = send
        self.started = asyncio.Event()
        self.answered = asyncio.Event()

    async def run(self) -> None:
        while True:
            self.started.set()
            errors = await self.send()
            assert codes(errors) == ["GRAPHQL_PARSE_FAILED"], errors
            self.answered.set()


async def test_small_requests_stay_fast_while_large_documents_arrive(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    user = await server.sign_up("flood")
    async with (
        httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client,
        Socket.connect(server, user, "graphql-transport-ws") as modern,
        Socket.connect(server, user, "graphql-ws") as legacy,
    ):
        idle = await probe_waits(server, client)
        senders: list[Callable[[], Awaitable[list[dict[str, Any]]]]] = [
            lambda: modern.errors(large(live=True)),
            lambda: legacy.errors(large(live=True)),
            lambda: over_http(server, user, large(live=False), client),
            lambda: over_sse(server, user, large(live=True), client),
        ]
        floods = [Flood(send) for send in senders]
        tasks = [asyncio.create_task(f.run()) for f in floods]
        try:
            await asyncio.gather(*(f.started.wait() for f in floods))
            loaded = await probe_waits(server, client)
            print(
                f"\nprobe wait, idle: median {statistics.median(idle) * 1000:.1f} ms, "
                f"max {max(idle) * 1000:.1f} ms; under large documents: median "
                f"{statistics.median(loaded) * 1000:.1f} ms, max {max(loaded) * 1000:.1f} ms",
                file=sys.stderr,
            )
            assert max(loaded) < PROBE_BOUND_S, loaded
            # Each client was answered, with a code, while the probes ran or soon after.
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                await asyncio.gather(*(f.answered.wait() for f in floods))
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results


# -- bounded caches ---------------------------------------------------------------------


def test_the_cache_drops_the_least_recently_used_past_either_bound() -> None:
    cache: WeightedLRU[str, int] = WeightedLRU(max_entries=3, max_bytes=100)
    for key in "abc":
        cache.put(key, 1, 10)
    assert cache.get("a") == 1  # now the most recent
    cache.put("d", 1, 10)  # four entries: the least recently used goes
    assert (cache.get("b"), len(cache), cache.bytes) == (None, 3, 30)
    cache.put("e", 1, 85)  # four entries again ("c" goes), then 105 bytes ("a" goes)
    assert [k for k in "abcde" if cache.get(k) is not None] == ["d", "e"]
    assert (len(cache), cache.bytes) == (2, 95)
    cache.put("huge", 1, 101)  # heavier than the whole bound: not kept at all
    assert (cache.get("huge"), len(cache)) == (None, 2)


def test_distinct_large_documents_hold_no_more_than_the_byte_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bound = 2 * LARGE_BYTES
    monkeypatch.setattr(documents, "PARSED", WeightedLRU(1000, bound))
    padded = "{ __typename }" + " " * LARGE_BYTES
    for n in range(6):
        # Valid, within the token limit, and distinct: a fresh ~900 KB text each time.
        assert parse_document(f"# {n}\n{padded}").document is not None
    assert documents.PARSED.bytes <= bound
    assert len(documents.PARSED) <= 2


def test_documents_are_cached_by_their_text_not_its_identity() -> None:
    text = "query Cached { viewer { id } }"
    same = "".join(["query Cached ", "{ viewer { id } }"])
    assert same is not text
    assert parse_document(text) is parse_document(same)


def test_equal_documents_share_the_cached_text() -> None:
    first = "query Shared { __typename }"
    second = "".join(["query Shared ", "{ __typename }"])  # equal, another object
    assert second is not first
    assert documents.shared_text(first) is documents.shared_text(second)


def test_a_document_that_does_not_parse_keeps_its_own_text() -> None:
    text = "query { unclosed"
    assert documents.shared_text(text) is text
