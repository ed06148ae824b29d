"""Live results as JSON, each part that many results share encoded once.

The runs of a batch share their completions (``app.schema.executor``): the cohorts
that ask one list at many page sizes, or many users' views of one channel, hold the
very same completed object under a root field. Each result is still encoded whole (its
fingerprint tells it from the last, and its payload is made of it), so that object was
encoded once per cohort. Here each root field's value is encoded once while it lives,
and embedded as it is in the results that hold it (``orjson.Fragment``).

Completed results are never changed after their run (nothing in the engine writes to
a result's data), so a value's identity stands for its JSON while the value is held
here. What is held is let go whenever a change is applied (its runs are over or will
make new values) and at ``MAX_VALUES``.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_VALUES = 4096


class SharedJSON:
    """``orjson.dumps`` of a result's data, each root field's value encoded once."""

    def __init__(self, max_values: int = MAX_VALUES) -> None:
        self._max_values = max_values
        # id(value) -> (the value, kept so that the id stays its, and its JSON)
        self._known: dict[int, tuple[Any, orjson.Fragment]] = {}

    def dumps(self, data: Any) -> bytes:
        if not isinstance(data, dict):
            return orjson.dumps(data)
        parts: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict | list):
                # Held here, the value keeps its id: no other object can take it.
                known = self._known.get(id(value))
                if known is None:
                    if len(self._known) >= self._max_values:
                        self._known.clear()
                    known = (value, orjson.Fragment(orjson.dumps(value)))
                    self._known[id(value)] = known
                parts[key] = known[1]
            else:
                parts[key] = value
        return orjson.dumps(parts)

    def clear(self) -> None:
        self._known.clear()

    def __len__(self) -> int:
        return len(self._known)
