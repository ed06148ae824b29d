"""Fresh databases for the benchmarks that run our code in-process (scheduling, search).

`sqlite` is a file in a temp dir; `postgres` a database made on the local server and
dropped afterwards, whatever the run did.
"""

from __future__ import annotations

import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import create_async_engine

DATABASES = ("sqlite", "postgres")
PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_SERVER = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}"
# An existing database to connect to: CREATE DATABASE cannot run without one.
PG_ADMIN_DATABASE = "test"


def check_available(name: str) -> str | None:
    """None if a database `name` can be made here, else the reason it cannot."""
    if name == "sqlite":
        return None
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2.0):
            return None
    except OSError as error:
        return f"no PostgreSQL on {PG_HOST}:{PG_PORT} ({error})"


@asynccontextmanager
async def fresh_database(name: str) -> AsyncIterator[str]:
    """The URL of an empty database `name` (one of `DATABASES`), removed on exit."""
    if name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/bench.sqlite"
        return
    database = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(f"{PG_SERVER}/{PG_ADMIN_DATABASE}", isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
        try:
            yield f"{PG_SERVER}/{database}"
        finally:
            async with admin.connect() as connection:
                await connection.exec_driver_sql(
                    f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
                )
    finally:
        await admin.dispose()
