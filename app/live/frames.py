"""Live results serialized once per cohort, not once per subscriber.

A cohort's newest result goes to every subscriber of it; each transport message wraps
the same payload in a different operation id. The payload is encoded when the result is
made, and the view's JSON encoder splices it in when it meets that very payload object.

For subscribers that take patches (``app/live/patches.py``), the patch from the cohort's
previous result is encoded once as well. Each of them is handed a ``Delivery`` in place
of the result's data: the prepared payload it stands for, with its own revision, which
the encoder writes out the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson
from strawberry.types import ExecutionResult

from app.live import patches

# Tells a patch subscriber whether a patch applies to the result it was sent last.
_serials = itertools.count(1)


@dataclass(eq=False, slots=True)
class Prepared:
    """The wire text of one cohort result, made once."""

    data: Any
    extensions: Any
    serial: int
    # {"data":…,"extensions":…}: what a subscriber without patches is sent.
    payload: str
    # The serial of the result the patch applies to, and {"patch":[…],"extensions":…}.
    base: int | None = None
    patch: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one patch subscriber is sent: a patch, or the full result at revision 1."""

    prepared: Prepared
    revision: int

    def payload(self) -> str:
        # Revision 1 is a full result, the only one the client takes data from.
        body = self.prepared.payload if self.revision == 1 else self.prepared.patch
        assert body is not None, "a patch delivery needs a prepared patch"
        return f'{body[:-1]},"revision":{self.revision}}}'


# id(result.data) -> its prepared text
_prepared: dict[int, Prepared] = {}


def remember(
    result: ExecutionResult, previous: ExecutionResult | None = None, data: bytes | None = None
) -> None:
    """Encode a cohort's new result; with ``previous``, its patch from that one too.
    ``data``, if given, is ``result.data`` already encoded."""
    if result.errors or result.data is None:
        return
    if data is None:
        data = orjson.dumps(result.data)
    extensions = orjson.dumps(result.extensions)
    payload = b"".join((b'{"data":', data, b',"extensions":', extensions, b"}")).decode()
    entry = Prepared(result.data, result.extensions, next(_serials), payload)
    before = prepared(previous) if previous is not None else None
    if before is not None:
        operations = patches.diff(before.data, result.data)
        entry.base = before.serial
        entry.patch = orjson.dumps({"patch": operations, "extensions": result.extensions}).decode()
    _prepared[id(result.data)] = entry


def forget(result: ExecutionResult | None) -> None:
    if result is not None and prepared(result) is not None:
        del _prepared[id(result.data)]


def prepared(result: ExecutionResult) -> Prepared | None:
    """The prepared text of this very result, if it has one (a result without errors)."""
    entry = _prepared.get(id(result.data))
    return entry if entry is not None and entry.data is result.data else None


def cached() -> int:
    """How many encoded payloads are held (one per cohort with a result)."""
    return len(_prepared)


def encoded_next(message: object) -> str | None:
    """The wire text of a graphql-transport-ws / graphql-ws data message, if known."""
    if not isinstance(message, dict) or message.get("type") not in ("next", "data"):
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return None
    data = payload.get("data")
    if isinstance(data, Delivery) and len(payload) == 1:
        return _message(message, data.payload())
    entry = _prepared.get(id(data))
    if len(payload) != 2 or entry is None or entry.data is not data:
        return None
    if entry.extensions is not payload.get("extensions"):
        return None
    return _message(message, entry.payload)


def _message(message: dict[Any, Any], payload: str) -> str:
    op_id = orjson.dumps(message.get("id")).decode()
    return f'{{"id":{op_id},"type":"{message["type"]}","payload":{payload}}}'
