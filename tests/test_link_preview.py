"""Link previews: the fetcher refuses non-public addresses after DNS resolution on every
hop; a loopback page gives a preview when the operator allows private addresses; a
slow or unreachable page leaves the message intact, without a preview.

Names are resolved through a resolver the test installs, and every request that is not
to a loopback server goes to an in-memory transport: nothing leaves this machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from app import outbound, tenancy
from app.jobs import JobStatus, ScheduledJob
from tests.harness import Server, WSClient, make_settings, running_server

PAGE = b"<html><head><title>\n  Hello &amp; welcome </title></head><body>hi</body></html>"


def resolver_of(table: dict[str, list[str]]) -> outbound.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


def refusing_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise AssertionError(f"no request should be sent: {request.url}")

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("http://loop.example/", ["127.0.0.1"]),
        ("http://ten.example/", ["10.1.2.3"]),
        ("http://meta.example/latest/meta-data", ["169.254.169.254"]),
        ("http://six.example/", ["::1"]),
        ("http://mapped.example/", ["::ffff:127.0.0.1"]),
        ("http://private.example/", ["192.168.1.10"]),
        ("http://mixed.example/", ["93.184.216.34", "10.0.0.1"]),
        ("http://127.0.0.1:8080/", []),
        ("http://[::1]/", []),
        ("http://[fe80::1]/", []),
    ],
)
async def test_non_public_addresses_are_refused(
    monkeypatch: pytest.MonkeyPatch, url: str, addresses: list[str]
) -> None:
    host = httpx.URL(url).host
    monkeypatch.setattr(outbound, "resolve", resolver_of({host: addresses}))
    seen: list[httpx.Request] = []
    with pytest.raises(outbound.Refused, match="non-public"):
        await outbound.fetch_title(
            url,
            allow_private=False,
            timeout_s=2,
            max_bytes=1000,
            transport=refusing_transport(seen),
        )
    assert seen == []


async def test_a_redirect_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        outbound,
        "resolve",
        resolver_of({"public.example": ["93.184.216.34"], "internal.example": ["10.0.0.7"]}),
    )
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"location": "http://internal.example/admin"})

    with pytest.raises(outbound.Refused, match=r"internal\.example"):
        await outbound.fetch_title(
            "http://public.example/",
            allow_private=False,
            timeout_s=2,
            max_bytes=1000,
            transport=httpx.MockTransport(handle),
        )
    # One request, to the vetted address of the first hop, by its name.
    (request,) = seen
    assert request.url.host == "93.184.216.34"
    assert request.headers["host"] == "public.example"


async def test_non_http_schemes_are_refused() -> None:
    with pytest.raises(outbound.Refused):
        await outbound.fetch_title(
            "file:///etc/passwd", allow_private=True, timeout_s=1, max_bytes=10
        )


@asynccontextmanager
async def raw_http_server(respond: Callable[[], bytes] | None) -> AsyncIterator[int]:
    """A loopback HTTP server answering every request with ``respond()``; None: it hangs."""
    hang = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if respond is None:
                await hang.wait()
            else:
                writer.write(respond())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        hang.set()
        server.close()
        await server.wait_closed()


def html_response(body: bytes = PAGE) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def test_a_loopback_page_gives_its_title_when_private_addresses_are_allowed() -> None:
    async with raw_http_server(html_response) as port:
        url = f"http://127.0.0.1:{port}/page"
        title = await outbound.fetch_title(url, allow_private=True, timeout_s=2, max_bytes=4096)
        assert title == "Hello & welcome"
        with pytest.raises(outbound.Refused):
            await outbound.fetch_title(url, allow_private=False, timeout_s=2, max_bytes=4096)


async def test_only_the_first_bytes_are_read() -> None:
    body = b"<html><head>" + b" " * 5000 + b"<title>too far</title></head></html>"
    async with raw_http_server(lambda: html_response(body)) as port:
        title = await outbound.fetch_title(
            f"http://127.0.0.1:{port}/", allow_private=True, timeout_s=2, max_bytes=1024
        )
    assert title is None


async def test_a_page_that_never_answers_times_out() -> None:
    async with raw_http_server(None) as port:
        started = time.monotonic()
        with pytest.raises(outbound.FetchFailed, match="timed out"):
            await outbound.fetch_title(
                f"http://127.0.0.1:{port}/", allow_private=True, timeout_s=0.3, max_bytes=1024
            )
        assert time.monotonic() - started < 2


LIVE = """query Live($c: ID!) @live { messages(channelId: $c) {
  edges { node { id body linkPreview { url title } } } } }"""


async def test_a_sent_link_gets_its_preview_live(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        tmp_path,
        link_preview_allow_private=True,
        scheduler_poll_s=0.05,
    )
    async with raw_http_server(html_response) as port, running_server(settings) as server:
        user = await server.sign_up("linker")
        channel = await server.channel(user)
        async with WSClient.connect(server, user) as ws:
            op = await ws.subscribe(LIVE, {"c": channel})
            await ws.receive_for(op)
            url = f"http://127.0.0.1:{port}/page"
            await server.send(user, channel, f"look at {url}.")
            async with asyncio.timeout(10):
                while True:
                    update = await ws.receive_for(op)
                    (edge,) = update["payload"]["data"]["messages"]["edges"]
                    if edge["node"]["linkPreview"] is not None:
                        break
            assert edge["node"]["linkPreview"] == {"url": url, "title": "Hello & welcome"}
            assert edge["node"]["body"] == f"look at {url}."


async def action_outcome(server: Server, timeout: float = 10) -> ScheduledJob:
    async with asyncio.timeout(timeout):
        while True:
            async with server.services.db.reading() as session:
                tenancy.unscoped(session.sync_session)
                rows = (await session.exec(select(ScheduledJob))).all()
            finished = [r for r in rows if r.status in (JobStatus.DONE, JobStatus.FAILED)]
            if finished:
                return finished[0]
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("allow_private", [False, True])
async def test_an_unreachable_or_refused_link_leaves_the_message_without_preview(
    tmp_path: Path, allow_private: bool
) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        tmp_path,
        link_preview_allow_private=allow_private,
        link_preview_timeout_s=0.3,
        scheduler_poll_s=0.05,
    )
    async with raw_http_server(None) as port, running_server(settings) as server:
        user = await server.sign_up("linker")
        channel = await server.channel(user)
        await server.send(user, channel, f"slow http://127.0.0.1:{port}/")
        job = await action_outcome(server)
        assert job.status == JobStatus.FAILED
        expected = "timed out" if allow_private else "non-public"
        assert expected in (job.error or "")
        data = await server.gql(
            """query($c: ID!) { messages(channelId: $c) {
              edges { node { body linkPreview { title } } } } }""",
            {"c": channel},
            user,
        )
        (edge,) = data["messages"]["edges"]
        assert edge["node"] == {"body": f"slow http://127.0.0.1:{port}/", "linkPreview": None}
