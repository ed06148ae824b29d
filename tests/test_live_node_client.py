"""The npm graphql-ws client, as a Node app would use it, receives live updates."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import Server

NODE_DIR = Path(__file__).parent / "node"


def node_ready() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are required for the graphql-ws client test")
    if not (NODE_DIR / "node_modules" / "graphql-ws").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )


async def test_graphql_ws_npm_client_receives_live_updates(sqlite_server: Server) -> None:
    server = sqlite_server
    await asyncio.to_thread(node_ready)
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "before")
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "live_client.mjs"),
        server.ws,
        alice.token,
        channel,
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = json.loads(await asyncio.wait_for(process.stdout.readline(), 15))
        assert [e["node"]["body"] for e in first["data"]["messages"]["edges"]] == ["before"]
        await server.send(alice, channel, "after")
        second = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
        assert [e["node"]["body"] for e in second["data"]["messages"]["edges"]] == [
            "after",
            "before",
        ]
        assert second["extensions"]["live"]["version"] > first["extensions"]["live"]["version"]
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
