"""The compiled engine against the Python engine: configuration changes and memberships.

Hypothesis draws a centre (queues with listed members and member expressions, agents with
skills and capacities) and a sequence of commands mixing the routing lifecycle (arrivals,
accepts, completions, breaks, logout/login, time passing) with configuration changes: queues
added, replaced (strategy, channels, members, member expression, relaxation, priority rules)
and removed, agents added, changed (skills, attributes, capacity) and removed, agents joining
and leaving queues — and mistakes. Both engines get the same commands on the same fake clock;
their events, errors, random draws, places in line and agent states must be equal.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparklecomm.acd import (
    AgentConfig,
    Channel,
    Member,
    QueueConfig,
    RelaxationStep,
    Strategy,
)
from sparklecomm.acd.model import PriorityRule

from .engine_pair import Pair

STRATEGIES = list(Strategy)
EXPRESSIONS = [
    None,
    None,
    None,
    "",
    "billing >= 3",
    "spanish",
    "not trainee",
    "billing > 1 and spanish >= 2",
]
REQUIREMENTS = ["", "", "billing >= 2", "spanish", "not trainee"]
CHANNEL_SETS = (
    (Channel.VOICE, Channel.CHAT),
    (Channel.VOICE,),
    (Channel.CHAT, Channel.EMAIL),
    (Channel.CHAT,),
)


def queue_config(rng: random.Random, qid: str, n_agents: int, n_queues: int) -> QueueConfig:
    members = [
        Member(f"a{a}", penalty=rng.choice((0, 0, 1, 2)), weight=rng.randint(1, 5))
        for a in rng.sample(range(n_agents), rng.randint(0, min(n_agents, 4)))
    ]
    extra: dict[str, Any] = {}
    other = f"q{rng.randrange(n_queues + 1)}"
    if other == qid:
        other = "q-other"
    if rng.random() < 0.3:
        extra["relaxation"] = (
            RelaxationStep(rng.choice((5, 10)), max_penalty=1),
            RelaxationStep(20, lower_levels=2, add_queue_id=other),
        )[: rng.randint(1, 2)]
        extra["initial_max_penalty"] = 0
    if rng.random() < 0.3:
        extra["priority_rules"] = (PriorityRule("vip", "gold", 5),)
    if rng.random() < 0.15:
        extra["join_when_empty"] = False
        extra["leave_when_empty"] = True
    if rng.random() < 0.15:
        extra["max_wait_seconds"] = rng.choice((8, 30))
    return QueueConfig(
        qid,
        strategy=rng.choice(STRATEGIES),
        channels=rng.choice(CHANNEL_SETS),
        members=tuple(members),
        member_expression=rng.choice(EXPRESSIONS),
        member_expression_penalty=rng.choice((0, 1, 2)),
        member_expression_weight=rng.randint(1, 5),
        best_skill="billing",
        wrapup_seconds=rng.choice((0, 2, 5)),
        offer_timeout_seconds=rng.choice((5, 20)),
        reoffer_delay_seconds=rng.choice((0, 10)),
        weight=rng.choice((0, 30)),
        ageing_rate=rng.choice((1, 0.5, 2)),
        **extra,
    )


def agent_config(rng: random.Random, aid: str) -> AgentConfig:
    skills = {"billing": rng.randint(1, 5)}
    if rng.random() < 0.5:
        skills["spanish"] = rng.randint(1, 5)
    return AgentConfig(
        aid,
        skills=skills,
        attributes={"trainee": rng.random() < 0.3},
        capacity=rng.choice(
            (
                {Channel.VOICE: 1, Channel.CHAT: 2},
                {Channel.CHAT: 3, Channel.EMAIL: 1},
                {Channel.VOICE: 1},
                {Channel.CHAT: 1},
            )
        ),
        voice_blocks_other_channels=rng.random() < 0.7,
    )


def config_command(pair: Pair, rng: random.Random, n_agents: int, n_queues: int) -> None:
    """One configuration change (sometimes refused)."""
    aid = f"a{rng.randrange(n_agents + 1)}"  # a{n_agents}: often unknown
    qid = f"q{rng.randrange(n_queues + 1)}"
    roll = rng.random()
    if roll < 0.25:
        pair.run("update_queue", queue_config(rng, qid, n_agents, n_queues))
    elif roll < 0.32:
        pair.run("add_queue", queue_config(rng, qid, n_agents, n_queues))
    elif roll < 0.4:
        if rng.random() < 0.5 and qid in pair.python.queue_ids():
            # Empty it first, so that the removal may succeed.
            for iid in pair.python.interaction_ids():
                pair.run("abandon", iid)
        pair.run("remove_queue", qid)
    elif roll < 0.55:
        pair.run("update_agent", agent_config(rng, aid))
    elif roll < 0.6:
        pair.run("add_agent", agent_config(rng, aid))
    elif roll < 0.68:
        if rng.random() < 0.5 and aid in pair.python.agent_ids():
            pair.run("logout", aid)
        pair.run("remove_agent", aid)
    elif roll < 0.85:
        terms: dict[str, Any] = {}
        if rng.random() < 0.7:
            terms["penalty"] = rng.choice((0, 1, 2, -1, None, "1"))
        if rng.random() < 0.5:
            terms["weight"] = rng.choice((1, 3, 100, 0, 101, 2.5))
        pair.run("join_queue", aid, qid, **terms)
    else:
        pair.run("leave_queue", aid, qid)


@settings(
    max_examples=int(os.environ.get("ENGINE_CONFIG_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(20, 120))
def test_configuration_changes_match_the_python_engine(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    pair = Pair(seed)
    n_queues = rng.randint(1, 5)
    n_agents = rng.randint(1, 10)
    half = n_agents // 2
    for a in range(half):  # some agents exist before the queues
        pair.run("add_agent", agent_config(rng, f"a{a}"))
    for q in range(n_queues):
        pair.run("add_queue", queue_config(rng, f"q{q}", n_agents, n_queues))
    for a in range(half, n_agents):
        pair.run("add_agent", agent_config(rng, f"a{a}"))
    for a in range(n_agents):
        if rng.random() < 0.9:
            pair.run("login", f"a{a}")
    n = 0
    for _ in range(steps):
        roll = rng.random()
        agent = f"a{rng.randrange(n_agents)}"
        if roll < 0.25:
            pair.run(
                "create_interaction",
                f"i{n}",
                f"q{rng.randrange(n_queues)}",
                rng.choice(("voice", "chat", "email")),
                priority=rng.choice((0, 0, 1, 100)),
                required_skills=rng.choice(REQUIREMENTS),
                attributes=rng.choice((None, {"vip": "gold"})),
            )
            n += 1
        elif roll < 0.35 and pair.offers:
            iid, aid = pair.offers[rng.randrange(len(pair.offers))]
            pair.run(rng.choice(("accept", "accept", "reject")), iid, aid)
        elif roll < 0.42 and pair.active:
            iid, aid = pair.active[rng.randrange(len(pair.active))]
            pair.run("complete", iid, aid)
        elif roll < 0.47:
            command = rng.choice(("set_break", "set_available", "logout", "login"))
            if command == "set_break":
                pair.run(command, agent, "lunch")
            else:
                pair.run(command, agent)
        elif roll < 0.6:
            pair.clock.advance(rng.choice((0.5, 3, 6, 21)))
            pair.run("tick")
        else:
            config_command(pair, rng, n_agents, n_queues)
        assert pair.compiled.interaction_ids() == pair.python.interaction_ids()
        assert pair.compiled.agent_ids() == pair.python.agent_ids()
        assert pair.compiled.queue_ids() == pair.python.queue_ids()
        if rng.random() < 0.2:
            for iid in pair.python.interaction_ids():
                assert pair.compiled.position(iid) == pair.python.position(iid)
    for aid in pair.python.agent_ids():
        snap = pair.python.agent_snapshot(aid)
        assert pair.compiled.agent_state(aid) == (snap.state, snap.reason)


# -- targeted examples ---------------------------------------------------------------------


def centre(**queue: Any) -> Pair:
    pair = Pair(7)
    pair.run("add_agent", AgentConfig("a", skills={"billing": 3}))
    pair.run("add_agent", AgentConfig("b", skills={"spanish": 2}, attributes={"trainee": True}))
    pair.run("add_queue", QueueConfig("q", **queue))
    pair.run("login", "a")
    pair.run("login", "b")
    return pair


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def test_member_expressions_make_members_after_the_listed_ones() -> None:
    pair = centre(members=(Member("b", penalty=1),), member_expression="billing >= 2")
    events = pair.run("add_agent", AgentConfig("c", skills={"billing": 5}))
    assert types(events) == ["agent.created", "agent.queues_changed"]
    assert events[-1].payload["queues"] == [{"queue_id": "q", "penalty": 0, "weight": 1}]
    pair.run("login", "c")
    # Longest idle among equals, then member order: "b" is listed (penalty 1), "a" first.
    events = pair.run("create_interaction", "i", "q", "voice")
    assert events[-2].payload["agent_id"] == "a"


def test_the_empty_expression_takes_every_agent() -> None:
    pair = centre(member_expression="", member_expression_penalty=2, member_expression_weight=3)
    events = pair.run("add_agent", AgentConfig("c"))
    assert events[-1].payload["queues"] == [{"queue_id": "q", "penalty": 2, "weight": 3}]


def test_agent_changes_move_memberships() -> None:
    pair = centre(member_expression="spanish")
    events = pair.run("update_agent", AgentConfig("a", skills={"spanish": 1}))
    assert types(events)[:2] == ["agent.updated", "agent.queues_changed"]
    events = pair.run("update_agent", AgentConfig("b", skills={"billing": 1}))
    assert events[1].payload["queues"] == []
    # The same memberships: no agent.queues_changed.
    events = pair.run("update_agent", AgentConfig("a", name="Ann", skills={"spanish": 3}))
    assert "agent.queues_changed" not in types(events)


def test_queue_updates_keep_waiting_interactions_in_line() -> None:
    pair = centre(members=(Member("a"),), relaxation=(RelaxationStep(5, max_penalty=1),))
    pair.run("set_break", "a", "lunch")
    pair.run("create_interaction", "i1", "q", "voice")
    pair.run("create_interaction", "i2", "q", "voice", priority=5)
    pair.clock.advance(6)
    pair.run("tick")
    events = pair.run(
        "update_queue",
        QueueConfig("q", members=(Member("b"),), strategy="round-robin", weight=10),
    )
    assert "queue.updated" in types(events)
    assert pair.compiled.position("i2") == pair.python.position("i2")
    pair.run("set_available", "a")
    pair.run("update_queue", QueueConfig("q", members=(Member("a"), Member("b"))))


def test_queue_updates_refuse_to_drop_a_channel_in_use() -> None:
    pair = centre(members=(Member("a"),))
    pair.run("set_break", "a", "lunch")
    pair.run("create_interaction", "i", "q", "chat")
    pair.run("update_queue", QueueConfig("q", channels=(Channel.VOICE,)))
    pair.run("update_queue", QueueConfig("nowhere"))
    pair.run("update_queue", QueueConfig("q", strategy="nope"))
    pair.run("update_queue", QueueConfig("q", member_expression="(("))


def test_removing_queues_and_agents() -> None:
    pair = centre(members=(Member("a"), Member("b")), member_expression="billing")
    pair.run("create_interaction", "i", "q", "voice")
    pair.run("remove_queue", "q")  # the interaction is there
    pair.run("remove_agent", "a")  # logged in
    pair.run("remove_queue", "nowhere")
    pair.run("remove_agent", "nobody")
    pair.run("abandon", "i")
    events = pair.run("logout", "b")
    events = pair.run("remove_agent", "b")
    assert types(events) == ["agent.removed"]
    events = pair.run("remove_queue", "q")
    assert types(events) == ["queue.removed"]
    pair.run("add_queue", QueueConfig("q", member_expression=""))
    pair.run("add_agent", AgentConfig("b"))


def test_joining_and_leaving() -> None:
    pair = centre(members=(Member("a"),), member_expression="spanish")
    events = pair.run("join_queue", "b", "q", penalty=1, weight=4)
    assert types(events)[:3] == ["agent.queue_joined", "queue.updated", "agent.queues_changed"]
    pair.run("join_queue", "b", "q")  # listed already
    pair.run("leave_queue", "b", "q")  # matches the expression
    events = pair.run("leave_queue", "a", "q")
    assert types(events)[:3] == ["agent.queue_left", "queue.updated", "agent.queues_changed"]
    pair.run("leave_queue", "a", "q")  # not listed
    for terms in ({"penalty": -1}, {"penalty": None}, {"weight": 0}, {"weight": "2"}):
        pair.run("join_queue", "a", "q", **terms)
    pair.run("join_queue", "nobody", "q")
    pair.run("join_queue", "a", "nowhere")
    pair.run("leave_queue", 5, "q")
    pair.run("join_queue", "a", "q", penalty=2)


def test_join_queue_takes_its_terms_by_keyword_only() -> None:
    pair = centre()
    with pytest.raises(TypeError):
        pair.compiled.join_queue("a", "q", 1)
    with pytest.raises(TypeError):
        pair.python.join_queue("a", "q", 1)


def test_bad_configurations_are_refused_alike() -> None:
    pair = centre(members=(Member("a"),))
    pair.run("add_queue", QueueConfig("q"))  # exists already
    pair.run("add_queue", QueueConfig("r", member_expression="billing >="))
    pair.run("add_queue", QueueConfig("r", member_expression_penalty=-1))
    pair.run("add_queue", QueueConfig("r", member_expression_weight=0))
    pair.run("add_agent", AgentConfig("a"))  # exists already
    pair.run("add_agent", AgentConfig("c", skills={"billing": 9}))
    pair.run("update_agent", AgentConfig("nobody"))
    pair.run("update_agent", AgentConfig("a", capacity={"fax": 1}))
    pair.run("update_agent", AgentConfig(""))
    assert pair.compiled.queue_ids() == pair.python.queue_ids() == ["q"]
    assert pair.compiled.agent_ids() == pair.python.agent_ids() == ["a", "b"]


def test_capacity_changes_reach_the_ready_indexes() -> None:
    pair = centre(members=(Member("a"), Member("b")), strategy="best-skill", best_skill="billing")
    pair.run("update_agent", AgentConfig("a", skills={"billing": 1}, capacity={"chat": 1}))
    events = pair.run("create_interaction", "i", "q", "voice")
    assert events[-2].payload["agent_id"] == "b"
    pair.run("update_agent", AgentConfig("a", skills={"billing": 5}))
    events = pair.run("create_interaction", "j", "q", "voice")
    assert events[-2].payload["agent_id"] == "a"
