"""The compiled engine against the Python engine: routing, queue rules and agent states.

Hypothesis draws a centre (queues of every strategy with tiers, relaxation, max wait,
overflow and diversion rules, priority rules, business hours; agents with skills,
capacities) and a sequence of commands — arrivals with and without skill requirements,
accepts, rejects, completions, abandons, hold/resume, breaks, logout/login, wrap-ups ended
early, time passing (offer timeouts, wrap-ups, relaxation, max wait, re-offers) and mistakes
(unknown ids, someone else's offer, bad input). Both engines get the same commands on the
same fake clock; their events, errors and random draws must be equal.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparklecomm.acd import (
    AgentConfig,
    Channel,
    Diversion,
    Member,
    QueueConfig,
    RelaxationStep,
    Strategy,
)
from sparklecomm.acd.model import PriorityRule

from .engine_pair import Pair

STRATEGIES = list(Strategy)
HOURS = {
    "office": {
        "timezone": "Europe/Brussels",
        "weekly": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    },
    "night": {"timezone": "UTC", "weekly": {"sat": [["00:00", "01:00"]]}},
}
REQUIREMENTS = ["", "", "", "billing >= 2", "spanish and billing > 3", "not trainee", "billing >="]


def build(pair: Pair, rng: random.Random, n_agents: int, n_queues: int) -> None:
    members: list[list[Member]] = [[] for _ in range(n_queues)]
    for a in range(n_agents):
        for q in rng.sample(range(n_queues), min(rng.randint(1, 3), n_queues)):
            members[q].append(
                Member(f"a{a}", penalty=rng.choice((0, 0, 1, 2)), weight=rng.randint(1, 5))
            )
    half = n_agents // 2
    for a in range(half):  # some agents exist before the queues listing them
        pair.run("add_agent", agent_config(rng, a))
    pair.run("set_business_hours", HOURS)
    for q in range(n_queues):
        other = f"q{(q + 1) % n_queues}"
        pair.run(
            "add_queue",
            QueueConfig(
                f"q{q}",
                **rules(rng, other),
                strategy=rng.choice(STRATEGIES),
                channels=rng.choice(
                    ((Channel.VOICE, Channel.CHAT), (Channel.VOICE,), (Channel.CHAT, Channel.EMAIL))
                ),
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


def rules(rng: random.Random, other: str) -> dict[str, object]:
    """Some of a queue's rules, drawn (each rule in about one queue of three)."""
    out: dict[str, object] = {}
    divert = rng.choice((Diversion(), Diversion(other), Diversion(divert_to="voicemail:x")))
    if rng.random() < 0.3:
        out["relaxation"] = (
            RelaxationStep(rng.choice((5, 10)), max_penalty=1),
            RelaxationStep(20, lower_levels=2, add_queue_id=other),
        )
        out["initial_max_penalty"] = 0
    if rng.random() < 0.3:
        out["max_wait_seconds"] = rng.choice((8, 30))
        out["on_max_wait"] = divert
    if rng.random() < 0.2:
        out["max_length"] = rng.choice((0, 2))
        out["on_full"] = divert
    if rng.random() < 0.2:
        out["max_waiting_per_agent"] = 1.5
        out["on_ratio"] = divert
    if rng.random() < 0.2:
        out["ewt_threshold_seconds"] = rng.choice((0, 100))
        out["on_ewt"] = divert
    if rng.random() < 0.2:
        out["join_when_empty"] = False
        out["leave_when_empty"] = True
        out["on_empty"] = divert
    if rng.random() < 0.2:
        out["hours"] = rng.choice(("office", "night", "unknown"))
        out["on_closed"] = divert
    if rng.random() < 0.3:
        out["priority_rules"] = (PriorityRule("vip", "gold", 5), PriorityRule("tier", 2, -1))
    return out


def agent_config(rng: random.Random, a: int) -> AgentConfig:
    skills = {"billing": rng.randint(1, 5)}
    if rng.random() < 0.5:
        skills["spanish"] = rng.randint(1, 5)
    return AgentConfig(
        f"a{a}",
        skills=skills,
        attributes={"trainee": rng.random() < 0.3},
        capacity=rng.choice(
            (
                {Channel.VOICE: 1, Channel.CHAT: 2},
                {Channel.CHAT: 3, Channel.EMAIL: 1},
                {Channel.VOICE: 1},
            )
        ),
        voice_blocks_other_channels=rng.random() < 0.7,
    )


@settings(
    max_examples=int(os.environ.get("ENGINE_PAIR_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(20, 160))
def test_the_compiled_engine_emits_what_the_python_engine_emits(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    pair = Pair(seed)
    n_queues = rng.randint(1, 6)
    n_agents = rng.randint(1, 12)
    build(pair, rng, n_agents, n_queues)
    n = 0
    for _ in range(steps):
        roll = rng.random()
        agent = f"a{rng.randrange(n_agents)}"
        if roll < 0.3:
            pair.run(
                "create_interaction",
                f"i{n}",
                f"q{rng.randrange(n_queues)}",
                rng.choice(("voice", "chat", "email", Channel.VOICE)),
                priority=rng.choice((0, 0, 1, 2, 100)),
                required_skills=rng.choice(REQUIREMENTS),
                customer_id=rng.choice((None, "c1")),
                attributes=rng.choice((None, {"vip": "gold"}, {"tier": 2, "vip": "no"})),
            )
            n += 1
        elif roll < 0.45 and pair.offers:
            iid, aid = pair.offers[rng.randrange(len(pair.offers))]
            pair.run(rng.choice(("accept", "accept", "reject")), iid, aid)
        elif roll < 0.55 and pair.active:
            iid, aid = pair.active[rng.randrange(len(pair.active))]
            pair.run(rng.choice(("complete", "complete", "hold", "resume")), iid, aid)
        elif roll < 0.6 and n:
            pair.run("abandon", f"i{rng.randrange(n)}", rng.choice(("hangup", "timeout")))
        elif roll < 0.67:
            command = rng.choice(("set_break", "set_available", "logout", "login"))
            if command == "set_break":
                pair.run(command, agent, rng.choice(("lunch", "training")))
            else:
                pair.run(command, agent)
        elif roll < 0.7 and pair.wrapups:
            iid, aid = pair.wrapups[rng.randrange(len(pair.wrapups))]
            pair.run("end_wrapup", iid, aid)
        elif roll < 0.9:
            pair.clock.advance(rng.choice((0.5, 1, 3, 6, 21, 3600)))
            pair.run("tick")
        else:  # mistakes: refused the same way, changing nothing
            command = rng.choice(MISTAKES)(n)
            if isinstance(command[-1], Kw):
                pair.run(*command[:-1], **command[-1])
            else:
                pair.run(*command)
        if n and rng.random() < 0.1 and f"i{n - 1}" in pair.python.interaction_ids():
            iid = f"i{n - 1}"
            assert pair.compiled.position(iid) == pair.python.position(iid)
        assert pair.compiled.interaction_ids() == pair.python.interaction_ids()
    for aid in pair.python.agent_ids():
        snap = pair.python.agent_snapshot(aid)
        assert pair.compiled.agent_state(aid) == (snap.state, snap.reason)


class Kw(dict[str, object]):
    """Keyword arguments of a command in MISTAKES."""


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
    lambda n: ("create_interaction", "new", "q0", "voice", Kw(priority=101)),
    lambda n: ("create_interaction", "new", "q0", "voice", Kw(priority=True)),
    lambda n: ("create_interaction", "new", "q0", "voice", Kw(required_skills="((")),
    lambda n: ("create_interaction", "new", "q0", "voice", Kw(customer_id=5)),
    lambda n: ("login", "a0"),
    lambda n: ("login", "nobody"),
    lambda n: ("reject", f"i{max(n - 1, 0)}", "a0", ""),
    lambda n: ("abandon", "nobody"),
    lambda n: ("abandon", f"i{max(n - 1, 0)}", 7),
    lambda n: ("hold", f"i{max(n - 1, 0)}", "a0"),
    lambda n: ("set_break", "a0", ""),
    lambda n: ("set_available", "a0"),
    lambda n: ("logout", "a0", "x" * 101),
    lambda n: ("end_wrapup", "nothing", "a0"),
    lambda n: ("set_business_hours", ["not", "a", "mapping"]),
    lambda n: ("set_business_hours", {"bad": {"timezone": "Mars/Base"}}),
]


def test_the_clock_moves_both_engines_alike() -> None:
    pair = Pair(1)
    pair.run("add_queue", QueueConfig("q", members=(Member("a"),), wrapup_seconds=3))
    pair.run("add_agent", AgentConfig("a"))
    pair.run("login", "a")
    pair.clock.advance(2)
    events = pair.run("create_interaction", "i", "q", "voice")
    assert [e.type for e in events][-2:] == ["interaction.offered", "agent.state_changed"]
    pair.run("accept", "i", "a")
    pair.clock.advance(60)
    pair.run("complete", "i", "a")
    pair.clock.advance(3)
    done = pair.run("tick")
    assert [e.type for e in done] == ["interaction.wrapup_ended", "agent.state_changed"]


class _Named:
    """Not a str, but names a channel when printed (engine.py parses ``str(channel)``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name


def test_a_channel_given_as_any_object_is_read_by_its_text_alike() -> None:
    pair = Pair(3)
    pair.run("add_queue", QueueConfig("q", members=(Member("a"),)))
    pair.run("add_agent", AgentConfig("a"))
    pair.run("login", "a")
    assert pair.run("create_interaction", "i1", "q", _Named("chat"))
    assert pair.run("create_interaction", "i2", "q", _Named("fax")) == []  # refused alike
