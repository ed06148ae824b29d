"""Batched re-execution: the cohorts one change invalidates re-run together per tenant.

End to end over real WebSockets: many cohorts (page sizes, users reading ``viewer``)
re-run after one write, each result exactly what an unbatched execution of the same
operation returns, in a few statements instead of one set per cohort; nothing crosses a
tenant. And the batching itself: groups, bounds, failures and cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.dataloaders.loaders import LoaderSet
from app.live.batches import LEAD_ALONE_S, Batches
from app.schema.executor import LeanExecutor
from app.schema.models.message import Message
from app.shared_reads import SharedReads
from tests.harness import (
    Server,
    WSClient,
    make_settings,
    recording_statements,
    running_server,
)

PAGE = "messages(channelId: $c, first: $n) { edges { node { id body author { name } } } }"
LIVE_PAGE = f"query Page($c: ID!, $n: Int) @live {{ {PAGE} }}"
PLAIN_PAGE = f"query Page($c: ID!, $n: Int) {{ {PAGE} }}"
MINE = "viewer { id name } messages(channelId: $c, first: 3) { edges { node { body } } }"
LIVE_MINE = f"query Mine($c: ID!) @live {{ {MINE} }}"
PLAIN_MINE = f"query Mine($c: ID!) {{ {MINE} }}"
SIZES = range(1, 13)


def bodies(data: dict[str, Any]) -> list[str]:
    return [edge["node"]["body"] for edge in data["messages"]["edges"]]


@pytest.fixture(params=[100, 1], ids=["batched", "unbatched"])
async def batch_server(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[Server]:
    settings = make_settings(database_url, tmp_path, live_batch_max=request.param)
    async with running_server(settings) as server:
        yield server


async def test_each_cohort_of_a_batch_gets_exactly_its_own_result(batch_server: Server) -> None:
    server = batch_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    channel = await server.channel(alice)
    for i in range(4):
        await server.send(alice, channel, f"before {i}")
    outsider = await server.sign_up("dave")
    elsewhere = await server.channel(outsider)
    await server.send(outsider, elsewhere, "other tenant")
    async with AsyncExitStack() as stack:
        ws = await stack.enter_async_context(WSClient.connect(server, alice))
        ws_bob = await stack.enter_async_context(WSClient.connect(server, bob))
        ws_out = await stack.enter_async_context(WSClient.connect(server, outsider))
        pages = {n: await ws.subscribe(LIVE_PAGE, {"c": channel, "n": n}) for n in SIZES}
        mine = {
            "alice": (ws, await ws.subscribe(LIVE_MINE, {"c": channel})),
            "bob": (ws_bob, await ws_bob.subscribe(LIVE_MINE, {"c": channel})),
        }
        theirs = await ws_out.subscribe(LIVE_PAGE, {"c": elsewhere, "n": 5})
        for op in pages.values():
            await ws.receive_for(op)
        for client, op in mine.values():
            await client.receive_for(op)
        assert bodies((await ws_out.receive_for(theirs))["payload"]["data"]) == ["other tenant"]

        with recording_statements(server) as statements:
            await server.send(bob, channel, "the change")
            latest = {n: await _until_new(ws, op) for n, op in pages.items()}
            own = {name: await _until_new(c, op) for name, (c, op) in mine.items()}
        # The other tenant's cohort was not invalidated, and saw nothing of this one.
        assert await ws_out.nothing_for(0.3)

        users = {"alice": alice, "bob": bob}
        for n, data in latest.items():
            assert data == await server.gql(PLAIN_PAGE, {"c": channel, "n": n}, alice)
            assert len(bodies(data)) == min(n, 5)
        for name, data in own.items():
            assert data == await server.gql(PLAIN_MINE, {"c": channel}, users[name])
            assert data["viewer"]["name"] == name
        pages_read = [
            s for s in statements if s.lstrip().upper().startswith("SELECT") and "channel_id" in s
        ]
        if server.services.settings.live_batch_max > 1:
            # 12 page sizes and 2 users' pages: one statement for all their pages.
            assert len(pages_read) <= 2, pages_read
        else:
            assert len(pages_read) >= len(SIZES)


async def _until_new(client: WSClient, op: str, body: str = "the change") -> dict[str, Any]:
    while True:
        message = await client.receive_for(op)
        data: dict[str, Any] = message["payload"]["data"]
        if body in bodies(data):
            return data


async def test_a_run_that_takes_another_runs_completion_reads_what_it_read(
    batch_server: Server,
) -> None:
    """The runs of a batch complete each object once and share it (the lean executor's
    shared completions); each run must still read what that completion read, or a
    change to it (here the author's row) would not re-run the cohorts that took it."""
    server = batch_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    channel = await server.channel(alice)
    for i in range(3):
        await server.send(bob, channel, f"by bob {i}")
    async with WSClient.connect(server, alice) as ws:
        pages = {n: await ws.subscribe(LIVE_PAGE, {"c": channel, "n": n}) for n in SIZES}
        for op in pages.values():
            await ws.receive_for(op)
        # One write re-runs every page size, together when batched. The newest message
        # is alice's: a run reaching bob's rows only through another run's completion
        # has read his row only if that completion's reads were read too.
        await server.send(alice, channel, "the change")
        for op in pages.values():
            await _until_new(ws, op)
        live = [c for c in server.services.live.cohorts.values() if c.query == LIVE_PAGE]
        assert len(live) == len(SIZES)
        # Every page but the one-message page shows one of bob's messages.
        cohorts = [c for c in live if c.variables["n"] > 1]
        runs = {id(c): c.runs for c in cohorts}

        # Bob's row changes (signing out everywhere moves his token epoch): each of those
        # pages shows his name, so reads his row, and runs again.
        assert (await server.gql("mutation { signOutEverywhere }", None, bob)) == {
            "signOutEverywhere": True
        }
        for _ in range(200):
            if all(c.runs > runs[id(c)] for c in cohorts):
                break
            await asyncio.sleep(0.025)
        assert [c.runs - runs[id(c)] for c in cohorts if c.runs == runs[id(c)]] == []


async def test_a_rerun_answers_its_root_calls_without_graphql_cores_walk(
    batch_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a cohort's root fields are known to be root calls, its re-runs walk nothing
    with graphql-core: each root resolver is called and its value (a connection, its
    edges and their authors, loaded first in one await; the viewer) completed plainly,
    and in a batch once for all the runs that select it alike. Each result is exactly a
    plain query's."""
    server = batch_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    for i in range(3):
        await server.send(alice, channel, f"before {i}")
    walked: list[str] = []
    execute_fields = LeanExecutor.execute_fields

    def counting_walks(self: Any, parent_type: Any, *args: Any) -> Any:
        walked.append(parent_type.name)
        return execute_fields(self, parent_type, *args)

    async with WSClient.connect(server, alice) as ws:
        pages = {n: await ws.subscribe(LIVE_PAGE, {"c": channel, "n": n}) for n in SIZES}
        mine = await ws.subscribe(LIVE_MINE, {"c": channel})
        for op in [*pages.values(), mine]:
            await ws.receive_for(op)
        # A cohort's first re-run may still learn its root calls (graphql-core's way).
        await server.send(alice, channel, "the first change")
        for op in [*pages.values(), mine]:
            await _until_new(ws, op, "the first change")
        monkeypatch.setattr(LeanExecutor, "execute_fields", counting_walks)
        await server.send(alice, channel, "the second change")
        latest = {n: await _until_new(ws, op, "the second change") for n, op in pages.items()}
        mine_latest = await _until_new(ws, mine, "the second change")
        monkeypatch.undo()
    # The write's own root (Mutation, walked serially) aside, nothing was walked.
    assert "Query" not in walked, walked
    assert bodies(latest[1]) == ["the second change"]
    for n, data in latest.items():
        assert data == await server.gql(PLAIN_PAGE, {"c": channel, "n": n}, alice)
    assert mine_latest == await server.gql(PLAIN_MINE, {"c": channel}, alice)


async def test_a_page_within_one_read_is_made_at_once_from_its_rows(
    database_url: str, tmp_path: Path
) -> None:
    """A batch's runs ask one list at many sizes: in its snapshot, a page that a page
    already read holds (a prefix of it, or any page once the whole list was read) is
    made from its rows at once, without a statement; a larger page than was read, with
    more rows after it, is read."""
    async with running_server(make_settings(database_url, tmp_path)) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        for i in range(4):
            await server.send(alice, channel, f"m{i}")
        viewer = server.services.tokens.decode(alice.token)
        shared = SharedReads(server.services.db, viewer.workspace_id)
        statements: list[Any] = []

        async def counting(statement: Any, params: Any = None) -> Any:
            statements.append(statement)
            return await shared.rows(statement, params)

        pages = LoaderSet(counting, pages_from_reads=True).page_by(Message, "channel_id")
        key = int(channel)

        async def page(first: int) -> tuple[list[str], bool]:
            connection = await pages.load((key, first, None))
            return [e.node.body for e in connection.edges], connection.page_info.has_next_page

        try:
            assert await page(2) == (["m3", "m2"], True)
            assert len(statements) == 1
            assert pages.load((key, 1, None)).done(), "a prefix of the page read"
            assert await page(1) == (["m3"], True)
            assert await page(2) == (["m3", "m2"], True)
            assert len(statements) == 1
            # More rows follow what was read: a larger page is read.
            assert await page(10) == (["m3", "m2", "m1", "m0"], False)
            assert len(statements) == 2
            # The whole list is read: every page at least as large is that one page.
            larger = pages.load((key, 50, None))
            assert larger.done() and larger.result() is await pages.load((key, 10, None))
            assert await page(3) == (["m3", "m2", "m1"], True)
            assert len(statements) == 2
            # Loaders that a transaction may write between (an execution's own) read
            # each page afresh.
            pages = LoaderSet(counting).page_by(Message, "channel_id")
            assert await page(2) == (["m3", "m2"], True)
            assert await page(1) == (["m3"], True)
            assert len(statements) == 4
        finally:
            await shared.close()


# -- the batching itself ----------------------------------------------------------------


class Opened:
    def __init__(self) -> None:
        self.groups: list[Hashable] = []
        self.closed = 0
        self.fail = False

    @asynccontextmanager
    async def __call__(self, group: Hashable) -> AsyncIterator[str]:
        if self.fail:
            raise ConnectionError("no snapshot")
        self.groups.append(group)
        try:
            yield f"shared:{group}"
        finally:
            self.closed += 1


async def test_runs_asked_in_one_turn_share_one_batch_per_group() -> None:
    opened = Opened()
    batches: Batches[str] = Batches(opened, max_size=3)

    async def job(shared: Any, n: int) -> str:
        await asyncio.sleep(0)
        return f"{shared}/{n}"

    futures = [batches.run("a" if n % 2 else "b", lambda s, n=n: job(s, n)) for n in range(8)]
    results = await asyncio.gather(*futures)
    assert results == [f"shared:{'a' if n % 2 else 'b'}/{n}" for n in range(8)]
    # 4 runs of each group, at most 3 a batch: two batches each.
    assert sorted(opened.groups) == ["a", "a", "b", "b"]
    assert (batches.batches, batches.runs, opened.closed) == (4, 8, 4)


async def test_a_failing_run_fails_alone_and_a_failed_opening_fails_its_batch() -> None:
    opened = Opened()
    batches: Batches[str] = Batches(opened, max_size=10)

    async def broken(_shared: Any) -> str:
        raise ValueError("this run only")

    async def fine(shared: Any) -> str:
        return str(shared)

    bad, good = batches.run(1, broken), batches.run(1, fine)
    assert await good == "shared:1"
    with pytest.raises(ValueError, match="this run only"):
        await bad
    opened.fail = True
    with pytest.raises(ConnectionError):
        await batches.run(2, fine)


async def test_a_runs_outcome_is_its_own_as_soon_as_it_is_done() -> None:
    """A quick run's cohort has its result while a slow run of the same batch goes on:
    its subscribers are sent it then, not when the whole batch is done."""
    opened = Opened()
    batches: Batches[str] = Batches(opened, max_size=10)
    release = asyncio.Event()

    async def slow(shared: Any) -> str:
        await release.wait()
        return f"{shared}/slow"

    async def quick(shared: Any) -> str:
        return f"{shared}/quick"

    waiting, done = batches.run(1, slow), batches.run(1, quick)
    assert await asyncio.wait_for(done, 5) == "shared:1/quick"
    assert not waiting.done() and opened.closed == 0
    release.set()
    assert await waiting == "shared:1/slow"
    await batches.join()
    assert (batches.batches, opened.closed) == (1, 1)


async def test_a_batchs_first_run_goes_alone_and_the_others_after_it() -> None:
    """What the first run reads, the others find read: they start once it is done, or
    once ``LEAD_ALONE_S`` has passed while it goes on."""
    batches: Batches[str] = Batches(Opened(), max_size=10)
    events: list[str] = []

    def job(name: str, steps: int) -> Any:
        async def run(shared: Any) -> str:
            events.append(f"start {name}")
            for _ in range(steps):
                await asyncio.sleep(0)
            events.append(f"end {name}")
            return name

        return run

    done = [batches.run(1, job(name, 3)) for name in "abc"]
    assert await asyncio.gather(*done) == ["a", "b", "c"]
    assert events[:2] == ["start a", "end a"]
    assert sorted(events[2:]) == ["end b", "end c", "start b", "start c"]

    events.clear()
    loop = asyncio.get_running_loop()
    slow = batches.run(1, job("slow", 10**9))
    quick = batches.run(1, job("quick", 1))
    started = loop.time()
    assert await asyncio.wait_for(quick, 5) == "quick"
    assert loop.time() - started < LEAD_ALONE_S + 1.0
    assert events[:2] == ["start slow", "start quick"] and not slow.done()
    slow.cancel()
    await batches.join()


async def test_at_most_max_running_batches_run_at_once_the_others_in_order() -> None:
    running: list[int] = []
    peak = 0
    started: list[Hashable] = []

    @asynccontextmanager
    async def opener(group: Hashable) -> AsyncIterator[str]:
        nonlocal peak
        started.append(group)
        running.append(1)
        peak = max(peak, len(running))
        try:
            yield f"shared:{group}"
        finally:
            running.pop()

    batches: Batches[str] = Batches(opener, max_size=1, max_running=2)

    async def job(shared: Any) -> str:
        for _ in range(3):
            await asyncio.sleep(0)
        return str(shared)

    results = await asyncio.gather(*(batches.run(group, job) for group in range(6)))
    assert results == [f"shared:{group}" for group in range(6)]
    assert peak == 2
    assert started == list(range(6))


async def test_a_run_that_stops_waiting_for_its_batchs_turn_is_never_run() -> None:
    batches: Batches[str] = Batches(Opened(), max_size=10, max_running=1)
    release = asyncio.Event()
    started: list[str] = []

    async def first(shared: Any) -> str:
        started.append("first")
        await release.wait()
        return str(shared)

    async def second(shared: Any) -> str:
        started.append("second")
        return str(shared)

    running = batches.run(1, first)
    await asyncio.sleep(0.01)
    queued = batches.run(2, second)  # its batch waits for the first one's turn to end
    await asyncio.sleep(0.01)
    queued.cancel()
    release.set()
    assert await running == "shared:1"
    await asyncio.wait_for(batches.join(), 5)
    assert started == ["first"]


async def test_a_stopped_batch_stops_its_runs_before_closing_what_they_read() -> None:
    opened = Opened()
    batches: Batches[str] = Batches(opened, max_size=10)
    began = asyncio.Event()
    seen: list[int] = []

    async def job(_shared: Any) -> str:
        began.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append(opened.closed)  # still open when the run stops
            raise
        return "done"

    waiting = batches.run(1, job)
    await began.wait()
    for task in list(batches._running):
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(batches.join(), 5)
    assert seen == [0] and opened.closed == 1


async def test_a_cohort_that_stops_waiting_cancels_its_own_run_only() -> None:
    batches: Batches[str] = Batches(Opened(), max_size=10)
    started = asyncio.Event()
    cancelled: list[str] = []

    async def slow(_shared: Any) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return "slow"

    async def quick(_shared: Any) -> str:
        await started.wait()
        await asyncio.sleep(0.05)
        return "quick"

    waiting = asyncio.ensure_future(batches.run(1, slow))
    other = batches.run(1, quick)
    await started.wait()
    waiting.cancel()
    assert await other == "quick"
    await asyncio.wait_for(batches.join(), 5)
    assert cancelled == ["slow"]


async def test_cohorts_of_two_workspaces_rerun_together_never_share_a_batch(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    live = server.services.live
    alice, dave = await server.sign_up("alice"), await server.sign_up("dave")
    ours, theirs = await server.channel(alice), await server.channel(dave)
    await server.send(alice, ours, "ours")
    await server.send(dave, theirs, "theirs")
    async with WSClient.connect(server, alice) as ws, WSClient.connect(server, dave) as ws2:
        mine = [await ws.subscribe(LIVE_PAGE, {"c": ours, "n": n}) for n in (1, 2, 3)]
        other = [await ws2.subscribe(LIVE_PAGE, {"c": theirs, "n": n}) for n in (1, 2, 3)]
        for op in mine:
            assert bodies((await ws.receive_for(op))["payload"]["data"]) == ["ours"]
        for op in other:
            assert bodies((await ws2.receive_for(op))["payload"]["data"]) == ["theirs"]
        before = live.stats()
        # Every cohort is invalidated in one turn (as after a change-log gap).
        live._reset(live.feed.applied_version)
        async with asyncio.timeout(5):
            while live.stats()["executions"] < before["executions"] + 6:  # noqa: ASYNC110 (server state, from outside)
                await asyncio.sleep(0.02)
        # One batch per workspace, each over its own workspace's snapshot: a run in the
        # other's batch would read nothing of its own and send an empty page.
        assert live.stats()["batches"] == before["batches"] + 2
        assert await ws.nothing_for(0.3)
        assert await ws2.nothing_for(0.1)
