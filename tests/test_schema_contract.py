"""The GraphQL contract: the checked-in SDL, documentation, privacy, and DESIGN.md's names."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    specified_scalar_types,
)

from app.application import Application
from app.resolvers.chat import CHAT
from app.schema.live import LiveSchema

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_FIELDS = {"passwordHash", "tokenEpoch", "workspaceId", "idempotencyKey"}


@cache
def _schema() -> LiveSchema:
    return Application.build(CHAT).schema


def _graphql() -> GraphQLSchema:
    return _schema()._schema


def _own_types() -> Iterator[GraphQLNamedType]:
    for name, named in _graphql().type_map.items():
        if not name.startswith("__") and name not in specified_scalar_types:
            yield named


def _undocumented() -> Iterator[str]:
    for named in _own_types():
        if not (named.description or "").strip():
            yield named.name
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in named.fields.items():
                if not (field.description or "").strip():
                    yield f"{named.name}.{field_name}"
                for arg_name, arg in field.args.items():
                    if not (arg.description or "").strip():
                        yield f"{named.name}.{field_name}({arg_name})"
        if isinstance(named, GraphQLInputObjectType):
            for field_name, input_field in named.fields.items():
                if not (input_field.description or "").strip():
                    yield f"{named.name}.{field_name}"
    for directive in _graphql().directives:
        if directive.name == "live":
            if not (directive.description or "").strip():
                yield "@live"
            for arg_name, arg in directive.args.items():
                if not (arg.description or "").strip():
                    yield f"@live({arg_name})"


def test_checked_in_schema_matches_the_code() -> None:
    checked_in = (ROOT / "schema.graphql").read_text()
    assert checked_in == _schema().as_str() + "\n", (
        "schema.graphql is out of date: run `python -m app export-schema`"
    )


def test_every_type_field_and_argument_is_documented() -> None:
    assert list(_undocumented()) == []


def test_no_output_type_exposes_private_columns() -> None:
    exposed = [
        f"{named.name}.{field_name}"
        for named in _own_types()
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
        for field_name in named.fields
        if field_name in PRIVATE_FIELDS
    ]
    assert exposed == []


def _arguments(type_name: str, field_name: str) -> dict[str, tuple[str, object]]:
    named = _graphql().get_type(type_name)
    assert isinstance(named, GraphQLObjectType)
    args: dict[str, GraphQLArgument] = named.fields[field_name].args
    return {
        name: (str(arg.type), None if arg.default_value is Undefined else arg.default_value)
        for name, arg in args.items()
    }


def _fields(type_name: str) -> dict[str, str]:
    named = _graphql().get_type(type_name)
    assert isinstance(named, GraphQLObjectType | GraphQLInputObjectType), type_name
    return {name: str(field.type) for name, field in named.fields.items()}


PAGE_ARGS = {"first": ("Int", 50), "after": ("String", None)}


def test_query_fields_are_the_designed_ones() -> None:
    assert _fields("Query") == {
        "viewer": "User",
        "channels": "ChannelConnection!",
        "channel": "Channel",
        "messages": "MessageConnection!",
        "user": "User",
        "searchMessages": "MessageConnection!",
        "scheduledMessages": "ScheduledMessageConnection!",
        "onlineUsers": "[User!]!",
    }
    assert _arguments("Query", "viewer") == {}
    assert _arguments("Query", "onlineUsers") == {}
    assert _arguments("Query", "channels") == PAGE_ARGS
    assert _arguments("Query", "channel") == {"id": ("ID!", None)}
    assert _arguments("Query", "messages") == {"channelId": ("ID!", None), **PAGE_ARGS}
    assert _arguments("Query", "user") == {"id": ("ID!", None)}
    assert _arguments("Query", "searchMessages") == {
        "query": ("String!", None),
        "channelId": ("ID", None),
        "first": ("Int", 20),
        "after": ("String", None),
    }
    assert _arguments("Query", "scheduledMessages") == {"channelId": ("ID!", None), **PAGE_ARGS}


@pytest.mark.parametrize(
    ("field", "arguments", "returns"),
    [
        ("signUp", {"input": ("SignUpInput!", None)}, "AuthPayload!"),
        ("signIn", {"input": ("SignInInput!", None)}, "AuthPayload!"),
        ("createInvite", {}, "Invite!"),
        ("createChannel", {"input": ("CreateChannelInput!", None)}, "Channel!"),
        ("sendMessage", {"input": ("SendMessageInput!", None)}, "Message!"),
        ("editMessage", {"input": ("EditMessageInput!", None)}, "Message!"),
        ("deleteMessage", {"id": ("ID!", None)}, "ID!"),
        ("createUploadUrl", {"input": ("CreateUploadInput!", None)}, "UploadTicket!"),
        ("scheduleMessage", {"input": ("ScheduleMessageInput!", None)}, "ScheduledMessage!"),
        ("cancelScheduledMessage", {"id": ("ID!", None)}, "ScheduledMessage!"),
        ("setTyping", {"channelId": ("ID!", None), "typing": ("Boolean!", True)}, "Boolean!"),
    ],
)
def test_mutation_is_the_designed_one(
    field: str, arguments: dict[str, tuple[str, object]], returns: str
) -> None:
    assert _fields("Mutation")[field] == returns
    assert _arguments("Mutation", field) == arguments


@pytest.mark.parametrize(
    ("type_name", "fields"),
    [
        ("AuthPayload", {"token": "String!", "user": "User!"}),
        ("Invite", {"code": "String!"}),
        ("User", {"id": "ID!", "name": "String!", "email": "String!"}),
        (
            "Channel",
            {"id": "ID!", "name": "String!", "createdAt": "DateTime!"}
            | {"messages": "MessageConnection!"},
        ),
        (
            "Message",
            {"id": "ID!", "body": "String!", "createdAt": "DateTime!", "editedAt": "DateTime"}
            | {"channel": "Channel!", "author": "User!", "attachments": "[File!]!"},
        ),
        ("ChannelConnection", {"edges": "[ChannelEdge!]!", "pageInfo": "PageInfo!"}),
        ("ChannelEdge", {"cursor": "String!", "node": "Channel!"}),
        ("MessageConnection", {"edges": "[MessageEdge!]!", "pageInfo": "PageInfo!"}),
        ("MessageEdge", {"cursor": "String!", "node": "Message!"}),
        ("PageInfo", {"hasNextPage": "Boolean!", "endCursor": "String"}),
        (
            "SignUpInput",
            {"email": "String!", "password": "String!", "name": "String!"}
            | {"workspaceName": "String", "inviteCode": "String"},
        ),
        ("SignInInput", {"email": "String!", "password": "String!"}),
        ("CreateChannelInput", {"name": "String!"}),
        (
            "SendMessageInput",
            {
                "channelId": "ID!",
                "body": "String!",
                "idempotencyKey": "String",
                "attachmentIds": "[ID!]",
            },
        ),
        ("CreateUploadInput", {"name": "String!", "contentType": "String!", "size": "Int!"}),
        ("UploadTicket", {"url": "String!", "expiresAt": "DateTime!"}),
        (
            "File",
            {
                "id": "ID!",
                "name": "String!",
                "contentType": "String!",
                "size": "Int!",
                "sha256": "String!",
                "url": "String!",
                "createdAt": "DateTime!",
            },
        ),
        ("EditMessageInput", {"id": "ID!", "body": "String!"}),
        (
            "ScheduleMessageInput",
            {"channelId": "ID!", "body": "String!", "sendAt": "DateTime!"},
        ),
        (
            "ScheduledMessage",
            {"id": "ID!", "channel": "Channel!", "body": "String!", "sendAt": "DateTime!"}
            | {"status": "ScheduledStatus!", "message": "Message"},
        ),
        ("LinkPreview", {"url": "String!", "title": "String!"}),
        ("Message", {"linkPreview": "LinkPreview"}),
        (
            "MessageEvent",
            {"kind": "MessageEventKind!", "cursor": "String!", "messageId": "ID!"}
            | {"message": "Message"},
        ),
        ("TypingEvent", {"user": "User!", "typing": "Boolean!"}),
    ],
)
def test_type_has_the_designed_fields(type_name: str, fields: dict[str, str]) -> None:
    actual = _fields(type_name)
    assert {name: actual.get(name) for name in fields} == fields
    if type_name.endswith("Input"):
        assert actual == fields  # inputs accept exactly what DESIGN.md names


def test_scheduled_status_is_the_designed_enum() -> None:
    status = _graphql().get_type("ScheduledStatus")
    assert isinstance(status, GraphQLEnumType)
    assert list(status.values) == ["PENDING", "SENT", "CANCELLED", "FAILED"]


def test_subscriptions_are_the_designed_ones() -> None:
    assert _fields("Subscription") == {
        "messageEvents": "MessageEvent!",
        "typing": "TypingEvent!",
    }
    assert _arguments("Subscription", "messageEvents") == {
        "channelId": ("ID!", None),
        "after": ("String", None),
    }
    assert _arguments("Subscription", "typing") == {"channelId": ("ID!", None)}
    kinds = _graphql().get_type("MessageEventKind")
    assert isinstance(kinds, GraphQLEnumType)
    assert list(kinds.values) == ["CREATED", "UPDATED", "DELETED"]


def test_channel_messages_takes_page_arguments() -> None:
    assert _arguments("Channel", "messages") == PAGE_ARGS


def test_live_directive_is_declared_on_queries() -> None:
    (live,) = [d for d in _graphql().directives if d.name == "live"]
    assert [str(loc.name) for loc in live.locations] == ["QUERY"]
    assert {name: (str(a.type), a.default_value) for name, a in live.args.items()} == {
        "throttle": ("Int", Undefined),
        "if": ("Boolean", True),
    }
    assert "directive @live(" in _schema().as_str()
