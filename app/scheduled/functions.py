"""Functions that run later: internal mutations, actions, internal queries, cron jobs.

    @internal_mutation
    async def deliver(ctx: JobContext, tx: Tx, *, item_id: int) -> None: ...

    @action(timeout_s=10)
    async def fetch(ctx: ActionContext, *, url: str) -> None:
        await ctx.run_mutation(store, url=url, ...)

    @cron("*/5 * * * *")
    @internal_mutation
    async def prune(ctx: JobContext, tx: Tx) -> None: ...

A scheduled mutation runs exactly once, in one transaction with its completion record;
an action runs at most once, never inside a transaction, and writes only through
mutations. The decorators only mark a function; an application discovers the marked
functions of its resolver modules (``Functions.discover``) and finds them by name (module
and qualified name), so a job stored before a restart finds its function again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, overload

from croniter import croniter

from app.scheduled.table import JobKind

Fn = TypeVar("Fn", bound=Callable[..., Awaitable[Any]])
MARK = "__livegraph_job__"
CRON_MARK = "__livegraph_cron__"


class UnknownFunction(LookupError):
    """A job names a function that no module of the application has (renamed or removed)."""


@dataclass(frozen=True)
class JobFunction:
    name: str
    kind: JobKind | None  # None: an internal query (run by actions, never scheduled)
    fn: Callable[..., Awaitable[Any]]
    timeout_s: float | None = None
    # Called in one transaction with the FAILED record when a mutation gives up.
    on_failed: Callable[..., Awaitable[Any]] | None = None


@dataclass(frozen=True)
class CronJob:
    name: str
    schedule: str
    function: JobFunction


def _name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _mark(fn: Fn, spec: JobFunction) -> Fn:
    setattr(fn, MARK, spec)
    return fn


Hook = Callable[..., Awaitable[Any]]


@overload
def internal_mutation(fn: Fn, /) -> Fn: ...
@overload
def internal_mutation(*, on_failed: Hook | None = None) -> Callable[[Fn], Fn]: ...
def internal_mutation(
    fn: Fn | None = None, /, *, on_failed: Hook | None = None
) -> Fn | Callable[[Fn], Fn]:
    """A mutation that only the server calls: scheduled, run by actions or by cron."""

    def mark(func: Fn) -> Fn:
        return _mark(func, JobFunction(_name(func), JobKind.MUTATION, func, None, on_failed))

    return mark(fn) if fn is not None else mark


def internal_query(fn: Fn) -> Fn:
    """A read that actions run with ``ctx.run_query``."""
    return _mark(fn, JobFunction(_name(fn), None, fn))


@overload
def action(fn: Fn, /) -> Fn: ...
@overload
def action(*, timeout_s: float | None = None) -> Callable[[Fn], Fn]: ...
def action(fn: Fn | None = None, /, *, timeout_s: float | None = None) -> Fn | Callable[[Fn], Fn]:
    """A function with side effects outside the database; runs at most once."""

    def mark(func: Fn) -> Fn:
        return _mark(func, JobFunction(_name(func), JobKind.ACTION, func, timeout_s))

    return mark(fn) if fn is not None else mark


def cron(schedule: str, *, name: str | None = None) -> Callable[[Fn], Fn]:
    """Run an internal mutation or action on a cron schedule, once per fire."""
    if not croniter.is_valid(schedule):
        raise ValueError(f"invalid cron expression {schedule!r}")

    def mark(func: Fn) -> Fn:
        spec = function_of(func)
        if spec.kind is None:
            raise TypeError(f"{spec.name}: cron runs internal mutations and actions only")
        job = CronJob(name or spec.name, schedule, spec)
        setattr(func, CRON_MARK, (*getattr(func, CRON_MARK, ()), job))
        return func

    return mark


def function_of(fn: Callable[..., Any]) -> JobFunction:
    spec = getattr(fn, MARK, None)
    if not isinstance(spec, JobFunction):
        raise TypeError(f"{_name(fn)} is not an internal mutation, internal query or action")
    return spec


class Functions:
    """An application's internal mutations, internal queries, actions and cron jobs."""

    def __init__(self, functions: Iterable[JobFunction], crons: Iterable[CronJob]) -> None:
        self._functions = {spec.name: spec for spec in functions}
        self._crons = {job.name: job for job in crons}

    @classmethod
    def discover(cls, modules: Iterable[ModuleType]) -> Functions:
        """The marked functions defined in ``modules`` (not those they import)."""
        functions: list[JobFunction] = []
        crons: list[CronJob] = []
        for module in modules:
            for value in vars(module).values():
                spec = getattr(value, MARK, None)
                if isinstance(spec, JobFunction) and value.__module__ == module.__name__:
                    functions.append(spec)
                    crons.extend(getattr(value, CRON_MARK, ()))
        return cls(functions, crons)

    def lookup(self, name: str) -> JobFunction:
        spec = self._functions.get(name)
        if spec is None:
            raise UnknownFunction(name)
        return spec

    def crons(self) -> list[CronJob]:
        return list(self._crons.values())
