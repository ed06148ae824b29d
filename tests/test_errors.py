"""Unexpected errors are masked and logged with a request id; expected ones are answers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
import pytest_asyncio

from app import pagination
from tests.harness import Server, User, WSClient

# One server per module and database; each test signs up its own workspace.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


CHANNELS = "{ channels { edges { node { id } } } }"
SECRET = "secret internals: password=hunter2"
# Validating even a pathological document is a matter of milliseconds.
VALIDATION_TIMEOUT_S = 5.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def alice(shared_server: Server) -> User:
    return await shared_server.sign_up("alice")


def _explode(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError(SECRET)


def _error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_unexpected_error_is_masked_as_internal_with_a_request_id(
    server: Server, alice: User, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pagination, "clamp_first", _explode)
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        body = await server.post(CHANNELS, user=alice)
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == "INTERNAL"
    request_id = error["extensions"]["requestId"]
    assert request_id
    assert SECRET not in str(body)
    assert body["data"] is None
    (record,) = [r for r in caplog.records if r.name == "app.errors"]
    assert record.levelno == logging.ERROR
    assert request_id in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


async def test_each_request_gets_its_own_request_id(
    server: Server, alice: User, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pagination, "clamp_first", _explode)
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        first = await server.post(CHANNELS, user=alice)
        second = await server.post(CHANNELS, user=alice)
    ids = [b["errors"][0]["extensions"]["requestId"] for b in (first, second)]
    assert ids[0] != ids[1]
    logged = [r.getMessage() for r in caplog.records if r.name == "app.errors"]
    assert [any(i in m for m in logged) for i in ids] == [True, True]


async def test_not_found_is_not_masked_nor_logged(
    server: Server, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        body = await server.post(
            'query { messages(channelId: "987654") { edges { cursor } } }', user=alice
        )
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "NOT_FOUND"}
    assert "987654" in error["message"]
    assert _error_records(caplog) == []


async def test_bad_user_input_is_not_masked_nor_logged(
    server: Server, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        body = await server.post("{ channels(first: 500) { edges { cursor } } }", user=alice)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["fields"] == [{"path": "first", "message": "must be at most 200"}]
    assert _error_records(caplog) == []


async def test_conflict_is_not_masked_nor_logged(
    server: Server, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"taken-{uuid.uuid4().hex[:8]}"
    await server.channel(alice, name)
    with caplog.at_level(logging.INFO):
        body = await server.post(
            "mutation($n: String!) { createChannel(input: {name: $n}) { id } }", {"n": name}, alice
        )
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert name in error["message"]
    assert _error_records(caplog) == []


# -- validation: every failure coded, and validation never crashes ------------------------


def _chain(length: int) -> str:
    """Fragments that each spread the next one twice: 2**length paths through them."""
    chain = [
        f"fragment F{i} on Query {{ a{i}: __typename ...F{i + 1} ...F{i + 1} }}"
        for i in range(length)
    ]
    return "{ ...F0 }\n" + "\n".join(chain) + f"\nfragment F{length} on Query {{ __typename }}"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ ...Missing }", "Unknown fragment 'Missing'."),
        ("query { viewer { ...F } }", "Unknown fragment 'F'."),
        ("query @live { ...Missing }", "Unknown fragment 'Missing'."),
        ("query($id: ID!) { __typename }", "Variable '$id' is never used."),
        ("fragment F on Query { ...F } { ...F }", "Cannot spread fragment 'F' within itself."),
        (_chain(60), f"{2**60 - 1} aliases found. Allowed: 30"),
    ],
    ids=["undefined", "undefined-nested", "undefined-live", "unused-variable", "cycle", "chain"],
)
async def test_every_validation_failure_is_coded(
    server: Server, alice: User, query: str, message: str
) -> None:
    body = await asyncio.wait_for(server.post(query, user=alice), VALIDATION_TIMEOUT_S)
    assert body["data"] is None
    assert message in [e["message"] for e in body["errors"]], body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}


@pytest.mark.parametrize("query", ["{ }", "{ viewer { } }", "query @live { }"])
async def test_an_empty_selection_set_is_answered(server: Server, alice: User, query: str) -> None:
    """graphql-core reads and validates an empty selection set; it selects nothing."""
    body = await server.post(query, user=alice)
    assert body == {"data": {}} or body == {"data": {"viewer": {}}}, body


async def test_variables_that_do_not_coerce_are_bad_user_input(server: Server, alice: User) -> None:
    body = await server.post("query($id: ID!) { user(id: $id) { id } }", {"id": None}, alice)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_validation_failures_are_coded_over_websocket(server: Server, alice: User) -> None:
    async with WSClient.connect(server, alice) as client:
        for query in ("{ ...Missing }", "query @live { ...Missing }", _chain(60)):
            op = await client.subscribe(query)
            message = await client.receive_for(op, VALIDATION_TIMEOUT_S)
            assert message["type"] == "error", message
            codes = {e["extensions"]["code"] for e in message["payload"]}
            assert codes == {"GRAPHQL_VALIDATION_FAILED"}, message
