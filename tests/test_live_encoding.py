"""Live results encoded with each shared part encoded once (``app.live.encoding``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.live import encoding
from app.live.encoding import SharedJSON

PAGE = {"edges": [{"node": {"id": "1", "body": 'é \u2028 "q"', "n": 2**40, "f": 1.5}}]}


@pytest.mark.parametrize(
    "data",
    [
        {"messages": PAGE, "viewer": {"id": "7", "name": None}, "count": 3, "flag": True},
        {"list": [PAGE, PAGE, [], {}], "none": None, "text": "x"},
        {},
        None,
        [PAGE],
    ],
    ids=["fields", "lists", "empty", "null", "not an object"],
)
def test_the_bytes_are_orjsons(data: Any) -> None:
    encoder = SharedJSON()
    assert encoder.dumps(data) == orjson.dumps(data)
    # Again, from what was kept.
    assert encoder.dumps(data) == orjson.dumps(data)


def test_a_value_results_share_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[Any] = []
    dumps = orjson.dumps

    def counting(value: Any, *args: Any) -> bytes:
        encoded.append(value)
        return dumps(value, *args)

    monkeypatch.setattr(encoding.orjson, "dumps", counting)
    encoder = SharedJSON()
    shared = {"edges": [{"node": {"id": "1"}}]}
    results = [{"messages": shared, "viewer": {"id": str(i)}} for i in range(3)]
    assert [encoder.dumps(r) for r in results] == [dumps(r) for r in results]
    assert sum(value is shared for value in encoded) == 1
    # An equal value that is another object is encoded for itself.
    assert encoder.dumps({"messages": dict(shared)}) == dumps({"messages": shared})
    assert sum(value == shared for value in encoded) == 2


def test_what_is_kept_is_bounded_and_let_go() -> None:
    encoder = SharedJSON(max_values=3)
    for i in range(10):
        encoder.dumps({"a": {"i": i}})
        assert len(encoder) <= 3
    encoder.clear()
    assert len(encoder) == 0
