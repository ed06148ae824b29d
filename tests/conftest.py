from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.harness import Server, make_settings, running_server
from tests.services import temporary_pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: an SQLite file, and the local PostgreSQL when reachable."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    async with temporary_pg_database() as url:
        yield url


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """A real server on loopback over a fresh database (SQLite, and PostgreSQL)."""
    async with running_server(make_settings(database_url, tmp_path)) as running:
        yield running


@pytest.fixture
async def sqlite_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A real server on loopback over a fresh SQLite file only."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    async with running_server(make_settings(url, tmp_path)) as running:
        yield running


# -- one server per test module ------------------------------------------------------
# Starting a server (and creating a PostgreSQL database) costs more than most tests.
# Tests that isolate themselves by signing up their own workspace share one server per
# module and database; they run in the module's event loop:
#     pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A fresh database for one test module: SQLite, and the local PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    async with temporary_pg_database() as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    """A real server shared by the tests of one module (SQLite, and PostgreSQL)."""
    settings = make_settings(module_database_url, tmp_path_factory.mktemp("server"))
    async with running_server(settings) as running:
        yield running
