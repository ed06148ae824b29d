"""A domain's own context class reaches its resolvers, over HTTP and in live runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.resolvers.chat import CHAT
from app.settings import Settings
from tests.context_probe.greeting import GreetingCtx
from tests.harness import Server, WSClient, make_settings, running_server


def _settings(tmp_path: Path) -> Settings:
    return make_settings(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path)


@pytest.fixture
async def greeting_server(tmp_path: Path) -> AsyncIterator[Server]:
    domain = replace(CHAT, resolvers=(*CHAT.resolvers, "tests.context_probe"), context=GreetingCtx)
    async with running_server(_settings(tmp_path), domain=domain) as server:
        yield server


async def test_the_domain_context_class_reaches_resolvers(greeting_server: Server) -> None:
    alice = await greeting_server.sign_up("alice")
    body = await greeting_server.post("{ greeting }", user=alice)
    assert body["data"] == {"greeting": f"hello, user {alice.id}"}
    async with WSClient.connect(greeting_server, alice) as ws:
        op = await ws.subscribe("query @live { greeting }", {})
        message = await ws.receive_for(op, 5.0)
        assert message["payload"]["data"] == {"greeting": f"hello, user {alice.id}"}


async def test_a_server_without_it_names_the_mismatch(tmp_path: Path) -> None:
    domain = replace(CHAT, resolvers=(*CHAT.resolvers, "tests.context_probe"))
    async with running_server(_settings(tmp_path), domain=domain) as server:
        alice = await server.sign_up("alice")
        body = await server.post("{ greeting }", user=alice)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
