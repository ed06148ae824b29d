"""Sign-in: no timing tells which emails exist; password hashing is bounded, off the loop."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from app import passwords
from app.demo import DEMO_EMAIL, DEMO_PASSWORD, seed
from tests.harness import Server

SIGN_IN = "mutation($i: SignInInput!) { signIn(input: $i) { token } }"
ROUNDS = 7


class RecordingHasher(PasswordHasher):
    """A real argon2 hasher that records how many run at once, and on which threads."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.threads: set[int] = set()

    def _enter(self) -> None:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.get_ident())

    def _leave(self) -> None:
        with self._lock:
            self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._enter()
        try:
            return super().hash(password, salt=salt)
        finally:
            self._leave()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._enter()
        try:
            return super().verify(hash, password)
        finally:
            self._leave()


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> RecordingHasher:
    recording = RecordingHasher()
    monkeypatch.setattr(passwords.PASSWORDS, "_hasher", recording)
    return recording


async def _sign_in(client: httpx.AsyncClient, server: Server, email: str, password: str) -> float:
    """Seconds until the answer, which must be the generic refusal."""
    started = time.perf_counter()
    response = await client.post(
        server.http,
        json={"query": SIGN_IN, "variables": {"i": {"email": email, "password": password}}},
    )
    elapsed = time.perf_counter() - started
    body: dict[str, Any] = response.json()
    assert body["errors"][0]["message"] == "Invalid email or password", body
    return elapsed


async def test_an_unknown_email_answers_as_slowly_as_a_wrong_password(
    sqlite_server: Server,
) -> None:
    alice = await sqlite_server.sign_up("alice")
    unknown, wrong = [], []
    async with httpx.AsyncClient(timeout=30) as client:
        await _sign_in(client, sqlite_server, alice.email, "warm up the pools")
        # Interleaved, so both kinds see the same load on the machine.
        for _ in range(ROUNDS):
            email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
            unknown.append(await _sign_in(client, sqlite_server, email, "a wrong password"))
            wrong.append(await _sign_in(client, sqlite_server, alice.email, "a wrong password"))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    print(
        f"median unknown {statistics.median(unknown) * 1000:.1f} ms, "
        f"wrong password {statistics.median(wrong) * 1000:.1f} ms, ratio {ratio:.2f}"
    )
    # Skipping the check answers an unknown email about 20 times faster.
    assert 0.5 < ratio < 2.0


async def test_password_checks_run_a_bounded_number_at_a_time_off_the_loop(
    sqlite_server: Server, hasher: RecordingHasher
) -> None:
    alice = await sqlite_server.sign_up("alice")
    bound = passwords.PASSWORDS.concurrency
    emails = [alice.email, f"nobody-{uuid.uuid4().hex[:8]}@example.com"] * (2 * bound)
    hasher.peak = 0
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(
            *(_sign_in(client, sqlite_server, email, "a wrong password") for email in emails)
        )
    print(f"{len(emails)} sign-ins at once, at most {hasher.peak} checks at a time")
    assert hasher.peak == bound
    assert threading.get_ident() not in hasher.threads


def test_the_stand_in_hash_costs_what_a_real_one_costs() -> None:
    # Same algorithm and parameters as the hasher's: its check takes as long as a real one.
    assert not PasswordHasher().check_needs_rehash(passwords.DUMMY_HASH)


async def test_demo_seeding_hashes_off_the_event_loop(
    sqlite_server: Server, hasher: RecordingHasher
) -> None:
    await seed(sqlite_server.services)
    assert hasher.threads, "the demo password was never hashed"
    assert threading.get_ident() not in hasher.threads
    token = await sqlite_server.gql(
        SIGN_IN, {"i": {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}}
    )
    assert token["signIn"]["token"]
