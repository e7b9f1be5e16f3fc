"""Random command sequences against the engine, with white-box invariant checks.

Hypothesis draws a list of small integer tuples; :class:`Driver` turns each into a concrete
command against the engine's current state (e.g. "accept the k-th pending offer"), so that
most drawn commands are valid and the interesting interleavings (ring-all, transfers,
callbacks, breaks, timeouts) happen often. The issued commands are recorded and can be
replayed verbatim on another engine.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from sparklecomm.acd import (
    AcdEngine,
    AgentConfig,
    Channel,
    Diversion,
    EngineConfig,
    Member,
    QueueConfig,
    RelaxationStep,
    Strategy,
)
from sparklecomm.acd.model import InteractionState
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import DomainError
from sparklecomm.core.events import NewEvent

PHONE = (Channel.VOICE, Channel.CHAT, Channel.CALLBACK)

QUEUES = [
    QueueConfig(
        "q0",
        strategy=Strategy.LONGEST_IDLE,
        channels=PHONE,
        members=(Member("a0"), Member("a1"), Member("a2", penalty=1)),
        initial_max_penalty=0,
        relaxation=(RelaxationStep(30, max_penalty=1),),
        wrapup_seconds=5,
        offer_timeout_seconds=10,
        max_wait_seconds=120,
        on_max_wait=Diversion("q1"),
    ),
    QueueConfig(
        "q1",
        strategy=Strategy.RING_ALL,
        channels=PHONE,
        members=(Member("a2"), Member("a3")),
        weight=30,
        offer_timeout_seconds=8,
        relaxation=(RelaxationStep(20, add_queue_id="q2"),),
    ),
    QueueConfig(
        "q2",
        strategy=Strategy.ROUND_ROBIN,
        channels=(*PHONE, Channel.EMAIL),
        member_expression="billing",
        wrapup_seconds=3,
        reoffer_delay_seconds=0,
    ),
    QueueConfig(
        "q3",
        strategy=Strategy.RANDOM,
        members=(Member("a0"), Member("a3"), Member("a4")),
        ageing_rate=2.0,
        max_length=4,
        on_full=Diversion("q2"),
        relaxation=(RelaxationStep(15, lower_levels=1),),
    ),
]

AGENTS = [
    AgentConfig("a0", skills={"billing": 2, "spanish": 3}),
    AgentConfig("a1", skills={"billing": 4}, capacity={Channel.VOICE: 1, Channel.CHAT: 2}),
    AgentConfig("a2", skills={"spanish": 1}),
    AgentConfig(
        "a3",
        skills={"billing": 1},
        capacity={Channel.VOICE: 1, Channel.CHAT: 3, Channel.EMAIL: 1, Channel.CALLBACK: 1},
        voice_blocks_other_channels=False,
    ),
    AgentConfig("a4"),
]

REQUIREMENTS = ["", "", "billing", "spanish >= 2", "billing >= 3"]
CHANNELS = [Channel.VOICE, Channel.VOICE, Channel.CHAT, Channel.CALLBACK, Channel.EMAIL]
AGENT_IDS = [a.id for a in AGENTS]
QUEUE_IDS = [q.id for q in QUEUES]

N_OPS = 24
ops = st.lists(
    st.tuples(st.integers(0, N_OPS - 1), st.integers(0, 9), st.integers(0, 9), st.integers(0, 9)),
    min_size=5,
    max_size=80,
)

Command = tuple[str, tuple[Any, ...], dict[str, Any]]


def make_engine(seed: int = 1, engine_class: Any = AcdEngine) -> tuple[AcdEngine, FakeClock]:
    """The harness's centre, on ``engine_class`` (the Python engine, or the compiled one)."""
    clock = FakeClock()
    engine = engine_class(clock, EngineConfig(rng=random.Random(seed)))
    for q in QUEUES:
        engine.add_queue(q)
    for a in AGENTS:
        engine.add_agent(a)
    for aid in AGENT_IDS[:4]:
        engine.login(aid)
    return engine, clock


class Driver:
    """Resolves drawn tuples into commands and runs them, recording what it ran."""

    def __init__(self, engine: AcdEngine, clock: FakeClock) -> None:
        self.engine = engine
        self.clock = clock
        self.commands: list[Command] = []
        self.events: list[NewEvent] = []
        self.errors = 0
        self.counter = 0

    # -- state views used to pick targets (public API only) ----------------------------------
    def _interactions(self, *states: str) -> list[Any]:
        snaps = [self.engine.interaction_snapshot(i) for i in sorted(self.engine.interaction_ids())]
        return [s for s in snaps if s.state in states]

    def _pick(self, items: list[Any], k: int) -> Any:
        return items[k % len(items)] if items else None

    def resolve(self, op: tuple[int, int, int, int]) -> Command | None:
        code, x, y, z = op
        agent = AGENT_IDS[y % len(AGENT_IDS)]
        queue = QUEUE_IDS[z % len(QUEUE_IDS)]
        if code == 0:
            self.counter += 1
            q = QUEUES[x % len(QUEUES)]
            channel = CHANNELS[y % len(CHANNELS)]
            if channel not in q.channels:
                channel = Channel.VOICE
            return (
                "create_interaction",
                (f"i{self.counter}", q.id, channel),
                {"priority": z % 4, "required_skills": REQUIREMENTS[(x + z) % len(REQUIREMENTS)]},
            )
        if code in (1, 2, 3):  # accept (twice as likely) / reject
            pairs = [
                (s.interaction_id, a) for s in self._interactions("offered") for a in s.offered_to
            ]
            pair = self._pick(pairs, x)
            if pair is None:
                return None
            return ("reject" if code == 3 else "accept", pair, {})
        if code in (4, 5):
            snap = self._pick(self._interactions("active"), x)
            return snap and ("complete", (snap.interaction_id, snap.agent_id), {})
        if code == 6:
            snap = self.engine.agent_snapshot(agent)
            if not snap.wrapups:
                return None
            return ("end_wrapup", (snap.wrapups[0], agent), {})
        if code == 7:
            snap = self._pick(self._interactions("queued", "offered", "scheduled"), x)
            return snap and ("abandon", (snap.interaction_id,), {})
        if code in (8, 9):
            return ("advance", (float([1, 2, 5, 8, 10, 15, 20, 30, 60, 121][x]),), {})
        if code == 10:
            return ("login", (agent,), {})
        if code == 11:
            return ("logout", (agent,), {})
        if code == 12:
            return ("set_break", (agent, ["lunch", "training"][x % 2]), {})
        if code == 13:
            return ("set_available", (agent,), {})
        if code == 14:
            snap = self._pick(self._interactions("active"), x)
            if snap is None:
                return None
            return ("resume" if snap.on_hold else "hold", (snap.interaction_id, snap.agent_id), {})
        if code == 15:
            snap = self._pick(self._interactions("active"), x)
            if snap is None:
                return None
            if z % 5 == 4:  # out of routing, to a number
                return ("transfer", (snap.interaction_id, snap.agent_id), {"to_number": "2003"})
            if z % 2:
                return ("transfer", (snap.interaction_id, snap.agent_id), {"to_queue_id": queue})
            return ("transfer", (snap.interaction_id, snap.agent_id), {"to_agent_id": agent})
        if code == 16:
            snap = self._pick(self._interactions("active"), x)
            if snap is None:
                return None
            verb = ["consult", "conference", "leave", "end_consult"][z % 4]
            if verb == "leave":
                return ("leave", (snap.interaction_id, agent), {})
            if verb in ("consult", "conference") and y % 3:  # mostly someone free to join
                free = [
                    a
                    for a in AGENT_IDS
                    if self.engine.agent_snapshot(a).state == "available"
                    and a not in snap.participants
                ]
                agent = free[y % len(free)] if free else agent
            # Consultations ring on phone channels unless told (sometimes told either way).
            told = {"ringing": bool(x % 2)} if verb == "consult" and x % 3 == 0 else {}
            return (verb, (snap.interaction_id, snap.agent_id, agent), told)
        if code == 23:  # a consulted phone answers (now and then a wrong agent) ...
            ringing = [s for s in self._interactions("active") if s.ringing]
            snap = self._pick(ringing, x)
            if snap is not None:
                target = snap.ringing[y % len(snap.ringing)] if z % 4 else agent
                return ("consult_connected", (snap.interaction_id, target), {})
            # ... or, none ringing, the owner of a call consults someone free (it rings).
            snap = self._pick(self._interactions("active"), x)
            free = [a for a in AGENT_IDS if self.engine.agent_snapshot(a).state == "available"]
            if snap is None or not free:
                return None
            return ("consult", (snap.interaction_id, snap.agent_id, free[y % len(free)]), {})
        if code == 17:
            snap = self._pick(self._interactions("queued"), x)
            if snap is None:
                return None
            kwargs: dict[str, Any] = {}
            if z % 3:
                kwargs["at"] = self.clock.now() + timedelta(seconds=10 * z)
            return ("request_callback", (snap.interaction_id,), kwargs)
        if code == 18:
            snap = self._pick(
                [s for s in self._interactions("active") if s.channel == "callback"], x
            )
            return snap and ("callback_failed", (snap.interaction_id, snap.agent_id), {})
        if code == 20:  # re-skill an agent (memberships by expression follow)
            base = AGENTS[y % len(AGENTS)]
            skills = dict(base.skills)
            if x % 2:
                skills["billing"] = 1 + z % 5
            else:
                skills.pop("billing", None)
            return ("update_agent", (replace(base, skills=skills),), {})
        if code == 21:  # reconfigure a queue (same channels)
            base = QUEUES[z % len(QUEUES)]
            strategies = list(Strategy)
            changed = replace(
                base,
                strategy=strategies[x % len(strategies)],
                weight=float(10 * y),
                best_skill="billing",
                members=base.members[: 1 + x % 3],
            )
            return ("update_queue", (changed,), {})
        if code == 22:  # an agent joins or leaves a queue (often refused: already / not listed)
            if x % 2:
                return ("join_queue", (agent, queue), {"penalty": z % 2})
            return ("leave_queue", (agent, queue), {})
        # 19: a command with arbitrary ids, usually invalid
        iid = f"i{x}"
        return (["accept", "reject", "complete", "hold", "end_wrapup"][z % 5], (iid, agent), {})

    def run(self, command: Command, check_unchanged: bool = True) -> None:
        name, args, kwargs = command
        self.commands.append(command)
        if name == "advance":
            self.clock.advance(args[0])
            self.events += self.engine.tick()
            return
        before = self.engine.to_snapshot() if check_unchanged else None
        method: Callable[..., list[NewEvent]] = getattr(self.engine, name)
        try:
            self.events += method(*args, **kwargs)
        except DomainError:
            self.errors += 1
            if before is not None:
                assert self.engine.to_snapshot() == before, f"{command} failed but changed state"

    def step(self, op: tuple[int, int, int, int], check_unchanged: bool = True) -> None:
        command = self.resolve(op)
        if command is not None:
            self.run(command, check_unchanged)


def replay(commands: list[Command], engine: AcdEngine, clock: FakeClock) -> list[NewEvent]:
    driver = Driver(engine, clock)
    for command in commands:
        driver.run(command, check_unchanged=False)
    return driver.events


def json_roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


# -- white-box invariants ---------------------------------------------------------------------


def check_invariants(engine: AcdEngine) -> None:
    agents = engine._agents
    queues = engine._queues
    interactions = engine._interactions
    for it in interactions.values():
        if it.state is InteractionState.OFFERED:
            assert it.offers, it.id
            if len(it.offers) > 1:
                assert all(o.ring_all for o in it.offers.values()), f"{it.id} offered twice"
            for aid in it.offers:
                assert agents[aid].offer == it.id
        else:
            assert not it.offers
        if it.state is InteractionState.ACTIVE:
            owners = [a for a, p in it.participants.items() if p.role.value == "owner"]
            assert owners == [it.agent_id], (it.id, owners)
            for aid, part in it.participants.items():
                assert it.id in agents[aid].interactions
                # A participant rings (not connected yet) exactly when its agent says so.
                assert (part.connected_at is None) == (it.id in agents[aid].rings), (it.id, aid)
            owner = it.participants[it.agent_id]
            if owner.connected_at is None:  # handed over while ringing: no talk yet
                assert it.leg_started_at is None, it.id
        else:
            assert it.agent_id is None and not it.participants
        for entry in it.entries.values():
            assert entry.listed == (it.state is InteractionState.QUEUED)
    for agent in agents.values():
        if agent.offer is not None:
            assert agent.id in interactions[agent.offer].offers
        for iid in agent.interactions:
            assert agent.id in interactions[iid].participants
        assert agent.rings <= set(agent.interactions), agent.id
        if agent.logged_in_at is not None and agent.interactions:
            # Ringing consultations alone reserve the agent; talking on anything: busy.
            only_rings = agent.rings == set(agent.interactions)
            assert agent.state.value == ("reserved" if only_rings else "busy"), agent.id
        expected: dict[Channel, int] = {}
        if agent.offer is not None:
            ch = interactions[agent.offer].channel
            expected[ch] = expected.get(ch, 0) + 1
        for ch in list(agent.interactions.values()) + [w.channel for w in agent.wrapups.values()]:
            expected[ch] = expected.get(ch, 0) + 1
        load = {c: n for c, n in agent.load.items() if n}
        assert load == expected, (agent.id, load, expected)
        for ch, n in load.items():
            assert n <= agent.config.capacity.get(ch, 0), f"{agent.id} over capacity on {ch}"
        routable = set(engine._routable_channels(agent))
        for qid, queue in queues.items():
            for ch in queue.channel_set:
                present = queue.ready.has(agent.id, ch)
                should = qid in agent.queues and ch in routable
                assert present == should, (agent.id, qid, ch, present, should)
    # Eager routing: no waiting interaction could go to an available agent right now.
    for it in interactions.values():
        if it.state is not InteractionState.QUEUED:
            continue
        for qid, entry in it.entries.items():
            queue = queues[qid]
            limit = queue.level_max_penalty[entry.level]
            for aid, member in queue.members.items():
                agent = agents[aid]
                if limit is not None and member.penalty > limit:
                    continue
                if it.channel in engine._routable_channels(agent) and engine._eligible(
                    it, agent, queue.level_relax[entry.level]
                ):
                    raise AssertionError(f"{it.id} waits in {qid} while {aid} could take it")
    deadline = engine.next_deadline()
    assert deadline is None or deadline > engine._clock.now() or engine._heap


def check_event_stream(events: list[NewEvent]) -> None:
    """Stream-level rules: no double assignment, agent state chains are continuous."""
    connected: dict[str, str] = {}
    agent_state: dict[str, str] = {}
    for event in events:
        p = event.payload
        if event.type == "interaction.accepted":
            assert p["interaction_id"] not in connected, f"{p['interaction_id']} assigned twice"
            connected[p["interaction_id"]] = p["agent_id"]
        elif event.type == "interaction.transferred":
            if p["kind"] == "external":  # its interaction.completed follows
                assert connected[p["interaction_id"]] == p["agent_id"]
            elif p["kind"] == "blind":
                connected.pop(p["interaction_id"])
            else:
                connected[p["interaction_id"]] = p["to_agent_id"]
        elif event.type in ("interaction.completed", "callback.attempt_failed"):
            assert connected.pop(p["interaction_id"]) == p["agent_id"]
        elif event.type == "agent.state_changed":
            prev = agent_state.get(p["agent_id"])
            assert prev is None or p["previous_state"] == prev, (p, prev)
            assert p["previous_seconds"] >= 0
            agent_state[p["agent_id"]] = p["state"]
