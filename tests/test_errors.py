"""Unexpected errors are masked and logged with a request id; expected ones are answers."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import pytest_asyncio

from app import pagination
from tests.harness import Server, User

# One server per module and database; each test signs up its own workspace.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


CHANNELS = "{ channels { edges { node { id } } } }"
SECRET = "secret internals: password=hunter2"


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
