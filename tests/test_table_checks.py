"""Adding a table fails loudly: what the engine cannot serve is refused when the schema is
built, every problem listed at once, each naming where it is and how to fix it.

A bad table lives in a throwaway package, and the schema is built in a subprocess, so
that the test process's SQLModel metadata never learns about it (a table once mapped
stays mapped). The filters of resolvers need no new table: they are checked in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from app.application import Application
from app.context import Ctx
from app.dataloaders.loaders import UntrackedColumn
from app.resolvers.chat import CHAT
from app.schema.checks import SchemaDefinitionError
from app.schema.models.message import Message

ROOT = Path(__file__).resolve().parent.parent

BUILD = """
import json, sys

from dataclasses import replace

from app.application import Application
from app.resolvers.chat import CHAT
from app.schema.checks import SchemaDefinitionError

pkg = sys.argv[1]
try:
    Application.build(replace(
        CHAT,
        models=(*CHAT.models, f"{pkg}.models"),
        resolvers=(*CHAT.resolvers, f"{pkg}.resolvers"),
    ))
except SchemaDefinitionError as exc:
    print(json.dumps({"message": str(exc), "problems": [str(p) for p in exc.problems]}))
else:
    print(json.dumps({"message": None, "problems": []}))
"""

HEADER = """
from typing import TYPE_CHECKING, ClassVar, Optional

from sqlmodel import Field, Relationship, SQLModel

from app.schema.models.workspace import TenantScoped

if TYPE_CHECKING:
    from app.schema.models.user import User
"""


def _package(root: Path, models: str, resolvers: str = "") -> str:
    name = f"checks_ext_{uuid.uuid4().hex[:8]}"
    for sub in ("", "models", "resolvers"):
        (root / name / sub).mkdir(exist_ok=True)
        (root / name / sub / "__init__.py").write_text("")
    (root / name / "models" / "tables.py").write_text(textwrap.dedent(models))
    (root / name / "resolvers" / "reads.py").write_text(textwrap.dedent(resolvers))
    return name


def _build(tmp_path: Path, models: str, resolvers: str = "") -> dict[str, Any]:
    """Build the chat's schema with these extra modules, in a process of its own."""
    package = _package(tmp_path, models, resolvers)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", BUILD, package],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _only_problem(result: dict[str, Any]) -> str:
    (problem,) = result["problems"]
    return cast(str, problem)


def test_the_chat_domain_builds_clean() -> None:
    Application.build(CHAT)


def test_a_primary_key_other_than_a_single_integer_id_is_refused(tmp_path: Path) -> None:
    models = (
        HEADER
        + '''
class Tag(TenantScoped, table=True):
    """A label."""

    __tablename__ = "checks_tag_key"

    label: str = Field(primary_key=True, max_length=20)
    '''
    )
    problem = _only_problem(_build(tmp_path, models))
    assert problem.startswith("Tag (checks_ext_")
    assert "its primary key is (label), not a single integer `id`" in problem
    assert "Fix: declare `id: int | None = Field(default=None, primary_key=True)`" in problem


def test_a_many_to_many_relationship_is_refused(tmp_path: Path) -> None:
    models = (
        HEADER
        + '''
class NoteTagLink(TenantScoped, table=True):
    """Which tag is on which note."""

    __tablename__ = "checks_link_m2m"

    id: int | None = Field(default=None, primary_key=True)
    note_id: int = Field(foreign_key="checks_note_m2m.id", index=True)
    tag_id: int = Field(foreign_key="checks_tag_m2m.id", index=True)


class Tag(TenantScoped, table=True):
    """A label."""

    __tablename__ = "checks_tag_m2m"

    id: int | None = Field(default=None, primary_key=True)


class Note(TenantScoped, table=True):
    """A note with labels."""

    __tablename__ = "checks_note_m2m"

    id: int | None = Field(default=None, primary_key=True)
    tags: list["Tag"] = Relationship(
        link_model=NoteTagLink, sa_relationship_kwargs={"lazy": "raise"}
    )
    '''
    )
    problem = _only_problem(_build(tmp_path, models))
    assert problem.startswith("Note (checks_ext_")
    assert ".tags: it is many-to-many (through the table checks_link_m2m)" in problem
    assert "Fix: make the link table a model with a many-to-one relationship" in problem


def test_a_relationship_that_may_load_by_itself_is_refused(tmp_path: Path) -> None:
    models = (
        HEADER
        + '''
class Note(TenantScoped, table=True):
    """A note."""

    __tablename__ = "checks_note_lazy"

    id: int | None = Field(default=None, primary_key=True)
    author_id: int = Field(foreign_key="user.id", index=True)
    author: "User" = Relationship()
    '''
    )
    problem = _only_problem(_build(tmp_path, models))
    assert ".author: it may load by itself (lazy='select')" in problem
    assert 'Fix: declare `Relationship(sa_relationship_kwargs={"lazy": "raise"})`' in problem


def test_postponed_annotations_that_break_a_relationship_are_refused(tmp_path: Path) -> None:
    # A bare class name still resolves by name (Other); an optional one cannot (Note).
    models = (
        "from __future__ import annotations\n"
        + HEADER
        + '''
class Note(TenantScoped, table=True):
    """A note."""

    __tablename__ = "checks_note_future"

    id: int | None = Field(default=None, primary_key=True)
    author_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    author: Optional[User] = Relationship(sa_relationship_kwargs={"lazy": "raise"})


class Other(TenantScoped, table=True):
    """Another note."""

    __tablename__ = "checks_other_future"

    id: int | None = Field(default=None, primary_key=True)
    author_id: int = Field(foreign_key="user.id", index=True)
    author: User = Relationship(sa_relationship_kwargs={"lazy": "raise"})
    '''
    )
    problem = _only_problem(_build(tmp_path, models))
    assert problem.startswith("Note (checks_ext_")
    assert ".author: its annotation reached SQLModel as the text 'Optional[User]'" in problem
    assert "models.tables has `from __future__ import annotations`" in problem
    assert "Fix: remove `from __future__ import annotations` from checks_ext_" in problem


def test_a_table_neither_tenant_scoped_nor_global_is_refused(tmp_path: Path) -> None:
    models = (
        HEADER
        + '''
class Setting(SQLModel, table=True):
    """A setting: whose?"""

    __tablename__ = "checks_setting_tenancy"

    id: int | None = Field(default=None, primary_key=True)


class Country(SQLModel, table=True):
    """A country: the same for every workspace."""

    __tablename__ = "checks_country_tenancy"
    __global__: ClassVar[bool] = True

    id: int | None = Field(default=None, primary_key=True)
    '''
    )
    problem = _only_problem(_build(tmp_path, models))
    assert problem.startswith("Setting (checks_ext_")
    assert "it has no tenant key, nor is it marked global" in problem
    assert "Fix: give it a tenant key" in problem
    assert "declare `__global__: ClassVar[bool] = True`" in problem


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    models = (
        HEADER
        + '''
class Note(SQLModel, table=True):
    """A note of nobody's."""

    __tablename__ = "checks_note_all"

    id: str = Field(primary_key=True, max_length=20)
    author_id: int = Field(foreign_key="user.id", index=True)
    author: "User" = Relationship(sa_relationship_kwargs={"lazy": "selectin"})
    '''
    )
    resolvers = """
    from app.schema.models.message import Message

    async def by_body(ctx, body):
        return await ctx.page(Message, first=10, after=None, where=("body", body))
    """
    result = _build(tmp_path, models, resolvers)
    assert len(result["problems"]) == 4
    assert result["message"].startswith("the schema cannot be built, 4 to fix:\n- ")
    assert all(f"- {problem}" in result["message"] for problem in result["problems"])
    key, tenancy, lazy, untracked = result["problems"]
    assert "its primary key `id` is not an integer (VARCHAR(20))" in key
    assert "no tenant key" in tenancy
    assert "lazy='selectin'" in lazy
    assert "resolvers.reads.by_body (line 5): ctx.page(Message, ...) filters on" in untracked


# -- filters on what change events do not carry -------------------------------------------

READS = """
from app.schema.models.message import Message


async def by_body(ctx, body):
    return await ctx.page(Message, first=10, after=None, where=("body", body))


async def edited(ctx, text, when):
    where = None
    if when is not None:
        where = ("edited_at", when)
    return await ctx.search(Message, text, first=10, after=None, where=where)


def changes(ctx):
    return ctx.events(Message, {"channel_id": 1, "idempotency_key": "k"})


class Reader:
    async def misspelt(self, ctx):
        return await ctx.page(Message, first=10, after=None, where=("chanel_id", 1))


async def tracked(ctx, channel_id):
    await ctx.page(Message, first=10, after=None, where=("channel_id", channel_id))
    await ctx.search(Message, "text", first=10, after=None, where=("author_id", 1))
    return ctx.events(Message, where={"workspace_id": 1})


async def unseen(ctx, column, model):
    # Computed names: left to the check at call time.
    await ctx.page(Message, first=10, after=None, where=(column, 1))
    return await ctx.page(model, first=10, after=None, where=("body", 1))
"""


def _untracked_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    package = f"checks_reads_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "reads.py").write_text(READS)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SchemaDefinitionError) as raised:
        Application.build(replace(CHAT, resolvers=(*CHAT.resolvers, package)))
    return [str(problem).removeprefix(f"{package}.reads.") for problem in raised.value.problems]


def test_a_filter_on_an_untracked_column_is_refused_naming_resolver_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_body, edited, changes, misspelt = _untracked_problems(tmp_path, monkeypatch)
    assert by_body == (
        "by_body (line 6): ctx.page(Message, ...) filters on Message.body, which change "
        "events do not carry, so its result would never update live. Fix: index "
        "Message.body (`Field(index=True)`), make it a foreign key, or, if it is private, "
        "declare it `private(tracked=True)`."
    )
    assert edited.startswith("edited (line 13): ctx.search(Message, ...) filters on")
    assert "Message.edited_at, which change events do not carry" in edited
    assert changes.startswith("changes (line 17): ctx.events(Message, ...) filters on")
    assert "Message.idempotency_key" in changes
    assert misspelt.startswith(
        "Reader.misspelt (line 22): ctx.page(Message, ...) filters on 'chanel_id', "
        "no column of Message. Fix: filter on one of its tracked columns: "
    )
    assert "channel_id" in misspelt


def test_a_tenant_key_referring_to_another_table_than_the_tenant_is_refused(
    tmp_path: Path,
) -> None:
    models = (
        HEADER
        + '''
from app.columns import tenant_key


class Team(SQLModel, table=True):
    """Not the chat's tenant."""

    __tablename__ = "checks_team_target"
    __global__: ClassVar[bool] = True

    id: int | None = Field(default=None, primary_key=True)


class Memo(SQLModel, table=True):
    """Keyed by a team, in a domain whose tenant is the workspace."""

    __tablename__ = "checks_memo_target"

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = tenant_key("checks_team_target.id")
'''
    )
    problem = _only_problem(_build(tmp_path, models))
    assert problem.startswith("Memo (checks_ext_")
    assert "its tenant key `team_id` does not refer to the tenant table `Workspace`" in problem
    assert 'Fix: declare it as `tenant_key("workspace.id")`' in problem


async def test_events_filtered_on_an_untracked_column_are_refused_when_called() -> None:
    # The backstop for filters the build cannot read: without it they match nothing.
    ctx = Ctx(cast(Any, None), None)
    with pytest.raises(UntrackedColumn, match=r"Message\.body is not tracked"):
        await anext(ctx.events(Message, {"body": "hello"}))
