"""Tenant isolation as a property: no answer and no live payload carries another
workspace's row, whatever users of several workspaces do, in whatever order.

Three workspaces of two users each live on one real server (made once per test).
Hypothesis draws lists of action groups; the actions of a group run concurrently, the
groups one after another. Actions are HTTP queries (``channels``, ``channel(id)``,
``messages(channelId)``, ``user(id)``, ``viewer``), mutations (``sendMessage``,
``editMessage``, ``deleteMessage``, ``createChannel``) over HTTP and over the WebSocket,
and ``@live`` queries subscribed and unsubscribed over graphql-transport-ws; every id an
action names is drawn from ANY workspace, or is one that does not exist.

Every row created is recorded with its workspace, and every name, email and body carries
its workspace's marker (``ws1:...``). Every HTTP answer and every live payload is scanned:
an object of another workspace (by ``__typename`` and ``id``) or a string with another
workspace's marker is a leak. Ids of other workspaces must answer exactly as ids that do
not exist (``null`` or NOT_FOUND), and a write aimed at them must be refused. After each
example, every open live query must settle on what a fresh HTTP read returns, so the
live side of the property is never checked vacuously.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import string
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest_asyncio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.harness import Server, User, WSClient

WORKSPACES = 3
USERS_PER_WORKSPACE = 2
CHANNELS_PER_WORKSPACE = 2
OWNED_TYPES = ("Channel", "Message", "User")
MISSING_IDS = ("999999", "0", "-1", "abc")
SETTLE_TIMEOUT_S = 5.0

AUTHOR = "__typename id name email"
MESSAGE = f"__typename id body editedAt author {{ {AUTHOR} }} channel {{ __typename id name }}"
CHANNELS = (
    "query Channels @live { channels(first: 200) { edges { node { __typename id name "
    f"messages(first: 5) {{ edges {{ node {{ {MESSAGE} }} }} }} }} }} }} }}"
)
CHANNEL = (
    "query Channel($id: ID!) @live { channel(id: $id) { __typename id name "
    f"messages(first: 20) {{ edges {{ node {{ {MESSAGE} }} }} }} }} }}"
)
MESSAGES = (
    "query Messages($id: ID!) @live { messages(channelId: $id, first: 200) "
    f"{{ edges {{ node {{ {MESSAGE} }} }} }} }}"
)
USER = f"query User($id: ID!) @live {{ user(id: $id) {{ {AUTHOR} }} }}"
VIEWER = f"query Viewer @live {{ viewer {{ {AUTHOR} }} }}"
QUERIES = {"channels": CHANNELS, "channel": CHANNEL, "messages": MESSAGES, "user": USER}
QUERIES["viewer"] = VIEWER

SEND = f"mutation($i: SendMessageInput!) {{ sendMessage(input: $i) {{ {MESSAGE} }} }}"
EDIT = f"mutation($i: EditMessageInput!) {{ editMessage(input: $i) {{ {MESSAGE} }} }}"
DELETE = "mutation($id: ID!) { deleteMessage(id: $id) }"
CREATE_CHANNEL = "mutation($n: String!) { createChannel(input: {name: $n}) { __typename id name } }"


def marker(workspace: int) -> str:
    return f"ws{workspace}:"


def plain(query: str) -> str:
    """The same query without ``@live``: what a fresh HTTP read returns."""
    return query.replace(" @live", "", 1)


def codes(body: dict[str, Any]) -> list[str | None]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or ()]


# -- actions ---------------------------------------------------------------------------

QUERY_KINDS = ("channels", "channel", "messages", "user", "viewer")
WRITE_KINDS = ("send", "send_ws", "edit", "delete", "create_channel")
LIVE_KINDS = tuple(f"live_{k}" for k in QUERY_KINDS)
KINDS = (*QUERY_KINDS, *WRITE_KINDS, *LIVE_KINDS, "unsubscribe")


@dataclass(frozen=True)
class Action:
    kind: str
    actor: tuple[int, int]  # (workspace, user)
    # (workspace, index) of the row it names; workspace == WORKSPACES: an id that is
    # nobody's. Drawn independently of the actor: mostly another workspace's row.
    target: tuple[int, int]
    text: str


actions = st.builds(
    Action,
    kind=st.sampled_from(KINDS),
    actor=st.tuples(st.integers(0, WORKSPACES - 1), st.integers(0, USERS_PER_WORKSPACE - 1)),
    target=st.tuples(st.integers(0, WORKSPACES), st.integers(0, 10_000)),
    # No ':' so a drawn text never forges another workspace's marker.
    text=st.text(alphabet=string.ascii_letters + string.digits + " -", max_size=20),
)
# Each inner list runs concurrently: the interleaving is real, not only the order.
scripts = st.lists(st.lists(actions, min_size=1, max_size=4), min_size=1, max_size=8)


# -- the world: workspaces, rows and who owns them -------------------------------------


@dataclass
class MessageRow:
    id: str
    author: tuple[int, int]
    deleted: bool = False


@dataclass
class LiveOp:
    query: str
    variables: dict[str, Any]
    last: dict[str, Any] | None = None


class LiveSocket:
    """One user's WebSocket: every message it receives is scanned as it arrives."""

    def __init__(self, world: World, workspace: int, client: WSClient) -> None:
        self.world = world
        self.workspace = workspace
        self.client = client
        self.live: dict[str, LiveOp] = {}
        self.results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.client.socket:
            message = json.loads(raw)
            op_id, kind = message.get("id"), message["type"]
            payload = message.get("payload")
            if kind == "error":
                payload = {"data": None, "errors": payload}
            if payload is not None:
                self.world.ws_payloads += 1
                self.world.scan(payload, self.workspace, f"WebSocket op {op_id} ({kind})")
            if op_id in self.live and payload is not None:
                self.live[op_id].last = payload
            future = self.results.get(op_id)
            if future is not None and not future.done() and payload is not None:
                future.set_result(payload)

    async def subscribe(self, query: str, variables: dict[str, Any]) -> str:
        op_id = await self.client.subscribe(query, variables)
        self.live[op_id] = LiveOp(query, variables)
        return op_id

    async def unsubscribe(self, op_id: str) -> None:
        self.live.pop(op_id, None)
        await self.client.send({"id": op_id, "type": "complete"})

    async def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """A mutation over the socket: its one result."""
        op_id = str(next(self.client._ids))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.results[op_id] = future
        await self.client.send(
            {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
        try:
            return await asyncio.wait_for(future, 10)
        finally:
            del self.results[op_id]


@dataclass
class World:
    server: Server
    http: httpx.AsyncClient
    users: list[list[User]] = field(default_factory=list)
    sockets: dict[tuple[int, int], LiveSocket] = field(default_factory=dict)
    owner: dict[tuple[str, str], int] = field(default_factory=dict)
    channels: list[list[str]] = field(default_factory=list)
    messages: list[list[MessageRow]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    unknown: list[tuple[tuple[str, str], int, str]] = field(default_factory=list)
    names: Iterator[int] = field(default_factory=itertools.count)
    examples: int = 0
    actions: int = 0
    http_answers: int = 0
    ws_payloads: int = 0

    # -- bookkeeping -------------------------------------------------------------------

    def own(self, typename: str, ident: str, workspace: int) -> None:
        self.owner[(typename, ident)] = workspace

    def scan(self, value: Any, viewer: int, where: str) -> None:
        """Record every object or string of a workspace other than ``viewer``'s."""
        if isinstance(value, dict):
            typename, ident = value.get("__typename"), value.get("id")
            if typename in OWNED_TYPES and isinstance(ident, str):
                self._check_owner((typename, ident), viewer, where)
            for item in value.values():
                self.scan(item, viewer, where)
        elif isinstance(value, list):
            for item in value:
                self.scan(item, viewer, where)
        elif isinstance(value, str):
            for other in range(WORKSPACES):
                if other != viewer and marker(other) in value:
                    self.violations.append(
                        f"{where}: workspace {viewer} saw {value!r} of workspace {other}"
                    )

    def _check_owner(
        self, key: tuple[str, str], viewer: int, where: str, *, final: bool = False
    ) -> None:
        owner = self.owner.get(key)
        if owner is None or (not final and owner != viewer and self._deleted(key, owner)):
            # Created by a write whose answer has not arrived yet, or an id SQLite gave
            # again after its row was deleted (to a write whose answer is on its way):
            # judged after the example, against the owner recorded by then.
            self.unknown.append((key, viewer, where))
        elif owner != viewer:
            self.violations.append(
                f"{where}: workspace {viewer} saw {key[0]} {key[1]} of workspace {owner}"
            )

    def judge_unknown(self) -> None:
        for key, viewer, where in self.unknown:
            if key not in self.owner:
                self.violations.append(f"{where}: workspace {viewer} saw unrecorded {key}")
            else:
                self._check_owner(key, viewer, where, final=True)
        self.unknown.clear()

    def _deleted(self, key: tuple[str, str], owner: int) -> bool:
        return key[0] == "Message" and any(
            row.id == key[1] and row.deleted for row in self.messages[owner]
        )

    def user_id(self, workspace: int, index: int) -> str:
        return self.users[workspace][index].id

    # -- targets -----------------------------------------------------------------------

    def channel_target(self, target: tuple[int, int]) -> tuple[str, int | None]:
        workspace, k = target
        if workspace == WORKSPACES:
            return MISSING_IDS[k % len(MISSING_IDS)], None
        rows = self.channels[workspace]
        return rows[k % len(rows)], workspace

    def message_target(self, target: tuple[int, int]) -> tuple[str, int | None, MessageRow | None]:
        workspace, k = target
        rows = self.messages[workspace] if workspace < WORKSPACES else []
        if not rows:
            return MISSING_IDS[k % len(MISSING_IDS)], None, None
        row = rows[k % len(rows)]
        return row.id, workspace, row

    def user_target(self, target: tuple[int, int]) -> tuple[str, int | None]:
        workspace, k = target
        if workspace == WORKSPACES:
            return MISSING_IDS[k % len(MISSING_IDS)], None
        return self.user_id(workspace, k % USERS_PER_WORKSPACE), workspace

    def query_variables(self, kind: str, target: tuple[int, int]) -> dict[str, Any]:
        if kind in ("channel", "messages"):
            return {"id": self.channel_target(target)[0]}
        if kind == "user":
            return {"id": self.user_target(target)[0]}
        return {}

    # -- transport ---------------------------------------------------------------------

    async def post(
        self, actor: tuple[int, int], query: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        user = self.users[actor[0]][actor[1]]
        response = await self.http.post(
            self.server.http, json={"query": query, "variables": variables}, headers=user.headers
        )
        if response.status_code >= 500:
            self.violations.append(f"HTTP {response.status_code} for {query} {variables}")
        body: dict[str, Any] = response.json()
        self.http_answers += 1
        self.scan(body, actor[0], f"HTTP answer to {query.split('{')[0]}{variables}")
        return body

    def expect(self, action: Action, body: dict[str, Any], allowed: set[str | None]) -> None:
        got = codes(body) or [None]
        if not set(got) <= allowed:
            self.violations.append(f"{action}: codes {got}, expected one of {allowed}: {body}")


async def _open_world(server: Server, stack: AsyncExitStack) -> World:
    http = await stack.enter_async_context(httpx.AsyncClient(timeout=15))
    world = World(server, http)
    for workspace in range(WORKSPACES):
        tag = marker(workspace)
        first = await server.sign_up(f"{tag}owner", workspace=f"{tag}team")
        team = [first]
        for index in range(1, USERS_PER_WORKSPACE):
            team.append(await server.teammate(first, f"{tag}mate{index}"))
        world.users.append(team)
        for user in team:
            world.own("User", user.id, workspace)
        channels = [await server.channel(first, f"{tag}general-{i}") for i in range(2)]
        world.channels.append(channels)
        for channel in channels:
            world.own("Channel", channel, workspace)
        world.messages.append([])
        for index, user in enumerate(team):
            message = await server.send(user, channels[0], f"{tag}hello from {index}")
            world.own("Message", message, workspace)
            world.messages[workspace].append(MessageRow(message, (workspace, index)))
        for index, user in enumerate(team):
            client = await stack.enter_async_context(WSClient.connect(server, user))
            world.sockets[(workspace, index)] = LiveSocket(world, workspace, client)
    return world


@pytest_asyncio.fixture
async def world(sqlite_server: Server) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        world = await _open_world(sqlite_server, stack)
        try:
            yield world
        finally:
            for socket in world.sockets.values():
                socket.task.cancel()
            await asyncio.gather(*(s.task for s in world.sockets.values()), return_exceptions=True)
        print(
            f"\nisolation: {world.examples} examples, {world.actions} actions, "
            f"{world.http_answers} HTTP answers and {world.ws_payloads} WebSocket payloads "
            f"scanned, {len(world.owner)} rows tracked"
        )


# -- running one action ----------------------------------------------------------------


async def run(world: World, action: Action) -> None:
    world.actions += 1
    kind, actor = action.kind, action.actor
    me = actor[0]
    if kind in QUERY_KINDS:
        await run_query(world, action)
    elif kind.startswith("live_"):
        query_kind = kind.removeprefix("live_")
        socket = world.sockets[actor]
        await socket.subscribe(
            QUERIES[query_kind], world.query_variables(query_kind, action.target)
        )
    elif kind == "unsubscribe":
        socket = world.sockets[actor]
        if socket.live:
            ops = sorted(socket.live)
            await socket.unsubscribe(ops[action.target[1] % len(ops)])
    elif kind in ("send", "send_ws"):
        channel, owner = world.channel_target(action.target)
        variables = {"i": {"channelId": channel, "body": f"{marker(me)}{action.text or 'x'}"}}
        if kind == "send":
            body = await world.post(actor, SEND, variables)
        else:
            body = await world.sockets[actor].execute(SEND, variables)
        record_message(world, action, body, channel, owner)
    elif kind in ("edit", "delete"):
        await run_change(world, action)
    elif kind == "create_channel":
        name = f"{marker(me)}{action.text}-{next(world.names)}"
        body = await world.post(actor, CREATE_CHANNEL, {"n": name})
        world.expect(action, body, {None})
        if body.get("data"):
            channel_id = body["data"]["createChannel"]["id"]
            world.own("Channel", channel_id, me)
            world.channels[me].append(channel_id)
    else:  # pragma: no cover - KINDS and this dispatch are kept in step
        raise AssertionError(kind)


async def run_query(world: World, action: Action) -> None:
    kind, me = action.kind, action.actor[0]
    variables = world.query_variables(kind, action.target)
    body = await world.post(action.actor, plain(QUERIES[kind]), variables)
    foreign = action.target[0] != me
    if kind == "messages":
        # Another workspace's channel answers exactly as a channel that does not exist.
        world.expect(action, body, {"NOT_FOUND"} if foreign else {None})
    elif kind in ("channel", "user"):
        world.expect(action, body, {None})
        if foreign and (body.get("data") or {}).get(kind) is not None:
            world.violations.append(f"{action}: another workspace's {kind} answered: {body}")
    else:
        world.expect(action, body, {None})


def record_message(
    world: World, action: Action, body: dict[str, Any], channel: str, owner: int | None
) -> None:
    me = action.actor[0]
    data = body.get("data") or {}
    if data.get("sendMessage"):
        message_id = data["sendMessage"]["id"]
        # Recorded as the sender's, whatever it says: landing elsewhere shows up as a leak.
        world.own("Message", message_id, me)
        world.messages[me].append(MessageRow(message_id, action.actor))
    world.expect(action, body, {None} if owner == me else refused(owner, channel))


def refused(owner: int | None, ident: str) -> set[str | None]:
    """How a write aimed at another workspace's row, or at none, must be refused."""
    if owner is None and not ident.lstrip("-").isdigit():
        # Not an id at all: input validation may refuse it before any lookup.
        return {"NOT_FOUND", "BAD_USER_INPUT"}
    return {"NOT_FOUND"}


async def run_change(world: World, action: Action) -> None:
    me = action.actor[0]
    message_id, owner, row = world.message_target(action.target)
    if owner != me or row is None or row.deleted:
        allowed = refused(owner, message_id)
    elif row.author == action.actor:
        allowed = {None, "NOT_FOUND"}  # NOT_FOUND: deleted by a concurrent action
    else:
        allowed = {"FORBIDDEN", "NOT_FOUND"}
    if action.kind == "edit":
        variables = {"i": {"id": message_id, "body": f"{marker(me)}edited {action.text}"}}
        body = await world.post(action.actor, EDIT, variables)
    else:
        body = await world.post(action.actor, DELETE, {"id": message_id})
        if body.get("data") and row is not None:
            row.deleted = True
    world.expect(action, body, allowed)


# -- after each example ----------------------------------------------------------------


async def settle(world: World) -> None:
    """Every open live query ends on what a fresh read returns; then all are closed."""
    ops = [
        (actor, op_id, op)
        for actor, socket in world.sockets.items()
        for op_id, op in socket.live.items()
    ]

    async def settled(actor: tuple[int, int], op_id: str, op: LiveOp) -> None:
        fresh: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        while loop.time() < deadline:
            fresh = await world.post(actor, plain(op.query), op.variables)
            last = op.last or {}
            if last.get("data") == fresh.get("data") and codes(last) == codes(fresh):
                return
            await asyncio.sleep(0.05)
        world.violations.append(
            f"live op {op_id} of {actor} did not settle: last {op.last}, fresh read {fresh}"
        )

    await asyncio.gather(*(settled(*item) for item in ops))
    for socket in world.sockets.values():
        for op_id in list(socket.live):
            await socket.unsubscribe(op_id)
        if socket.task.done():
            world.violations.append(f"a WebSocket closed: {socket.task}")


@settings(
    max_examples=25,
    deadline=None,
    # The world is built once per test on purpose: state accumulates across examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    print_blob=True,
    # Examples share one growing server, so shrinking is slow and rarely exact; the
    # violation messages name the rows and actions, and the seed replays the run.
    phases=(Phase.explicit, Phase.generate),
)
@given(script=scripts)
async def test_no_answer_or_live_payload_carries_another_workspaces_row(
    world: World, script: list[list[Action]]
) -> None:
    world.examples += 1
    for group in script:
        await asyncio.gather(*(run(world, action) for action in group))
    await settle(world)
    world.judge_unknown()
    violations, world.violations = world.violations, []
    assert not violations, "\n".join(violations)
