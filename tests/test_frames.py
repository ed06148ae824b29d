"""A live payload is encoded once and spliced into each subscriber's message."""

import orjson
from strawberry.types import ExecutionResult

from app.live import frames


def test_spliced_message_equals_a_plain_encoding() -> None:
    result = ExecutionResult(data={"messages": [{"id": "1", "body": "é"}]}, errors=None)
    result.extensions = {"live": {"version": 7}}
    frames.remember(result)
    try:
        for kind in ("next", "data"):
            message = {
                "id": "op-1",
                "type": kind,
                "payload": {"data": result.data, "extensions": result.extensions},
            }
            spliced = frames.encoded_next(message)
            assert spliced is not None
            assert orjson.loads(spliced) == message
    finally:
        frames.forget(result)
    assert (
        frames.encoded_next({"id": "1", "type": "next", "payload": {"data": result.data}}) is None
    )


def test_other_payloads_are_not_spliced() -> None:
    result = ExecutionResult(data={"a": 1}, errors=None)
    result.extensions = {"live": {"version": 1}}
    frames.remember(result)
    try:
        equal_but_not_same = {"data": {"a": 1}, "extensions": result.extensions}
        assert (
            frames.encoded_next({"id": "1", "type": "next", "payload": equal_but_not_same}) is None
        )
        assert frames.encoded_next({"type": "complete", "id": "1"}) is None
        assert frames.encoded_next("text") is None
    finally:
        frames.forget(result)
