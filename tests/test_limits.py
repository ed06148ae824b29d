"""Limits and graceful degradation: every rejection is structured, nothing else breaks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from graphql import FieldNode, OperationDefinitionNode, SelectionSetNode, parse
from graphql.language import Lexer, Source, TokenKind
from sqlalchemy import text

from app import shutdown as shutdown_module
from app.context import ModelT
from app.database import Database
from app.schema.limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from app.schema.models.channel import Channel
from app.shutdown import GOING_AWAY
from app.tx import Tx
from tests.harness import (
    Gate,
    Server,
    User,
    WSClient,
    make_settings,
    recording_statements,
    running_server,
    stoppable_server,
    wait_refusing,
)

CHANNELS = "{ channels { edges { node { id } } } }"


def sqlite_url(tmp: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp / 'test.db'}"


async def test_http_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(
        sqlite_url(tmp_path), tmp_path, rate_limits_enabled=True, rate_limit_user="5/minute"
    )
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        bob = await server.sign_up("bob")
        async with httpx.AsyncClient() as client:
            statuses, remaining = [], []
            for _ in range(7):
                response = await client.post(
                    server.http, json={"query": CHANNELS}, headers=alice.headers
                )
                statuses.append(response.status_code)
                remaining.append(response.headers["x-ratelimit-remaining"])
                assert response.headers["x-ratelimit-limit"] == "5"
            assert statuses == [200] * 5 + [429] * 2
            assert remaining == ["4", "3", "2", "1", "0", "0", "0"]
            assert int(response.headers["retry-after"]) >= 1
            body = response.json()
            assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            # Per user: another user on the same address is not affected.
            other = await client.post(server.http, json={"query": CHANNELS}, headers=bob.headers)
            assert other.status_code == 200


async def test_anonymous_requests_are_limited_per_address(tmp_path: Path) -> None:
    settings = make_settings(
        sqlite_url(tmp_path), tmp_path, rate_limits_enabled=True, rate_limit_anonymous="3/minute"
    )
    async with running_server(settings) as server, httpx.AsyncClient() as client:
        codes = [
            (await client.post(server.http, json={"query": "{ viewer { id } }"})).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]


async def test_websocket_operations_are_limited_and_the_connection_kept(tmp_path: Path) -> None:
    settings = make_settings(
        sqlite_url(tmp_path),
        tmp_path,
        rate_limits_enabled=True,
        rate_limit_ws_connection="3/minute",
        rate_limit_user="100/minute",
        rate_limit_anonymous="100/minute",
    )
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        async with WSClient.connect(server, alice) as ws:
            results = []
            for _ in range(4):
                op = await ws.subscribe(CHANNELS)
                results.append((await ws.receive_for(op))["payload"])
                assert (await ws.receive_for(op))["type"] == "complete"
            assert [("errors" in r) for r in results] == [False, False, False, True]
            error = results[-1]["errors"][0]
            assert error["extensions"]["code"] == "RATE_LIMITED"
            assert error["extensions"]["retryAfter"] > 0
            await ws.send({"type": "ping"})
            assert (await ws.receive())["type"] == "pong"


async def test_sign_in_attempts_are_limited_per_email(tmp_path: Path) -> None:
    settings = make_settings(
        sqlite_url(tmp_path),
        tmp_path,
        rate_limits_enabled=True,
        rate_limit_signin_email="3/minute",
        rate_limit_anonymous="100/minute",
    )
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        sign_in = "mutation($i: SignInInput!) { signIn(input: $i) { token } }"
        codes = []
        for password in ["wrong-1", "wrong-2", "wrong-3", "correct horse battery"]:
            body = await server.post(sign_in, {"i": {"email": alice.email, "password": password}})
            codes.append(body["errors"][0]["extensions"]["code"] if body.get("errors") else "OK")
        # Even the right password waits once the account's attempts are used up.
        assert codes == ["UNAUTHENTICATED"] * 3 + ["RATE_LIMITED"]


async def test_an_oversize_http_body_is_refused_with_413(tmp_path: Path) -> None:
    settings = make_settings(sqlite_url(tmp_path), tmp_path, max_body_bytes=10_000)
    async with running_server(settings) as server, httpx.AsyncClient() as client:
        padding = "x" * 20_000
        query = f"{{ viewer {{ id }} }} # {padding}"
        response = await client.post(server.http, json={"query": query})
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

        async def chunks() -> Any:
            # No Content-Length: the limit applies while reading.
            for _ in range(30):
                yield b" " * 1000

        streamed = await client.post(
            server.http, content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert (await client.post(server.http, json={"query": "{ viewer { id } }"})).is_success


async def test_connections_per_user_are_bounded(tmp_path: Path) -> None:
    settings = make_settings(sqlite_url(tmp_path), tmp_path, max_connections_per_user=2)
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        async with WSClient.connect(server, alice), WSClient.connect(server, alice):
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with WSClient.connect(server, alice):
                    pass
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        # Closed connections no longer count.
        async with WSClient.connect(server, alice), WSClient.connect(server, alice):
            pass


async def test_live_queries_per_connection_are_bounded(tmp_path: Path) -> None:
    settings = make_settings(sqlite_url(tmp_path), tmp_path, live_max_per_connection=2)
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        async with WSClient.connect(server, alice) as ws:
            ops = [await ws.subscribe(f"query Q{i} @live {{ viewer {{ id }} }}") for i in range(2)]
            for op in ops:
                assert (await ws.receive_for(op))["type"] == "next"
            third = await ws.subscribe("query Q3 @live { viewer { id } }")
            message = await ws.receive_for(third)
            assert message["type"] == "next"
            assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
            assert (await ws.receive_for(third))["type"] == "complete"
            # The connection and its two live queries carry on.
            await ws.send({"type": "ping"})
            assert (await ws.receive())["type"] == "pong"


async def test_introspection_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(sqlite_url(tmp_path), tmp_path, introspection=False, graphiql=False)
    async with running_server(settings) as server, httpx.AsyncClient() as client:
        body = await server.post("{ __schema { types { name } } }")
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        page = await client.get(server.http, headers={"accept": "text/html"})
        assert "graphiql" not in page.text.lower()


async def test_cross_origin_websocket_is_refused_unless_allowed(tmp_path: Path) -> None:
    allowed = "http://chat.example"
    settings = make_settings(sqlite_url(tmp_path), tmp_path, allowed_origins=(allowed,))
    async with running_server(settings) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(
                server.ws, subprotocols=["graphql-transport-ws"], origin="http://evil.example"
            ):
                pass
        assert refused.value.response.status_code == 403
        async with websockets.connect(
            server.ws, subprotocols=["graphql-transport-ws"], origin=allowed
        ):
            pass


SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) { id body } }"""
SENT_DURING_SHUTDOWN = "sent during shutdown"


def hold_send_message(monkeypatch: pytest.MonkeyPatch, gate: Gate) -> None:
    """Hold ``sendMessage`` inside its transaction, once it has read (and locked) its
    channel: a real mutation in flight, at a point the test controls."""
    original = Tx.fetch

    async def fetch(self: Tx, model: type[ModelT], ident: object) -> ModelT:
        row = await original(self, model, ident)
        if model is Channel:
            await gate.hold()
        return row

    monkeypatch.setattr(Tx, "fetch", fetch)


async def stays_open(ws: WSClient, seconds: float) -> None:
    """Nothing arrives and nothing closes for ``seconds``."""
    try:
        message = await ws.receive(seconds)
    except TimeoutError:
        return
    except websockets.ConnectionClosed as closed:
        raise AssertionError(f"closed before the write finished: {closed.rcvd}") from None
    raise AssertionError(f"a message before the write finished: {message}")


async def close_code(ws: WSClient, timeout: float) -> int | None:
    """The code the server closes with; any message before it fails the test."""
    try:
        message = await ws.receive(timeout)
    except websockets.ConnectionClosed as closed:
        return None if closed.rcvd is None else closed.rcvd.code
    raise AssertionError(f"expected the close, got {message}")


async def stored_bodies(database_url: str) -> list[str]:
    db = Database(database_url)
    try:
        async with db.read_engine.connect() as conn:
            rows = await conn.execute(text("SELECT body FROM message ORDER BY id"))
            return [row[0] for row in rows]
    finally:
        await db.dispose()


async def shut_down_during_a_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str, grace_s: float = 0.5
) -> None:
    """Shut the server down while a ``sendMessage`` over ``transport`` is in its
    transaction: nothing closes and nothing answers until the write is released; then
    the client gets the committed result, and only then the WebSocket closes with 1001."""
    gate = Gate()
    hold_send_message(monkeypatch, gate)
    settings = make_settings(sqlite_url(tmp_path), tmp_path)
    variables = {"i": {"channelId": "", "body": SENT_DURING_SHUTDOWN, "idempotencyKey": "k1"}}
    request: asyncio.Task[httpx.Response] | None = None
    async with stoppable_server(settings) as (server, shutdown), httpx.AsyncClient() as http:
        alice = await server.sign_up("alice")
        variables["i"]["channelId"] = await server.channel(alice)
        try:
            async with WSClient.connect(server, alice) as ws:
                gate.armed = True
                if transport == "http":
                    request = asyncio.create_task(
                        http.post(
                            server.http,
                            json={"query": SEND, "variables": variables},
                            headers=alice.headers,
                            timeout=30,
                        )
                    )
                else:
                    op = await ws.subscribe(SEND, variables)
                await gate.wait_arrived(timeout=5)
                shutdown.begin()
                await wait_refusing(server, timeout=5)
                # Shutdown has begun and the write is still held: nothing may close yet.
                await stays_open(ws, grace_s)
                assert request is None or not request.done(), "answered before the write"
                gate.release()
                if request is not None:
                    response = await asyncio.wait_for(request, 10)
                    assert response.status_code == 200
                    payload = response.json()
                else:
                    message = await ws.receive_for(op, timeout=10)
                    assert message["type"] == "next", message
                    payload = message["payload"]
                    assert (await ws.receive_for(op, timeout=10))["type"] == "complete"
                assert "errors" not in payload, payload
                assert payload["data"]["sendMessage"]["body"] == SENT_DURING_SHUTDOWN
                assert await close_code(ws, timeout=10) == GOING_AWAY
        finally:
            gate.release()
            if request is not None:
                await asyncio.wait_for(request, 10)
    assert await stored_bodies(settings.database_url) == [SENT_DURING_SHUTDOWN]


@pytest.mark.parametrize("transport", ["http", "websocket"])
async def test_shutdown_lets_a_write_in_flight_commit_then_closes_with_1001(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    await shut_down_during_a_send(tmp_path, monkeypatch, transport)


@pytest.mark.parametrize("transport", ["http", "websocket"])
async def test_without_the_drain_shutdown_closes_over_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    """The test above can fail: with no grace period the WebSocket closes at once."""
    monkeypatch.setattr(shutdown_module, "DRAIN_TIMEOUT_S", 0.0)
    with pytest.raises(AssertionError, match="closed before the write finished"):
        await shut_down_during_a_send(tmp_path, monkeypatch, transport)


async def test_http_cors_allows_only_the_configured_origins(tmp_path: Path) -> None:
    allowed = "http://chat.example"
    settings = make_settings(sqlite_url(tmp_path), tmp_path, allowed_origins=(allowed,))
    async with running_server(settings) as server, httpx.AsyncClient() as client:
        preflight = {
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        }
        ok = await client.options(server.http, headers={"origin": allowed, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == allowed
        evil = await client.options(
            server.http, headers={"origin": "http://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in evil.headers
        response = await client.post(
            server.http, json={"query": "{ viewer { id } }"}, headers={"origin": allowed}
        )
        assert response.headers["access-control-allow-origin"] == allowed


# -- document limits: depth, aliases, tokens ----------------------------------------
# Each at its limit is answered; one past it is refused with a code before anything
# runs: not a single SQL statement.

LOOP = ("messages", "edges", "node", "channel")


def nested(fields: list[str], leaf: str) -> str:
    document = leaf
    for name in reversed(fields):
        document = f"{name} {{ {document} }}"
    return f"query Deep($c: ID!) {{ {document} }}"


def depth_of(document: str) -> int:
    """Levels of fields below the top level (depth 0), as the depth limit counts them."""

    def levels(selection_set: SelectionSetNode | None) -> int:
        fields = (
            [s for s in selection_set.selections if isinstance(s, FieldNode)]
            if selection_set
            else []
        )
        return max((1 + levels(f.selection_set) for f in fields), default=0)

    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return levels(operation.selection_set) - 1


def token_count(document: str) -> int:
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


def document_of_tokens(tokens: int, directive: str = "") -> str:
    """Operation ``Main`` (to run) and fillers, ``tokens`` tokens in all, all valid."""

    def main(extra_ids: int) -> str:
        return f"query Main {directive} {{ viewer {{ id{' id' * extra_ids} }} }}"

    filler_tokens = 8  # query F0 { viewer { id } }
    fillers, spare = divmod(tokens - token_count(main(0)), filler_tokens)
    document = main(spare) + "".join(f" query F{i} {{ viewer {{ id }} }}" for i in range(fillers))
    assert token_count(document) == tokens
    return document


async def limited(
    server: Server, user: User, allowed: str, refused: str, variables: dict[str, Any]
) -> list[dict[str, Any]]:
    """Send the document at the limit (it must run), then the one past it, recording
    SQL; return the refusal's errors."""
    body = await server.post(allowed, variables, user)
    assert "errors" not in body, body
    assert body["data"]
    with recording_statements(server) as statements:
        refused_body = await server.post(refused, variables, user)
    assert statements == []
    assert refused_body.get("data") is None
    errors: list[dict[str, Any]] = refused_body["errors"]
    return errors


@pytest.fixture
async def limits_server(tmp_path: Path) -> AsyncIterator[tuple[Server, User, str]]:
    async with running_server(make_settings(sqlite_url(tmp_path), tmp_path)) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        await server.send(alice, channel, "deep enough")
        yield server, alice, channel


async def test_depth_past_the_limit_is_refused_before_any_sql(
    limits_server: tuple[Server, User, str],
) -> None:
    server, alice, channel = limits_server
    path = ["channel(id: $c)", *(LOOP[i % 4] for i in range(11))]  # ... node
    at_limit, past_limit = nested(path, "id"), nested(path, "author { id }")
    assert (depth_of(at_limit), depth_of(past_limit)) == (MAX_DEPTH, MAX_DEPTH + 1)
    errors = await limited(server, alice, at_limit, past_limit, {"c": channel})
    assert [e["extensions"]["code"] for e in errors] == ["GRAPHQL_VALIDATION_FAILED"]
    assert f"depth of {MAX_DEPTH}" in errors[0]["message"]


async def test_aliases_past_the_limit_are_refused_before_any_sql(
    limits_server: tuple[Server, User, str],
) -> None:
    server, alice, _ = limits_server

    def aliased(count: int) -> str:
        return "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(count)) + " }"

    errors = await limited(server, alice, aliased(MAX_ALIASES), aliased(MAX_ALIASES + 1), {})
    assert [e["extensions"]["code"] for e in errors] == ["GRAPHQL_VALIDATION_FAILED"]
    assert f"Allowed: {MAX_ALIASES}" in errors[0]["message"]


async def test_tokens_past_the_limit_are_refused_over_http_before_any_sql(
    limits_server: tuple[Server, User, str],
) -> None:
    server, alice, _ = limits_server
    at_limit, past_limit = document_of_tokens(MAX_TOKENS), document_of_tokens(MAX_TOKENS + 1)
    async with httpx.AsyncClient(timeout=10) as client:

        async def post(document: str) -> httpx.Response:
            return await client.post(
                server.http,
                json={"query": document, "operationName": "Main"},
                headers=alice.headers,
            )

        assert (await post(at_limit)).json() == {"data": {"viewer": {"id": alice.id}}}
        with recording_statements(server) as statements:
            refused = await post(past_limit)
    assert statements == []
    assert refused.status_code < 500
    body = refused.json()
    assert body.get("data") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPHQL_PARSE_FAILED"]


@pytest.mark.parametrize("directive", ["", "@live"])
async def test_tokens_past_the_limit_are_refused_over_websocket_before_any_sql(
    limits_server: tuple[Server, User, str], directive: str
) -> None:
    server, alice, _ = limits_server
    at_limit = document_of_tokens(MAX_TOKENS, directive)
    past_limit = document_of_tokens(MAX_TOKENS + 1, directive)
    async with WSClient.connect(server, alice) as ws:

        async def subscribe(document: str) -> str:
            op = str(uuid.uuid4())
            payload = {"query": document, "operationName": "Main"}
            await ws.send({"id": op, "type": "subscribe", "payload": payload})
            return op

        op = await subscribe(at_limit)
        allowed = await ws.receive_for(op)
        assert allowed["type"] == "next", allowed
        assert allowed["payload"]["data"] == {"viewer": {"id": alice.id}}
        if not directive:
            assert (await ws.receive_for(op))["type"] == "complete"
        with recording_statements(server) as statements:
            refused = await ws.receive_for(await subscribe(past_limit))
            # The connection carries on, and still nothing ran for the refused document.
            await ws.send({"type": "ping"})
            assert (await ws.receive())["type"] == "pong"
        assert statements == []
    # graphql-transport-ws answers a document it cannot run with one "error" message.
    assert refused["type"] == "error", refused
    assert [e["extensions"]["code"] for e in refused["payload"]] == ["GRAPHQL_PARSE_FAILED"]
