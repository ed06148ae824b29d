"""Typed input declarations: a class names model fields, the GraphQL input follows.

    class SendMessageInput(Input, model=Message):
        \"\"\"A new message for a channel of the viewer's workspace.\"\"\"

        channel_id: int
        body: str
        idempotency_key: str | None
        attachment_ids: list[strawberry.ID] | None = extra("Files to attach ...")

Each annotated attribute names a column of the model and has the type the model gives it
(the primary key without ``None``): a name the model lacks, or another type, fails when
the class is defined, naming the input and the model. The GraphQL input type (named like
the class, documented by its docstring or else the model's) takes each field's
description and nullability from the model; what arrives is validated with the model's
own constraints (pydantic), answering BAD_USER_INPUT with one entry per invalid field, and
the resolver gets an instance of the class: model defaults filled in, extras as given.
An attribute set to ``extra(description)`` is no column: it is passed through unchecked.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pydantic
import strawberry
from pydantic.fields import FieldInfo
from sqlalchemy import Column
from sqlmodel import SQLModel

from app.errors import BadUserInput
from app.schema.types import base_type, field_annotation

InputT = TypeVar("InputT", bound="Input")
_generated: dict[type[Input], type] = {}
_validators: dict[type[Input], type[pydantic.BaseModel]] = {}


@dataclass(frozen=True)
class Extra:
    """An input field that is no column of the model (see ``extra``)."""

    description: str


def extra(description: str) -> Any:
    """Declare an input field that is no column of the model: its value (null if not
    given) reaches the resolver as sent, checked only by its GraphQL type."""
    return Extra(description)


class Input:
    """The base of a typed input declaration, bound to a model by ``model=``."""

    __input_model__: ClassVar[type[SQLModel]]
    # Its model fields, and its extra fields (name -> description), in declaration order.
    __input_fields__: ClassVar[tuple[str, ...]]
    __input_extras__: ClassVar[dict[str, str]]

    def __init_subclass__(cls, *, model: type[SQLModel], **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__input_model__ = model
        hints = typing.get_type_hints(cls)
        fields: list[str] = []
        extras: dict[str, str] = {}
        for name in inspect.get_annotations(cls):
            declared = cls.__dict__.get(name)
            if isinstance(declared, Extra):
                extras[name] = declared.description
                # Every instance has the value; the marker must not stand in for it.
                delattr(cls, name)
                continue
            _check_field(cls, name, hints[name], has_default=name in cls.__dict__)
            fields.append(name)
        cls.__input_fields__ = tuple(fields)
        cls.__input_extras__ = extras

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        names = [*self.__input_fields__, *self.__input_extras__]
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({values})"


def _column(model: type[SQLModel], name: str) -> tuple[Column[Any], FieldInfo] | None:
    table = model.__table__  # type: ignore[attr-defined]
    # A private column may still be named in an input (write-only, like an idempotency
    # key): naming it is the explicit choice; it is never part of an output type.
    if name not in table.columns or name not in model.model_fields:
        return None
    return table.columns[name], model.model_fields[name]


def _python_type(column: Column[Any], info: FieldInfo) -> Any:
    """What the resolver gets: the model's type, the primary key never null."""
    return base_type(info.annotation) if column.primary_key else info.annotation


def _check_field(cls: type[Input], name: str, declared: Any, *, has_default: bool) -> None:
    model = cls.__input_model__
    where = f"{cls.__name__}.{name}"
    found = _column(model, name)
    if found is None:
        raise TypeError(
            f"{where}: {model.__name__} has no field {name!r} (a field that is no column "
            f'of the model is declared `{name}: <type> = extra("description")`)'
        )
    expected = _python_type(*found)
    if declared != expected:
        raise TypeError(
            f"{where} is declared {_show(declared)}, but {model.__name__}.{name} "
            f"gives {_show(expected)}: declare `{name}: {_show(expected)}`"
        )
    if has_default:
        raise TypeError(f"{where}: its default comes from {model.__name__}; remove the `= ...`")


def _show(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def _required(column: Column[Any], info: FieldInfo) -> bool:
    return bool(column.primary_key or (info.is_required() and not column.nullable))


def graphql_input(cls: type[Input]) -> type:
    """The Strawberry input type of a declaration (made once, when the schema is built)."""
    if cls not in _generated:
        _generated[cls] = _generate(cls)
    return _generated[cls]


def _generate(cls: type[Input]) -> type:
    model = cls.__input_model__
    namespace: dict[str, Any] = {"__annotations__": {}, "__module__": __name__}
    for name in cls.__input_fields__:
        column, info = _declared_column(cls, name)
        if column.primary_key or column.foreign_keys:
            annotation: Any = strawberry.ID
        else:
            annotation = base_type(field_annotation(model, column))
        text = info.description
        if column.primary_key:
            text = text or f"Unique identifier of the {model.__name__}."
        if _required(column, info):
            namespace[name] = strawberry.field(description=text)
        else:
            annotation = annotation | None
            namespace[name] = strawberry.field(description=text, default=strawberry.UNSET)
        namespace["__annotations__"][name] = annotation
    hints = typing.get_type_hints(cls)
    for name, text in cls.__input_extras__.items():
        namespace["__annotations__"][name] = hints[name]
        namespace[name] = strawberry.field(description=text, default=None)
    doc = cls.__dict__.get("__doc__")
    description = inspect.cleandoc(doc) if doc else model.__doc__
    generated = type(cls.__name__, (), namespace)
    return strawberry.input(generated, name=cls.__name__, description=description)


def _declared_column(cls: type[Input], name: str) -> tuple[Column[Any], FieldInfo]:
    found = _column(cls.__input_model__, name)
    assert found is not None, "checked when the class was defined"
    return found


def _validator(cls: type[Input]) -> type[pydantic.BaseModel]:
    if cls not in _validators:
        _validators[cls] = _make_validator(cls)
    return _validators[cls]


def _make_validator(cls: type[Input]) -> type[pydantic.BaseModel]:
    definitions: dict[str, Any] = {}
    for name in cls.__input_fields__:
        column, info = _declared_column(cls, name)
        definitions[name] = (_python_type(column, info), info)
    return pydantic.create_model(f"{cls.__name__}Validator", **definitions)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def validate_input(cls: type[InputT], value: Any, arg: str) -> InputT:
    """What arrived as an instance of the declaration, or BAD_USER_INPUT per field."""
    data = {
        name: getattr(value, name)
        for name in cls.__input_fields__
        if getattr(value, name, strawberry.UNSET) is not strawberry.UNSET
    }
    fields_with_nul = [
        {"path": f"{arg}.{camel(name)}", "message": "must not contain NUL characters"}
        for name, value in data.items()
        if isinstance(value, str) and "\x00" in value
    ]
    if fields_with_nul:
        # PostgreSQL cannot store NUL in text; no database should be asked to.
        raise BadUserInput(f"Invalid {arg}", fields_with_nul)
    try:
        checked = _validator(cls).model_validate(data)
    except pydantic.ValidationError as exc:
        fields = [
            {
                "path": ".".join([arg, *(camel(str(p)) for p in error["loc"])]),
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        raise BadUserInput(f"Invalid {arg}", fields) from None
    return cls(
        **{name: getattr(checked, name) for name in cls.__input_fields__},
        **{name: getattr(value, name, None) for name in cls.__input_extras__},
    )
