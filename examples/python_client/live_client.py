"""A server-to-server client of the livegraph backend, with the Python `gql` library.

It does what another service (a bot, a sync job, an indexer) would do:

1. runs an ordinary query over HTTP (`HTTPXAsyncTransport`, `Authorization: Bearer`);
2. runs a `query ... @live` over WebSocket with the `graphql-transport-ws` protocol
   (`WebsocketsTransport`, the token in the `connection_init` payload) and prints
   every result the server pushes: the full, current result first, then a new full
   result each time the data it read changes. No polling.

Run it against a server (see README.md beside this file):

    python examples/python_client/live_client.py --url http://127.0.0.1:8000/graphql \\
        --email alice@example.com --password '...'
    python examples/python_client/live_client.py --token "$TOKEN" --channel 3 --limit 5

The functions `sign_in`, `run_query` and `live` are importable; the tests call them.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

DEFAULT_URL = "http://127.0.0.1:8000/graphql"
#: Every request over HTTP, and every wait for a connection or its ack, is bounded.
TIMEOUT_S = 10

SIGN_IN = """
mutation SignIn($input: SignInInput!) {
  signIn(input: $input) { token user { id name } }
}
"""

OVERVIEW = """
query Overview {
  viewer { id name email }
  channels(first: 50) { edges { node { id name } } }
}
"""

LIVE_MESSAGES = """
query LiveMessages($channelId: ID!) @live {
  messages(channelId: $channelId, first: 20) {
    edges { node { id body createdAt author { name } } }
  }
}
"""


@dataclass(frozen=True)
class LiveResult:
    """One result pushed for a live query."""

    data: dict[str, Any]
    #: The change-log version this result reflects (`extensions.live.version`).
    version: int | None

    @property
    def bodies(self) -> list[str]:
        """The message bodies, newest first."""
        return [edge["node"]["body"] for edge in self.data["messages"]["edges"]]


#: Called with each live result; may be a coroutine function.
OnResult = Callable[[LiveResult], Awaitable[None] | None]


def ws_url(http_url: str) -> str:
    """The WebSocket address of a GraphQL endpoint given by its http(s) address."""
    parts = urlsplit(http_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme))


def _http_client(url: str, token: str | None) -> Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = HTTPXAsyncTransport(url=url, headers=headers, timeout=TIMEOUT_S)
    return Client(transport=transport, execute_timeout=TIMEOUT_S)


async def sign_in(url: str, email: str, password: str) -> str:
    """Signs in over HTTP; returns the token (a JWT)."""
    async with _http_client(url, None) as session:
        request = GraphQLRequest(
            SIGN_IN, variable_values={"input": {"email": email, "password": password}}
        )
        data = await session.execute(request)
    token: str = data["signIn"]["token"]
    return token


async def run_query(url: str, token: str, channel: str | None = None) -> dict[str, Any]:
    """An ordinary query over HTTP: the viewer and the channels of their workspace.

    With `channel`, only that channel is kept in `channels` (a way to check it exists
    and is visible to the viewer before going live on it).
    """
    async with _http_client(url, token) as session:
        data: dict[str, Any] = await session.execute(GraphQLRequest(OVERVIEW))
    if channel is not None:
        edges = data["channels"]["edges"]
        data["channels"]["edges"] = [e for e in edges if e["node"]["id"] == channel]
    return data


async def live(
    url: str,
    token: str,
    channel: str,
    on_result: OnResult,
    limit: int | None = None,
) -> int:
    """Runs the channel's messages as a live query over graphql-transport-ws.

    Calls `on_result` with each result (awaiting it when it is a coroutine function)
    until `limit` results have arrived, or for as long as the server keeps the query
    open when `limit` is None. Returns how many results arrived. A GraphQL error in a
    result raises `gql.transport.exceptions.TransportQueryError`.
    """
    transport = WebsocketsTransport(
        url=ws_url(url),
        # gql offers the legacy `graphql-ws` protocol first unless told otherwise; the
        # server speaks both, and graphql-transport-ws is the current one.
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"authorization": f"Bearer {token}"},
        connect_timeout=TIMEOUT_S,
        ack_timeout=TIMEOUT_S,
        # Keep-alive both ways: ping the server, give up on a dead connection.
        ping_interval=20,
        pong_timeout=TIMEOUT_S,
    )
    seen = 0
    async with Client(transport=transport, execute_timeout=TIMEOUT_S) as session:
        request = GraphQLRequest(LIVE_MESSAGES, variable_values={"channelId": channel})
        # A live query is a query; gql's `subscribe` is simply "send over the socket and
        # yield every `next`", which is what the server does for `@live`.
        results = session.subscribe(request, get_execution_result=True)
        async with aclosing(results):  # on leaving early, `complete` ends it on the server
            async for result in results:
                assert result.data is not None  # gql raises TransportQueryError on errors
                version = (result.extensions or {}).get("live", {}).get("version")
                outcome = on_result(LiveResult(result.data, version))
                if inspect.isawaitable(outcome):
                    await outcome
                seen += 1
                if limit is not None and seen >= limit:
                    break
    return seen


def print_live_result(result: LiveResult) -> None:
    """Prints one live result: its version, then the newest messages."""
    print(f"-- live result at version {result.version}: {len(result.bodies)} message(s)")
    for edge in result.data["messages"]["edges"]:
        node = edge["node"]
        print(f"   {node['createdAt']}  {node['author']['name']}: {node['body']}")
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run a query over HTTP, then a live query over WebSocket, with gql.",
    )
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"the GraphQL endpoint (default {DEFAULT_URL})"
    )
    parser.add_argument("--token", help="a token (JWT) from signUp/signIn")
    parser.add_argument("--email", help="sign in with this email (with --password)")
    parser.add_argument("--password", help="the password for --email")
    parser.add_argument(
        "--channel", help="the channel id to watch (default: the first channel listed)"
    )
    parser.add_argument("--limit", type=int, default=None, help="stop after this many live results")
    args = parser.parse_args(argv)
    if not args.token and not (args.email and args.password):
        parser.error("give --token, or --email and --password")
    if args.token and (args.email or args.password):
        parser.error("give either --token or --email/--password, not both")
    return args


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        token = args.token or await sign_in(args.url, args.email, args.password)
        overview = await run_query(args.url, token)
        print(json.dumps(overview, indent=2))
        channels = [edge["node"] for edge in overview["channels"]["edges"]]
        channel = args.channel or (channels[0]["id"] if channels else None)
        if channel is None:
            print("no channel to watch: create one first (createChannel)", file=sys.stderr)
            return 1
        print(f"watching channel {channel} live (Ctrl-C to stop)")
        await live(args.url, token, channel, print_live_result, args.limit)
    except TransportQueryError as error:
        print(f"GraphQL error: {error.errors or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(130)
