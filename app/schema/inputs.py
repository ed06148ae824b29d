"""Input types generated from model fields, and the validation of what arrives in them.

An ``Input`` marker names the model fields a GraphQL input type carries; the type gets
the fields' descriptions and nullability from the model, and what arrives is validated
with the model's own constraints (pydantic), answering BAD_USER_INPUT with one entry per
invalid field.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Annotated, Any

import pydantic
import strawberry
from sqlmodel import SQLModel

from app.errors import BadUserInput
from app.schema.types import base_type, field_annotation


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


def _model_field(model: type[SQLModel], name: str) -> tuple[Any, Any]:
    table = model.__table__  # type: ignore[attr-defined]
    # A private column may still be named in an input (write-only, like an idempotency
    # key): naming it is the explicit choice; it is never part of an output type.
    column = table.columns[name]
    info = model.model_fields[name]
    return column, info


def _graphql_input(model: type[SQLModel], spec: Input) -> type:
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


def camel(name: str) -> str:
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
        {"path": f"{arg}.{camel(name)}", "message": "must not contain NUL characters"}
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
                "path": ".".join([arg, *(camel(str(p)) for p in error["loc"])]),
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        raise BadUserInput(f"Invalid {arg}", fields) from None
    return model(**checked.model_dump(exclude_unset=True))


def input_spec(hint: Any) -> tuple[type[SQLModel], Input] | None:
    if typing.get_origin(hint) is not Annotated:
        return None
    model, *extras = typing.get_args(hint)
    for extra in extras:
        if isinstance(extra, Input):
            return model, extra
    return None
