"""Limits and graceful degradation: every rejection is structured, nothing else breaks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.harness import Server, WSClient, make_settings, running_server

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
            statuses = []
            for _ in range(7):
                response = await client.post(
                    server.http, json={"query": CHANNELS}, headers=alice.headers
                )
                statuses.append(response.status_code)
            assert statuses == [200] * 5 + [429] * 2
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


async def test_shutdown_lets_a_write_finish_then_closes_with_1001(tmp_path: Path) -> None:
    from app.schema.models.channel import Channel

    settings = make_settings(sqlite_url(tmp_path), tmp_path)
    running = running_server(settings)
    server: Server = await running.__aenter__()
    alice = await server.sign_up("alice")
    viewer = server.services.tokens.decode(alice.token)
    released = asyncio.Event()

    async def slow_write(tx: Any) -> None:
        tx.add(Channel(name="committed during shutdown"))
        await released.wait()

    from app.context import Ctx

    ctx = Ctx(server.services, viewer)
    write = asyncio.create_task(ctx.transact(slow_write))
    await asyncio.sleep(0.05)
    client = WSClient.connect(server, alice)
    ws = await client.__aenter__()
    stopping = asyncio.create_task(running.__aexit__(None, None, None))
    await asyncio.sleep(0.3)
    assert not write.done(), "shutdown must wait for the write in flight"
    released.set()
    await write
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.receive(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    await stopping
    await client.__aexit__(None, None, None)
    # The write committed: a fresh server on the same database sees it.
    async with running_server(settings) as again:
        data = await again.gql("{ channels { edges { node { name } } } }", user=alice)
        assert data["channels"]["edges"][0]["node"]["name"] == "committed during shutdown"


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
