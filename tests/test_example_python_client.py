"""The server-to-server example (examples/python_client): gql over HTTP and WebSocket,
run against a real server on loopback."""

from __future__ import annotations

import asyncio

import pytest
from gql.transport.exceptions import TransportQueryError

from examples.python_client.live_client import (
    LiveResult,
    live,
    main,
    parse_args,
    run_query,
    sign_in,
    ws_url,
)
from tests.harness import Server

PASSWORD = "correct horse battery"  # what Server.sign_up uses


def test_ws_url() -> None:
    assert ws_url("http://127.0.0.1:8000/graphql") == "ws://127.0.0.1:8000/graphql"
    assert ws_url("https://chat.example.com/graphql") == "wss://chat.example.com/graphql"


async def test_query_over_http(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    general = await server.channel(alice, "general")
    await server.channel(alice, "random")

    token = await sign_in(server.http, alice.email, PASSWORD)
    data = await run_query(server.http, token)
    assert data["viewer"] == {"id": alice.id, "name": "alice", "email": alice.email}
    assert sorted(e["node"]["name"] for e in data["channels"]["edges"]) == ["general", "random"]

    only = await run_query(server.http, alice.token, general)
    assert only["channels"]["edges"] == [{"node": {"id": general, "name": "general"}}]


async def test_live_query_reflects_a_message_sent_meanwhile(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    channel = await server.channel(alice)
    await server.send(alice, channel, "first")

    results: list[LiveResult] = []

    async def on_result(result: LiveResult) -> None:
        results.append(result)
        if len(results) == 1:
            # Another client writes while the live query is open.
            await server.send(bob, channel, "second, from bob")

    count = await asyncio.wait_for(live(server.http, alice.token, channel, on_result, 2), 10)

    assert count == 2
    initial, update = results
    assert initial.bodies == ["first"]
    assert update.bodies == ["second, from bob", "first"]
    assert update.data["messages"]["edges"][0]["node"]["author"]["name"] == "bob"
    assert initial.version is not None and update.version is not None
    assert update.version > initial.version


async def test_live_query_with_a_sync_callback_and_several_updates(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    pushed: asyncio.Queue[list[str]] = asyncio.Queue()

    def on_result(result: LiveResult) -> None:
        pushed.put_nowait(result.bodies)

    task = asyncio.create_task(live(server.http, alice.token, channel, on_result, 3))
    assert await asyncio.wait_for(pushed.get(), 10) == []
    await server.send(alice, channel, "one")
    assert await asyncio.wait_for(pushed.get(), 10) == ["one"]
    await server.send(alice, channel, "two")
    assert await asyncio.wait_for(pushed.get(), 10) == ["two", "one"]
    assert await asyncio.wait_for(task, 10) == 3, "it stops after `limit` results"


async def test_live_query_error_is_raised_with_its_code(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    mallory = await server.sign_up("mallory", workspace="Elsewhere")
    channel = await server.channel(alice)

    with pytest.raises(TransportQueryError) as raised:
        await asyncio.wait_for(live(server.http, mallory.token, channel, lambda _r: None, 1), 10)
    # Another workspace's channel does not exist for mallory; the structured error is kept.
    errors = raised.value.errors
    assert errors is not None
    assert [e["extensions"]["code"] for e in errors] == ["NOT_FOUND"]


async def test_main_prints_the_query_and_the_live_results(
    sqlite_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice, "general")
    await server.send(alice, channel, "hello from the test")

    argv = ["--url", server.http, "--email", alice.email, "--password", PASSWORD, "--limit", "1"]
    assert await asyncio.wait_for(main(argv), 10) == 0
    out = capsys.readouterr().out
    assert '"name": "general"' in out
    assert f"watching channel {channel} live" in out
    assert "alice: hello from the test" in out


def test_main_needs_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--url", "http://127.0.0.1:9/graphql"])
    assert exited.value.code == 2
    assert "give --token, or --email and --password" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--token", "t", "--email", "a@example.com", "--password", "p"])
