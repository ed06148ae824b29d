"""The command line: ``python -m app export-schema | db sync | serve``."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.application import Application
from app.resolvers.chat import CHAT
from tests.harness import free_port

ROOT = Path(__file__).resolve().parent.parent
TABLES = {"workspace", "user", "invite", "channel", "message", "change_log", "change_clock"}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "PRODUCTION"}}
    env.update(PYTHONPATH=str(ROOT), DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _run_async(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def test_export_schema_writes_the_sdl(tmp_path: Path) -> None:
    target = tmp_path / "out.graphql"
    done = _run(tmp_path, "export-schema", "-o", str(target), SECRET_KEY="k")
    assert done.returncode == 0, done.stderr
    assert target.read_text() == Application.build(CHAT).schema.as_str() + "\n"
    assert f"wrote {target}" in done.stdout


def test_export_schema_to_stdout(tmp_path: Path) -> None:
    done = _run(tmp_path, "export-schema", "-o", "-", SECRET_KEY="k")
    assert done.returncode == 0, done.stderr
    assert done.stdout == Application.build(CHAT).schema.as_str() + "\n"


async def test_db_sync_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    code, out, err = await _run_async(
        tmp_path, "db", "sync", "--dry-run", DATABASE_URL=database_url, SECRET_KEY="k"
    )
    assert code == 0, err
    assert " additive, 0 destructive." in out.splitlines()[0]
    for table in TABLES:
        assert f"+ create table {table} (" in out
    assert not TABLES & await _tables(database_url)


async def test_db_sync_applies_the_plan(tmp_path: Path, database_url: str) -> None:
    code, out, err = await _run_async(
        tmp_path, "db", "sync", DATABASE_URL=database_url, SECRET_KEY="k"
    )
    assert code == 0, err
    assert "+ create table message (" in out
    assert await _tables(database_url) >= TABLES
    code, out, err = await _run_async(
        tmp_path, "db", "sync", "--dry-run", DATABASE_URL=database_url, SECRET_KEY="k"
    )
    assert code == 0, err
    assert out.strip() == "The database matches the tables: no changes."


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_production_without_secret_key_refuses_to_serve(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    done = _run(
        tmp_path,
        "serve",
        "--port",
        str(port),
        PRODUCTION="1",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}",
    )
    assert done.returncode != 0
    assert "SECRET_KEY must be set when PRODUCTION=1" in done.stderr
    assert time.monotonic() - started < 30
    assert not _listening(port)
    assert not (tmp_path / "prod.db").exists()
    assert not (tmp_path / "data" / "secret_key").exists()


def test_development_generates_and_keeps_a_secret_key(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "secret_key"
    done = _run(
        tmp_path, "db", "sync", "--dry-run", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/d.db"
    )
    assert done.returncode == 0, done.stderr
    first = key_file.read_text()
    assert len(first) >= 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    _run(tmp_path, "db", "sync", "--dry-run", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/d.db")
    assert key_file.read_text() == first
