"""Messages: send, edit and delete by the author only; body limits; idempotent sends."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import pytest_asyncio

from tests.harness import GraphQLErrors, Server, User

# One server per module and database; each test signs up its own workspaces.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


MESSAGES = """
query($c: ID!) {
  messages(channelId: $c, first: 200) { edges { node { id body editedAt author { id } } } }
}
"""
SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id body editedAt } }"
EDIT = "mutation($i: EditMessageInput!) { editMessage(input: $i) { id body editedAt } }"
DELETE = "mutation($id: ID!) { deleteMessage(id: $id) }"


async def _messages(server: Server, user: User, channel: str) -> list[dict[str, Any]]:
    data = await server.gql(MESSAGES, {"c": channel}, user)
    return [edge["node"] for edge in data["messages"]["edges"]]


async def _error(
    server: Server, query: str, variables: dict[str, Any], user: User
) -> dict[str, Any]:
    with pytest.raises(GraphQLErrors) as caught:
        await server.gql(query, variables, user)
    (error,) = caught.value.errors
    return error


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def members(shared_server: Server) -> tuple[User, User]:
    """Alice and her teammate Bob, for the whole module: each test has its own channel."""
    alice = await shared_server.sign_up("alice")
    return alice, await shared_server.teammate(alice, "bob")


async def _room(server: Server, members: tuple[User, User]) -> tuple[User, str]:
    alice = members[0]
    return alice, await server.channel(alice)


async def test_author_sends_a_message(server: Server, members: tuple[User, User]) -> None:
    alice, channel = await _room(server, members)
    data = await server.gql(SEND, {"i": {"channelId": channel, "body": "hello"}}, alice)
    sent = data["sendMessage"]
    assert sent["body"] == "hello"
    assert sent["editedAt"] is None
    listed = await _messages(server, alice, channel)
    assert listed == [{**sent, "author": {"id": alice.id}}]


async def test_author_edits_a_message_and_edited_at_is_set(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    message = await server.send(alice, channel, "first draft")
    data = await server.gql(EDIT, {"i": {"id": message, "body": "final"}}, alice)
    edited = data["editMessage"]
    assert edited["id"] == message
    assert edited["body"] == "final"
    assert edited["editedAt"] is not None
    (listed,) = await _messages(server, alice, channel)
    assert listed["body"] == "final"
    assert listed["editedAt"] == edited["editedAt"]


async def test_author_deletes_a_message_and_it_is_gone(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    keep = await server.send(alice, channel, "keep")
    doomed = await server.send(alice, channel, "doomed")
    data = await server.gql(DELETE, {"id": doomed}, alice)
    assert data == {"deleteMessage": doomed}
    assert [m["id"] for m in await _messages(server, alice, channel)] == [keep]
    error = await _error(server, DELETE, {"id": doomed}, alice)
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_teammate_cannot_edit_anothers_message(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    bob = members[1]
    message = await server.send(alice, channel, "mine")
    error = await _error(server, EDIT, {"i": {"id": message, "body": "bob was here"}}, bob)
    assert error["extensions"]["code"] == "FORBIDDEN"
    (listed,) = await _messages(server, bob, channel)
    assert (listed["body"], listed["editedAt"]) == ("mine", None)


async def test_teammate_cannot_delete_anothers_message(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    bob = members[1]
    message = await server.send(alice, channel, "mine")
    error = await _error(server, DELETE, {"id": message}, bob)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert [m["id"] for m in await _messages(server, alice, channel)] == [message]


@pytest.mark.parametrize("length", [0, 4001])
async def test_send_with_body_out_of_bounds_is_bad_input(
    server: Server, members: tuple[User, User], length: int
) -> None:
    alice, channel = await _room(server, members)
    variables = {"i": {"channelId": channel, "body": "x" * length}}
    error = await _error(server, SEND, variables, alice)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [f["path"] for f in error["extensions"]["fields"]] == ["input.body"]
    assert await _messages(server, alice, channel) == []


async def test_send_with_the_longest_body_is_accepted(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    await server.send(alice, channel, "x" * 4000)
    (listed,) = await _messages(server, alice, channel)
    assert len(listed["body"]) == 4000


@pytest.mark.parametrize("length", [0, 4001])
async def test_edit_with_body_out_of_bounds_is_bad_input(
    server: Server, members: tuple[User, User], length: int
) -> None:
    alice, channel = await _room(server, members)
    message = await server.send(alice, channel, "original")
    error = await _error(server, EDIT, {"i": {"id": message, "body": "x" * length}}, alice)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [f["path"] for f in error["extensions"]["fields"]] == ["input.body"]
    (listed,) = await _messages(server, alice, channel)
    assert (listed["body"], listed["editedAt"]) == ("original", None)


async def test_same_idempotency_key_twice_returns_the_first_message(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    key = uuid.uuid4().hex
    first = await server.send(alice, channel, "once", idempotencyKey=key)
    again = await server.send(alice, channel, "once", idempotencyKey=key)
    assert again == first
    assert [m["id"] for m in await _messages(server, alice, channel)] == [first]


async def test_same_idempotency_key_sent_concurrently_creates_one_message(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    key = uuid.uuid4().hex
    ids = await asyncio.gather(
        *(server.send(alice, channel, "once", idempotencyKey=key) for _ in range(10))
    )
    assert len(set(ids)) == 1
    assert [m["id"] for m in await _messages(server, alice, channel)] == [ids[0]]


async def test_different_authors_may_reuse_a_key(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    bob = members[1]
    key = uuid.uuid4().hex
    from_alice = await server.send(alice, channel, "a", idempotencyKey=key)
    from_bob = await server.send(bob, channel, "b", idempotencyKey=key)
    assert from_alice != from_bob
    listed = await _messages(server, alice, channel)
    assert {(m["id"], m["author"]["id"]) for m in listed} == {
        (from_alice, alice.id),
        (from_bob, bob.id),
    }


async def test_sends_without_a_key_are_not_deduplicated(
    server: Server, members: tuple[User, User]
) -> None:
    alice, channel = await _room(server, members)
    first = await server.send(alice, channel, "same")
    second = await server.send(alice, channel, "same")
    assert first != second
    assert len(await _messages(server, alice, channel)) == 2
