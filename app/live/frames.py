"""Live results serialized once per cohort, not once per subscriber.

A cohort's newest result goes to every subscriber of it; each transport message wraps
the same payload in a different operation id. The payload is encoded when the result is
made, and the view's JSON encoder splices it in when it meets that very payload object.
"""

from __future__ import annotations

from typing import Any

import orjson
from strawberry.types import ExecutionResult

# id(result.data) -> (result.data, result.extensions, encoded payload)
_encoded: dict[int, tuple[Any, Any, str]] = {}


def remember(result: ExecutionResult) -> None:
    if result.errors or result.data is None:
        return
    payload = {"data": result.data, "extensions": result.extensions}
    _encoded[id(result.data)] = (result.data, result.extensions, orjson.dumps(payload).decode())


def forget(result: ExecutionResult | None) -> None:
    if result is not None:
        entry = _encoded.get(id(result.data))
        if entry is not None and entry[0] is result.data:
            del _encoded[id(result.data)]


def cached() -> int:
    """How many encoded payloads are held (one per cohort with a result)."""
    return len(_encoded)


def encoded_next(message: object) -> str | None:
    """The wire text of a graphql-transport-ws / graphql-ws data message, if known."""
    if not isinstance(message, dict) or message.get("type") not in ("next", "data"):
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or len(payload) != 2:
        return None
    data = payload.get("data")
    entry = _encoded.get(id(data))
    if entry is None or entry[0] is not data or entry[1] is not payload.get("extensions"):
        return None
    op_id = orjson.dumps(message.get("id")).decode()
    return f'{{"id":{op_id},"type":"{message["type"]}","payload":{entry[2]}}}'
