"""The engine imports nothing of the domain: the domain plugs in through ``DomainConfig``."""

from __future__ import annotations

import ast
from pathlib import Path

from app import tenancy
from app.schema.models import CHAT
from app.schema.models.user import User
from app.schema.models.workspace import Workspace

APP = Path(__file__).resolve().parent.parent / "app"
DOMAIN = ("app.schema.models", "app.resolvers")
# The domain itself, and the assembly that wires a domain configuration into an app.
NOT_ENGINE = ("schema/models/", "resolvers/", "demo.py", "server.py", "__main__.py")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_engine_modules_import_nothing_of_the_domain() -> None:
    offenders = {
        str(path.relative_to(APP)): sorted(n for n in _imports(path) if n.startswith(DOMAIN))
        for path in APP.rglob("*.py")
        if not str(path.relative_to(APP)).startswith(NOT_ENGINE)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_tenant_table_is_read_off_the_schema() -> None:
    assert tenancy.tenant_tables() == (Workspace,)


def test_the_chat_declares_where_token_epochs_live() -> None:
    assert (CHAT.epochs.model, CHAT.epochs.table, CHAT.epochs.column) == (
        User,
        "user",
        "token_epoch",
    )
