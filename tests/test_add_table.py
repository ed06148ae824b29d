"""Adding a table takes one model module and one resolvers module, nothing registered by hand.

The new table lives in a throwaway package; the schema is built and run in a subprocess
so that the test process's SQLModel metadata never learns about it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# No `from __future__ import annotations` here: SQLModel resolves "User" itself.
MODEL = '''
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Field, Relationship

from app.columns import created_at_field
from app.schema.models.workspace import TenantScoped

if TYPE_CHECKING:
    from app.schema.models.user import User


class Note(TenantScoped, table=True):
    """A short note pinned to the workspace."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(min_length=1, max_length=50, description="What the note is about.")
    pinned: bool = Field(default=False, index=True, description="Shown first.")
    author_id: int = Field(foreign_key="user.id", index=True, description="Who wrote it.")
    created_at: datetime = created_at_field()
    author: "User" = Relationship(sa_relationship_kwargs={"lazy": "raise"})
'''

RESOLVERS = '''
from __future__ import annotations

from app.pagination import Connection
from app.schema.api import Ctx, Input, Tx, mutation, query
from PKG.models.note import Note


class CreateNoteInput(Input, model=Note):
    """A new note."""

    title: str
    pinned: bool


@query
async def notes(ctx: Ctx, first: int | None = 50, after: str | None = None) -> Connection[Note]:
    """The workspace's notes, oldest first."""
    return await ctx.page(Note, first=first, after=after)


@mutation
async def create_note(ctx: Ctx, tx: Tx, input: CreateNoteInput) -> Note:
    """Pin a note to the workspace."""
    note = Note(title=input.title, pinned=input.pinned, author_id=ctx.require_viewer().user_id)
    tx.add(note)
    return note
'''

SCRIPT = '''
import asyncio
import json
import sys
from dataclasses import replace

from sqlalchemy import inspect

from app.application import Application
from app.resolvers.chat import CHAT
from app.context import Ctx
from app.server import start_services, stop_services
from app.settings import Settings

PKG, URL = sys.argv[1], sys.argv[2]
SIGN_UP = """mutation { signUp(input: {email: "n@example.com", password: "long enough",
  name: "Nora", workspaceName: "Notes"}) { token } }"""
CREATE = """mutation($t: String!) { createNote(input: {title: $t, pinned: true}) {
  id title pinned createdAt author { name } } }"""
LIST = "{ notes { edges { node { id title pinned author { name } } } } }"


async def main() -> dict:
    domain = replace(
        CHAT,
        models=(*CHAT.models, f"{PKG}.models"),
        resolvers=(*CHAT.resolvers, f"{PKG}.resolvers"),
    )
    application = Application.build(domain)
    schema = application.schema
    settings = Settings(database_url=URL, broadcast_url="memory://", secret_key="k" * 32,
                        channel_prefix=f"{PKG}")
    services = await start_services(settings, application)
    try:
        async with services.db.write_engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns("note")]
            )

        async def run(query, variables=None, viewer=None):
            result = await schema.execute(query, variables, context_value=Ctx(services, viewer))
            return {
                "data": result.data,
                "errors": [{"message": e.message, "extensions": e.extensions}
                           for e in result.errors or []],
            }

        signed_up = await run(SIGN_UP)
        viewer = services.tokens.decode(signed_up["data"]["signUp"]["token"])
        return {
            "sdl": schema.as_str(),
            "tables": tables,
            "columns": columns,
            "created": await run(CREATE, {"t": "Buy milk"}, viewer),
            "invalid": await run(CREATE, {"t": ""}, viewer),
            "listed": await run(LIST, None, viewer),
            "anonymous": await run(LIST),
        }
    finally:
        await stop_services(services)


print(json.dumps(asyncio.run(main())))
'''


def _package(tmp_path: Path) -> str:
    name = f"notes_ext_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    for sub in ("", "models", "resolvers"):
        (package / sub).mkdir(exist_ok=True)
        (package / sub / "__init__.py").write_text("")
    (package / "models" / "note.py").write_text(textwrap.dedent(MODEL))
    (package / "resolvers" / "notes.py").write_text(RESOLVERS.replace("PKG", name))
    return name


async def _run_with_new_table(tmp_path: Path, database_url: str) -> dict[str, Any]:
    package = _package(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        package,
        database_url,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def test_a_new_table_needs_only_its_model_and_resolvers(
    tmp_path: Path, database_url: str
) -> None:
    result = await _run_with_new_table(tmp_path, database_url)
    sdl = result["sdl"]
    assert '"""A short note pinned to the workspace."""\ntype Note {' in sdl
    assert "notes(" in sdl and "): NoteConnection!" in sdl
    assert "createNote(" in sdl and "input: CreateNoteInput!\n  ): Note!" in sdl
    created_input = sdl.split('"""A new note."""\ninput CreateNoteInput {', 1)[1].split("}", 1)[0]
    assert "title: String!" in created_input and "pinned: Boolean\n" in created_input
    assert "author: User!" in sdl.split("type Note {", 1)[1].split("}", 1)[0]
    assert "workspaceId" not in sdl

    assert "note" in result["tables"]
    assert {"id", "title", "pinned", "author_id", "workspace_id"} <= set(result["columns"])

    created = result["created"]
    assert created["errors"] == []
    note = created["data"]["createNote"]
    assert (note["title"], note["pinned"], note["author"]) == ("Buy milk", True, {"name": "Nora"})

    (invalid,) = result["invalid"]["errors"]
    assert invalid["extensions"]["code"] == "BAD_USER_INPUT"
    assert [f["path"] for f in invalid["extensions"]["fields"]] == ["input.title"]

    listed = result["listed"]
    assert listed["errors"] == []
    assert [e["node"] for e in listed["data"]["notes"]["edges"]] == [
        {"id": note["id"], "title": "Buy milk", "pinned": True, "author": {"name": "Nora"}}
    ]
    (anonymous,) = result["anonymous"]["errors"]
    assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"


def test_the_new_table_never_reaches_this_process() -> None:
    from sqlmodel import SQLModel

    assert "note" not in SQLModel.metadata.tables
