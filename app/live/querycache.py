"""Plain query results kept until a change touches what they read: no TTLs.

A query that ran is kept under its operation (a digest of its document, variables and
operation name) and the scope its run read, as live cohorts are shared
(``app.auth.Scope``): its workspace, or its user where it read who the viewer is; a
run that read the token is not kept. Entries are indexed by their read sets in an
``InvalidationIndex`` of their own, and the engine evicts the touched ones as it
applies each change batch, synchronously: once a write's version is applied in this
process, no entry it touches is left.

A pure data structure: no I/O, no asyncio. The bytes held are bounded, least recently
used entries going first. An entry holds its data as JSON, encoded once. A hit is a
``CachedData`` view of it: the view's encoder splices the JSON in as it is; anything
else that looks inside gets a private decoded copy, so no consumer can change an entry.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.auth import Scope
from app.live.changes import ChangeBatch, RowChange
from app.live.index import InvalidationIndex, touches
from app.live.readset import ReadSet

# (operation digest, scope, the viewer's id at that scope)
CacheKey = tuple[bytes, Scope, Hashable]

# Operations remembered as reading a narrower identity than the workspace.
NARROWED_MEMORY = 10_000
# What an entry holds besides its JSON: the entry, its key, its place in the LRU order,
# and per key read, the read set's tuple and the index's set that names the entry.
ENTRY_BYTES = 400
READ_BYTES = 200


def operation_digest(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None
) -> bytes | None:
    """What identifies one operation, whoever runs it; None if its variables have no
    canonical JSON (integers beyond 64 bits): such a query is not cached."""
    try:
        canonical = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    digest = hashlib.blake2b(digest_size=20)
    # Lone surrogates (from JSON escapes) are valid in a str, not in UTF-8.
    digest.update(query.encode("utf-8", "surrogatepass"))
    name = (
        b"\0" if operation_name is None else b"\1" + operation_name.encode("utf-8", "surrogatepass")
    )
    digest.update(name)
    digest.update(b"\0")
    digest.update(canonical)
    return digest.digest()


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    """One kept result: its data's JSON, what its run read, and how long it holds."""

    body: bytes
    reads: ReadSet
    # The version applied here when its run started: its data reflects at least that.
    version: int
    # Seconds since the epoch after which its data is wrong whatever changes (a signed
    # URL that expires); infinite for most.
    valid_until: float = math.inf
    fragment: orjson.Fragment = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fragment", orjson.Fragment(self.body))

    @property
    def weight(self) -> int:
        return ENTRY_BYTES + len(self.body) + READ_BYTES * len(self.reads)


class CachedData(Mapping[str, Any]):
    """A hit's ``data``: the entry's JSON, decoded into a private copy only if looked at.

    ``encode_default`` makes orjson write the JSON as it is; looked at as a mapping, it
    is a fresh decode, so whatever a consumer does to it never reaches the entry.
    """

    __slots__ = ("_decoded", "_entry")

    def __init__(self, entry: Entry) -> None:
        self._entry = entry
        self._decoded: dict[str, Any] | None = None

    @property
    def fragment(self) -> orjson.Fragment:
        return self._entry.fragment

    def _data(self) -> dict[str, Any]:
        if self._decoded is None:
            self._decoded = orjson.loads(self._entry.body)
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return f"CachedData({self._data()!r})"


def encode_default(value: object) -> object:
    """orjson's ``default``: a hit's data as its JSON, unchanged."""
    if isinstance(value, CachedData):
        return value.fragment
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def plain_default(value: object) -> object:
    """The standard encoder's ``default``: a hit's data as a (private) dict."""
    if isinstance(value, CachedData):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class QueryCache:
    """Results by operation and scope, evicted by the changes that touch their reads."""

    def __init__(self, max_bytes: int, max_operations: int = NARROWED_MEMORY) -> None:
        self.max_bytes = max_bytes
        self.max_operations = max_operations
        self.bytes = 0
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._index: InvalidationIndex[CacheKey] = InvalidationIndex()
        self._narrowed: OrderedDict[bytes, Scope] = OrderedDict()
        self.hits = 0
        self.misses = 0
        # Queries answered by a current live cohort of the same operation (then kept).
        self.cohort_hits = 0
        # Entries dropped because a change touched them (all of them on a clear), entries
        # dropped for room, and runs not kept because a change overtook them.
        self.evictions = 0
        self.lru_evictions = 0
        self.refused = 0
        # Moves on each ``clear``: a run that started before one is not kept.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def scope(self, operation: bytes) -> Scope:
        """The narrowest scope a run of ``operation`` was seen to read."""
        return self._narrowed.get(operation, Scope.TENANT)

    def narrow(self, operation: bytes, scope: Scope) -> None:
        if scope <= self.scope(operation):
            return
        self._narrowed[operation] = scope
        self._narrowed.move_to_end(operation)
        while len(self._narrowed) > self.max_operations:
            self._narrowed.popitem(last=False)

    def get(self, key: CacheKey, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.valid_until <= now:
            self._drop(key)
            entry = None
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def missed(self) -> None:
        """A query ran because no entry answered it (counted once it is known to be one)."""
        self.misses += 1

    def cohort_hit(self) -> None:
        """A query was answered by a live cohort's result instead of a run."""
        self.cohort_hits += 1

    def put(
        self,
        key: CacheKey,
        entry: Entry,
        missed: Sequence[ChangeBatch] | None,
        generation: int,
    ) -> bool:
        """Keep ``entry`` unless a batch applied while its run was on its way (``missed``:
        the batches applied since ``entry.version``; None if unknown) touches its reads,
        or the cache was cleared since the run started (at ``generation``)."""
        if (
            missed is None
            or generation != self.generation
            or any(touches(entry.reads, batch.changes) for batch in missed)
        ):
            self.refused += 1
            return False
        weight = entry.weight
        if weight > self.max_bytes:
            return False  # it would evict everything else
        self._drop(key)
        self._entries[key] = entry
        self._index.register(key, entry.reads)
        self.bytes += weight
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.lru_evictions += 1
        return True

    def evict(self, changes: Iterable[RowChange]) -> int:
        """Drop every entry these changes touch; how many."""
        affected = self._index.affected(changes)
        for key in affected:
            self._drop(key)
        self.evictions += len(affected)
        return len(affected)

    def clear(self) -> None:
        """Forget every entry, and every run on its way: what changed is not known."""
        self.evictions += len(self._entries)
        self.generation += 1
        self._entries.clear()
        self._index = InvalidationIndex()
        self.bytes = 0

    def _drop(self, key: CacheKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._index.unregister(key)
            self.bytes -= entry.weight

    def stats(self) -> dict[str, int]:
        return {
            "query_cache_entries": len(self._entries),
            "query_cache_bytes": self.bytes,
            "query_cache_hits": self.hits,
            "query_cache_misses": self.misses,
            "query_cache_cohort_hits": self.cohort_hits,
            "query_cache_evictions": self.evictions,
            "query_cache_lru_evictions": self.lru_evictions,
            "query_cache_refused": self.refused,
        }
