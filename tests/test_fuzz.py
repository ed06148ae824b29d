"""Hostile input: fuzzed documents, variables and frames; protocol violations; oversize.

Hypothesis writes GraphQL documents from the schema's own names (random nesting,
aliases, fragments, directives, arguments of every wrong type, huge ints, unicode) and
from nothing at all (random text, mangled documents, deep nesting, hundreds of aliases,
empty selection sets, undefined fragments, fragment chains, documents up to ~900 KB far
over the token limit), with random variables, and sends them over HTTP POST, HTTP GET,
SSE, graphql-transport-ws and the legacy graphql-ws, as a user, anonymously and with a
garbage token. Whatever arrives:

- no 5xx, and the process keeps answering (a normal query after every example);
- every 4xx has a JSON body with coded errors, like every other error;
- every GraphQL error carries an ``extensions.code`` of the contract, never INTERNAL,
  and nothing is logged at ERROR (a crash the client cannot see is still a crash);
- on a WebSocket, a well-formed message never closes the connection.

Protocol violations get graphql-transport-ws' close codes (4400, 4401, 4408, 4409, 4429),
and payloads over the limits are refused: a WebSocket message over 1 MiB closes with
1009, an HTTP body over ``max_body_bytes`` answers 413 with BAD_USER_INPUT.

Inputs that once broke the server have targeted tests at the end (a lone surrogate, NUL
in stored text, a non-object JSON body or WebSocket frame, a falsy authorization, a @live
argument that does not coerce, bytes that are not UTF-8, an operation completed as it
finishes): each was a 500, an INTERNAL or an abnormal close, and is now a structured
answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import app.server
from tests.harness import Server, User, WSClient, make_settings, running_server

CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "RATE_LIMITED",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
}
PROTOCOL = "graphql-transport-ws"
LEGACY_PROTOCOL = "graphql-ws"
JSON_TYPES = ("application/json", "application/graphql-response+json")
ANSWER_TIMEOUT_S = 10.0
LIVE_GRACE_S = 0.3
FUZZ = settings(
    # FUZZ_EXAMPLES=5000 for a long run; the default keeps the suite's share short.
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    # One server per test, on purpose: the fuzz accumulates against a single process.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    print_blob=True,
)
counts: dict[str, int] = {}


def counted(kind: str) -> None:
    counts[kind] = counts.get(kind, 0) + 1


# -- documents ---------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Not signOutEverywhere: it would revoke the fuzzing user's token mid-run.
FIELDS = _words(
    "viewer channels channel messages user edges node cursor pageInfo hasNextPage "
    "endCursor id name body email createdAt editedAt author token code __typename "
    "signUp signIn createInvite createChannel sendMessage editMessage deleteMessage "
    "signOut __schema __type types fields ofType kind passwordHash workspace"
)
ARGUMENTS = _words(
    "first after id channelId input name body email password workspaceName inviteCode "
    "idempotencyKey throttle if last before"
)
TYPES = _words("Query Mutation User Channel Message ChannelConnection PageInfo Bogus String")
VARIABLE_TYPES = _words(
    "Int Int! String String! ID ID! Boolean Float [Int] [ID!]! SendMessageInput! "
    "SignUpInput CreateChannelInput EditMessageInput! Bogus DateTime"
)
VARIABLE_NAMES = ("v", "i", "id", "t", "c")

# Any encodable unicode, NUL included; lone surrogates have their own tests below.
TEXT = st.characters(codec="utf-8")
identifiers = st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,10}", fullmatch=True)
names = st.one_of(st.sampled_from(FIELDS), identifiers)
argument_names = st.one_of(st.sampled_from(ARGUMENTS), identifiers)
huge_ints = st.one_of(st.integers(-(2**31), 2**31), st.integers(-(2**80), 2**80))

literal_leaves = st.one_of(
    huge_ints.map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    # JSON string escapes are GraphQL string escapes.
    st.text(TEXT, max_size=30).map(json.dumps),
    st.sampled_from(["true", "false", "null", "RED", "$v", "$i", "$id", "$undefined", '""']),
)
literals = st.recursive(
    literal_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(argument_names, inner), max_size=4).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=8,
)
arguments = st.lists(st.tuples(argument_names, literals), max_size=3).map(
    lambda kv: "(" + ", ".join(f"{k}: {v}" for k, v in kv) + ")" if kv else ""
)
directives = st.one_of(
    st.just(""),
    st.sampled_from(["@include(if: true)", "@skip(if: $v)", "@live", "@include", "@deprecated"]),
    st.builds(lambda n, a: f"@{n}{a}", st.sampled_from(["live", "skip", "bogus"]), arguments),
)
aliases = st.one_of(st.just(""), identifiers.map(lambda a: f"{a}: "))


def _block(selections: list[str]) -> str:
    return "{ " + " ".join(selections) + " }"


leaf_selections = st.one_of(
    st.builds(lambda a, n, args, d: f"{a}{n}{args} {d}", aliases, names, arguments, directives),
    st.sampled_from(["...F", "...Missing"]),
)


def _nested(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    block = st.lists(children, min_size=1, max_size=5).map(_block)
    return st.one_of(
        st.builds(
            lambda a, n, args, d, b: f"{a}{n}{args} {d} {b}",
            aliases,
            names,
            arguments,
            directives,
            block,
        ),
        st.builds(lambda t, b: f"... on {t} {b}", st.sampled_from(TYPES), block),
        block.map(lambda b: f"... {b}"),
    )


selection_sets = st.lists(
    st.recursive(leaf_selections, _nested, max_leaves=20), min_size=1, max_size=5
).map(_block)
variable_definitions = st.lists(
    st.tuples(st.sampled_from(VARIABLE_NAMES), st.sampled_from(VARIABLE_TYPES)), max_size=3
).map(lambda vs: "(" + ", ".join(f"${n}: {t}" for n, t in vs) + ")" if vs else "")
operations = st.builds(
    lambda kind, name, variables, directive, body: (
        f"{kind} {name}{variables} {directive} {body}" if kind else body
    ),
    st.sampled_from(["", "query", "mutation", "subscription", "query", "query"]),
    st.one_of(st.just(""), identifiers),
    variable_definitions,
    st.sampled_from(["", "@live", "@live(throttle: 0)", "@live(throttle: $t)", "@live(if: $v)"]),
    selection_sets,
)
fragments = st.builds(
    lambda t, body: f"fragment F on {t} {body}", st.sampled_from(TYPES), selection_sets
)
structured = st.builds(
    lambda ops, frags: "\n".join(ops + frags),
    st.lists(operations, min_size=1, max_size=2),
    st.lists(fragments, max_size=2),
)


def _mangle(document: str, start: int, length: int, junk: str) -> str:
    start %= len(document) + 1
    return document[:start] + junk + document[start + length :]


PATH = "channels { edges { node { messages { edges { node { channel { "
deep = st.integers(1, 40).map(lambda n: "{ " + PATH * n + "id" + " } } } } } } }" * n + " }")
many_aliases = st.integers(1, 300).map(
    lambda n: "{ " + " ".join(f"a{i}: __typename" for i in range(n)) + " }"
)
many_fields = st.integers(1, 3000).map(lambda n: "{ " + "viewer { id } " * n + "}")


def _fragment_chain(length: int, spreads: int) -> str:
    """Fragments that each spread the next one ``spreads`` times (2: exponential paths)."""
    chain = [
        f"fragment F{i} on Query {{ a{i}: __typename {f'...F{i + 1} ' * spreads}}}"
        for i in range(length)
    ]
    return "{ ...F0 }\n" + "\n".join(chain) + f"\nfragment F{length} on Query {{ id }}"


# Documents that once crashed the depth limit (an empty selection set, a spread of an
# undefined fragment) or took it exponential time (a fragment chain spread twice).
limit_breakers = st.one_of(
    st.sampled_from(
        [
            "{ }",
            "{ viewer { } }",
            "query @live { }",
            "{ ...Missing }",
            "query @live { ...Missing }",
            "query { viewer { ...F } }",
            "fragment F on Query { ...G } { ...F }",
            "fragment F on Query { ...F } { ...F }",
        ]
    ),
    st.builds(_fragment_chain, st.integers(1, 700), st.sampled_from([1, 2])),
)
# Up to ~900 KB (under the WebSocket and HTTP body limits), mostly far over the token
# limit: once parsed whole before any limit, taking seconds each.
large_documents = st.builds(
    lambda head, unit, count, tail: head + unit * count + tail,
    st.sampled_from(["{ ", "query @live { ", "query($t: Int) @live(throttle: $t) { "]),
    st.sampled_from(["viewer { id } ", "a: __typename ", "# c\n", " ", '"s" ', "...F ", "{ "]),
    st.integers(1000, 60_000),
    st.sampled_from(["}", "", "} fragment F on Query { id }"]),
)

documents = st.one_of(
    structured,
    structured,
    structured,
    st.builds(
        _mangle, structured, st.integers(0, 500), st.integers(0, 5), st.text(TEXT, max_size=3)
    ),
    st.text(TEXT, max_size=80),
    deep,
    many_aliases,
    many_fields,
    limit_breakers,
    large_documents,
)

# -- variables ---------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        huge_ints,
        # NaN and Infinity are not JSON, but Python's json module reads them.
        st.floats(),
        st.text(TEXT, max_size=30),
        st.sampled_from(["1", "0", "-1", "999999999999999999999", "abc"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(argument_names, st.text(TEXT, max_size=8)), inner, max_size=4),
    ),
    max_leaves=10,
)
variable_objects = st.dictionaries(
    st.one_of(st.sampled_from(VARIABLE_NAMES), st.text(TEXT, max_size=5)), json_values, max_size=4
)
# Mostly an object; sometimes anything at all (the transports must refuse it cleanly).
variable_values = st.one_of(variable_objects, variable_objects, variable_objects, json_values)

# -- schema-shaped requests: right fields, hostile argument values ------------------------
# Random documents mostly stop at the parser or the validator; these reach the resolvers
# with every argument drawn as a literal or a variable (of the right or a wrong type).

long_texts = st.builds(
    lambda c, n: c * n,
    st.characters(codec="utf-8", exclude_characters="\x00"),
    st.integers(0, 5000),
)
ids = st.one_of(
    st.sampled_from(["1", "2", "3", "0", "-1", "abc", "", " 1", "1.5", "9" * 25, "0x1"]),
    huge_ints,
    st.text(TEXT, max_size=10),
)
cursors = st.one_of(
    st.none(),
    st.sampled_from(["", "MA==", "bnVsbA==", "W10=", "eyJpZCI6MX0=", "WzEsMiwzXQ==", "!!!"]),
    st.text(TEXT, max_size=40),
)
texts = st.one_of(st.text(TEXT, max_size=40), long_texts, ids)
INPUT_FIELDS = {
    "SendMessageInput": {"channelId": ids, "body": texts, "idempotencyKey": texts},
    "EditMessageInput": {"id": ids, "body": texts},
    "CreateChannelInput": {"name": texts},
    "SignUpInput": {
        "email": st.one_of(texts, st.just("x@example.com")),
        "password": texts,
        "name": texts,
        "workspaceName": texts,
        "inviteCode": texts,
    },
    "SignInInput": {"email": texts, "password": texts},
}


def _input(type_name: str) -> st.SearchStrategy[Any]:
    """Some of the input's fields, each of its kind or anything; now and then an extra."""
    fields = INPUT_FIELDS[type_name]
    optional = {name: st.one_of(values, json_values) for name, values in fields.items()}
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional=optional),
        st.dictionaries(identifiers, json_values, max_size=1),
    )


# argument -> (its type, its values)
ARGUMENT_VALUES: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "first": ("Int", st.one_of(huge_ints, st.sampled_from([0, -1, 1, 200, 201, None]))),
    "after": ("String", cursors),
    "id": ("ID!", ids),
    "channelId": ("ID!", ids),
}
MESSAGES_PAGE = (
    "{ edges { cursor node { id body editedAt author { id name } } } "
    "pageInfo { hasNextPage endCursor } }"
)
SHAPED_QUERIES = {
    "viewer": ((), "{ id name email }"),
    "channels": (
        ("first", "after"),
        "{ edges { cursor node { id name } } pageInfo { endCursor } }",
    ),
    "channel": (("id",), "{ id name messages(first: 2) { edges { node { id } } } }"),
    "messages": (("channelId", "first", "after"), MESSAGES_PAGE),
    "user": (("id",), "{ id name }"),
}
SHAPED_MUTATIONS = {
    "sendMessage": ("SendMessageInput", "{ id body channel { id } }"),
    "editMessage": ("EditMessageInput", "{ id body editedAt }"),
    "createChannel": ("CreateChannelInput", "{ id name }"),
    "signUp": ("SignUpInput", "{ user { id } }"),
    "signIn": ("SignInInput", "{ user { id } }"),
}


def literal(value: Any) -> str:
    """A Python value as a GraphQL literal (keys that are not names make a parse error)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"


@st.composite
def shaped_requests(draw: st.DrawFn) -> tuple[str, Any]:
    arguments: list[tuple[str, str, Any]] = []  # (name, correct type, value)
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(SHAPED_QUERIES)))
        names, selection = SHAPED_QUERIES[name]
        for argument in names:
            if argument in ("id", "channelId") or draw(st.booleans()):
                kind, values = ARGUMENT_VALUES[argument]
                arguments.append((argument, kind, draw(st.one_of(values, json_values))))
        head = draw(st.sampled_from(["query", "query @live", "query @live(throttle: 50)"]))
    elif draw(st.integers(0, 5)) == 0:
        name, selection = "deleteMessage", ""
        arguments.append(("id", "ID!", draw(st.one_of(ids, json_values))))
        head = "mutation"
    else:
        name = draw(st.sampled_from(sorted(SHAPED_MUTATIONS)))
        input_type, selection = SHAPED_MUTATIONS[name]
        arguments.append(
            ("input", f"{input_type}!", draw(st.one_of(_input(input_type), json_values)))
        )
        head = "mutation"
    definitions, rendered, variables = [], [], {}
    for index, (argument, kind, value) in enumerate(arguments):
        if draw(st.booleans()):
            rendered.append(f"{argument}: {literal(value)}")
            continue
        declared = draw(st.one_of(st.just(kind), st.sampled_from(VARIABLE_TYPES)))
        definitions.append(f"$a{index}: {declared}")
        rendered.append(f"{argument}: $a{index}")
        variables[f"a{index}"] = value
    call = f"{name}({', '.join(rendered)})" if rendered else name
    aliases = draw(st.integers(1, 3))
    body = " ".join(f"r{i}: {call} {selection}" for i in range(aliases))
    operation, _, directive = head.partition(" ")
    signature = f"({', '.join(definitions)})" if definitions else ""
    return f"{operation}{signature} {directive} {{ {body} }}", variables


requests = st.one_of(shaped_requests(), shaped_requests(), st.tuples(documents, variable_values))
authorizations = st.one_of(
    st.sampled_from(["user", "user", "none"]),
    # Header values as HTTP allows them: printable ASCII, no surrounding whitespace.
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
    .map(lambda t: "raw:" + t),
)


# -- judging answers ---------------------------------------------------------------------


def error_problems(errors: object) -> list[str]:
    """What is wrong with a GraphQL ``errors`` value: it must list coded errors."""
    if not isinstance(errors, list) or not errors:
        return [f"errors is not a non-empty list: {errors!r}"]
    problems = []
    for error in errors:
        code = error.get("extensions", {}).get("code") if isinstance(error, dict) else None
        counted(f"code {code}")
        if code not in CODES:
            problems.append(f"error without a contract code: {error!r}")
    return problems


def result_problems(result: object) -> list[str]:
    if not isinstance(result, dict):
        return [f"result is not an object: {result!r}"]
    if "errors" in result:
        return error_problems(result["errors"])
    if "data" not in result:
        return [f"result with neither data nor errors: {result!r}"]
    counted("results with data and no error")
    return []


def http_problems(response: httpx.Response) -> list[str]:
    counted(f"HTTP {response.status_code}")
    if response.status_code >= 500:
        return [f"HTTP {response.status_code}: {response.text[:500]}"]
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith(JSON_TYPES):
        return [f"{response.status_code} that is not JSON: {content_type} {response.text[:500]}"]
    body = response.json()
    if response.status_code >= 400 and not (isinstance(body, dict) and "errors" in body):
        # A refused request (no query, variables not an object, a body that is not JSON)
        # says why, with a code, like every other error.
        return [f"{response.status_code} without coded errors: {response.text[:500]}"]
    return result_problems(body)


def client_left(record: logging.LogRecord) -> bool:
    """Strawberry logs at ERROR a result it could not send to a client that had gone."""
    error = record.exc_info[1] if record.exc_info else None
    return type(error).__name__ == "WebSocketDisconnected"


def logged_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    records = [r for r in caplog.records if r.levelno >= logging.ERROR and not client_left(r)]
    caplog.clear()
    return [f"logged {r.name} {r.levelname}: {r.getMessage()} {r.exc_info!r}" for r in records]


def report(what: str, problems: list[str]) -> None:
    assert not problems, f"{what}\n" + "\n".join(problems)


def encode(value: object) -> bytes:
    return json.dumps(value).encode()


def headers_for(auth: str, user: User) -> dict[str, str]:
    if auth == "user":
        return dict(user.headers)
    if auth.startswith("raw:"):
        return {"authorization": auth.removeprefix("raw:")}
    return {}


async def still_serves(server: Server, user: User, client: httpx.AsyncClient) -> list[str]:
    """A normal query answers normally."""
    response = await client.post(
        server.http,
        json={"query": "{ viewer { id } channels { edges { node { id } } } }"},
        headers=user.headers,
    )
    body = response.json()
    if response.status_code != 200 or body.get("errors") or body["data"]["viewer"] is None:
        return [f"a normal query no longer answers: {response.status_code} {body}"]
    return []


# -- HTTP --------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client:
        yield client


async def _fuzzer(server: Server) -> AsyncIterator[User]:
    user = await server.sign_up("fuzzer")
    channel = await server.channel(user)
    await server.send(user, channel, "a message to find")
    yield user
    print(f"\nfuzz counts so far: {dict(sorted(counts.items()))}", file=sys.stderr)


@pytest_asyncio.fixture
async def fuzzer(server: Server) -> AsyncIterator[User]:
    """A user on each database: for the fuzz whose documents reach the database."""
    async for user in _fuzzer(server):
        yield user


@pytest.fixture
def target(sqlite_server: Server) -> Server:
    """SQLite only: for the fuzz of the transports, which the database does not see."""
    return sqlite_server


@pytest_asyncio.fixture
async def target_user(target: Server) -> AsyncIterator[User]:
    async for user in _fuzzer(target):
        yield user


@FUZZ
@given(request=requests, auth=authorizations)
async def test_fuzzed_documents_over_http_post(
    server: Server,
    fuzzer: User,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    request: tuple[str, Any],
    auth: str,
) -> None:
    document, variables = request
    counted("documents over HTTP POST")
    response = await http.post(
        server.http,
        content=encode({"query": document, "variables": variables}),
        headers={"content-type": "application/json", **headers_for(auth, fuzzer)},
    )
    problems = http_problems(response) + await still_serves(server, fuzzer, http)
    report(f"POST {document!r} variables {variables!r}", problems + logged_problems(caplog))


@FUZZ
@given(request=requests, auth=authorizations)
async def test_fuzzed_documents_over_http_get(
    target: Server,
    target_user: User,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    request: tuple[str, Any],
    auth: str,
) -> None:
    document, variables = request
    # A URL must stay a URL: clients (httpx) and servers refuse very long ones.
    assume(len(document) + len(json.dumps(variables)) < 6000)
    counted("documents over HTTP GET")
    params = {"query": document, "variables": json.dumps(variables)}
    response = await http.get(target.http, params=params, headers=headers_for(auth, target_user))
    problems = http_problems(response) + await still_serves(target, target_user, http)
    report(f"GET {document!r} variables {variables!r}", problems + logged_problems(caplog))


async def sse_problems(response: httpx.Response) -> list[str]:
    """Every event a result with coded errors; a refusal coded JSON like any other.

    A query answers once and completes; a live query stays open after its first result,
    so it is read for a moment and then left.
    """
    counted(f"SSE {response.status_code}")
    if response.status_code != 200:
        await response.aread()
        return http_problems(response)
    problems: list[str] = []
    results = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ANSWER_TIMEOUT_S) as deadline:
            async for line in response.aiter_lines():
                if line.startswith("event: complete"):
                    return problems if results else [*problems, "completed without a result"]
                if not (line.startswith("data:") and line[5:].strip()):
                    continue
                results += 1
                problems += result_problems(json.loads(line[5:]))
                deadline.reschedule(asyncio.get_running_loop().time() + LIVE_GRACE_S)
    return problems if results else [*problems, f"no result within {ANSWER_TIMEOUT_S} s"]


@FUZZ
@given(request=requests, auth=authorizations)
async def test_fuzzed_documents_over_sse(
    target: Server,
    target_user: User,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    request: tuple[str, Any],
    auth: str,
) -> None:
    document, variables = request
    counted("documents over SSE")
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream",
        **headers_for(auth, target_user),
    }
    body = encode({"query": document, "variables": variables})
    async with http.stream("POST", target.http, content=body, headers=headers) as response:
        problems = await sse_problems(response)
    problems += await still_serves(target, target_user, http)
    report(f"SSE {document!r} variables {variables!r}", problems + logged_problems(caplog))


request_keys = st.sampled_from(["query", "variables", "operationName", "extensions", "id"])
raw_bodies = st.one_of(
    # Invalid UTF-8 in a JSON body has its own test below: here bytes are made valid.
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace").encode()),
    st.text(TEXT, max_size=200).map(str.encode),
    st.dictionaries(request_keys, json_values, max_size=4).map(encode),
    st.builds(
        lambda document, extra: encode({"query": document, **extra}),
        documents,
        st.dictionaries(request_keys.filter(lambda k: k != "query"), json_values, max_size=3),
    ),
    st.lists(st.dictionaries(request_keys, json_values, max_size=3), max_size=3).map(encode),
)


def is_json_scalar(body: bytes) -> bool:
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return not isinstance(value, dict | list)


# A JSON body that is not an object or a list has its own test below.
raw_bodies = raw_bodies.filter(lambda body: not is_json_scalar(body))
content_types = st.sampled_from(
    [
        "application/json",
        "application/graphql-response+json",
        "application/graphql",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
)


@FUZZ
@given(body=raw_bodies, content_type=content_types, auth=authorizations)
async def test_fuzzed_request_bodies_over_http(
    target: Server,
    target_user: User,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    auth: str,
) -> None:
    counted("raw HTTP bodies")
    headers = {"content-type": content_type} if content_type else {}
    response = await http.post(
        target.http, content=body, headers={**headers, **headers_for(auth, target_user)}
    )
    problems = http_problems(response) + await still_serves(target, target_user, http)
    report(f"POST body {body!r} as {content_type!r}", problems + logged_problems(caplog))


# -- WebSocket ---------------------------------------------------------------------------


class FuzzSocket:
    """A graphql-transport-ws (or legacy graphql-ws) connection that reconnects after a
    refused message."""

    def __init__(self, server: Server, user: User, protocol: str = PROTOCOL) -> None:
        self.server = server
        self.user = user
        self.protocol = protocol
        self.legacy = protocol == LEGACY_PROTOCOL
        self.ids = itertools.count(1)
        self.socket: websockets.ClientConnection | None = None

    async def open(self) -> websockets.ClientConnection:
        if self.socket is None:
            socket = await websockets.connect(self.server.ws, subprotocols=[self.protocol])  # type: ignore[list-item]
            init = {"authorization": f"Bearer {self.user.token}"}
            await socket.send(json.dumps({"type": "connection_init", "payload": init}))
            ack = json.loads(await asyncio.wait_for(socket.recv(), ANSWER_TIMEOUT_S))
            assert ack["type"] == "connection_ack", ack
            self.socket = socket
        return self.socket

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
            self.socket = None

    async def run(self, payload: dict[str, Any], may_close: bool) -> list[str]:
        """Send one operation; the problems with everything received until it answers."""
        socket = await self.open()
        op_id = str(next(self.ids))
        kind = "start" if self.legacy else "subscribe"
        await socket.send(json.dumps({"id": op_id, "type": kind, "payload": payload}))
        problems: list[str] = []
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                while True:
                    message = json.loads(await socket.recv())
                    problems += self.message_problems(message)
                    if message.get("id") != op_id:
                        continue
                    if message.get("type") in ("next", "data"):
                        problems += await self.finish(socket, op_id)
                    return problems
        except websockets.ConnectionClosed:
            code = socket.close_code
            self.socket = None
            counted(f"WebSocket closed {code}")
            if may_close and code == 4400:
                return problems
            return [*problems, f"connection closed {code} {socket.close_reason!r}"]
        except TimeoutError:
            await self.close()
            return [*problems, f"no answer within {ANSWER_TIMEOUT_S} s"]

    async def finish(self, socket: websockets.ClientConnection, op_id: str) -> list[str]:
        """Let a query or mutation complete; a live query stays open, so complete it.

        Completing an operation that is finishing anyway has the targeted test below (an ERROR
        from the connection pool on SQLite), so only a live one is completed.
        """
        problems: list[str] = []
        try:
            async with asyncio.timeout(LIVE_GRACE_S):
                while True:
                    message = json.loads(await socket.recv())
                    problems += self.message_problems(message)
                    if message.get("id") == op_id and message.get("type") == "complete":
                        return problems
        except TimeoutError:
            stop = "stop" if self.legacy else "complete"
            await socket.send(json.dumps({"id": op_id, "type": stop}))
        return problems

    @staticmethod
    def message_problems(message: dict[str, Any]) -> list[str]:
        kind = message.get("type")
        counted(f"WebSocket {kind}")
        if kind in ("next", "data"):
            return result_problems(message.get("payload"))
        if kind == "error":
            # graphql-ws (legacy) sends one error, graphql-transport-ws a list.
            payload = message.get("payload")
            return error_problems([payload] if isinstance(payload, dict) else payload)
        if kind in ("complete", "ping", "pong", "ka"):
            return []
        return [f"unexpected message {message!r}"]


@pytest_asyncio.fixture
async def fuzz_socket(target: Server, target_user: User) -> AsyncIterator[FuzzSocket]:
    socket = FuzzSocket(target, target_user)
    try:
        yield socket
    finally:
        await socket.close()


@pytest_asyncio.fixture
async def legacy_fuzz_socket(target: Server, target_user: User) -> AsyncIterator[FuzzSocket]:
    socket = FuzzSocket(target, target_user, LEGACY_PROTOCOL)
    try:
        yield socket
    finally:
        await socket.close()


@FUZZ
@given(request=requests)
async def test_fuzzed_documents_over_legacy_graphql_ws(
    target: Server,
    target_user: User,
    legacy_fuzz_socket: FuzzSocket,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    request: tuple[str, Any],
) -> None:
    document, variables = request
    counted("documents over graphql-ws")
    problems = await legacy_fuzz_socket.run(
        {"query": document, "variables": variables}, may_close=not isinstance(variables, dict)
    )
    problems += await still_serves(target, target_user, http)
    report(f"graphql-ws {document!r} variables {variables!r}", problems + logged_problems(caplog))


@FUZZ
@given(request=requests)
async def test_fuzzed_documents_over_websocket(
    target: Server,
    target_user: User,
    fuzz_socket: FuzzSocket,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    request: tuple[str, Any],
) -> None:
    document, variables = request
    counted("documents over WebSocket")
    # Variables that are not an object break the subscribe message: 4400 is an answer.
    problems = await fuzz_socket.run(
        {"query": document, "variables": variables}, may_close=not isinstance(variables, dict)
    )
    problems += await still_serves(target, target_user, http)
    report(f"WebSocket {document!r} variables {variables!r}", problems + logged_problems(caplog))


def falsy_authorization(payload: object) -> bool:
    """The targeted test below: an authorization that is present but falsy ("", [], 0)."""
    if not isinstance(payload, dict):
        return False
    value = payload.get("authorization") or payload.get("Authorization")
    return value is not None and not value


init_payloads = st.one_of(
    st.none(),
    json_values,
    st.dictionaries(st.sampled_from(["authorization", "Authorization", "x"]), json_values),
    st.builds(
        lambda t: {"authorization": t},
        st.one_of(st.text(TEXT, max_size=40), st.text(TEXT).map(lambda t: "Bearer " + t)),
    ),
).filter(lambda payload: not falsy_authorization(payload))


@FUZZ
@given(payload=init_payloads)
async def test_fuzzed_connection_init_payloads(
    target: Server, caplog: pytest.LogCaptureFixture, payload: Any
) -> None:
    """Acknowledged (anonymous) or refused with 4403/4400; never a crash."""
    counted("connection_init payloads")
    async with websockets.connect(target.ws, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
            problems = [] if message.get("type") == "connection_ack" else [f"got {message}"]
        except websockets.ConnectionClosed:
            counted(f"connection_init closed {ws.close_code}")
            ok = ws.close_code in (4400, 4403)
            problems = [] if ok else [f"closed {ws.close_code} {ws.close_reason!r}"]
    report(f"connection_init payload {payload!r}", problems + logged_problems(caplog))


message_types = st.one_of(
    st.sampled_from(["subscribe", "complete", "ping", "pong", "next", "error", "connection_init"]),
    st.text(TEXT, max_size=12),
)


frames = st.builds(
    lambda kind, extra: {"type": kind, **extra},
    message_types,
    st.dictionaries(
        st.sampled_from(["id", "payload"]),
        st.one_of(
            json_values,
            st.builds(
                lambda query, variables: {"query": query, "variables": variables},
                documents,
                variable_values,
            ),
        ),
        max_size=2,
    ),
)


@FUZZ
@given(frame=frames)
async def test_fuzzed_messages_after_connection_init(
    target: Server, target_user: User, caplog: pytest.LogCaptureFixture, frame: dict[str, Any]
) -> None:
    """An answer or a 4xxx close of the protocol; never an abnormal (1006/1011) close."""
    counted("protocol messages")
    problems: list[str] = []
    async with WSClient.connect(target, target_user) as client:
        await client.socket.send(json.dumps(frame))
        # A ping proves the connection is still served, if the frame did not close it.
        await client.send({"type": "ping"})
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                while (message := await client.receive(ANSWER_TIMEOUT_S))["type"] != "pong":
                    problems += FuzzSocket.message_problems(message)
            # What the frame started may answer after the pong: read until it is quiet.
            with contextlib.suppress(TimeoutError):
                while True:
                    problems += FuzzSocket.message_problems(await client.receive(LIVE_GRACE_S))
        except websockets.ConnectionClosed:
            code = client.socket.close_code
            counted(f"protocol message closed {code}")
            if code not in (4400, 4409, 4429):
                problems.append(f"closed {code} {client.socket.close_reason!r}")
    report(f"frame {frame!r}", problems + logged_problems(caplog))


# -- protocol violations -----------------------------------------------------------------


async def closed_with(ws: websockets.ClientConnection, timeout: float = 5.0) -> int | None:
    """Read until the server closes the connection; its close code."""
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    return ws.close_code


@contextlib.asynccontextmanager
async def raw_socket(server: Server) -> AsyncIterator[websockets.ClientConnection]:
    async with websockets.connect(server.ws, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        yield ws


def subscribe(op_id: str, query: str) -> str:
    return json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query}})


LIVE = "query @live { channels { edges { node { id } } } }"


async def test_subscribe_before_connection_init_closes_4401(sqlite_server: Server) -> None:
    async with raw_socket(sqlite_server) as ws:
        await ws.send(subscribe("1", "{ __typename }"))
        assert await closed_with(ws) == 4401


async def test_a_second_connection_init_closes_4429(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("twice")
    async with WSClient.connect(sqlite_server, user) as client:
        await client.send({"type": "connection_init", "payload": {}})
        assert await closed_with(client.socket) == 4429


async def test_a_duplicate_subscribe_id_closes_4409(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("dup")
    async with WSClient.connect(sqlite_server, user) as client:
        await client.socket.send(subscribe("1", LIVE))
        assert (await client.receive_for("1"))["type"] == "next"  # the live query is open
        await client.socket.send(subscribe("1", LIVE))
        assert await closed_with(client.socket) == 4409


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "",
        json.dumps({"type": "bogus"}),
        json.dumps({"id": "1"}),
        json.dumps({"id": "1", "type": "subscribe"}),
        json.dumps({"type": "connection_ack"}),
    ],
    ids=["invalid-json", "empty", "unknown-type", "no-type", "subscribe-no-payload", "ack"],
)
async def test_a_malformed_message_closes_4400(sqlite_server: Server, frame: str) -> None:
    user = await sqlite_server.sign_up("malformed")
    async with WSClient.connect(sqlite_server, user) as client:
        await client.socket.send(frame)
        assert await closed_with(client.socket) == 4400


async def test_a_binary_frame_closes_the_connection(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("binary")
    async with WSClient.connect(sqlite_server, user) as client:
        await client.socket.send(json.dumps({"type": "ping"}).encode())
        assert await closed_with(client.socket) in (4400, 1003)


async def test_no_connection_init_within_the_timeout_closes_4408(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The view reads the constant when the app is created, so a patch before it holds.
    view_module = sys.modules[app.server.GraphQLView.__module__]
    assert hasattr(view_module, "CONNECTION_INIT_TIMEOUT")
    monkeypatch.setattr(view_module, "CONNECTION_INIT_TIMEOUT", timedelta(seconds=0.5))
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path)
    async with running_server(settings) as server, raw_socket(server) as ws:
        started = asyncio.get_running_loop().time()
        assert await closed_with(ws, timeout=5) == 4408
        assert asyncio.get_running_loop().time() - started < 4


# -- oversize ----------------------------------------------------------------------------

MIB = 1 << 20


async def test_a_websocket_message_over_1_mib_closes_1009(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("huge")
    async with WSClient.connect(sqlite_server, user) as client:
        await client.socket.send(subscribe("1", "{ __typename }" + " " * MIB))
        assert await closed_with(client.socket) == 1009


async def test_a_websocket_message_under_the_limit_is_answered(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("large")
    async with WSClient.connect(sqlite_server, user) as client:
        await client.socket.send(subscribe("1", "{ __typename }" + " " * (MIB - 1000)))
        message = await client.receive_for("1", timeout=ANSWER_TIMEOUT_S)
        assert message["payload"] == {"data": {"__typename": "Query"}}


async def test_an_http_body_over_the_limit_is_413(sqlite_server: Server) -> None:
    limit = sqlite_server.services.settings.max_body_bytes
    body = encode({"query": "{ __typename }" + " " * limit})
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client:
        response = await client.post(
            sqlite_server.http, content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["BAD_USER_INPUT"]


async def test_a_chunked_http_body_over_the_limit_is_413(sqlite_server: Server) -> None:
    """No Content-Length to trust: the server counts as it reads."""
    limit = sqlite_server.services.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }'
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536
        yield b'"}'

    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client:
        response = await client.post(
            sqlite_server.http, content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_http_body_under_the_limit_is_answered(sqlite_server: Server) -> None:
    limit = sqlite_server.services.settings.max_body_bytes
    body = encode({"query": "{ __typename }" + " " * (limit - 100)})
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client:
        response = await client.post(
            sqlite_server.http, content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


# -- found by this fuzz, now answered ------------------------------------------------------


@pytest.mark.parametrize("body", ['"x"', "5", "true", "null"])
async def test_a_json_body_that_is_not_an_object_is_a_4xx(sqlite_server: Server, body: str) -> None:
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client:
        response = await client.post(
            sqlite_server.http, content=body, headers={"content-type": "application/json"}
        )
    assert 400 <= response.status_code < 500, response.text


async def test_a_lone_surrogate_in_a_variable_is_answered_over_http(
    sqlite_server: Server,
) -> None:
    user = await sqlite_server.sign_up("surrogate")
    query = "query($c: ID!) { messages(channelId: $c) { edges { cursor } } }"
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client:
        response = await client.post(
            sqlite_server.http,
            content=encode({"query": query, "variables": {"c": "\ud800"}}),
            headers={"content-type": "application/json", **user.headers},
        )
    assert response.status_code == 200, response.text
    assert response.json()["errors"][0]["extensions"]["code"] in ("NOT_FOUND", "BAD_USER_INPUT")


async def test_a_lone_surrogate_in_a_variable_is_answered_over_websocket(
    sqlite_server: Server,
) -> None:
    user = await sqlite_server.sign_up("surrogate")
    query = "query($c: ID!) { messages(channelId: $c) { edges { cursor } } }"
    async with WSClient.connect(sqlite_server, user) as client:
        op = await client.subscribe(query, {"c": "\ud800"})
        message = await client.receive_for(op)
    assert message["type"] in ("next", "error"), message


@pytest.mark.postgres
async def test_a_nul_character_in_stored_text_is_bad_user_input_on_postgres(
    tmp_path: Path,
) -> None:
    from tests.services import temporary_pg_database

    async with (
        temporary_pg_database() as url,
        running_server(make_settings(url, tmp_path)) as server,
    ):
        user = await server.sign_up("nul")
        channel = await server.channel(user)
        send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
        create = "mutation($i: CreateChannelInput!) { createChannel(input: $i) { id } }"
        bodies = [
            await server.post(send, {"i": {"channelId": channel, "body": "a\x00b"}}, user),
            await server.post(create, {"i": {"name": "nul\x00name"}}, user),
        ]
    assert [b["errors"][0]["extensions"]["code"] for b in bodies] == ["BAD_USER_INPUT"] * 2


async def test_a_nul_character_in_stored_text_is_not_internal_on_sqlite(
    sqlite_server: Server,
) -> None:
    """SQLite stores it; whatever PostgreSQL's fix is, SQLite must not answer INTERNAL."""
    user = await sqlite_server.sign_up("nul")
    channel = await sqlite_server.channel(user)
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
    body = await sqlite_server.post(send, {"i": {"channelId": channel, "body": "a\x00b"}}, user)
    assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in body.get("errors") or ()), body


@pytest.mark.parametrize(
    "frame",
    [
        "[1, 2]",
        '"subscribe"',
        "5",
        json.dumps({"id": "1", "type": "subscribe", "payload": "x"}),
        json.dumps({"id": "1", "type": "subscribe", "payload": None}),
        json.dumps({"id": "1", "type": "subscribe", "payload": [1]}),
        json.dumps({"id": [], "type": "subscribe", "payload": {"query": "{ __typename }"}}),
        json.dumps({"id": {}, "type": "complete"}),
    ],
    ids=[
        "list",
        "string",
        "number",
        "payload-string",
        "payload-null",
        "payload-list",
        "subscribe-id-list",
        "complete-id-object",
    ],
)
async def test_a_frame_that_is_not_an_object_closes_4400(sqlite_server: Server, frame: str) -> None:
    user = await sqlite_server.sign_up("frame")
    async with WSClient.connect(sqlite_server, user) as client:
        await client.socket.send(frame)
        assert await closed_with(client.socket) == 4400


async def test_a_subscribe_with_a_query_that_is_not_a_string_closes_4400(
    sqlite_server: Server,
) -> None:
    user = await sqlite_server.sign_up("query-int")
    async with WSClient.connect(sqlite_server, user) as client:
        frame = {"id": "1", "type": "subscribe", "payload": {"query": 5}}
        await client.socket.send(json.dumps(frame))
        try:
            message = await client.receive_for("1")
        except websockets.ConnectionClosed:
            assert client.socket.close_code == 4400
        else:
            assert message["type"] == "error", message


@pytest.mark.parametrize(
    "payload",
    [
        {"query": ""},
        {"query": "query A { __typename }", "operationName": "B"},
        {"query": "query A @live { __typename }", "operationName": "B"},
    ],
    ids=["empty-query", "unknown-operation", "unknown-live-operation"],
)
async def test_a_request_error_over_websocket_is_not_internal(
    sqlite_server: Server, payload: dict[str, Any]
) -> None:
    user = await sqlite_server.sign_up("request-error")
    async with WSClient.connect(sqlite_server, user) as client:
        await client.send({"id": "1", "type": "subscribe", "payload": payload})
        message = await client.receive_for("1")
    assert message["type"] == "error", message
    codes = [e["extensions"]["code"] for e in message["payload"]]
    assert set(codes) <= {"GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"}, message


async def test_an_operation_name_that_is_not_a_string_closes_4400(sqlite_server: Server) -> None:
    """The protocol types operationName as a string or null: anything else is a bad frame."""
    user = await sqlite_server.sign_up("request-error")
    async with WSClient.connect(sqlite_server, user) as client:
        payload = {"query": "{ __typename }", "operationName": 5}
        await client.send({"id": "1", "type": "subscribe", "payload": payload})
        with pytest.raises(websockets.ConnectionClosed):
            await client.receive_for("1")
        assert client.socket.close_code == 4400


@pytest.mark.parametrize(
    "variables", [{"t": 2**40}, {"t": "x"}, {}], ids=["huge", "string", "missing"]
)
async def test_a_live_directive_variable_that_does_not_coerce_is_bad_user_input(
    sqlite_server: Server, variables: dict[str, Any]
) -> None:
    user = await sqlite_server.sign_up("live-variable")
    query = "query($t: Int!) @live(throttle: $t) { __typename }"
    async with WSClient.connect(sqlite_server, user) as client:
        op = await client.subscribe(query, variables)
        message = await client.receive_for(op)
    assert message["type"] in ("next", "error"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    "params",
    [
        {"Authorization": ""},
        {"Authorization": []},
        {"Authorization": 0},
        {"authorization": "", "Authorization": False},
    ],
)
async def test_a_falsy_authorization_in_connection_init_is_not_a_crash(
    sqlite_server: Server, params: dict[str, Any]
) -> None:
    async with raw_socket(sqlite_server) as ws:
        init = {"type": "connection_init", "payload": params}
        await ws.send(json.dumps(init))
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
        except websockets.ConnectionClosed:
            assert ws.close_code in (4400, 4403)
        else:
            assert message["type"] == "connection_ack"


@pytest.mark.parametrize("body", [b"\x80", b'{"query": "{ __typename }\xff"}'])
async def test_a_body_that_is_not_utf8_is_a_400(sqlite_server: Server, body: bytes) -> None:
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S) as client:
        response = await client.post(
            sqlite_server.http, content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400, response.text


async def test_completing_an_operation_as_it_finishes_logs_no_error(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    user = await sqlite_server.sign_up("complete")
    async with WSClient.connect(sqlite_server, user) as client:
        for _ in range(400):
            op = await client.subscribe("{ viewer { id } channels { edges { cursor } } }")
            assert (await client.receive_for(op))["type"] == "next"
            await client.send({"id": op, "type": "complete"})
        await client.send({"type": "ping"})
        while (await client.receive())["type"] != "pong":
            pass
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors


@pytest.mark.parametrize("variables", [[1, 2], "v", 3, True])
async def test_legacy_graphql_ws_variables_that_are_no_object_are_bad_user_input(
    sqlite_server: Server, variables: Any
) -> None:
    user = await sqlite_server.sign_up("legacy-variables")
    query = "query($t: Int) @live(throttle: $t) { __typename }"
    async with WSClient.connect(sqlite_server, user, protocol=LEGACY_PROTOCOL) as client:
        payload = {"query": query, "variables": variables}
        await client.send({"id": "1", "type": "start", "payload": payload})
        message = await client.receive_for("1")
        assert message["type"] == "error", message
        assert message["payload"]["extensions"]["code"] == "BAD_USER_INPUT"
        # The connection still serves.
        await client.send({"id": "2", "type": "start", "payload": {"query": "{ __typename }"}})
        assert (await client.receive_for("2"))["type"] == "data"
