"""Queries and mutations are plain typed functions; this turns them into the schema.

    @query
    async def channel(ctx: Ctx, id: ID) -> Channel | None: ...

    @mutation
    async def create_channel(
        ctx: Ctx, tx: Tx, input: Annotated[Channel, Input("CreateChannelInput", "name")]
    ) -> Channel: ...

    @subscription
    async def message_events(ctx: Ctx, channel_id: ID) -> AsyncIterator[MessageEvent]: ...

Annotations name the SQLModel tables (what the function really returns); they are mapped
to the generated GraphQL types here. A ``Tx`` parameter makes the function run inside
one write transaction. A subscription is an async generator: it is admitted within the
live bounds of its connection and user, its read session is closed while it waits, and
what it raises reaches the client as a coded error. An ``Input`` marker generates a
GraphQL input type from the named model fields and validates what arrives with the
model's own constraints (pydantic), answering BAD_USER_INPUT with one entry per invalid field.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from types import ModuleType
from typing import Annotated, Any, Literal, TypeVar, overload

import pydantic
import strawberry
from sqlmodel import SQLModel
from strawberry.types.field import StrawberryField

from app.context import Ctx
from app.errors import BadUserInput
from app.pagination import Connection
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


@dataclass(frozen=True)
class Input:
    """Marks a parameter whose GraphQL input type is generated from model fields."""

    name: str
    fields: tuple[str, ...]
    description: str | None = None
    # Fields that are no column of the model: name -> (annotation, description). The
    # resolver receives each as a parameter of the same name.
    extras: dict[str, tuple[Any, str]] = field(default_factory=dict, compare=False, hash=False)
    _cache: dict[type[SQLModel], tuple[type, type[pydantic.BaseModel]]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def __init__(
        self,
        name: str,
        *fields: str,
        description: str | None = None,
        extras: dict[str, tuple[Any, str]] | None = None,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "extras", dict(extras or {}))
        object.__setattr__(self, "_cache", {})

    def types_for(self, model: type[SQLModel]) -> tuple[type, type[pydantic.BaseModel]]:
        if model not in self._cache:
            self._cache[model] = (_graphql_input(model, self), _validator(model, self))
        return self._cache[model]


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


def _model_field(model: type[SQLModel], name: str) -> tuple[Any, Any]:
    table = model.__table__  # type: ignore[attr-defined]
    # A private column may still be named in an input (write-only, like an idempotency
    # key): naming it is the explicit choice; it is never part of an output type.
    column = table.columns[name]
    info = model.model_fields[name]
    return column, info


def _graphql_input(model: type[SQLModel], spec: Input) -> type:
    from app.schema.types import base_type, field_annotation

    namespace: dict[str, Any] = {"__annotations__": {}, "__module__": __name__}
    for name in spec.fields:
        column, info = _model_field(model, name)
        required = column.primary_key or (info.is_required() and not column.nullable)
        if column.primary_key or column.foreign_keys:
            annotation: Any = strawberry.ID
        else:
            annotation = base_type(field_annotation(model, column))
        if not required:
            annotation = annotation | None
        namespace["__annotations__"][name] = annotation
        text = info.description
        if column.primary_key:
            text = text or f"Unique identifier of the {model.__name__}."
        namespace[name] = (
            strawberry.field(description=text)
            if required
            else strawberry.field(description=text, default=strawberry.UNSET)
        )
    for name, (annotation, text) in spec.extras.items():
        namespace["__annotations__"][name] = annotation
        namespace[name] = strawberry.field(description=text, default=None)
    cls = type(spec.name, (), namespace)
    return strawberry.input(cls, name=spec.name, description=spec.description or model.__doc__)


def _validator(model: type[SQLModel], spec: Input) -> type[pydantic.BaseModel]:
    definitions: dict[str, Any] = {}
    for name in spec.fields:
        column, info = _model_field(model, name)
        annotation = int if column.primary_key else info.annotation
        definitions[name] = (annotation, info)
    return pydantic.create_model(f"{spec.name}Validator", **definitions)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def validate_input(model: type[SQLModel], spec: Input, value: Any, arg: str) -> SQLModel:
    """The input as a (partial, unsaved) model row, or BAD_USER_INPUT per field."""
    _, validator = spec.types_for(model)
    data = {
        name: getattr(value, name)
        for name in spec.fields
        if getattr(value, name, strawberry.UNSET) is not strawberry.UNSET
    }
    fields_with_nul = [
        {"path": f"{arg}.{_camel(name)}", "message": "must not contain NUL characters"}
        for name, value in data.items()
        if isinstance(value, str) and "\x00" in value
    ]
    if fields_with_nul:
        # PostgreSQL cannot store NUL in text; no database should be asked to.
        raise BadUserInput(f"Invalid {arg}", fields_with_nul)
    try:
        checked = validator.model_validate(data)
    except pydantic.ValidationError as exc:
        fields = [
            {
                "path": ".".join([arg, *(_camel(str(p)) for p in error["loc"])]),
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        raise BadUserInput(f"Invalid {arg}", fields) from None
    return model(**checked.model_dump(exclude_unset=True))


def _input_spec(hint: Any) -> tuple[type[SQLModel], Input] | None:
    if typing.get_origin(hint) is not Annotated:
        return None
    model, *extras = typing.get_args(hint)
    for extra in extras:
        if isinstance(extra, Input):
            return model, extra
    return None


async def _run(
    ctx: Ctx, operation: Operation, call: Callable[[Tx | None], Awaitable[Any]], *, needs_tx: bool
) -> Any:
    if not operation.public:
        ctx.require_viewer()
    if needs_tx:
        return await ctx.transact(call)
    return await call(None)


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


def resolver_field(fn: Callable[..., Any]) -> StrawberryField:
    """A Strawberry field calling ``fn`` with the context, transaction and checked inputs."""
    operation: Operation = getattr(fn, MARK)
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters = [
        inspect.Parameter(
            "info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=strawberry.Info
        )
    ]
    ctx_name = tx_name = None
    docs = argument_docs(fn)
    inputs: dict[str, tuple[type[SQLModel], Input]] = {}
    extras: dict[str, str] = {}  # extra input field -> its input parameter
    for param in inspect.signature(fn).parameters.values():
        spec = _input_spec(hints[param.name])
        if spec is not None:
            extras.update(dict.fromkeys(spec[1].extras, param.name))
    for param in inspect.signature(fn).parameters.values():
        hint = hints[param.name]
        if param.name in extras:
            continue
        if hint is Ctx:
            ctx_name = param.name
            continue
        if hint is Tx:
            tx_name = param.name
            continue
        spec = _input_spec(hint)
        annotation: Any
        if spec is not None:
            inputs[param.name] = spec
            annotation = spec[1].types_for(spec[0])[0]
        else:
            annotation = map_annotation(hint)
        text = docs.get(param.name) or ARGUMENT_DOCS.get(param.name)
        if text is not None and typing.get_origin(annotation) is not Annotated:
            annotation = Annotated[annotation, strawberry.argument(description=text)]
        parameters.append(
            inspect.Parameter(
                param.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=param.default,
                annotation=annotation,
            )
        )
    if ctx_name is None:
        raise TypeError(f"{fn.__qualname__} must take a `Ctx` parameter")
    if operation.kind != "mutation" and tx_name is not None:
        raise TypeError(f"{operation.kind} {fn.__qualname__} cannot take a transaction")
    if (operation.kind == "subscription") != inspect.isasyncgenfunction(fn):
        raise TypeError(f"{fn.__qualname__}: only a subscription is an async generator")

    async def resolve(info: strawberry.Info, **kwargs: Any) -> Any:
        ctx: Ctx = info.context
        for extra, holder in extras.items():
            kwargs[extra] = getattr(kwargs[holder], extra, None)
        for name, (model, spec) in inputs.items():
            kwargs[name] = validate_input(model, spec, kwargs[name], _camel(name))

        async def call(tx: Tx | None) -> Any:
            if tx_name is not None:
                kwargs[tx_name] = tx
            return await fn(**{ctx_name: ctx}, **kwargs)

        return await _run(ctx, operation, call, needs_tx=tx_name is not None)

    async def subscribe(info: strawberry.Info, **kwargs: Any) -> AsyncIterator[Any]:
        ctx: Ctx = info.context
        for name, (model, spec) in inputs.items():
            kwargs[name] = validate_input(model, spec, kwargs[name], _camel(name))
        if not operation.public:
            ctx.require_viewer()
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

    return_annotation = map_annotation(hints["return"])
    resolve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=return_annotation
    )
    resolve.__annotations__ = {p.name: p.annotation for p in parameters} | {
        "return": return_annotation
    }
    resolve.__name__ = fn.__name__
    resolve.__qualname__ = fn.__qualname__
    make = strawberry.subscription if operation.kind == "subscription" else strawberry.field
    return make(  # type: ignore[no-any-return]
        resolver=resolve,
        description=operation.description or summary(fn),
    )


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
