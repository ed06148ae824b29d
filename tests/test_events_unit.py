"""The event stream's pure core: cursors, filters, the seam rule, the bounded queue."""

from __future__ import annotations

from typing import Any, cast

import pytest

from app.database import Database
from app.errors import AppError
from app.live.changes import ChangeBatch, RowChange
from app.live.events import EventFilter, EventHub, Position, SlowEventReader


def message(pk: int, channel: int, op: Any = "insert") -> RowChange:
    values = {"id": pk, "channel_id": channel, "workspace_id": 1}
    if op == "insert":
        return RowChange("message", pk, op, {}, values)
    if op == "delete":
        return RowChange("message", pk, op, values, {})
    return RowChange("message", pk, op, values, values)


def hub_at(version: int) -> EventHub:
    # No database: these streams never replay from the log.
    return EventHub(cast(Database, None), lambda: version)


def test_cursor_round_trips_and_is_opaque() -> None:
    position = Position(12345, 7)
    assert Position.parse(position.cursor()) == position
    assert "12345" not in position.cursor()


@pytest.mark.parametrize("cursor", ["", "junk", "ZXYxOjA6MA", "ZXYxOi0xOjA", "ZXYyOjE6MA"])
def test_malformed_cursors_are_bad_user_input(cursor: str) -> None:
    with pytest.raises(AppError) as raised:
        Position.parse(cursor)
    assert raised.value.extensions["code"] == "BAD_USER_INPUT"


def test_filter_matches_old_or_new_values_of_its_table_only() -> None:
    wanted = EventFilter("message", {"channel_id": 7, "workspace_id": 1})
    assert wanted.matches(message(1, 7))
    assert wanted.matches(message(1, 7, "delete"))
    assert not wanted.matches(message(1, 8))
    assert not wanted.matches(RowChange("channel", 7, "insert", {}, {"id": 7, "workspace_id": 1}))


async def test_a_batch_at_or_before_the_start_is_not_delivered_twice() -> None:
    hub = hub_at(5)
    stream = hub.open(EventFilter("message", {"channel_id": 7}), max_queue=10, check=lambda: None)
    events = stream.events(None)
    # A lagging process applies a batch the subscription already covers, then a new one.
    hub.dispatch(ChangeBatch(5, (message(1, 7),)))
    hub.dispatch(ChangeBatch(6, (message(2, 8), message(3, 7))))
    first = await anext(events)
    assert (first.position, first.change.pk) == (Position(6, 1), 3)
    await events.aclose()
    assert hub.count() == 0


async def test_an_overflowing_queue_ends_the_stream_and_calls_for_a_close() -> None:
    hub = hub_at(0)
    closed: list[bool] = []
    stream = hub.open(
        EventFilter("message", {"channel_id": 7}),
        max_queue=2,
        check=lambda: None,
        on_overflow=lambda: closed.append(True),
    )
    events = stream.events(None)
    for version in range(1, 4):
        hub.dispatch(ChangeBatch(version, (message(version, 7),)))
    assert closed == [True]
    assert hub.count() == 0  # released at once
    with pytest.raises(SlowEventReader):
        await anext(events)
