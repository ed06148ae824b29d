"""The engine serves a domain that is not the chat: ``examples/notes`` (its own tenant,
principal, tables and live query), with no chat module imported; and the chat beside
it, two applications in one process.

Run in a fresh interpreter (the test process has imported the chat long ago): it serves
the notes app over real HTTP and WebSocket, holds a live query with ``gql`` while a
note is added, checks ``sys.modules``, then serves the chat app beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r'''
import asyncio, json, socket, sys

import httpx
import uvicorn
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from app.server import create_app
from app.settings import Settings
from examples.notes import NOTES

CHAT_MODULES = ("app.schema.models", "app.resolvers", "app.demo")
LIVE = "query Notes @live { notes { edges { node { title } } } }"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return server, task, f"http://127.0.0.1:{port}"


async def post(url, query, variables=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        return response.json()


def settings(tmp, name):
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp}/{name}.db",
        broadcast_url="memory://",
        secret_key="k" * 32,
        storage_url=f"file://{tmp}/{name}-files",
    )


async def live_notes(url):
    """startOrg, then a live query held by gql while another member's client writes."""
    started = await post(url, 'mutation { startOrg(name: "Acme", member: "Ann") }')
    token = started["data"]["startOrg"]
    other = await post(url, 'mutation { startOrg(name: "Other", member: "Olga") }')
    await post(url, 'mutation { addNote(title: "not Acme\'s") }', token=other["data"]["startOrg"])
    transport = WebsocketsTransport(
        url=url.replace("http", "ws") + "/graphql",
        init_payload={"authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    seen = []
    async with Client(transport=transport) as session:
        results = session.subscribe(GraphQLRequest(LIVE))
        seen.append(await asyncio.wait_for(anext(results), 10))
        added = await post(url, 'mutation { addNote(title: "Ship it") { title } }', token=token)
        seen.append(await asyncio.wait_for(anext(results), 10))
        await results.aclose()
    titles = [[e["node"]["title"] for e in r["notes"]["edges"]] for r in seen]
    return {"added": added, "titles": titles}


async def main(tmp):
    notes_app = create_app(NOTES, settings(tmp, "notes"))
    server, task, url = await serve(notes_app)
    out = {"notes": await live_notes(url)}
    out["chat_modules_after_notes"] = sorted(m for m in sys.modules if m.startswith(CHAT_MODULES))
    out["notes_tables"] = sorted(notes_app.state.application.metadata.tables)

    from app.resolvers.chat import CHAT

    chat_app = create_app(CHAT, settings(tmp, "chat"))
    chat_server, chat_task, chat_url = await serve(chat_app)
    signed_up = await post(chat_url, """mutation { signUp(input: {email: "c@example.com",
        password: "long enough", name: "Cy", workspaceName: "Chat"}) { token } }""")
    token = signed_up["data"]["signUp"]["token"]
    await post(chat_url, 'mutation { createChannel(input: {name: "general"}) { id } }', token=token)
    channels = "{ channels { edges { node { name } } } }"
    out["chat_channels"] = await post(chat_url, channels, token=token)
    out["chat_tables"] = sorted(chat_app.state.application.metadata.tables)
    notes = "{ notes { edges { node { id } } } }"
    out["notes_query_on_chat"] = await post(chat_url, notes, token=token)
    # The notes app still serves live, with the chat built beside it.
    out["notes_again"] = await live_notes(url)
    for s, t in ((server, task), (chat_server, chat_task)):
        s.should_exit = True
        await t
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
'''


def _run(tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_second_domain_is_served_live_with_no_chat_module_and_beside_the_chat(
    tmp_path: Path,
) -> None:
    out = _run(tmp_path)
    # The notes app: a live query updated by a write, tenant-scoped by its own tenant.
    assert out["notes"]["added"]["data"] == {"addNote": {"title": "Ship it"}}
    assert out["notes"]["titles"] == [[], ["Ship it"]]
    assert out["chat_modules_after_notes"] == []
    assert out["notes_tables"] == [
        "change_clock",
        "change_log",
        "notes_member",
        "notes_note",
        "notes_org",
        "scheduled_job",
    ]
    # The chat beside it: its own schema and tables, none of the notes'.
    assert out["chat_channels"]["data"]["channels"]["edges"] == [{"node": {"name": "general"}}]
    assert not any(table.startswith("notes_") for table in out["chat_tables"])
    assert "message" in out["chat_tables"]
    assert out["notes_query_on_chat"]["errors"][0]["extensions"]["code"] == (
        "GRAPHQL_VALIDATION_FAILED"
    )
    assert out["notes_again"]["titles"] == [[], ["Ship it"]]
