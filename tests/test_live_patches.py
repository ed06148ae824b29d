"""Live results as JSON patches, for the WebSocket clients that ask for them.

Over real WebSockets for what a client sees (both protocols); at the cohort for a
reader that skips a result, where the timing is the test's to set. The round trip
through the npm client that applies the patches is in ``test_live_node_patch_client.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import jsonpatch
import orjson
import pytest
import websockets
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from app.auth import Scope, Viewer
from app.live import frames
from app.live.cohort import (
    Check,
    Cohort,
    CohortKey,
    OperationKey,
    Route,
    RunOutcome,
    Subscriber,
)
from app.live.readset import ReadSet
from tests.harness import Server, User, WSClient

LIVE_MESSAGES = """
query Messages($channel: ID!) @live {
  messages(channelId: $channel, first: 50) { edges { node { id body } } }
}
"""
PLAIN_MESSAGES = LIVE_MESSAGES.replace(" @live", "")
PATCHES = {"livePatch": "json-patch"}
TRANSPORT_WS = websockets.Subprotocol("graphql-transport-ws")
LEGACY_WS = websockets.Subprotocol("graphql-ws")


async def fresh(server: Server, user: User, channel: str) -> dict[str, Any]:
    return await server.gql(PLAIN_MESSAGES, {"channel": channel}, user)


async def start(client: WSClient, protocol: str, channel: str) -> str:
    """Subscribe to the channel's live messages in the protocol's own words."""
    if protocol == "graphql-transport-ws":
        return await client.subscribe(LIVE_MESSAGES, {"channel": channel})
    await client.send(
        {
            "id": "1",
            "type": "start",
            "payload": {"query": LIVE_MESSAGES, "variables": {"channel": channel}},
        }
    )
    return "1"


async def payload_of(client: WSClient, op_id: str) -> dict[str, Any]:
    message = await client.receive_for(op_id)
    assert message["type"] in ("next", "data"), message
    payload: dict[str, Any] = message["payload"]
    return payload


DELETE = "mutation($id: ID!) { deleteMessage(id: $id) }"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_client_that_asks_gets_the_full_result_then_patches(
    sqlite_server: Server, protocol: str
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    first_id = await server.send(alice, channel, "first")
    async with WSClient.connect(server, alice, protocol=protocol, params=PATCHES) as client:
        op_id = await start(client, protocol, channel)
        first = await payload_of(client, op_id)
        assert set(first) == {"data", "revision", "extensions"}
        assert first["revision"] == 1
        assert first["data"] == await fresh(server, alice, channel)
        data, revision = first["data"], 1
        writes = [
            lambda: server.send(alice, channel, "second"),
            lambda: server.gql(
                "mutation($i: EditMessageInput!) { editMessage(input: $i) { id } }",
                {"i": {"id": first_id, "body": "first, edited"}},
                alice,
            ),
            lambda: server.gql(
                "mutation($id: ID!) { deleteMessage(id: $id) }", {"id": first_id}, alice
            ),
        ]
        # One write at a time: results a slow reader has not taken yet are coalesced.
        for write in writes:
            await write()
            update = await payload_of(client, op_id)
            assert set(update) == {"patch", "revision", "extensions"}, update
            assert update["revision"] == revision + 1
            revision = update["revision"]
            data = jsonpatch.apply_patch(data, update["patch"])
            assert update["extensions"]["live"]["version"] > 0
            assert data == await fresh(server, alice, channel)
        assert data == await fresh(server, alice, channel)
        assert [e["node"]["body"] for e in data["messages"]["edges"]] == ["second"]


async def test_a_client_that_does_not_ask_gets_full_results_beside_one_that_does(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    async with (
        WSClient.connect(server, alice) as plain,
        WSClient.connect(server, alice, params={"livePatch": None}) as also_plain,
        WSClient.connect(server, alice, params=PATCHES) as patched,
    ):
        ops = {
            c: await c.subscribe(LIVE_MESSAGES, {"channel": channel})
            for c in (plain, also_plain, patched)
        }
        for client, op_id in ops.items():
            await payload_of(client, op_id)
        assert len(server.services.live.cohorts) == 1  # one execution for all three
        await server.send(alice, channel, "hello")
        expected = {"data": await fresh(server, alice, channel)}
        for client in (plain, also_plain):
            update = await payload_of(client, ops[client])
            assert set(update) == {"data", "extensions"}
            assert update["data"] == expected["data"]
        assert "patch" in await payload_of(patched, ops[patched])


@pytest.mark.parametrize("value", ["merge-patch", "JSON-PATCH", "", 1, True, ["json-patch"]])
async def test_a_format_not_served_is_refused_with_close_4400(
    sqlite_server: Server, value: object
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    async with websockets.connect(server.ws, subprotocols=[TRANSPORT_WS]) as socket:
        init = {"authorization": f"Bearer {alice.token}", "livePatch": value}
        await socket.send(orjson.dumps({"type": "connection_init", "payload": init}).decode())
        await asyncio.wait_for(socket.wait_closed(), 5)
    assert socket.close_code == 4400
    assert socket.close_reason == 'Unsupported livePatch: the only format served is "json-patch"'


async def test_a_format_not_served_is_refused_on_the_legacy_protocol(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    async with websockets.connect(server.ws, subprotocols=[LEGACY_WS]) as socket:
        init = {"authorization": f"Bearer {alice.token}", "livePatch": "merge-patch"}
        await socket.send(orjson.dumps({"type": "connection_init", "payload": init}).decode())
        refusal = orjson.loads(await asyncio.wait_for(socket.recv(), 5))
    assert refusal["type"] == "connection_error"
    assert refusal["payload"]["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "json-patch" in refusal["payload"]["message"]


# -- at the cohort: a reader that skips a result ------------------------------------------


class ScriptedCohort:
    """A cohort whose runs return what the test hands ``run``, one at a time."""

    def __init__(self, first: ExecutionResult) -> None:
        key = CohortKey(OperationKey("query", "{}", None, 0), Scope.TENANT, 1)
        self.viewer = Viewer(1, 1, 0, time.time() + 3600)
        self.cohort = Cohort(key, "query", None, None, self.viewer, 0, self._run, lambda _c: None)
        self._upcoming: ExecutionResult | None = first
        self._version = 0
        # Set by every subscriber once a run has been offered to it.
        self._settled = asyncio.Event()

    async def _run(self, cohort: Cohort) -> RunOutcome:
        assert self._upcoming is not None
        result, self._upcoming = self._upcoming, None
        self._version += 1
        result.extensions = {"live": {"version": self._version}}
        fingerprint = orjson.dumps([result.data, [e.formatted for e in result.errors or ()]])
        return RunOutcome(result, ReadSet(), fingerprint, self._version)

    def subscribe(
        self, *, patches: bool = True, route: Route | None = None, check: Check | None = None
    ) -> AsyncIterator[ExecutionResult]:
        subscriber = Subscriber(
            self.cohort, self.viewer, self._settled.set, patches=patches, route=route
        )
        self.cohort.add(subscriber)
        return subscriber.results(check or (lambda _viewer: None))

    async def run(self, result: ExecutionResult) -> None:
        self._settled.clear()
        self._upcoming = result
        self.cohort.invalidate(self._version + 1)
        await asyncio.wait_for(self._settled.wait(), 5)


def page(*bodies: str) -> dict[str, Any]:
    return {"messages": {"edges": [{"node": {"body": body}} for body in bodies]}}


def ok(data: dict[str, Any]) -> ExecutionResult:
    return ExecutionResult(data=data, errors=None)


def wire(result: ExecutionResult) -> dict[str, Any]:
    """The payload the transport sends for a result the subscriber yields (made as
    Strawberry's ``send_next`` makes it)."""
    message: dict[str, Any] = {"id": "1", "type": "next", "payload": {"data": result.data}}
    if result.errors:
        message["payload"]["errors"] = [e.formatted for e in result.errors]
    if result.extensions:
        message["payload"]["extensions"] = result.extensions
    encoded = frames.encoded_next(message)
    payload: dict[str, Any] = orjson.loads(encoded)["payload"] if encoded else message["payload"]
    return payload


async def test_a_reader_that_skipped_a_result_gets_the_newest_in_full_then_patches() -> None:
    script = ScriptedCohort(ok(page("a")))
    steady, slow = script.subscribe(), script.subscribe()
    script.cohort.start()
    try:
        assert wire(await anext(steady)) == {
            "data": page("a"),
            "revision": 1,
            "extensions": {"live": {"version": 1}},
        }
        assert wire(await anext(slow))["revision"] == 1
        await script.run(ok(page("b", "a")))
        second = wire(await anext(steady))
        assert second["revision"] == 2
        assert jsonpatch.apply_patch(page("a"), second["patch"]) == page("b", "a")
        # The slow reader has not taken result 2 when result 3 is made: it skips it.
        await script.run(ok(page("c", "b", "a")))
        third = wire(await anext(steady))
        assert third["revision"] == 3
        assert jsonpatch.apply_patch(page("b", "a"), third["patch"]) == page("c", "b", "a")
        assert wire(await anext(slow)) == {
            "data": page("c", "b", "a"),
            "revision": 1,
            "extensions": {"live": {"version": 3}},
        }
        # Caught up again: both take the same patch, each at its own revision.
        await script.run(ok(page("d", "c", "b")))
        fourth, caught_up = wire(await anext(steady)), wire(await anext(slow))
        assert (fourth["revision"], caught_up["revision"]) == (4, 2)
        assert fourth["patch"] == caught_up["patch"]
    finally:
        await script.cohort.stop()


@pytest.mark.parametrize("data", [None, page("a", "partial")], ids=["no data", "partial data"])
async def test_a_result_with_errors_goes_as_it_is_and_the_next_in_full(
    data: dict[str, Any] | None,
) -> None:
    script = ScriptedCohort(ok(page("a")))
    reader = script.subscribe()
    script.cohort.start()
    try:
        assert wire(await anext(reader))["revision"] == 1
        error = GraphQLError("Not found", extensions={"code": "NOT_FOUND"})
        await script.run(ExecutionResult(data=data, errors=[error]))
        failed = wire(await anext(reader))
        assert set(failed) == {"data", "errors", "extensions"} and failed["data"] == data
        assert failed["errors"][0]["extensions"] == {"code": "NOT_FOUND"}
        await script.run(ok(page("b")))
        assert wire(await anext(reader)) == {
            "data": page("b"),
            "revision": 1,
            "extensions": {"live": {"version": 3}},
        }
    finally:
        await script.cohort.stop()
