"""Tenant isolation: workspace B never reads or writes workspace A's rows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import pytest_asyncio
from sqlmodel import select

from app import tenancy
from app.dataloaders.loaders import LoaderSet
from app.errors import Forbidden
from app.schema.models.channel import Channel
from app.schema.models.message import Message
from app.schema.models.user import User as UserRow
from app.transaction import transact
from app.tx import Tx
from tests.harness import GraphQLErrors, Server, User

# One server per module and database; each test signs up its own workspaces.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


CHANNEL = "query($id: ID!) { channel(id: $id) { id name } }"
USER = "query($id: ID!) { user(id: $id) { id name email } }"
MESSAGES = "query($c: ID!) { messages(channelId: $c) { edges { node { id body } } } }"
CHANNELS = "{ channels { edges { node { id name } } } }"
EDIT = "mutation($i: EditMessageInput!) { editMessage(input: $i) { id body } }"
DELETE = "mutation($id: ID!) { deleteMessage(id: $id) }"


@dataclass
class Tenants:
    a: User
    b: User
    a_channel: str
    a_message: str
    b_channel: str


@pytest_asyncio.fixture(loop_scope="module")
async def tenants(server: Server) -> Tenants:
    a = await server.sign_up("alice", workspace="A")
    b = await server.sign_up("bob", workspace="B")
    a_channel = await server.channel(a, "secret")
    a_message = await server.send(a, a_channel, "for A only")
    b_channel = await server.channel(b, "secret")  # same name, other workspace
    return Tenants(a, b, a_channel, a_message, b_channel)


def _workspace(server: Server, user: User) -> int:
    return server.services.tokens.decode(user.token).workspace_id


async def _codes(server: Server, query: str, variables: dict[str, object], user: User) -> list[str]:
    with pytest.raises(GraphQLErrors) as caught:
        await server.gql(query, variables, user)
    return caught.value.codes


async def _a_messages(server: Server, t: Tenants) -> list[dict[str, str]]:
    data = await server.gql(MESSAGES, {"c": t.a_channel}, t.a)
    return [e["node"] for e in data["messages"]["edges"]]


async def test_other_workspace_channel_by_id_is_null(server: Server, tenants: Tenants) -> None:
    data = await server.gql(CHANNEL, {"id": tenants.a_channel}, tenants.b)
    assert data == {"channel": None}
    mine = await server.gql(CHANNEL, {"id": tenants.a_channel}, tenants.a)
    assert mine["channel"]["id"] == tenants.a_channel


async def test_other_workspace_user_by_id_is_null(server: Server, tenants: Tenants) -> None:
    assert await server.gql(USER, {"id": tenants.a.id}, tenants.b) == {"user": None}
    mine = await server.gql(USER, {"id": tenants.a.id}, tenants.a)
    assert mine["user"]["id"] == tenants.a.id


async def test_other_workspace_messages_list_is_not_found(server: Server, tenants: Tenants) -> None:
    codes = await _codes(server, MESSAGES, {"c": tenants.a_channel}, tenants.b)
    assert codes == ["NOT_FOUND"]


async def test_channels_list_never_contains_other_workspace(
    server: Server, tenants: Tenants
) -> None:
    data = await server.gql(CHANNELS, user=tenants.b)
    ids = [e["node"]["id"] for e in data["channels"]["edges"]]
    assert ids == [tenants.b_channel]


async def test_cannot_send_into_other_workspace_channel(server: Server, tenants: Tenants) -> None:
    with pytest.raises(GraphQLErrors) as caught:
        await server.send(tenants.b, tenants.a_channel, "intruder")
    assert caught.value.codes == ["NOT_FOUND"]
    assert await _a_messages(server, tenants) == [{"id": tenants.a_message, "body": "for A only"}]


async def test_cannot_edit_other_workspace_message(server: Server, tenants: Tenants) -> None:
    variables = {"i": {"id": tenants.a_message, "body": "defaced"}}
    assert await _codes(server, EDIT, variables, tenants.b) == ["NOT_FOUND"]
    assert await _a_messages(server, tenants) == [{"id": tenants.a_message, "body": "for A only"}]


async def test_cannot_delete_other_workspace_message(server: Server, tenants: Tenants) -> None:
    assert await _codes(server, DELETE, {"id": tenants.a_message}, tenants.b) == ["NOT_FOUND"]
    assert await _a_messages(server, tenants) == [{"id": tenants.a_message, "body": "for A only"}]


async def test_scoped_read_session_filters_hand_written_selects(
    server: Server, tenants: Tenants
) -> None:
    a_ws, b_ws = _workspace(server, tenants.a), _workspace(server, tenants.b)
    async with server.services.db.reading() as session:
        tenancy.scope(session.sync_session, b_ws)
        channels = (await session.exec(select(Channel))).all()
        by_id = (
            await session.exec(select(Channel).where(Channel.id == int(tenants.a_channel)))
        ).first()
        joined = (
            await session.exec(select(Message).join(Channel, Message.channel_id == Channel.id))
        ).all()
        users = (await session.exec(select(UserRow))).all()
    assert [c.workspace_id for c in channels] == [b_ws]
    assert by_id is None
    assert joined == []
    assert {u.workspace_id for u in users} == {b_ws}
    assert a_ws != b_ws


async def test_a_loaders_prepared_statement_is_filtered_for_each_tenant_that_runs_it(
    server: Server, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loader's statement is built once and filtered once per tenant: the filtered
    form kept for one workspace is never the one another workspace runs."""
    a_ws, b_ws = _workspace(server, tenants.a), _workspace(server, tenants.b)
    built: list[object] = []
    criteria = tenancy._criteria

    def counting(tenant: int | str, mappers: int) -> tuple[object, ...]:
        built.append(tenant)
        return criteria(tenant, mappers)

    monkeypatch.setattr(tenancy, "_criteria", counting)
    tenancy._filtered.clear()

    async def read_as(workspace: int) -> tuple[object, list[str]]:
        async with server.services.db.reading() as session:
            tenancy.scope(session.sync_session, workspace)

            async def fetch(statement: object, params: object = None, /) -> object:
                return (await session.exec(statement, params=params)).all()  # type: ignore[call-overload]

            loaders = LoaderSet(fetch)
            channel = await loaders.by_pk(Channel).load(int(tenants.a_channel))
            page = await loaders.page_by(Message, "channel_id").load(
                (int(tenants.a_channel), 50, None)
            )
            return channel, [edge.node.body for edge in page.edges]

    for _ in range(3):
        assert await read_as(b_ws) == (None, [])
        channel, bodies = await read_as(a_ws)
        assert channel is not None and bodies == ["for A only"]
    # Two prepared statements, filtered once for each workspace.
    assert sorted(built) == sorted([a_ws, a_ws, b_ws, b_ws])


async def test_unscoped_read_session_refuses_tenant_rows(server: Server, tenants: Tenants) -> None:
    async with server.services.db.reading() as session:
        with pytest.raises(tenancy.TenantScopeMissing):
            await session.exec(select(Channel))


async def test_scoped_write_session_refuses_other_workspace_row(
    server: Server, tenants: Tenants
) -> None:
    a_ws, b_ws = _workspace(server, tenants.a), _workspace(server, tenants.b)

    async def plant(tx: Tx) -> None:
        tx.add(Channel(name="planted", workspace_id=a_ws))

    with pytest.raises(Forbidden):
        await transact(server.services.db, plant, workspace_id=b_ws, retries=0)
    names = [
        e["node"]["name"] for e in (await server.gql(CHANNELS, user=tenants.a))["channels"]["edges"]
    ]
    assert names == ["secret"]


async def test_scoped_write_session_cannot_load_other_workspace_row(
    server: Server, tenants: Tenants
) -> None:
    b_ws = _workspace(server, tenants.b)

    async def load(tx: Tx) -> Channel | None:
        return await tx.get(Channel, tenants.a_channel)

    found, batch = await transact(server.services.db, load, workspace_id=b_ws, retries=0)
    assert found is None
    assert batch is None


async def test_new_rows_are_stamped_with_the_session_workspace(
    server: Server, tenants: Tenants
) -> None:
    b_ws = _workspace(server, tenants.b)

    async def create(tx: Tx) -> Channel:
        channel = Channel(name="stamped")
        tx.add(channel)
        await tx.flush()
        return channel

    channel, _ = await transact(server.services.db, create, workspace_id=b_ws, retries=0)
    assert channel.workspace_id == b_ws


async def test_an_id_beyond_the_key_range_is_not_found(server: Server) -> None:
    """PostgreSQL keys are 32-bit: a larger ID identifies nothing, it is no error."""
    from tests.harness import GraphQLErrors

    alice = await server.sign_up("alice")
    for ident in ("2147483648", "99999999999999999", "0"):
        data = await server.gql("query($id: ID!) { channel(id: $id) { id } }", {"id": ident}, alice)
        assert data["channel"] is None
        try:
            await server.gql(
                "query($id: ID!) { messages(channelId: $id) { edges { cursor } } }",
                {"id": ident},
                alice,
            )
        except GraphQLErrors as exc:
            assert exc.codes == ["NOT_FOUND"]
        else:
            raise AssertionError("a channel that cannot exist was found")
