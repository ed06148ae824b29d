"""Fan-out subscribers that do not all share one query: K variable sets, U users.

Subscriber i of a fan-out run subscribes with variable set ``i mod K``, as user
``i mod U``, to one live document (a subscription on the Python peer):

    query Msgs($c: ID!, $n: Int!) @live {
      viewer { id name }                       # only when U > 1
      messages(channelId: $c, first: $n) { edges { node { id body author { name } } } }
    }

- Variable set j is ``{"c": <the channel>, "n": FIRST + j}``. Every ``n`` is at least
  ``FIRST`` (50), as many as the channel holds in a run of the default sizes (20 seed
  messages and one per round), so every set yields the same edges and one write
  changes all of them: only the number of distinct queries differs from the
  one-cohort row. Ours
  refuses a `first` above its ``PAGE_SIZE_MAX`` (200), raised to ``PAGE_SIZE_MAX``
  below for the benchmark (``harness.OURS_EXTRA_ENV``); the peers clamp it to their
  own maximum page (100) without an error.
- With U > 1 the document also selects ``viewer``: each user gets a result of their
  own (on ours, the viewer's read splits the cohorts per user). The users are real
  accounts of one workspace: the first from setup's ``signUp``, the others from
  ``signUp`` with an invite code of that workspace (``createInvite``).

Pure: no sockets, no requests. ``npm_client/cohorts.mjs`` is its twin for the npm client.
"""

from __future__ import annotations

from typing import Any

FIRST = 50
MAX_COHORTS = 2_000
MAX_USERS = 2_000
# The largest `first` a run may send; ours is started with it as PAGE_SIZE_MAX.
PAGE_SIZE_MAX = FIRST + MAX_COHORTS

MESSAGES = "messages(channelId: $c, first: $n) { edges { node { id body author { name } } } }"
VIEWER = "viewer { id name }"


def document(operation: str, *, with_viewer: bool) -> str:
    """The document of a fan-out run; ``operation`` is ``live`` or ``subscription``."""
    selection = f"{VIEWER} {MESSAGES}" if with_viewer else MESSAGES
    if operation == "live":
        return f"query Msgs($c: ID!, $n: Int!) @live {{ {selection} }}"
    if operation == "subscription":
        return f"subscription Msgs($c: ID!, $n: Int!) {{ {selection} }}"
    raise ValueError(f"no fan-out document for {operation!r}")


def variables(channel_id: str | None, index: int, cohorts: int) -> dict[str, Any]:
    """The variables of subscriber ``index`` when they are spread over ``cohorts`` sets."""
    return {"c": channel_id, "n": FIRST + index % cohorts}


def user_of(index: int, users: int) -> int:
    """Which of ``users`` users subscriber ``index`` signs in as."""
    return index % users


def why_not(operation: str, cohorts: int, users: int, subscribers: int) -> str | None:
    """None if a target of this operation can run this row, else the reason it cannot."""
    if cohorts > subscribers or users > subscribers:
        return f"{cohorts} variable sets or {users} users for {subscribers} subscribers"
    if cohorts > MAX_COHORTS or users > MAX_USERS:
        return f"at most {MAX_COHORTS} variable sets and {MAX_USERS} users"
    if operation not in ("live", "subscription") and (cohorts > 1 or users > 1):
        return "its subscribers send no query: one frame for all"
    if operation == "subscription" and users > 1:
        return "a subscription selects one root field: no `viewer` beside `messages`"
    return None
