"""Live patches round trip through the npm client that applies them.

A Node app with graphql-ws and ``applyLiveQueryJSONPatch`` of
``@n1ru4l/graphql-live-query-patch-json-patch``, opted in with ``livePatch``, runs a
mutation at a time over its socket; after each, the result it has applied equals a
fresh read over HTTP, came as a patch, and reflects the write (read-your-writes).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Server

pytestmark = pytest.mark.node
NODE_DIR = Path(__file__).parent / "node"
CLIENT_PACKAGE = NODE_DIR / "node_modules" / "@n1ru4l" / "graphql-live-query-patch-json-patch"
PAGE = "messages(channelId: $channel, first: 50) { edges { node { id body } } }"
SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
EDIT = "mutation($i: EditMessageInput!) { editMessage(input: $i) { id } }"
DELETE = "mutation($id: ID!) { deleteMessage(id: $id) }"


def node_ready() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are required for the live patch client test")
    if not CLIENT_PACKAGE.exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )


class PatchClient:
    """The Node client as a subprocess: one JSON line out per mutation line in."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), 15)
        if not raw:
            assert self.process.stderr is not None
            error = await asyncio.wait_for(self.process.stderr.read(), 5)
            raise AssertionError(f"the Node client ended early: {error.decode()}")
        line: dict[str, Any] = json.loads(raw)
        return line

    async def mutate(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"query": query, "variables": variables}).encode())
        self.process.stdin.write(b"\n")
        await self.process.stdin.drain()
        return await self.line()


async def test_each_applied_patch_equals_a_fresh_read(sqlite_server: Server) -> None:
    server = sqlite_server
    await asyncio.to_thread(node_ready)
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    for n in range(50):  # a full page: a new message also pushes the oldest out
        await server.send(alice, channel, f"seed message {n} of the page")
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "live_patch_client.mjs"),
        server.ws,
        alice.token,
        channel,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    client = PatchClient(process)
    try:
        ready = await client.line()
        await equals_a_fresh_read(server, alice, channel, ready["live"])
        (first,) = ready["frames"][-1:]
        live_op = first["id"]
        assert (first["members"], first["revision"]) == (["data", "extensions", "revision"], 1)

        async def applied_as_patch(done: dict[str, Any], revision: int) -> int:
            """Checks one round; the bytes of its patch frame."""
            await equals_a_fresh_read(server, alice, channel, done["live"])
            frames = done["frames"]
            (update,) = [f for f in frames if f["id"] == live_op]
            assert (update["members"], update["revision"]) == (
                ["extensions", "patch", "revision"],
                revision,
            )
            # Read-your-writes: the live update comes before the mutation's own result,
            # and reflects a version at or past the mutation's.
            (answer,) = [f for f in frames if f["id"] != live_op and f["type"] == "next"]
            assert frames.index(update) < frames.index(answer)
            write_version = done["result"]["extensions"]["version"]
            assert done["live"]["extensions"]["live"]["version"] >= write_version
            size: int = update["bytes"]
            return size

        sent = await client.mutate(SEND, {"i": {"channelId": channel, "body": "hello"}})
        added = await applied_as_patch(sent, 2)
        new_id = sent["result"]["data"]["sendMessage"]["id"]
        edit = {"i": {"id": new_id, "body": "hello, edited"}}
        await applied_as_patch(await client.mutate(EDIT, edit), 3)
        again = {"i": {"channelId": channel, "body": "again"}}
        await applied_as_patch(await client.mutate(SEND, again), 4)
        await applied_as_patch(await client.mutate(DELETE, {"id": new_id}), 5)
        # A message at the top of a full page is one add and one remove.
        assert added < 500 and added < first["bytes"] / 5
        assert process.stdin is not None
        process.stdin.close()
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def equals_a_fresh_read(
    server: Server, user: Any, channel: str, applied: dict[str, Any]
) -> None:
    fresh = await server.gql(f"query($channel: ID!) {{ {PAGE} }}", {"channel": channel}, user)
    assert applied["data"] == fresh
    assert "errors" not in applied
