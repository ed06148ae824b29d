"""The engine imports nothing of the domain, and its packages depend one way.

Both are import-linter contracts in ``pyproject.toml``, checked by ``lint-imports`` in
``scripts/test``; here each is shown to fail on a copy of the tree that breaks it, and
the boundary's list of engine modules is shown to cover every module of the engine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from app import tenancy
from app.resolvers.chat import CHAT
from app.schema.models.user import User
from app.schema.models.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
# The chat domain, and the command line, which names the default domain by string.
NOT_ENGINE = ("app.schema.models", "app.resolvers", "app.demo", "app.__main__")
# Packages holding engine and domain modules alike; their own ``__init__`` is empty.
SHARED_PACKAGES = {"app", "app.schema"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contract(contract_id: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c.get("id") == contract_id]
    found: dict[str, object] = contract
    return found


def _lint(tree: Path, *contract_ids: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for contract_id in contract_ids for arg in ("--contract", contract_id)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *selected],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, to break."""
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_contracts_hold_on_this_tree(tree: Path) -> None:
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


def test_an_engine_module_importing_the_domain_breaks_the_boundary(tree: Path) -> None:
    _append(tree / "app" / "live" / "cohort.py", "from app.schema.models import user  # noqa")
    done = _lint(tree, "boundary")
    assert done.returncode == 1
    assert "The engine imports nothing of the domain BROKEN" in done.stdout
    assert "app.live.cohort -> app.schema.models.user" in done.stdout


def test_a_dependency_against_the_direction_is_refused(tree: Path) -> None:
    # The live engine below the resolver context: importing it back makes a cycle.
    _append(tree / "app" / "live" / "feed.py", "from app import context  # noqa")
    done = _lint(tree, "acyclic", "direction")
    assert done.returncode == 1
    assert "No import cycle between the engine's packages BROKEN" in done.stdout
    assert "The engine's dependency direction BROKEN" in done.stdout
    assert "app.live is not allowed to import app.context" in done.stdout


def test_the_boundary_names_every_engine_module() -> None:
    sources = _contract("boundary")["source_modules"]
    assert isinstance(sources, list)
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "app").rglob("*.py")
    }
    engine = {m for m in modules - SHARED_PACKAGES if not m.startswith(NOT_ENGINE)}
    uncovered = {m for m in engine if not any(m == s or m.startswith(f"{s}.") for s in sources)}
    assert uncovered == set(), "add these engine modules to the boundary contract"


def test_the_tenant_table_is_read_off_the_schema() -> None:
    assert tenancy.tenant_tables()[0] is Workspace
    assert CHAT.tenant is Workspace


def test_the_chat_declares_where_token_epochs_live() -> None:
    assert CHAT.epochs is not None
    assert (CHAT.epochs.model, CHAT.epochs.table, CHAT.epochs.column) == (
        User,
        "user",
        "token_epoch",
    )
