"""The invalidation index alone: pure data, no I/O."""

from app.live.changes import RowChange
from app.live.index import InvalidationIndex, touches
from app.live.readset import ReadSet


def reads(rows=(), ranges=(), tables=()) -> ReadSet:  # type: ignore[no-untyped-def]
    result = ReadSet()
    for row in rows:
        result.row(*row)
    for range_ in ranges:
        result.range(*range_)
    for table in tables:
        result.table(table)
    return result


def message(pk: int, op: str, old_channel: int | None, new_channel: int | None) -> RowChange:
    old = {} if old_channel is None else {"id": pk, "channel_id": old_channel}
    new = {} if new_channel is None else {"id": pk, "channel_id": new_channel}
    return RowChange("message", pk, op, old, new)  # type: ignore[arg-type]


def test_insert_in_a_range_hits_only_readers_of_that_range() -> None:
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register("seven", reads(ranges=[("message", "channel_id", 7)]))
    index.register("eight", reads(ranges=[("message", "channel_id", 8)]))
    assert index.affected([message(1, "insert", None, 7)]) == {"seven"}


def test_update_moving_a_row_between_ranges_hits_both() -> None:
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register("seven", reads(ranges=[("message", "channel_id", 7)]))
    index.register("eight", reads(ranges=[("message", "channel_id", 8)]))
    index.register("nine", reads(ranges=[("message", "channel_id", 9)]))
    assert index.affected([message(1, "update", 7, 8)]) == {"seven", "eight"}


def test_delete_hits_readers_of_the_old_range_and_the_row() -> None:
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register("range", reads(ranges=[("message", "channel_id", 7)]))
    index.register("row", reads(rows=[("message", 1)]))
    index.register("other-row", reads(rows=[("message", 2)]))
    assert index.affected([message(1, "delete", 7, None)]) == {"range", "row"}


def test_row_reads_are_per_table() -> None:
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register("user-1", reads(rows=[("user", 1)]))
    assert index.affected([message(1, "insert", None, 7)]) == set()
    assert index.affected([RowChange("user", 1, "update", {"id": 1}, {"id": 1})]) == {"user-1"}


def test_whole_table_fallback_hits_any_change_to_the_table() -> None:
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register("all", reads(tables=["message"]))
    index.register("channels", reads(tables=["channel"]))
    assert index.affected([message(5, "insert", None, 99)]) == {"all"}


def test_reregistering_replaces_the_old_read_set() -> None:
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register("q", reads(ranges=[("message", "channel_id", 7)]))
    index.register("q", reads(ranges=[("message", "channel_id", 8)]))
    assert index.affected([message(1, "insert", None, 7)]) == set()
    assert index.affected([message(1, "insert", None, 8)]) == {"q"}
    assert len(index) == 1


def test_a_rerun_that_reads_mostly_the_same_keeps_exactly_its_new_reads() -> None:
    """Re-registered with an overlapping read set (a page gained a row, lost one, and a
    table fallback went): indexed under exactly the new one, and another query sharing
    the keys keeps its own entries."""
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register("other", reads(rows=[("message", 1)], tables=["x"]))
    index.register("q", reads(rows=[("message", 1), ("message", 2)], tables=["x"]))
    index.register("q", reads(rows=[("message", 2), ("message", 3)]))
    update = [RowChange("message", pk, "update", {}, {"id": pk}) for pk in (1, 2, 3)]
    assert [index.affected([change]) for change in update] == [{"other"}, {"q"}, {"q"}]
    assert index.affected([RowChange("x", 9, "insert", {}, {"id": 9})]) == {"other"}
    index.unregister("q")
    index.unregister("other")
    assert index._rows == index._ranges == index._tables == {}


def test_unregister_removes_every_entry() -> None:
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register(
        "q", reads(rows=[("user", 1)], ranges=[("message", "channel_id", 7)], tables=["x"])
    )
    index.unregister("q")
    index.unregister("q")  # idempotent
    assert len(index) == 0
    assert index._rows == index._ranges == index._tables == {}
    changes = [message(1, "insert", None, 7), RowChange("x", 1, "insert", {}, {"id": 1})]
    assert index.affected(changes) == set()


def test_a_batch_unions_what_each_change_hits() -> None:
    index: InvalidationIndex[str] = InvalidationIndex()
    index.register("seven", reads(ranges=[("message", "channel_id", 7)]))
    index.register("eight", reads(ranges=[("message", "channel_id", 8)]))
    batch = [message(1, "insert", None, 7), message(2, "insert", None, 8)]
    assert index.affected(batch) == {"seven", "eight"}


def test_touches_matches_the_index_for_one_read_set() -> None:
    read_set = reads(rows=[("user", 3)], ranges=[("message", "channel_id", 7)])
    assert touches(read_set, [message(1, "update", 6, 7)])
    assert touches(read_set, [RowChange("user", 3, "delete", {"id": 3}, {})])
    assert not touches(read_set, [message(1, "insert", None, 8)])
