"""Database calls that a cancellation waits for instead of interrupting.

A client completing an operation, or going away, cancels its task. Cancelled in the
middle of a statement, a pooled connection is left half-used (aiosqlite may even close
it under SQLAlchemy's feet); cancelled between statements, nothing is. So each database
call runs to its end in a task of its own, and the cancellation takes effect after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def uncancelled(call: Coroutine[Any, Any, T]) -> T:
    """``await call``, letting it finish if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller gets
        raise
