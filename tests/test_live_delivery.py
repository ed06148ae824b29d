"""A live result written straight to the socket (``Subscriber.deliver``): past the
transport's per-message layers when nothing needs the subscriber's own task, and through
that task whenever something does (the first result, an ended token, a socket that would
make the write wait, a send in flight)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonpatch
import orjson
import pytest
from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from strawberry.types import ExecutionResult

from app.auth import Viewer
from app.live.cohort import Check
from app.view import OperationRoute
from tests.harness import WSClient, make_settings, running_server
from tests.test_live_patches import ScriptedCohort, ok, page, wire

PAGE = """query($c: ID!) @live {
  messages(channelId: $c, first: 5) { edges { node { body author { name } } } }
}"""
PLAIN_PAGE = PAGE.replace(" @live", "")


class Socket:
    """A route's far end: what was written, and whether it takes a write now."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.open = True

    def write(self, payload: str) -> bool:
        if self.open:
            self.written.append(orjson.loads(payload))
        return self.open


async def waiting(results: Any) -> asyncio.Future[Any]:
    """The transport's ask for the next result, once the subscriber's task waits for
    one (as Strawberry's loop asks right after each send)."""
    pending = asyncio.ensure_future(anext(results))
    await asyncio.sleep(0)
    assert not pending.done()
    return pending


async def nothing_yet(pending: asyncio.Future[Any], seconds: float = 0.2) -> bool:
    """Whether the subscriber's own task yields nothing for a while."""
    done, _ = await asyncio.wait([pending], timeout=seconds)
    return not done


@asynccontextmanager
async def routed(
    *, patches: bool = False, check: Check | None = None
) -> AsyncIterator[tuple[ScriptedCohort, Socket, AsyncIterator[ExecutionResult]]]:
    """A started cohort whose first result is "a", and one subscriber of it with a
    route to a ``Socket``: the cohort, the socket and the subscriber's results."""
    script = ScriptedCohort(ok(page("a")))
    socket = Socket()
    results = script.subscribe(patches=patches, route=socket.write, check=check)
    script.cohort.start()
    try:
        yield script, socket, results
    finally:
        await script.cohort.stop()


async def test_a_result_after_the_first_is_written_by_the_route_not_the_task() -> None:
    async with routed() as (script, socket, results):
        # The first result goes through the transport, which checks a first result.
        assert wire(await anext(results))["data"] == page("a")
        assert socket.written == []
        pending = await waiting(results)
        await script.run(ok(page("b", "a")))
        assert socket.written == [{"data": page("b", "a"), "extensions": {"live": {"version": 2}}}]
        assert await nothing_yet(pending)
        pending.cancel()


async def test_what_the_route_refuses_the_task_sends() -> None:
    async with routed() as (script, socket, results):
        await anext(results)
        pending = await waiting(results)
        socket.open = False  # the socket would make the write wait
        await script.run(ok(page("b", "a")))
        assert wire(await pending)["data"] == page("b", "a")
        assert socket.written == []


async def test_a_send_in_flight_keeps_the_route_out() -> None:
    """Until the transport has sent a result (and asks for the next), a newer one goes
    through the task too: the operation's messages stay in order, and the slow-consumer
    clock of the send in flight keeps running."""
    async with routed() as (script, socket, results):
        await anext(results)
        pending = await waiting(results)
        socket.open = False
        await script.run(ok(page("b", "a")))
        # The task is sending "b"; the transport has not asked for the next yet.
        assert wire(await pending)["data"] == page("b", "a")
        socket.open = True
        await script.run(ok(page("c", "b", "a")))
        assert socket.written == []
        assert wire(await anext(results))["data"] == page("c", "b", "a")


async def test_an_ended_token_is_never_written_by_the_route() -> None:
    ending = ExecutionResult(data=None, errors=[GraphQLError("Token expired")])
    revoked = False

    def check(_viewer: Viewer) -> ExecutionResult | None:
        return ending if revoked else None

    async with routed(check=check) as (script, socket, results):
        await anext(results)
        pending = await waiting(results)
        revoked = True
        await script.run(ok(page("b", "a")))
        assert socket.written == []
        assert await pending is ending


async def test_patches_keep_their_revisions_between_the_route_and_the_task() -> None:
    async with routed(patches=True) as (script, socket, results):
        assert wire(await anext(results))["revision"] == 1
        pending = await waiting(results)
        await script.run(ok(page("b", "a")))
        (second,) = socket.written
        assert second["revision"] == 2
        assert jsonpatch.apply_patch(page("a"), second["patch"]) == page("b", "a")
        socket.open = False
        await script.run(ok(page("c", "b", "a")))
        third = wire(await pending)
        assert third["revision"] == 3
        assert jsonpatch.apply_patch(page("b", "a"), third["patch"]) == page("c", "b", "a")


class Handler:
    def __init__(self) -> None:
        self.operations: dict[str, Any] = {}


def test_an_operation_route_writes_only_while_its_operation_is_on() -> None:
    socket = Socket()
    handler = Handler()
    operation: Any = Operation(handler, "op-1", "query { x }", None, None)  # type: ignore[arg-type]
    handler.operations["op-1"] = operation
    route = OperationRoute(handler, operation, socket.write)  # type: ignore[arg-type]
    assert route('{"data":{"x":1}}')
    assert socket.written == [{"id": "op-1", "type": "next", "payload": {"data": {"x": 1}}}]
    # The client completed it: Strawberry forgets the operation, then cancels its task.
    del handler.operations["op-1"]
    assert not route('{"data":{"x":2}}')
    # Another operation under the same id is not this one.
    handler.operations["op-1"] = Operation(handler, "op-1", "query { x }", None, None)  # type: ignore[arg-type]
    assert not route('{"data":{"x":3}}')
    handler.operations["op-1"] = operation
    operation.completed = True  # the server sent its complete or error
    assert not route('{"data":{"x":4}}')
    assert len(socket.written) == 1


@pytest.mark.parametrize("deflate", [False, True])
async def test_live_results_over_a_real_socket_skip_the_transports_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deflate: bool
) -> None:
    """Over graphql-transport-ws, every result after the first goes out through the
    route, and is the message the transport would have sent. With compression on, the
    socket offers no immediate write and every result goes through the transport."""
    sent_by_transport: list[str] = []
    send_next = Operation.send_next

    async def counting(self: Operation[Any, Any], result: ExecutionResult) -> None:
        sent_by_transport.append(self.id)
        await send_next(self, result)

    monkeypatch.setattr(Operation, "send_next", counting)
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", tmp_path)
    async with running_server(replace(settings, ws_permessage_deflate=deflate)) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        async with WSClient.connect(server, alice) as ws:
            op = await ws.subscribe(PAGE, {"c": channel})
            first = await ws.receive_for(op)
            assert first["payload"]["data"]["messages"]["edges"] == []
            for body in ["one", "two", "three"]:
                await server.send(alice, channel, body)
                update = await ws.receive_for(op)
                assert update["type"] == "next"
                assert set(update["payload"]) == {"data", "extensions"}
                plain = await server.gql(PLAIN_PAGE, {"c": channel}, alice)
                assert update["payload"]["data"] == plain
            await ws.send({"id": op, "type": "complete"})
            await server.send(alice, channel, "after complete")
            assert await ws.nothing_for(0.3)
    assert sent_by_transport == [op] * (4 if deflate else 1)
