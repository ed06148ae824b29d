"""Typed input declarations: checked against their model when defined, generated into
GraphQL input types, and validated into instances of themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import strawberry

from app.errors import BadUserInput
from app.resolvers.messages import SendMessageInput
from app.schema.api import Input, extra
from app.schema.inputs import graphql_input, validate_input
from app.schema.models.message import Message
from app.schema.models.scheduled_message import ScheduledMessage


def test_a_misspelt_field_fails_when_defined_naming_the_input_and_the_model() -> None:
    with pytest.raises(TypeError, match=r"PostInput\.bdy: Message has no field 'bdy'"):

        class PostInput(Input, model=Message):
            bdy: str


def test_a_relationship_is_no_input_field() -> None:
    with pytest.raises(TypeError, match=r"PostInput\.channel: Message has no field"):

        class PostInput(Input, model=Message):
            channel: int


def test_a_field_of_another_type_than_the_models_fails_naming_the_right_one() -> None:
    with pytest.raises(TypeError, match=r"PostInput\.body is declared int, .*`body: str`"):

        class PostInput(Input, model=Message):
            body: int


def test_an_optional_column_is_declared_optional() -> None:
    with pytest.raises(TypeError, match=r"`idempotency_key: str \| None`"):

        class PostInput(Input, model=Message):
            idempotency_key: str


def test_the_primary_key_is_declared_without_none() -> None:
    class EditInput(Input, model=Message):
        id: int

    with pytest.raises(TypeError, match=r"`id: int`"):

        class NullableEditInput(Input, model=Message):
            id: int | None


def test_a_model_field_takes_its_default_from_the_model() -> None:
    with pytest.raises(TypeError, match=r"PostInput\.body: its default comes from Message"):

        class PostInput(Input, model=Message):
            body: str = "hello"


def _graphql_fields(declared: type[Input]) -> dict[str, Any]:
    definition = graphql_input(declared).__strawberry_definition__  # type: ignore[attr-defined]
    return {field.python_name: field for field in definition.fields}


def test_the_input_type_is_named_and_documented_by_the_class() -> None:
    class LaterInput(Input, model=ScheduledMessage):
        """Sent later."""

        body: str
        send_at: datetime

    definition = graphql_input(LaterInput).__strawberry_definition__  # type: ignore[attr-defined]
    assert (definition.name, definition.description) == ("LaterInput", "Sent later.")
    fields = _graphql_fields(LaterInput)
    assert list(fields) == ["body", "send_at"]
    assert fields["send_at"].description == "When it is sent."


def test_an_undocumented_input_is_documented_by_its_model() -> None:
    class BareInput(Input, model=ScheduledMessage):
        body: str

    definition = graphql_input(BareInput).__strawberry_definition__  # type: ignore[attr-defined]
    assert definition.description == ScheduledMessage.__doc__


def test_an_extra_field_comes_in_declaration_order_and_defaults_to_null() -> None:
    fields = _graphql_fields(SendMessageInput)
    assert list(fields) == ["channel_id", "body", "idempotency_key", "attachment_ids"]
    assert fields["attachment_ids"].default is None
    assert fields["idempotency_key"].default is strawberry.UNSET
    assert "Files to attach" in (fields["attachment_ids"].description or "")


def _sent(**values: Any) -> Any:
    return graphql_input(SendMessageInput)(**values)


def test_what_arrives_becomes_an_instance_with_the_models_defaults_and_the_extras() -> None:
    checked = validate_input(SendMessageInput, _sent(channel_id="7", body="hi"), "input")
    assert isinstance(checked, SendMessageInput)
    assert (checked.channel_id, checked.body) == (7, "hi")
    assert checked.idempotency_key is None and checked.attachment_ids is None
    with_files = validate_input(
        SendMessageInput, _sent(channel_id="7", body="hi", attachment_ids=["3"]), "input"
    )
    assert with_files.attachment_ids == ["3"]


def test_invalid_fields_answer_bad_user_input_one_entry_each() -> None:
    with pytest.raises(BadUserInput) as caught:
        validate_input(
            SendMessageInput, _sent(channel_id="7", body="", idempotency_key="k" * 200), "input"
        )
    paths = [field["path"] for field in caught.value.extensions["fields"]]
    assert sorted(paths) == ["input.body", "input.idempotencyKey"]


def test_an_extra_is_not_left_on_the_class() -> None:
    class TaggedInput(Input, model=Message):
        body: str
        tags: list[str] | None = extra("Labels.")

    assert "tags" not in TaggedInput.__dict__
    assert TaggedInput.__input_extras__ == {"tags": "Labels."}
