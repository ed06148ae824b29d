"""File storage: signed single-use upload URLs, attachments, signed downloads, cleanup.

Real server on loopback; the bytes go to local disk (``file://``) and to a real S3 HTTP
endpoint (moto's server, on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from app.columns import utcnow
from app.storage import housekeeping, signing
from tests.harness import GraphQLErrors, Server, User, free_port, make_settings, running_server

UPLOAD = """mutation($i: CreateUploadInput!) { createUploadUrl(input: $i) { url expiresAt } }"""
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
  id attachments { id name contentType size sha256 url } } }"""
MESSAGES = """query($c: ID!) { messages(channelId: $c) { edges { node {
  id attachments { id name url } } } } }"""


async def ticket(server: Server, user: User, name: str, content_type: str, size: int) -> str:
    data = await server.gql(
        UPLOAD, {"i": {"name": name, "contentType": content_type, "size": size}}, user
    )
    url: str = data["createUploadUrl"]["url"]
    return server.url + url


async def upload(
    server: Server, user: User, body: bytes, name: str = "a.txt", content_type: str = "text/plain"
) -> str:
    url = await ticket(server, user, name, content_type, len(body))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(url, content=body, headers={"content-type": content_type})
    assert response.status_code == 201, response.text
    file_id: str = response.json()["fileId"]
    return file_id


async def post(url: str, body: Any, content_type: str = "text/plain") -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, content=body, headers={"content-type": content_type})


async def get(server: Server, url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url if url.startswith("http") else server.url + url)


async def round_trip(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    body = b"hello file \x00\xff" * 1000
    file_id = await upload(server, alice, body, "notes.txt")
    data = await server.gql(
        SEND, {"i": {"channelId": channel, "body": "see", "attachmentIds": [file_id]}}, alice
    )
    (attached,) = data["sendMessage"]["attachments"]
    assert attached["id"] == file_id
    assert attached["name"] == "notes.txt"
    assert attached["size"] == len(body)
    assert attached["sha256"] == hashlib.sha256(body).hexdigest()
    listed = await server.gql(MESSAGES, {"c": channel}, alice)
    assert listed["messages"]["edges"][0]["node"]["attachments"][0]["id"] == file_id
    response = await get(server, attached["url"])
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_upload_attach_download_round_trip(server: Server) -> None:
    await round_trip(server)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback, with one bucket."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    threaded = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    threaded.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="livegraph-files")
        yield endpoint
    finally:
        threaded.stop()


async def test_round_trip_through_an_s3_server(s3_endpoint: str, tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        tmp_path,
        storage_url="s3://livegraph-files",
        storage_options={
            "endpoint": s3_endpoint,
            "access_key_id": "test",
            "secret_access_key": "test",
            "region": "us-east-1",
            "client_options": {"allow_http": True},
        },
    )
    async with running_server(settings) as server:
        await round_trip(server)
    assert not (tmp_path / "files").exists()


async def test_a_ticket_is_good_for_one_upload(sqlite_server: Server) -> None:
    alice = await sqlite_server.sign_up("alice")
    url = await ticket(sqlite_server, alice, "a.txt", "text/plain", 3)
    assert (await post(url, b"abc")).status_code == 201
    second = await post(url, b"abc")
    assert second.status_code == 403
    assert second.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_sizes_beyond_the_declared_or_the_maximum_are_refused(
    sqlite_server: Server,
) -> None:
    alice = await sqlite_server.sign_up("alice")
    with pytest.raises(GraphQLErrors) as caught:
        await ticket(sqlite_server, alice, "big.bin", "application/octet-stream", 26 << 20)
    assert caught.value.codes == ["BAD_USER_INPUT"]
    url = await ticket(sqlite_server, alice, "a.txt", "text/plain", 10)
    assert (await post(url, b"x" * 11)).status_code == 413

    async def unannounced() -> AsyncIterator[bytes]:
        # No Content-Length: the stream itself must be cut off.
        for _ in range(100):
            yield b"y" * 1000

    url = await ticket(sqlite_server, alice, "b.txt", "text/plain", 10)
    assert (await post(url, unannounced())).status_code == 413
    url = await ticket(sqlite_server, alice, "c.txt", "text/plain", 10)
    assert (await post(url, b"short")).status_code == 400


async def test_a_content_type_other_than_declared_is_refused(sqlite_server: Server) -> None:
    alice = await sqlite_server.sign_up("alice")
    url = await ticket(sqlite_server, alice, "a.png", "image/png", 3)
    assert (await post(url, b"abc", "text/html")).status_code == 415
    assert (await post(url, b"abc", "image/png")).status_code == 201


def forge(server: Server, purpose: str, claims: dict[str, Any], expires: float) -> str:
    return signing.sign(server.services.settings.secret_key, purpose, claims, expires)


async def test_expired_and_tampered_urls_are_forbidden(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    url = await ticket(server, alice, "a.txt", "text/plain", 3)
    token = url.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    tampered = f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}"
    assert (await post(url.replace(token, tampered), b"abc")).status_code == 403
    file_id = await upload(server, alice, b"abc")
    data = await server.gql(
        SEND, {"i": {"channelId": channel, "body": "x", "attachmentIds": [file_id]}}, alice
    )
    download = data["sendMessage"]["attachments"][0]["url"]
    good = await get(server, download)
    assert good.status_code == 200
    assert (await get(server, download[:-3] + "AAA")).status_code == 403
    (workspace,) = {
        c["w"]
        for c in [
            signing.verify(
                server.services.settings.secret_key, signing.DOWNLOAD, download.rsplit("/", 1)[1]
            )
            or {}
        ]
    }
    expired = forge(server, signing.DOWNLOAD, {"f": int(file_id), "w": workspace}, time.time() - 1)
    response = await get(server, f"/files/{expired}")
    assert response.status_code == 403
    # An upload token is no download token, even for the same claims.
    as_upload = forge(server, signing.UPLOAD, {"f": int(file_id), "w": workspace}, time.time() + 60)
    assert (await get(server, f"/files/{as_upload}")).status_code == 403


async def test_another_workspace_can_neither_attach_nor_download(server: Server) -> None:
    alice = await server.sign_up("alice")
    mallory = await server.sign_up("mallory")
    file_id = await upload(server, alice, b"secret")
    theirs = await server.channel(mallory)
    with pytest.raises(GraphQLErrors) as caught:
        await server.gql(
            SEND, {"i": {"channelId": theirs, "body": "x", "attachmentIds": [file_id]}}, mallory
        )
    assert caught.value.codes == ["NOT_FOUND"]
    # A link made for Mallory's workspace, naming Alice's file, reads as one to nothing.
    mallory_ws = signing.verify(
        server.services.settings.secret_key,
        signing.DOWNLOAD,
        (await _own_file_url(server, mallory)).rsplit("/", 1)[1],
    )
    assert mallory_ws is not None
    elsewhere = forge(
        server, signing.DOWNLOAD, {"f": int(file_id), "w": mallory_ws["w"]}, time.time() + 60
    )
    absent = forge(
        server, signing.DOWNLOAD, {"f": 2**31 - 2, "w": mallory_ws["w"]}, time.time() + 60
    )
    first, second = await get(server, f"/files/{elsewhere}"), await get(server, f"/files/{absent}")
    assert first.status_code == second.status_code == 403
    assert first.content == second.content


async def _own_file_url(server: Server, user: User) -> str:
    channel = await server.channel(user)
    file_id = await upload(server, user, b"mine")
    data = await server.gql(
        SEND, {"i": {"channelId": channel, "body": "x", "attachmentIds": [file_id]}}, user
    )
    url: str = data["sendMessage"]["attachments"][0]["url"]
    return url


async def test_a_file_is_attached_once(sqlite_server: Server) -> None:
    alice = await sqlite_server.sign_up("alice")
    channel = await sqlite_server.channel(alice)
    file_id = await upload(sqlite_server, alice, b"abc")
    i = {"channelId": channel, "body": "x", "attachmentIds": [file_id]}
    await sqlite_server.gql(SEND, {"i": i}, alice)
    with pytest.raises(GraphQLErrors) as caught:
        await sqlite_server.gql(SEND, {"i": i}, alice)
    assert caught.value.codes == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("content_type", "disposition"),
    [
        ("image/png", "inline"),
        ("text/html", "attachment"),
        ("image/svg+xml", "attachment"),
        ("application/javascript", "attachment"),
    ],
)
async def test_downloads_that_could_run_are_attachments(
    sqlite_server: Server, content_type: str, disposition: str
) -> None:
    alice = await sqlite_server.sign_up("alice")
    url = await _attached_url(sqlite_server, alice, b"<script>1</script>", content_type)
    response = await get(sqlite_server, url)
    assert response.headers["content-type"].split(";")[0] == content_type
    assert response.headers["content-disposition"].startswith(disposition + ";")
    assert response.headers["x-content-type-options"] == "nosniff"


async def _attached_url(server: Server, user: User, body: bytes, content_type: str) -> str:
    channel = await server.channel(user)
    file_id = await upload(server, user, body, "f", content_type)
    data = await server.gql(
        SEND, {"i": {"channelId": channel, "body": "x", "attachmentIds": [file_id]}}, user
    )
    url: str = data["sendMessage"]["attachments"][0]["url"]
    return url


async def test_unattached_and_deleted_messages_files_go_after_the_grace_period(
    server: Server,
) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    kept_url = await _attached_url(server, alice, b"kept", "text/plain")
    gone_url = await _attached_url(server, alice, b"deleted with message", "text/plain")
    orphan = await upload(server, alice, b"never attached")
    data = await server.gql(MESSAGES, {"c": channel}, alice)
    assert data["messages"]["edges"] == []  # the helper used channels of its own
    services = server.services
    assert await housekeeping.remove_expired_files(services) == 0
    # Delete the message holding the second file.
    message = await _message_of(server, alice, gone_url)
    await server.gql("mutation($id: ID!) { deleteMessage(id: $id) }", {"id": message}, alice)
    later = utcnow() + timedelta(days=1, minutes=1)
    assert await housekeeping.remove_expired_files(services, now=later) == 2
    assert (await get(server, kept_url)).status_code == 200
    assert (await get(server, gone_url)).status_code == 403
    with pytest.raises(GraphQLErrors):
        await server.gql(
            SEND, {"i": {"channelId": channel, "body": "x", "attachmentIds": [orphan]}}, alice
        )


async def test_file_housekeeping_is_a_cron_action_every_five_minutes(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.jobs import ActionContext
    from app.resolvers.housekeeping import prune_expired_files
    from app.scheduled.table import JobKind

    crons = sqlite_server.services.application.functions.crons()
    (job,) = [j for j in crons if j.function.fn is prune_expired_files]
    assert (job.schedule, job.function.kind) == ("*/5 * * * *", JobKind.ACTION)
    server = sqlite_server
    alice = await server.sign_up("alice")
    orphan = await upload(server, alice, b"never attached either")
    later = utcnow() + timedelta(days=1, minutes=1)
    monkeypatch.setattr(housekeeping, "utcnow", lambda: later)
    services = server.services
    ctx = ActionContext(services, None, None, services.runner)
    assert await prune_expired_files(ctx) == 1
    channel = await server.channel(alice)
    with pytest.raises(GraphQLErrors):
        await server.gql(
            SEND, {"i": {"channelId": channel, "body": "x", "attachmentIds": [orphan]}}, alice
        )


async def _message_of(server: Server, user: User, url: str) -> str:
    claims = signing.verify(
        server.services.settings.secret_key, signing.DOWNLOAD, url.rsplit("/", 1)[1]
    )
    assert claims is not None
    data = await server.gql(
        "query { channels { edges { node { messages { edges { node {"
        " id attachments { id } } } } } } } }",
        user=user,
    )
    for channel in data["channels"]["edges"]:
        for edge in channel["node"]["messages"]["edges"]:
            if any(int(a["id"]) == claims["f"] for a in edge["node"]["attachments"]):
                message_id: str = edge["node"]["id"]
                return message_id
    raise AssertionError("no message holds the file")


async def test_a_200_mib_upload_streams_in_flat_memory(tmp_path: Path) -> None:
    size = 200 << 20
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path, max_upload_bytes=size
    )
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        url = await ticket(server, alice, "big.bin", "application/octet-stream", size)
        chunk = b"\x5a" * (1 << 20)

        async def body() -> AsyncIterator[bytes]:
            for _ in range(size // len(chunk)):
                yield chunk

        process = psutil.Process()
        baseline = process.memory_info().rss
        peak = baseline
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, process.memory_info().rss)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.02)

        sampler = asyncio.create_task(sample())
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                response = await client.post(
                    url,
                    content=body(),
                    headers={
                        "content-type": "application/octet-stream",
                        "content-length": str(size),
                    },
                )
        finally:
            done.set()
            await sampler
        assert response.status_code == 201, response.text
        growth = (peak - baseline) / (1 << 20)
        print(f"\nRSS growth during a 200 MiB upload: {growth:.1f} MiB")
        assert growth < 64, f"memory grew by {growth:.0f} MiB"
        stored = list((tmp_path / "files" / "sha256").rglob("*"))
        assert any(p.is_file() and p.stat().st_size == size for p in stored)
