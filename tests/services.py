"""Access to the shared local services (PostgreSQL, Redis) for tests.

Each test run makes its own PostgreSQL database and Redis key prefix and removes them
afterwards: the services are shared and outlive a run. When a service is absent the test
skips with the reason, unless ``REQUIRE_SERVICES=1`` (CI), where absence is a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("TEST_PG_DB", "test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip (or fail under REQUIRE_SERVICES=1) when a service is not reachable."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if services_required():
        pytest.fail(f"{reason}, and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> None:
    require("PostgreSQL", PG_HOST, PG_PORT)


def require_redis() -> None:
    host_port = REDIS_URL.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    require("Redis", host, int(port or 6379))


def pg_url(database: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


async def _admin_execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB, timeout=10
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def temporary_pg_database() -> AsyncIterator[str]:
    """Create a fresh database for one test and drop it afterwards, even on failure."""
    require_postgres()
    name = f"lg_test_{uuid.uuid4().hex[:12]}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unique_prefix() -> str:
    return f"lgtest-{uuid.uuid4().hex[:12]}"


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]
