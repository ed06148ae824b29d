"""Sign-up, sign-in, password storage and bearer tokens."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import text

import app.auth as auth_module
from app.auth import TokenService
from app.errors import Unauthenticated
from tests.harness import Server, User

# One server per module and database; each test signs up its own workspaces.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


PASSWORD = "correct horse battery"
SIGN_UP = """
mutation($input: SignUpInput!) {
  signUp(input: $input) { token user { id name email } }
}
"""
SIGN_IN = """
mutation($input: SignInInput!) { signIn(input: $input) { token user { id email } } }
"""
CHANNELS = "{ channels { edges { node { id name } } } }"
VIEWER = "{ viewer { id name email } }"


def _email() -> str:
    return f"u-{uuid.uuid4().hex[:10]}@example.com"


def _sign_up_input(**fields: Any) -> dict[str, Any]:
    return {"email": _email(), "password": PASSWORD, "name": "Ann", **fields}


async def _errors(
    server: Server,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            server.http, json={"query": query, "variables": variables or {}}, headers=headers or {}
        )
    body = response.json()
    assert body.get("errors"), body
    errors: list[dict[str, Any]] = body["errors"]
    return errors


def _paths(error: dict[str, Any]) -> set[str]:
    return {f["path"] for f in error["extensions"]["fields"]}


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["ws"] = int(claims["ws"]) + 1
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_sign_up_creates_a_workspace_and_a_working_token(server: Server) -> None:
    values = _sign_up_input(workspaceName="Acme")
    data = await server.gql(SIGN_UP, {"input": values})
    payload = data["signUp"]
    assert payload["user"]["email"] == values["email"]
    assert payload["user"]["name"] == "Ann"
    viewer = await server.gql(VIEWER, user=User(payload["token"], "", ""))
    assert viewer["viewer"] == payload["user"]


async def test_sign_up_with_invite_joins_the_same_workspace(server: Server) -> None:
    alice = await server.sign_up("alice")
    general = await server.channel(alice, "general")
    bob = await server.teammate(alice, "bob")
    seen = await server.gql(CHANNELS, user=bob)
    assert seen["channels"]["edges"] == [{"node": {"id": general, "name": "general"}}]
    stranger = await server.sign_up("carol")
    assert (await server.gql(CHANNELS, user=stranger))["channels"]["edges"] == []


async def test_sign_up_with_both_workspace_and_invite_is_bad_input(server: Server) -> None:
    alice = await server.sign_up("alice")
    code = await server.invite(alice)
    values = _sign_up_input(workspaceName="Acme", inviteCode=code)
    (error,) = await _errors(server, SIGN_UP, {"input": values})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert _paths(error) == {"input.workspaceName", "input.inviteCode"}


async def test_sign_up_with_neither_workspace_nor_invite_is_bad_input(server: Server) -> None:
    (error,) = await _errors(server, SIGN_UP, {"input": _sign_up_input()})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert _paths(error) == {"input.workspaceName", "input.inviteCode"}


async def test_sign_up_with_unknown_invite_is_bad_input(server: Server) -> None:
    values = _sign_up_input(inviteCode="no-such-code")
    (error,) = await _errors(server, SIGN_UP, {"input": values})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert _paths(error) == {"input.inviteCode"}


async def _user_count(server: Server) -> int:
    async with server.services.db.read_engine.connect() as conn:
        return int(await conn.scalar(text('SELECT count(*) FROM "user"')) or 0)


async def test_sign_up_lists_every_invalid_field(server: Server) -> None:
    before = await _user_count(server)
    values = {**_sign_up_input(workspaceName="Acme"), "email": "not-an-email", "password": "short"}
    (error,) = await _errors(server, SIGN_UP, {"input": values})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert _paths(error) == {"input.email", "input.password"}
    assert all(f["message"] for f in error["extensions"]["fields"])
    assert await _user_count(server) == before


async def test_sign_up_with_a_taken_email_is_conflict(server: Server) -> None:
    values = _sign_up_input(workspaceName="Acme")
    await server.gql(SIGN_UP, {"input": values})
    again = {**values, "email": values["email"].upper(), "workspaceName": "Other"}
    (error,) = await _errors(server, SIGN_UP, {"input": again})
    assert error["extensions"]["code"] == "CONFLICT"
    assert _paths(error) == {"input.email"}


async def test_sign_in_with_the_right_password_returns_a_token(server: Server) -> None:
    values = _sign_up_input(workspaceName="Acme")
    user_id = (await server.gql(SIGN_UP, {"input": values}))["signUp"]["user"]["id"]
    data = await server.gql(SIGN_IN, {"input": {"email": values["email"], "password": PASSWORD}})
    assert data["signIn"]["user"] == {"id": user_id, "email": values["email"]}
    viewer = await server.gql(VIEWER, user=User(data["signIn"]["token"], "", ""))
    assert viewer["viewer"]["id"] == user_id


async def test_sign_in_wrong_password_and_unknown_email_answer_alike(server: Server) -> None:
    values = _sign_up_input(workspaceName="Acme")
    await server.gql(SIGN_UP, {"input": values})
    (wrong,) = await _errors(
        server, SIGN_IN, {"input": {"email": values["email"], "password": PASSWORD + "!"}}
    )
    (unknown,) = await _errors(
        server, SIGN_IN, {"input": {"email": _email(), "password": PASSWORD}}
    )
    assert wrong["extensions"]["code"] == unknown["extensions"]["code"] == "UNAUTHENTICATED"
    assert wrong["message"] == unknown["message"]
    assert wrong.get("data") is None


async def test_password_is_stored_as_argon2id_never_in_plain(server: Server) -> None:
    secret = "plaintext-" + uuid.uuid4().hex
    values = _sign_up_input(workspaceName="Acme", password=secret)
    await server.gql(SIGN_UP, {"input": values})
    async with server.services.db.read_engine.connect() as conn:
        user_rows = (await conn.execute(text('SELECT * FROM "user"'))).all()
        log_rows = (await conn.execute(text("SELECT changes FROM change_log"))).all()
    (row,) = [r for r in user_rows if r._mapping["email"] == values["email"]]
    assert row._mapping["password_hash"].startswith("$argon2id$")
    everything = repr(user_rows) + repr(log_rows)
    assert secret not in everything
    assert row._mapping["password_hash"] not in repr(log_rows)


async def test_protected_query_without_token_is_unauthenticated(server: Server) -> None:
    (error,) = await _errors(server, CHANNELS)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_protected_mutation_without_token_is_unauthenticated(server: Server) -> None:
    (error,) = await _errors(server, 'mutation { createChannel(input: {name: "x"}) { id } }')
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_viewer_is_null_without_a_token(server: Server) -> None:
    assert await server.gql(VIEWER) == {"viewer": None}


async def test_tampered_token_is_unauthenticated(server: Server) -> None:
    alice = await server.sign_up("alice")
    await server.channel(alice, "general")
    (error,) = await _errors(server, CHANNELS, headers=_bearer(_tampered(alice.token)))
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_expired_token_is_unauthenticated(server: Server) -> None:
    alice = await server.sign_up("alice")
    claims = server.services.tokens.decode(alice.token)
    expired = replace(server.services.tokens, ttl_seconds=-60).issue(
        claims.user_id, claims.workspace_id, claims.token_epoch
    )
    (error,) = await _errors(server, CHANNELS, headers=_bearer(expired))
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "expired" in error["message"].lower()


async def test_token_signed_with_another_key_is_refused(server: Server) -> None:
    alice = await server.sign_up("alice")
    claims = server.services.tokens.decode(alice.token)
    forged = replace(server.services.tokens, secret="another-key-" + uuid.uuid4().hex).issue(
        claims.user_id, claims.workspace_id, claims.token_epoch
    )
    (error,) = await _errors(server, CHANNELS, headers=_bearer(forged))
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_malformed_authorization_header_is_unauthenticated(server: Server) -> None:
    (error,) = await _errors(server, CHANNELS, headers={"authorization": "Basic abc"})
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_viewers_decoded_from_tokens_share_their_claims_strings() -> None:
    """Every open WebSocket keeps its viewer: the claims' names and the issuer are held
    once for all tokens, not once per connection."""
    tokens = TokenService("k" * 40, "livegraph-test", 3600)
    first = tokens.decode(tokens.issue(1, 7, 0))
    second = tokens.decode(tokens.issue(2, 7, 0))
    assert first.claims["iss"] == "livegraph-test"
    for (name_a, value_a), (name_b, value_b) in zip(
        first.claims.items(), second.claims.items(), strict=True
    ):
        assert name_a is name_b
        if name_a == "iss":
            assert value_a is value_b


async def test_a_token_verified_before_is_refused_once_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verified tokens are remembered by their text (a signature check per request was
    a visible share of a read); expiry is still checked on every use."""
    tokens = TokenService("k" * 40, "livegraph-test", 3600)
    token = tokens.issue(1, 7, 0)
    first = tokens.decode(token)
    assert tokens.decode(token) is first, "the second use is not verified again"
    later = time.time() + 3601
    monkeypatch.setattr(auth_module.time, "time", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.decode(token)
