"""Operations: typed functions marked ``@query``, ``@mutation``, ``@subscription`` or
``@computed``, and the Strawberry fields that call them with their context, transaction
and checked inputs. The guide to writing them is ``app.schema.api``.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any, Literal, TypeVar, overload

import strawberry
from sqlmodel import SQLModel
from strawberry.types.field import StrawberryField

from app.context import Ctx
from app.pagination import Connection
from app.resolver_marks import ARGUMENTS_ONLY
from app.schema.inputs import Input, camel, graphql_input, validate_input
from app.schema.types import computed_fields, graphql_type
from app.tx import Tx

Kind = Literal["query", "mutation", "subscription"]
# Conventional arguments documented once; others from the docstring's ``Args:`` lines.
ARGUMENT_DOCS = {
    "first": "Page size (default 50, maximum 200).",
    "after": "The `endCursor` of the previous page.",
    "id": "The ID of the item.",
    "input": "The values, validated field by field.",
}
MARK = "__livegraph_operation__"
OperationFn = TypeVar("OperationFn", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    kind: Kind
    public: bool
    description: str | None


def _marker(
    kind: Kind, fn: OperationFn | None, public: bool, description: str | None
) -> OperationFn | Callable[[OperationFn], OperationFn]:
    def mark(func: OperationFn) -> OperationFn:
        setattr(func, MARK, Operation(kind, public, description))
        return func

    return mark(fn) if fn is not None else mark


@overload
def query(fn: OperationFn, /) -> OperationFn: ...
@overload
def query(
    *, public: bool = False, description: str | None = None
) -> Callable[[OperationFn], OperationFn]: ...
def query(
    fn: OperationFn | None = None, /, *, public: bool = False, description: str | None = None
) -> OperationFn | Callable[[OperationFn], OperationFn]:
    """A root query field. Unless ``public``, it requires an authenticated viewer."""
    return _marker("query", fn, public, description)


@overload
def mutation(fn: OperationFn, /) -> OperationFn: ...
@overload
def mutation(
    *, public: bool = False, description: str | None = None
) -> Callable[[OperationFn], OperationFn]: ...
def mutation(
    fn: OperationFn | None = None, /, *, public: bool = False, description: str | None = None
) -> OperationFn | Callable[[OperationFn], OperationFn]:
    """A root mutation field. Unless ``public``, it requires an authenticated viewer."""
    return _marker("mutation", fn, public, description)


def computed(
    model: type[SQLModel], *, description: str | None = None
) -> Callable[[OperationFn], OperationFn]:
    """A field of a table's type computed by ``fn(ctx, row)`` instead of stored.

    @computed(File)
    async def url(ctx: Ctx, file: File) -> str: ...
    """

    def mark(fn: OperationFn) -> OperationFn:
        require_async(fn, "computed field")

        def make_field() -> Any:
            # Made when the type is generated: the return type may be a table whose own
            # type does not exist yet when the function is defined.
            async def resolve(root: Any, info: strawberry.Info) -> Any:
                return await fn(info.context, root)

            hints = typing.get_type_hints(fn)
            resolve.__annotations__ = {
                "root": Any,
                "info": strawberry.Info,
                "return": map_annotation(hints["return"]),
            }
            resolve.__name__ = fn.__name__
            return strawberry.field(resolver=resolve, description=description or summary(fn))

        computed_fields.setdefault(model, {})[fn.__name__] = make_field
        return fn

    return mark


@overload
def subscription(fn: OperationFn, /) -> OperationFn: ...
@overload
def subscription(
    *, public: bool = False, description: str | None = None
) -> Callable[[OperationFn], OperationFn]: ...
def subscription(
    fn: OperationFn | None = None, /, *, public: bool = False, description: str | None = None
) -> OperationFn | Callable[[OperationFn], OperationFn]:
    """A root subscription field: an async generator of events. Unless ``public``, it
    requires an authenticated viewer."""
    return _marker("subscription", fn, public, description)


ASYNC_ITERATORS = (collections.abc.AsyncIterator, collections.abc.AsyncGenerator)


def map_annotation(annotation: Any) -> Any:
    """Replace table classes by their generated GraphQL types, recursively."""
    if isinstance(annotation, type) and issubclass(annotation, SQLModel):
        if getattr(annotation, "__table__", None) is not None:
            return graphql_type(annotation)
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None:
        return annotation
    args = tuple(map_annotation(a) for a in typing.get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        result = args[0]
        for arg in args[1:]:
            result = result | arg
        return result
    if origin is Connection:
        return Connection[args[0]]  # type: ignore[valid-type]
    if origin is list:
        return list[args[0]]  # type: ignore[valid-type]
    if origin in ASYNC_ITERATORS:
        return AsyncGenerator[args[0], None]  # type: ignore[valid-type]
    return annotation


def _admit(ctx: Ctx, operation: Operation) -> None:
    if not operation.public:
        ctx.require_viewer()


def argument_docs(fn: Callable[..., Any]) -> dict[str, str]:
    """``name: text`` lines under ``Args:`` in a docstring."""
    doc = inspect.getdoc(fn) or ""
    _, found, section = doc.partition("Args:")
    if not found:
        return {}
    docs: dict[str, str] = {}
    for line in section.splitlines():
        name, colon, text = line.strip().partition(":")
        if colon and name.isidentifier() and text.strip():
            docs[name] = text.strip()
    return docs


def summary(fn: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(fn)
    return doc.partition("Args:")[0].strip() or None if doc else None


@dataclass
class Signature:
    """What each parameter of an operation is, decided by its type: the context (a
    ``Ctx``, or a subclass), the transaction (a ``Tx``), or a GraphQL argument (an
    ``Input`` declaration among them)."""

    ctx: str
    ctx_type: type[Ctx]
    tx: str | None
    inputs: dict[str, type[Input]]
    # The GraphQL arguments, annotated and documented for Strawberry, and the result.
    arguments: list[inspect.Parameter]
    returns: Any


def require_async(fn: Callable[..., Any], kind: str) -> None:
    """Every operation awaits the database: a plain ``def`` fails here, not per call."""
    name = fn.__qualname__
    if kind == "subscription":
        if not inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"subscription {name} must be an async generator: "
                f"`async def {fn.__name__}(...)` that yields its events"
            )
    elif not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"{kind} {name} must be a coroutine function: write `async def {fn.__name__}(...)`"
            " and return its result (await what it reads)"
        )


def signature(fn: Callable[..., Any], kind: str) -> Signature:
    require_async(fn, kind)
    hints = typing.get_type_hints(fn, include_extras=True)
    if "return" not in hints:
        raise TypeError(f"{fn.__qualname__}: annotate what it returns")
    docs = argument_docs(fn)
    ctx: tuple[str, type[Ctx]] | None = None
    tx: str | None = None
    inputs: dict[str, type[Input]] = {}
    arguments: list[inspect.Parameter] = []
    for param in inspect.signature(fn).parameters.values():
        if param.name not in hints:
            raise TypeError(f"{fn.__qualname__}: parameter {param.name!r} has no annotation")
        hint = hints[param.name]
        if _is_subclass(hint, Ctx):
            ctx = (param.name, hint)
            continue
        if _is_subclass(hint, Tx):
            tx = param.name
            continue
        annotation: Any
        if _is_subclass(hint, Input):
            inputs[param.name] = hint
            annotation = graphql_input(hint)
        else:
            annotation = map_annotation(hint)
        text = docs.get(param.name) or ARGUMENT_DOCS.get(param.name)
        if text is not None and typing.get_origin(annotation) is not Annotated:
            annotation = Annotated[annotation, strawberry.argument(description=text)]
        arguments.append(
            inspect.Parameter(
                param.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=param.default,
                annotation=annotation,
            )
        )
    if ctx is None:
        raise TypeError(f"{fn.__qualname__} must take a `Ctx` parameter")
    if kind != "mutation" and tx is not None:
        raise TypeError(f"{kind} {fn.__qualname__} cannot take a transaction")
    return Signature(ctx[0], ctx[1], tx, inputs, arguments, map_annotation(hints["return"]))


def _is_subclass(hint: Any, base: type) -> bool:
    return isinstance(hint, type) and issubclass(hint, base)


def resolver_field(fn: Callable[..., Any]) -> StrawberryField:
    """A Strawberry field calling ``fn`` with the context, transaction and checked inputs."""
    operation: Operation = getattr(fn, MARK)
    sig = signature(fn, operation.kind)
    ctx_name, tx_name, inputs = sig.ctx, sig.tx, sig.inputs

    async def resolve(info: strawberry.Info, **kwargs: Any) -> Any:
        ctx = _context(info, sig.ctx_type, fn)
        for name, declared in inputs.items():
            kwargs[name] = validate_input(declared, kwargs[name], camel(name))
        _admit(ctx, operation)
        if tx_name is None:
            # A read is awaited directly: a live re-run's every resumption passes
            # through each coroutine between the loop and its loads.
            return await fn(**{ctx_name: ctx}, **kwargs)

        async def call(tx: Tx) -> Any:
            kwargs[tx_name] = tx
            return await fn(**{ctx_name: ctx}, **kwargs)

        return await ctx.transact(call)

    async def subscribe(info: strawberry.Info, **kwargs: Any) -> AsyncIterator[Any]:
        ctx = _context(info, sig.ctx_type, fn)
        for name, declared in inputs.items():
            kwargs[name] = validate_input(declared, kwargs[name], camel(name))
        _admit(ctx, operation)
        release = (
            ctx.services.live.admission.hold(ctx.viewer, ctx.live_connection)
            if ctx.viewer is not None
            else _nothing
        )
        try:
            async with aclosing(fn(**{ctx_name: ctx}, **kwargs)) as events:
                async for event in events:
                    yield event
        finally:
            release()

    if operation.kind == "subscription":
        resolve = subscribe  # type: ignore[assignment]
    else:
        # ``kwargs`` is the call's own dict: the arguments are read, never changed.
        setattr(resolve, ARGUMENTS_ONLY, True)

    parameters = [
        inspect.Parameter(
            "info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=strawberry.Info
        ),
        *sig.arguments,
    ]
    resolve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=sig.returns
    )
    resolve.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": sig.returns}
    resolve.__name__ = fn.__name__
    resolve.__qualname__ = fn.__qualname__
    make = strawberry.subscription if operation.kind == "subscription" else strawberry.field
    return make(  # type: ignore[no-any-return]
        resolver=resolve,
        description=operation.description or summary(fn),
    )


def _context(info: strawberry.Info, wanted: type[Ctx], fn: Callable[..., Any]) -> Ctx:
    ctx = info.context
    if not isinstance(ctx, wanted):
        raise TypeError(
            f"{fn.__qualname__} takes a {wanted.__name__}; this server made a {type(ctx).__name__}"
        )
    return ctx


def _nothing() -> None:
    return None


def collect(modules: Iterable[ModuleType], kind: Kind) -> list[Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for module in modules:
        for value in vars(module).values():
            operation = getattr(value, MARK, None)
            if isinstance(operation, Operation) and operation.kind == kind:
                if value.__module__ != module.__name__:
                    continue
                if value.__name__ in found and found[value.__name__] is not value:
                    raise TypeError(f"two {kind} functions named {value.__name__}")
                found[value.__name__] = value
    return list(found.values())


def root_type(name: str, functions: list[Callable[..., Any]], description: str) -> type | None:
    if not functions:
        return None
    namespace: dict[str, Any] = {"__module__": __name__}
    for fn in functions:
        namespace[fn.__name__] = resolver_field(fn)
    cls = type(name, (), namespace)
    return strawberry.type(cls, name=name, description=description)
