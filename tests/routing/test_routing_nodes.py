"""Several routing nodes on one database: conflicts are caught up and retried, reads stay fresh.

Each test runs two :class:`AcdService` instances ("nodes" A and B) with their own
``Database`` (own connections) on the same SQLite file and, when
``SPARKLECOMM_TEST_POSTGRES_URL`` is set, the same PostgreSQL database. The truth is always a
fresh rebuild from the database: every node's engine must end equal to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import REDIS_URL, World, redis_nodes

from sparklecomm.acd.service import AcdService, AuditNote
from sparklecomm.acd.store import load_journal
from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.core.errors import Conflict, DomainError
from sparklecomm.core.events import Event
from sparklecomm.store.db import Database

QUEUE = {"id": "support", "name": "Support", "offer_timeout_seconds": 15, "wrapup_seconds": 30}


class Nodes:
    """Node A (the world's service) and node B (a second process on the same database)."""

    def __init__(self, world: World, url: str) -> None:
        self.world = world
        self.url = url
        self.tid = world.tenant_id
        self.a: AcdService = world.services.extra["acd"]
        self._dbs: list[Database] = []
        self.b = self.node()

    def node(self, **options: Any) -> AcdService:
        db = Database(self.url, self.world.clock)
        self._dbs.append(db)
        return AcdService(db, self.world.clock, **options)

    def fresh_snapshot(self) -> dict[str, Any]:
        """The state a process starting now would rebuild from the database."""
        node = self.node()
        return node.read(self.tid, lambda e: e.to_snapshot())  # type: ignore[no-any-return]

    def snapshot(self, node: AcdService) -> dict[str, Any]:
        """``node``'s state once caught up with the journal."""
        node.freshness_seconds = 0
        return node.read(self.tid, lambda e: e.to_snapshot())  # type: ignore[no-any-return]

    def journal(self) -> list[str]:
        with self.world.services.db.read() as s:
            return [c.name for c in load_journal(s, self.tid, 0)]

    def close(self) -> None:
        for db in self._dbs:
            db.dispose()


@pytest.fixture
def nodes(world: World, database_url: str) -> Iterator[Nodes]:
    n = Nodes(world, database_url)
    yield n
    n.close()


def center(node: AcdService, tid: str, agents: tuple[str, ...] = ("ana",)) -> None:
    """A queue with available agents, all through ``node``."""
    node.execute(tid, "add_queue", config=QUEUE)
    for agent in agents:
        node.execute(tid, "add_agent", config={"id": agent, "name": agent.title()})
        node.execute(tid, "join_queue", agent_id=agent, queue_id="support")
        node.execute(tid, "login", agent_id=agent)  # available at once


def offer_of(node: AcdService, tid: str, agent: str) -> str | None:
    return node.read(tid, lambda e: e.agent_snapshot(agent).offer)  # type: ignore[no-any-return]


def test_node_b_acts_on_what_node_a_created(nodes: Nodes) -> None:
    a, b, tid = nodes.a, nodes.b, nodes.tid
    assert b.read(tid, lambda e: e.queue_ids()) == []  # B is loaded before A does anything
    seen_by_b: list[list[Event]] = []
    b.add_listener(lambda _tid, events: seen_by_b.append(events))
    center(a, tid)
    created = a.execute(
        tid, "create_interaction", interaction_id="i1", queue_id="support", channel="chat"
    )
    assert "interaction.offered" in [e.type for e in created]
    assert seen_by_b == []  # without the shared bus, only this node's commits are heard
    # B's engine has never seen the queue: storing "accept" conflicts, B catches up, retries
    accepted = b.execute(tid, "accept", interaction_id="i1", agent_id="ana")
    assert [e.type for e in accepted][:1] == ["interaction.accepted"]
    assert seen_by_b == [accepted]
    b.execute(tid, "complete", interaction_id="i1", agent_id="ana")
    assert b.read(tid, lambda e: e.agent_snapshot("ana").state) == "wrap_up"
    assert a.read(tid, lambda e: e.agent_snapshot("ana").state) == "reserved"  # stale
    nodes.world.clock.advance(0.5)
    assert a.read(tid, lambda e: e.agent_snapshot("ana").state) == "wrap_up"
    fresh = nodes.fresh_snapshot()
    assert nodes.snapshot(a) == fresh
    assert nodes.snapshot(b) == fresh
    names = nodes.journal()
    assert names[-3:] == ["create_interaction", "accept", "complete"]
    assert names.count("accept") == 1


def test_a_command_refused_after_catching_up_is_the_domain_error(nodes: Nodes) -> None:
    a, b, tid = nodes.a, nodes.b, nodes.tid
    center(a, tid)
    a.execute(tid, "create_interaction", interaction_id="i1", queue_id="support", channel="voice")
    b.freshness_seconds = 0
    assert offer_of(b, tid, "ana") == "i1"  # B has seen the offer...
    b.freshness_seconds = 3600
    a.execute(tid, "abandon", interaction_id="i1")  # ...which the customer ends on node A
    assert offer_of(b, tid, "ana") == "i1"  # B's view is stale (within freshness_seconds)
    commands = len(nodes.journal())
    with pytest.raises(DomainError) as info:
        b.execute(tid, "accept", interaction_id="i1", agent_id="ana")
    assert not isinstance(info.value, Conflict)  # the engine's own refusal, not "busy"
    assert info.value.status < 500
    assert len(nodes.journal()) == commands  # nothing stored
    assert offer_of(b, tid, "ana") is None  # caught up by the attempt


def test_news_arriving_during_a_head_check_is_not_lost(
    nodes: Nodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node B reads the journal's head; before the read returns, node A commits and B hears of
    it over the bus. That check predates A's command, so it must not count as fresh: B's next
    read catches up (it stayed stale until ``freshness_seconds`` ran out, forever on a fake
    clock)."""
    from sparklecomm.acd import service as service_module

    a, b, tid = nodes.a, nodes.b, nodes.tid
    center(a, tid)
    a.execute(tid, "create_interaction", interaction_id="i1", queue_id="support", channel="voice")
    b.freshness_seconds = 0
    assert offer_of(b, tid, "ana") == "i1"
    real_head = service_module.journal_head
    raced: list[Event] = []

    def head_then_news(conn: Any, tenant_id: str) -> int:
        head = real_head(conn, tenant_id)  # the head as it was...
        if not raced:
            raced.extend(a.execute(tid, "abandon", interaction_id="i1"))  # ...then A commits
            b._remote_events(raced)  # and B hears of it before its check is recorded
        return head

    monkeypatch.setattr(service_module, "journal_head", head_then_news)
    assert offer_of(b, tid, "ana") == "i1"  # this read checked too early to see it
    assert raced
    monkeypatch.setattr(service_module, "journal_head", real_head)
    b.freshness_seconds = 3600
    assert offer_of(b, tid, "ana") is None  # the next one catches up
    assert nodes.snapshot(b) == nodes.fresh_snapshot()


def test_a_node_that_keeps_losing_gives_up_with_a_conflict(nodes: Nodes) -> None:
    a, b, tid = nodes.a, nodes.b, nodes.tid
    a.execute(tid, "add_queue", config=QUEUE)
    b.read(tid, lambda e: e.queue_ids())
    original = b._catch_up
    catch_ups = 0

    def busy_other_node(rt: Any) -> None:
        nonlocal catch_ups
        catch_ups += 1
        original(rt)
        # node A stores another command before B's next attempt, every time
        a.execute(tid, "add_agent", config={"id": f"agent-{catch_ups}"})

    a.execute(tid, "add_agent", config={"id": "agent-0"})  # B is behind from the start
    b._catch_up = busy_other_node
    with pytest.raises(Conflict, match="another server 3 times") as info:
        b.execute(tid, "add_agent", config={"id": "bo"})
    assert info.value.status == 409
    assert catch_ups == 3
    assert "bo" not in nodes.node().read(tid, lambda e: e.agent_ids())
    b._catch_up = original
    b.execute(tid, "add_agent", config={"id": "bo"})  # a quiet moment: it goes through
    assert nodes.snapshot(b) == nodes.fresh_snapshot()


def test_a_write_failing_after_the_engine_ran_rebuilds_it(
    nodes: Nodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, tid = nodes.a, nodes.tid
    a.execute(tid, "add_queue", config={"id": "q1", "name": "Q1"})

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("sparklecomm.acd.service.write_audit_txn", disk_full)
    note = AuditNote(Actor.cli(), "queue.create", "queue", "q2")
    with pytest.raises(OSError):
        a.execute(tid, "add_queue", config={"id": "q2", "name": "Q2"}, audit=note)
    a.freshness_seconds = 3600  # no catch-up hides it: the rebuild did the work
    assert a.read(tid, lambda e: e.queue_ids()) == ["q1"]
    assert nodes.snapshot(a) == nodes.fresh_snapshot()


def test_stale_reads_become_fresh_after_the_rate_limit(nodes: Nodes) -> None:
    a, b, tid, clock = nodes.a, nodes.b, nodes.tid, nodes.world.clock
    assert b.freshness_seconds == 0.5
    a.execute(tid, "add_queue", config={"id": "q1", "name": "Q1"})
    assert b.read(tid, lambda e: e.queue_ids()) == ["q1"]  # first use builds the engine
    a.execute(tid, "add_queue", config={"id": "q2", "name": "Q2"})
    clock.advance(0.2)
    assert b.read(tid, lambda e: e.queue_ids()) == ["q1"]  # checked 0.2 s ago: not again
    clock.advance(0.4)
    assert b.read(tid, lambda e: e.queue_ids()) == ["q1", "q2"]
    # the timer loop's pass over the tenants checks the head too
    a.execute(tid, "add_queue", config={"id": "q3", "name": "Q3"})
    clock.advance(0.6)
    b.next_deadline()
    b.freshness_seconds = 3600
    assert b.read(tid, lambda e: e.queue_ids()) == ["q1", "q2", "q3"]
    assert nodes.snapshot(b) == nodes.fresh_snapshot()


def test_catching_up_replays_at_the_recorded_times(nodes: Nodes) -> None:
    """B reads at a later "now" than A's next command: catching up must still equal a
    rebuild, so B's engine clock is not left at the time of its read."""
    a, b, tid, clock = nodes.a, nodes.b, nodes.tid, nodes.world.clock
    center(a, tid)
    b.freshness_seconds = 0
    b.read(tid, lambda e: e.queue_ids())
    early = clock.now()
    clock.advance(5)
    b.read(tid, lambda e: e.agent_snapshot("ana"))  # B's read at t+5
    a.clock = type(clock)(early)  # node A's clock is 5 s behind B's (another machine)
    a.execute(tid, "set_break", agent_id="ana", reason="lunch")
    assert nodes.snapshot(b) == nodes.fresh_snapshot()


def test_a_snapshot_that_dropped_the_journal_forces_a_rebuild(nodes: Nodes) -> None:
    a, b, tid = nodes.a, nodes.b, nodes.tid
    center(a, tid, agents=("ana", "bo"))
    b.read(tid, lambda e: e.queue_ids())  # B's engine at this seq
    behind = b.routing(tid).seq
    a.snapshot_every = 2
    for n in range(3):  # A snapshots and drops the journal B would need
        a.execute(
            tid, "create_interaction", interaction_id=f"i{n}", queue_id="support", channel="chat"
        )
    with nodes.world.services.db.read() as s:
        assert all(c.seq > behind + 1 for c in load_journal(s, tid, 0))
    rebuilds = 0
    original = b._rebuild

    def counting(rt: Any) -> None:
        nonlocal rebuilds
        rebuilds += 1
        original(rt)

    b._rebuild = counting
    # B writes next: its seq is not in the journal any more (no key clash) but is covered
    # by A's snapshot, which the claim checks; B rebuilds from the snapshot and retries.
    accepted = b.execute(tid, "accept", interaction_id="i0", agent_id=offered_agent(a, tid, "i0"))
    assert "interaction.accepted" in [e.type for e in accepted]
    assert rebuilds == 1
    # and a read-only node that is behind a snapshot rebuilds too
    c = nodes.node(freshness_seconds=0)
    c.read(tid, lambda e: e.queue_ids())
    for n in range(3, 6):
        a.execute(
            tid, "create_interaction", interaction_id=f"i{n}", queue_id="support", channel="chat"
        )
    assert c.read(tid, lambda e: e.interaction_snapshot("i5").state) == "queued"
    fresh = nodes.fresh_snapshot()
    assert nodes.snapshot(b) == fresh and nodes.snapshot(c) == fresh


def offered_agent(node: AcdService, tid: str, iid: str) -> str:
    """The agent ``node`` sees being offered ``iid`` (StopIteration: none)."""
    view = node.read(tid, lambda e: e.interaction_snapshot(iid))
    return str(next(iter(view.offered_to)))


def test_one_timer_fires_once_when_both_nodes_tick(nodes: Nodes) -> None:
    a, b, tid, clock = nodes.a, nodes.b, nodes.tid, nodes.world.clock
    center(a, tid, agents=("ana", "bo"))
    a.execute(tid, "create_interaction", interaction_id="i1", queue_id="support", channel="chat")
    b.freshness_seconds = 3600
    b.read(tid, lambda e: e.queue_ids())
    clock.advance(16)  # the offer timed out: both nodes' timers are due
    fired = a.tick_due(tid)
    assert "interaction.offer_timed_out" in [e.type for e in fired]
    assert b.tick_due(tid) == []  # conflict, caught up: nothing due any more
    assert nodes.journal().count("tick") == 1
    assert nodes.snapshot(b) == nodes.fresh_snapshot()


def test_concurrent_commands_from_both_nodes_end_consistent(nodes: Nodes) -> None:
    a, b, tid = nodes.a, nodes.b, nodes.tid
    agents = tuple(f"agent-{n}" for n in range(4))
    center(a, tid, agents=agents)
    b.read(tid, lambda e: e.queue_ids())
    catch_ups = [0]
    for node in (a, b):
        node.max_attempts = 50  # this test is about the end state, not giving up
        original = node._catch_up

        def counting(rt: Any, original: Any = original) -> None:
            catch_ups[0] += 1
            original(rt)

        node._catch_up = counting
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(node: AcdService, prefix: str) -> None:
        try:
            start.wait()
            for n in range(15):
                iid = f"{prefix}{n}"
                time.sleep(0.002)  # let the other node in, so the two really interleave
                node.execute(
                    tid,
                    "create_interaction",
                    interaction_id=iid,
                    queue_id="support",
                    channel="chat",
                )
                try:
                    agent = offered_agent(node, tid, iid)
                    node.execute(tid, "accept", interaction_id=iid, agent_id=agent)
                    node.execute(tid, "complete", interaction_id=iid, agent_id=agent)
                    node.execute(tid, "end_wrapup", interaction_id=iid, agent_id=agent)
                except (DomainError, StopIteration):
                    # the other node may have changed things between our read and command
                    node.execute(tid, "abandon", interaction_id=iid)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(a, "a-")),
        threading.Thread(target=work, args=(b, "b-")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert catch_ups[0] > 0  # the nodes did collide (and recovered)
    for node in (a, b):
        node.freshness_seconds = 0
    fresh = nodes.fresh_snapshot()
    assert nodes.snapshot(a) == fresh
    assert nodes.snapshot(b) == fresh
    names = nodes.journal()
    assert names.count("create_interaction") == 30
    # every command stored once: seqs are a gap-free run
    with nodes.world.services.db.read() as s:
        seqs = [c.seq for c in load_journal(s, tid, 0)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="SPARKLECOMM_TEST_REDIS_URL is not set")
def test_with_the_redis_bus_a_node_hears_the_offers_another_node_made(
    database_url: str, tmp_path: Path
) -> None:
    """Two running apps on one database and one Redis: a call waits on node B (its voice
    bridge holds the SIP legs); the agent goes available through node A, whose engine makes
    the offer; B's listeners (the voice bridge) hear it, and B's engine is current at once."""
    world, node_b = redis_nodes(database_url, tmp_path)
    a: AcdService = world.services.extra["acd"]
    b: AcdService = node_b.extra["acd"]
    b.freshness_seconds = 3600  # only the bus can make B catch up in time
    tid = world.tenant_id
    heard: list[Event] = []
    offered = threading.Event()

    def listener(tenant_id: str, events: list[Event]) -> None:
        assert tenant_id == tid
        heard.extend(events)
        if any(e.type == "interaction.offered" for e in events):
            offered.set()

    b.add_listener(listener)
    with TestClient(build_app(world.services)), TestClient(build_app(node_b)):
        a.execute(tid, "add_queue", config=QUEUE)
        a.execute(tid, "add_agent", config={"id": "ana", "name": "Ana"})
        a.execute(tid, "join_queue", agent_id="ana", queue_id="support")
        a.execute(tid, "login", agent_id="ana")
        a.execute(tid, "set_break", agent_id="ana", reason="lunch")
        local = b.execute(
            tid, "create_interaction", interaction_id="call-1", queue_id="support", channel="voice"
        )
        assert [e.type for e in local][-1] == "interaction.queued"  # nobody available
        heard.clear()
        a.execute(tid, "set_available", agent_id="ana")  # A's engine offers B's call
        assert offered.wait(5), f"node B heard {[e.type for e in heard]}"
        offer = next(e for e in heard if e.type == "interaction.offered")
        assert offer.payload["interaction_id"] == "call-1"
        assert offer.payload["agent_id"] == "ana"
        # A committed event with its id, after B's own create (the bus may still be bringing
        # A's earlier set-up events too, so only the offer is compared).
        assert offer.id > local[-1].id
        # B's next read catches up despite freshness_seconds: the bus said it is behind.
        assert offer_of(b, tid, "ana") == "call-1"
        accepted = b.execute(tid, "accept", interaction_id="call-1", agent_id="ana")
        assert accepted[0].type == "interaction.accepted"
    b.remove_listener(listener)
    world.services.db.dispose()
    node_b.db.dispose()
