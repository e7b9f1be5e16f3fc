"""The compiled engine against the Python engine, on the commands it runs so far.

Hypothesis draws a centre (queues of every strategy but ring-all, agents with skills,
capacities and tiers) and a sequence of commands — arrivals with and without skill
requirements, accepts, completions, time passing (offer timeouts, wrap-ups, re-offers),
and mistakes (unknown ids, accepting someone else's offer, bad input). Both engines get the
same commands on the same fake clock; their events, errors and random draws must be equal.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparklecomm.acd import AcdEngine, AgentConfig, Channel, EngineConfig, Member, QueueConfig
from sparklecomm.acd import Strategy
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import DomainError

_acd_core = pytest.importorskip("sparklecomm.acd._acd_core")
CompiledEngine = _acd_core.CompiledEngine

STRATEGIES = [s for s in Strategy if s is not Strategy.RING_ALL]
REQUIREMENTS = ["", "", "", "billing >= 2", "spanish and billing > 3", "not trainee", "billing >="]


class Pair:
    """The same commands on both engines; results compared as they come."""

    def __init__(self, seed: int) -> None:
        self.clock = FakeClock()
        self.python = AcdEngine(self.clock, EngineConfig(rng=random.Random(seed)))
        self.compiled = CompiledEngine(self.clock, EngineConfig(rng=random.Random(seed)))
        self.offers: list[tuple[str, str]] = []  # (interaction, agent) offered, not accepted
        self.active: list[tuple[str, str]] = []
        self.events = 0

    def run(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        expected: list[Any] | DomainError
        try:
            expected = getattr(self.python, method)(*args, **kwargs)
        except DomainError as exc:
            expected = exc
        try:
            got = getattr(self.compiled, method)(*args, **kwargs)
        except DomainError as exc:
            assert isinstance(expected, DomainError), (method, args, exc)
            assert (type(exc), exc.detail, exc.field) == (
                type(expected),
                expected.detail,
                expected.field,
            )
            return []
        assert not isinstance(expected, DomainError), (method, args, expected)
        assert [(e.type, e.payload, e.time) for e in got] == [
            (e.type, e.payload, e.time) for e in expected
        ], (method, args)
        assert self.python.config.rng.getstate() == self.compiled.rng.getstate()
        self.events += len(got)
        for event in got:
            p = event.payload
            if event.type == "interaction.offered":
                self.offers.append((p["interaction_id"], p["agent_id"]))
            elif event.type in ("interaction.offer_timed_out",):
                self.offers.remove((p["interaction_id"], p["agent_id"]))
        return list(got)


def build(pair: Pair, rng: random.Random, n_agents: int, n_queues: int) -> None:
    members: list[list[Member]] = [[] for _ in range(n_queues)]
    for a in range(n_agents):
        for q in rng.sample(range(n_queues), min(rng.randint(1, 3), n_queues)):
            members[q].append(Member(f"a{a}", penalty=rng.choice((0, 0, 1, 2)), weight=rng.randint(1, 5)))
    half = n_agents // 2
    for a in range(half):  # some agents exist before the queues listing them
        pair.run("add_agent", agent_config(rng, a))
    for q in range(n_queues):
        pair.run(
            "add_queue",
            QueueConfig(
                f"q{q}",
                strategy=rng.choice(STRATEGIES),
                channels=rng.choice(((Channel.VOICE, Channel.CHAT), (Channel.VOICE,), (Channel.CHAT, Channel.EMAIL))),
                members=tuple(members[q]),
                best_skill="billing",
                wrapup_seconds=rng.choice((0, 2, 5)),
                offer_timeout_seconds=rng.choice((5, 20)),
                reoffer_delay_seconds=rng.choice((0, 10)),
                weight=rng.choice((0, 30)),
                ageing_rate=rng.choice((1, 0.5, 2)),
            ),
        )
    for a in range(half, n_agents):
        pair.run("add_agent", agent_config(rng, a))
    for a in range(n_agents):
        if rng.random() < 0.9:
            pair.run("login", f"a{a}")


def agent_config(rng: random.Random, a: int) -> AgentConfig:
    skills = {"billing": rng.randint(1, 5)}
    if rng.random() < 0.5:
        skills["spanish"] = rng.randint(1, 5)
    return AgentConfig(
        f"a{a}",
        skills=skills,
        attributes={"trainee": rng.random() < 0.3},
        capacity=rng.choice(
            ({Channel.VOICE: 1, Channel.CHAT: 2}, {Channel.CHAT: 3, Channel.EMAIL: 1}, {Channel.VOICE: 1})
        ),
        voice_blocks_other_channels=rng.random() < 0.7,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(20, 160))
def test_the_compiled_engine_emits_what_the_python_engine_emits(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    pair = Pair(seed)
    n_queues = rng.randint(1, 6)
    build(pair, rng, rng.randint(1, 12), n_queues)
    n = 0
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.35:
            pair.run(
                "create_interaction",
                f"i{n}",
                f"q{rng.randrange(n_queues)}",
                rng.choice(("voice", "chat", "email", Channel.VOICE)),
                priority=rng.choice((0, 0, 1, 2, 100)),
                required_skills=rng.choice(REQUIREMENTS),
                customer_id=rng.choice((None, "c1")),
                attributes=rng.choice((None, {"vip": "gold"})),
            )
            n += 1
        elif roll < 0.55 and pair.offers:
            iid, aid = pair.offers.pop(rng.randrange(len(pair.offers)))
            if pair.run("accept", iid, aid):
                pair.active.append((iid, aid))
        elif roll < 0.7 and pair.active:
            iid, aid = pair.active.pop(rng.randrange(len(pair.active)))
            pair.run("complete", iid, aid, disposition=rng.choice((None, "sale")))
        elif roll < 0.9:
            pair.clock.advance(rng.choice((0.5, 1, 3, 6, 21)))
            pair.run("tick")
        else:  # mistakes: refused the same way, changing nothing
            command = rng.choice(MISTAKES)(n)
            if isinstance(command[-1], dict):
                pair.run(*command[:-1], **command[-1])
            else:
                pair.run(*command)
        assert pair.compiled.interaction_ids() == pair.python.interaction_ids()
    for aid in pair.python.agent_ids():
        snap = pair.python.agent_snapshot(aid)
        assert pair.compiled.agent_state(aid) == (snap.state, snap.reason)


MISTAKES = [
    lambda n: ("accept", "nobody", "a0"),
    lambda n: ("accept", f"i{max(n - 1, 0)}", "a-unknown"),
    lambda n: ("accept", f"i{max(n - 1, 0)}", "a0"),
    lambda n: ("complete", f"i{max(n - 1, 0)}", "a1"),
    lambda n: ("complete", f"i{max(n - 1, 0)}", "a0", "x" * 101),
    lambda n: ("create_interaction", f"i{max(n - 1, 0)}", "q0", "voice"),
    lambda n: ("create_interaction", "", "q0", "voice"),
    lambda n: ("create_interaction", "new", "q-unknown", "voice"),
    lambda n: ("create_interaction", "new", "q0", "fax"),
    lambda n: ("create_interaction", "new", "q0", "voice", {"priority": 101}),
    lambda n: ("create_interaction", "new", "q0", "voice", {"priority": True}),
    lambda n: ("create_interaction", "new", "q0", "voice", {"required_skills": "(("}),
    lambda n: ("create_interaction", "new", "q0", "voice", {"customer_id": 5}),
    lambda n: ("login", "a0"),
    lambda n: ("login", "nobody"),
]


def test_unported_rules_are_refused_not_ignored() -> None:
    engine = CompiledEngine(FakeClock())
    with pytest.raises(NotImplementedError, match="ring-all"):
        engine.add_queue(QueueConfig("q", strategy=Strategy.RING_ALL))
    with pytest.raises(NotImplementedError, match="max_wait_seconds"):
        engine.add_queue(QueueConfig("q", max_wait_seconds=30))
    assert engine.queue_ids() == []


def test_the_clock_moves_both_engines_alike() -> None:
    pair = Pair(1)
    pair.run("add_queue", QueueConfig("q", members=(Member("a"),), wrapup_seconds=3))
    pair.run("add_agent", AgentConfig("a"))
    pair.run("login", "a")
    pair.clock.advance(timedelta(seconds=2))
    events = pair.run("create_interaction", "i", "q", "voice")
    assert [e.type for e in events][-2:] == ["interaction.offered", "agent.state_changed"]
    pair.run("accept", "i", "a")
    pair.clock.advance(60)
    pair.run("complete", "i", "a")
    pair.clock.advance(3)
    done = pair.run("tick")
    assert [e.type for e in done] == ["interaction.wrapup_ended", "agent.state_changed"]
