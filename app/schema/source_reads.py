"""The filtered reads a resolver module makes, found in its source.

A call ``<anything>.page(Model, ..., where=("column", value))``, ``.search(Model, text,
..., where=("column", value))`` or ``.events(Model, {"column": value, ...})`` names the
columns it filters on. When the model is a name the module binds to a table and the
filter is a literal (in the call, or assigned to a local variable of the calling
function), the column is known before anything runs: ``app.schema.checks`` judges it
when the schema is built. Anything else (a computed column name, a model passed in) is
left to the check at call time (``app.dataloaders.loaders.require_tracked``).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sqlmodel import SQLModel

# Where each reader takes its filter: by keyword, and for ``events`` also second.
WHERE_POSITION: dict[str, int | None] = {"page": None, "search": None, "events": 1}

Scope = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class FilteredRead:
    function: str  # the calling function, qualified by its module
    line: int
    reader: str  # page, search or events
    model: type[SQLModel]
    column: str


def filtered_reads(module: ModuleType) -> list[FilteredRead]:
    try:
        source = inspect.getsource(module)
    except OSError:
        # No source to read (a module shipped compiled): the check at call time remains.
        return []
    finder = _Finder(module.__name__, vars(module))
    finder.visit(ast.parse(source))
    return finder.found


class _Finder(ast.NodeVisitor):
    def __init__(self, module: str, namespace: Mapping[str, Any]) -> None:
        self.module = module
        self.namespace = namespace
        self.scopes: list[Scope] = []
        self.found: list[FilteredRead] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._within(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._within(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._within(node)

    def _within(self, node: Scope) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        if not isinstance(node.func, ast.Attribute) or node.func.attr not in WHERE_POSITION:
            return
        model = self._table(_argument(node, "model", 0))
        where = _argument(node, "where", WHERE_POSITION[node.func.attr])
        if model is None or where is None:
            return
        function = ".".join([self.module, *(scope.name for scope in self.scopes)])
        for column in self._columns(where):
            self.found.append(FilteredRead(function, node.lineno, node.func.attr, model, column))

    def _table(self, node: ast.expr | None) -> type[SQLModel] | None:
        if not isinstance(node, ast.Name):
            return None
        value = self.namespace.get(node.id)
        if isinstance(value, type) and issubclass(value, SQLModel) and hasattr(value, "__table__"):
            return value
        return None

    def _columns(self, where: ast.expr) -> list[str]:
        if not isinstance(where, ast.Name):
            return _literal_columns(where)
        # A filter built before the call (``where = ("channel_id", channel.id)``): every
        # literal the calling function assigns to that name.
        function = next((s for s in reversed(self.scopes) if not isinstance(s, ast.ClassDef)), None)
        if function is None:
            return []
        return [
            column
            for node in ast.walk(function)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == where.id for t in node.targets)
            for column in _literal_columns(node.value)
        ]


def _argument(call: ast.Call, keyword: str, position: int | None) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _literal_columns(node: ast.expr) -> list[str]:
    """``("column", value)`` or ``{"column": value, ...}``: the column names."""
    if isinstance(node, ast.Tuple) and node.elts:
        first = node.elts[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return [first.value]
        return []
    if isinstance(node, ast.Dict):
        return [
            k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
        ]
    return []
