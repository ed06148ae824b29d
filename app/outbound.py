"""Outbound HTTP for actions: public addresses only, one deadline, a size cap.

Server-side request forgery is refused after DNS resolution, on every hop: each host
(the first, and every redirect's) is resolved here, every address it resolves to must
be public, and the connection goes to the vetted address itself (the name is kept for
the Host header and TLS), so a second lookup cannot swap in another address.
Refused: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
(169.254/16, fe80::/10), shared (100.64/10), unspecified, multicast, reserved and
documentation ranges, and IPv4-mapped IPv6 forms of them. ``allow_private`` (the
operator's ``LINK_PREVIEW_ALLOW_PRIVATE=1``) turns the address check off.

    OutboundError
    ├── Refused        the URL or an address it resolves to is not allowed
    └── FetchFailed    unreachable, timed out, not HTML, a bad status, too many redirects
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser

import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_REDIRECTS = 5
USER_AGENT = "livegraph-link-preview/1.0"


class OutboundError(Exception):
    """An outbound fetch did not produce a result."""


class Refused(OutboundError):
    """The destination is not allowed (scheme, or a non-public address)."""


class FetchFailed(OutboundError):
    """The destination could not be fetched."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# Tests replace this with a resolver of their own: names never reach real DNS there.
resolve: Resolver = system_resolver


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _vetted_address(host: str, port: int, allow_private: bool) -> str:
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise FetchFailed(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise FetchFailed(f"{host} has no address")
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise Refused(f"{host} resolves to a non-public address ({refused[0]})")
    return addresses[0]


async def fetch_title(
    url: str,
    *,
    allow_private: bool,
    timeout_s: float,
    max_bytes: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str | None:
    """The HTML ``<title>`` of the page at ``url``, or None if it has none."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _fetch_title(url, allow_private, timeout_s, max_bytes, transport)
    except TimeoutError as exc:
        raise FetchFailed(f"timed out after {timeout_s}s") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{type(exc).__name__}: {exc}") from exc


async def _fetch_title(
    url: str,
    allow_private: bool,
    timeout_s: float,
    max_bytes: int,
    transport: httpx.AsyncBaseTransport | None,
) -> str | None:
    # trust_env=False: a proxy from the environment would connect by name, unvetted.
    async with httpx.AsyncClient(
        transport=transport, timeout=timeout_s, follow_redirects=False, trust_env=False
    ) as client:
        target = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            if target.scheme not in ("http", "https") or not target.host:
                raise Refused(f"not an http(s) URL: {target}")
            port = target.port or (443 if target.scheme == "https" else 80)
            address = await _vetted_address(target.host, port, allow_private)
            request = client.build_request(
                "GET",
                target.copy_with(host=address),
                headers={
                    "Host": target.netloc.decode("ascii"),
                    "Accept": "text/html",
                    "User-Agent": USER_AGENT,
                },
                extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
            )
            response = await client.send(request, stream=True)
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed("redirect without a location")
                    target = target.join(location)
                    continue
                if response.status_code != 200:
                    raise FetchFailed(f"status {response.status_code}")
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind not in ("text/html", "application/xhtml+xml"):
                    raise FetchFailed(f"not HTML: {kind or 'no content type'}")
                body = await _read_capped(response, max_bytes)
                return parse_title(body.decode(response.encoding or "utf-8", errors="replace"))
            finally:
                await response.aclose()
        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of the body: the title is near the top; the rest is unread."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk[: max_bytes - size])
        size += len(chunks[-1])
        if size >= max_bytes:
            break
    return b"".join(chunks)


class _TitleParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.done = False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self.done:
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.inside:
            self.inside, self.done = False, True

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.parts.append(data)


def parse_title(html: str) -> str | None:
    parser = _TitleParser()
    parser.feed(html)
    title = " ".join("".join(parser.parts).split())
    return title or None
