"""Token revocation as the live engine knows it: each user's token epoch, read once from
the domain's table and then followed in change events (``app.domain.TokenEpochs``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.auth import Viewer
from app.domain import TokenEpochs
from app.live.changes import ChangeBatch

if TYPE_CHECKING:
    from app.database import Database

EPOCH_CACHE_SIZE = 100_000


class Revocation:
    def __init__(
        self, db: Database, epochs: TokenEpochs | None, moved: Callable[[int], None]
    ) -> None:
        self._db = db
        # None: the domain revokes nothing; tokens live until they expire.
        self._epochs = epochs
        # Called with a user id whose epoch rose: their live operations re-check now.
        self._moved = moved
        # user id -> token epoch (the highest seen): from the database once, then kept by
        # the change feed. Epochs only grow, so a stale read never lowers what is known.
        self.known: OrderedDict[int, int] = OrderedDict()

    def follow(self, batch: ChangeBatch) -> None:
        epochs = self._epochs
        if epochs is None:
            return
        for change in batch.changes:
            if change.table == epochs.table and epochs.column in change.new:
                self._epoch_moved(int(change.pk or 0), int(change.new[epochs.column] or 0))

    def _remember(self, user_id: int, epoch: int) -> int:
        known = max(epoch, self.known.get(user_id, epoch))
        self.known[user_id] = known
        self.known.move_to_end(user_id)
        while len(self.known) > EPOCH_CACHE_SIZE:
            self.known.popitem(last=False)
        return known

    def _epoch_moved(self, user_id: int, epoch: int) -> None:
        # Always kept, known user or not: a read of the epoch in flight must not put
        # back the value from before this change.
        self._remember(user_id, epoch)
        self._moved(user_id)

    async def current_epoch(self, user_id: int) -> int:
        """The user's token epoch: tokens with an older one are revoked."""
        epoch = self.known.get(user_id)
        if epoch is not None:
            self.known.move_to_end(user_id)
            return epoch
        return self._remember(user_id, await self._read(user_id))

    async def _read(self, user_id: int) -> int:
        if self._epochs is None:
            return 0
        async with self._db.read_engine.connect() as conn:
            return await self._epochs.read(conn, user_id)

    def revoked(self, viewer: Viewer) -> bool:
        """Whether the viewer's token was revoked since it was issued (as known here)."""
        return self.known.get(viewer.user_id, viewer.token_epoch) > viewer.token_epoch

    def token_problem(self, viewer: Viewer) -> str | None:
        """Why the viewer's token no longer authorizes a delivery, if it doesn't."""
        if viewer.expired:
            return "Token expired"
        if self.revoked(viewer):
            return "Token revoked"
        return None
