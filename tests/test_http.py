"""GraphQL over HTTP: methods, status codes, content types, and error codes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.harness import Server

# One server per module and database; each test signs up its own workspaces.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


async def _get(server: Server, params: dict[str, str], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(server.http, params=params, headers=headers)


async def _post(server: Server, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(server.http, **kwargs)


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


async def test_get_query_answers_with_json(server: Server) -> None:
    alice = await server.sign_up("alice")
    await server.channel(alice, "general")
    response = await _get(
        server,
        {"query": "{ channels { edges { node { name } } } }"},
        accept="application/json",
        **alice.headers,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"channels": {"edges": [{"node": {"name": "general"}}]}}}


async def test_get_mutation_is_refused_and_not_executed(server: Server) -> None:
    alice = await server.sign_up("alice")
    response = await _get(
        server,
        {"query": 'mutation { createChannel(input: {name: "via-get"}) { id } }'},
        accept="application/json",
        **alice.headers,
    )
    assert response.status_code == 405
    assert response.json()["errors"][0]["message"] == "Mutations must be sent with POST"
    data = await server.gql("{ channels { edges { node { name } } } }", user=alice)
    assert data["channels"]["edges"] == []


async def test_get_mutation_status_is_405_per_spec(server: Server) -> None:
    response = await _get(
        server, {"query": "mutation { createInvite { code } }"}, accept="application/json"
    )
    assert response.status_code == 405


async def test_post_invalid_json_is_400(server: Server) -> None:
    response = await _post(
        server, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


async def test_post_without_query_is_400(server: Server) -> None:
    response = await _post(server, json={"variables": {}})
    assert response.status_code == 400


async def test_browser_get_serves_graphiql(server: Server) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(server.http, headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_unknown_field_is_a_validation_error_and_nothing_runs(server: Server) -> None:
    alice = await server.sign_up("alice")
    server.count_statements()
    body = await server.post(
        'mutation { createChannel(input: {name: "x"}) { id nope } }', user=alice
    )
    assert _codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "nope" in body["errors"][0]["message"]
    assert body.get("data") is None
    # Authentication may read the user (token revocation); nothing of the operation ran.
    touched = [s for s in server.statements if "channel" in s.lower() or "INSERT" in s]
    assert touched == []
    data = await server.gql("{ channels { edges { node { name } } } }", user=alice)
    assert data["channels"]["edges"] == []


async def test_syntax_error_is_parse_failed(server: Server) -> None:
    body = await server.post("{ viewer { id ")
    assert _codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert body.get("data") is None


async def test_variable_of_wrong_type_is_bad_user_input(server: Server) -> None:
    alice = await server.sign_up("alice")
    body = await server.post(
        "query($n: Int) { channels(first: $n) { edges { cursor } } }",
        {"n": "many"},
        alice,
    )
    assert _codes(body) == ["BAD_USER_INPUT"]
    assert "$n" in body["errors"][0]["message"]
