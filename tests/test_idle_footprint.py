"""What an idle live subscription holds, each on its own WebSocket: the frames its tasks
keep suspended for as long as it lives, and the state its connection keeps.

bench/memory.py measures the total (RSS per subscription); these pin what was cut.
"""

from __future__ import annotations

import asyncio
import gc
from types import CoroutineType
from typing import Any

import websockets

from app.view import CheckedTransportWSHandler
from tests.harness import Server, WSClient

LIVE_CHANNEL = "query($c: ID!) @live { channel(id: $c) { id name } }"
# What a WebSocket used to wait through, and does nothing for it once accepted.
HTTP_ONLY = {
    "Starlette.__call__",
    "ServerErrorMiddleware.__call__",
    "CORSMiddleware.__call__",
    "ExceptionMiddleware.__call__",
    "Router.__call__",
    "Router.app",
    "WebSocketRoute.handle",
    "GraphQL.__call__",
}


def awaited_chain(task: asyncio.Task[Any]) -> list[str]:
    """The coroutines a task is suspended in, outermost first (up to an async generator)."""
    names = []
    awaitable: Any = task.get_coro()
    while isinstance(awaitable, CoroutineType):
        names.append(awaitable.cr_code.co_qualname)
        awaitable = awaitable.cr_await
    return names


def connection_tasks() -> list[list[str]]:
    chains = [awaited_chain(t) for t in asyncio.all_tasks() if not t.done()]
    return [c for c in chains if c and c[0] == "WSProtocol.run_asgi"]


def handlers() -> list[CheckedTransportWSHandler]:
    return [h for h in gc.get_objects() if isinstance(h, CheckedTransportWSHandler)]


async def test_an_open_websocket_waits_through_no_http_middleware(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("chain")
    channel = await sqlite_server.channel(user)
    async with WSClient.connect(sqlite_server, user) as client:
        op = await client.subscribe(LIVE_CHANNEL, {"c": channel})
        assert (await client.receive_for(op))["type"] == "next"
        [chain] = connection_tasks()
        assert "GraphQLView.serve_websocket" in chain
        assert not HTTP_ONLY & set(chain), chain


async def test_a_websocket_elsewhere_is_still_routed_and_refused(sqlite_server: Server) -> None:
    url = sqlite_server.ws.replace("/graphql", "/elsewhere")
    try:
        async with websockets.connect(url):
            raise AssertionError("a WebSocket on another path was accepted")
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 403


async def test_the_connection_init_deadline_is_let_go_once_initialised(
    sqlite_server: Server,
) -> None:
    user = await sqlite_server.sign_up("deadline")
    async with WSClient.connect(sqlite_server, user):
        [handler] = handlers()
        # No task (nor a cancelled one's frames) held for the connection's life.
        assert handler.connection_init_timeout_task is None
        assert handler._init_deadline is None


async def test_a_connection_keeps_its_params_but_not_the_raw_token(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("params")
    async with WSClient.connect(sqlite_server, user, params={"livePatch": "json-patch"}):
        [handler] = handlers()
        assert handler.context.viewer is not None
        assert handler.context.connection_params == {"livePatch": "json-patch"}
        assert handler.context.live_connection.patches


async def test_subscriptions_to_one_document_hold_its_text_once(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("text")
    channel = await sqlite_server.channel(user)
    async with (
        WSClient.connect(sqlite_server, user) as a,
        WSClient.connect(sqlite_server, user) as b,
    ):
        # Each decodes its own copy of the document from its own message.
        for client in (a, b):
            op = await client.subscribe(LIVE_CHANNEL, {"c": channel})
            assert (await client.receive_for(op))["type"] == "next"
        queries = [op.query for h in handlers() for op in h.operations.values()]
        assert len(queries) == 2
        assert queries[0] is queries[1]
