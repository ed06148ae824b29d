"""Passwords: argon2id hashes, computed off the event loop, a bounded number at a time.

Each hash or check takes about 64 MiB and a core for a fraction of a second. They run on
a pool of their own with one thread per core: a burst of sign-ins queues there instead
of allocating memory without bound, and the event loop never waits on one.

Sign-in always checks a password, against a hash with the same parameters when the
email is unknown: an unknown email then costs what a wrong password costs, and the
answer's timing does not tell which emails exist.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# A hash of a random password nobody knows, made with PasswordHasher's defaults (tested:
# its parameters must match the hasher's, or its check would cost a different time).
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$"
    "ArVWSyuNbkTaCq+Av6Hpag$hGanYZoJzS+2L5zTs93xbInJcimB5UJ8H0RvqfGs3+Q"
)


def default_concurrency() -> int:
    """The cores this process may run on: more hashes at once only queue in the kernel."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not every platform has affinity (macOS)
        return max(1, os.cpu_count() or 1)


class Passwords:
    """Hashes and checks passwords on ``concurrency`` threads of their own."""

    def __init__(self, hasher: PasswordHasher | None = None, *, concurrency: int = 0) -> None:
        self.concurrency = concurrency or default_concurrency()
        self._hasher = hasher or PasswordHasher()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="password")

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; ``None`` (no such user) costs a check and is False."""
        loop = asyncio.get_running_loop()
        if password_hash is None:
            await loop.run_in_executor(self._pool, self._check, DUMMY_HASH, password)
            return False
        return await loop.run_in_executor(self._pool, self._check, password_hash, password)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


PASSWORDS = Passwords()


async def hash_password(password: str) -> str:
    return await PASSWORDS.hash(password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await PASSWORDS.verify(password_hash, password)
