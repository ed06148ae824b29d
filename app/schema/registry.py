"""Discovery: every module in a domain's model and resolver packages is imported,
nothing more.

Adding a table means adding a model module and a resolver module; nothing is registered
by hand. Extra packages (a fork's own, or a test's) are discovered the same way.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType

from sqlmodel import SQLModel


def import_package(name: str) -> list[ModuleType]:
    """Import a package and every module inside it, in name order."""
    package = importlib.import_module(name)
    modules = [package]
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"{name}.{info.name}"))
    return modules


def import_all(packages: Iterable[str]) -> list[ModuleType]:
    modules: list[ModuleType] = []
    for name in packages:
        modules.extend(import_package(name))
    return modules


def table_models(packages: Iterable[str]) -> list[type[SQLModel]]:
    """The table classes defined in the given packages, in dependency order."""
    modules = {m.__name__ for m in import_all(packages)}
    by_table = {
        mapper.class_.__tablename__: mapper.class_
        for mapper in SQLModel._sa_registry.mappers
        if mapper.class_.__module__ in modules
    }
    return [by_table[t.name] for t in SQLModel.metadata.sorted_tables if t.name in by_table]
