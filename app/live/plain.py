"""Live operations by their plain form: which cohorts may answer a plain query.

A plain query that is a live operation but for ``@live`` (the same document otherwise,
the same variables and operation name) reads what that operation's cohorts read, so a
current cohort's result answers it. The schema, which parses, makes the digest of an
operation's plain form (``app.schema.plain``); it is made once per live operation, when
its first cohort starts, and forgotten with its last.

A pure data structure: no I/O, no parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from app.live.cohort import OperationKey

# Live operations looked at per plain query: the texts of one plain form differ only in
# whitespace, comments and ``@live``'s arguments, so there are seldom more than one.
MAX_PER_FORM = 8


class PlainOperations:
    """Live operations with cohorts, by the digest of their plain form."""

    def __init__(self) -> None:
        # Per live operation: its plain digest (None: it has none) and its cohorts.
        self._operations: dict[OperationKey, tuple[bytes | None, int]] = {}
        self._forms: dict[bytes, dict[OperationKey, None]] = {}

    def __len__(self) -> int:
        return len(self._forms)

    def started(self, operation: OperationKey, digest: Callable[[], bytes | None]) -> None:
        """A cohort of ``operation`` started; ``digest`` is asked for its first only."""
        known = self._operations.get(operation)
        if known is not None:
            self._operations[operation] = (known[0], known[1] + 1)
            return
        form = digest()
        self._operations[operation] = (form, 1)
        if form is not None:
            self._forms.setdefault(form, {})[operation] = None

    def stopped(self, operation: OperationKey) -> None:
        """A cohort of ``operation`` was dropped."""
        known = self._operations.get(operation)
        if known is None:
            return
        form, cohorts = known
        if cohorts > 1:
            self._operations[operation] = (form, cohorts - 1)
            return
        del self._operations[operation]
        if form is None:
            return
        operations = self._forms[form]
        del operations[operation]
        if not operations:
            del self._forms[form]

    def operations(self, form: bytes) -> Iterator[OperationKey]:
        """The live operations of this plain form (at most ``MAX_PER_FORM``)."""
        for n, operation in enumerate(self._forms.get(form, ())):
            if n == MAX_PER_FORM:
                return
            yield operation
