"""The compiled engine's queries and persistence against the Python engine's.

Hypothesis draws a centre (queues of several strategies and rules, agents) and a sequence of
commands (arrivals, accepts, rejects, completions, hold/resume, abandons, breaks, logins and
logouts, time passing); now and then both engines answer the same queries (estimated wait,
the interaction / queue / agent views, configurations, agent states), and are snapshotted:
the two snapshots must be the same data, and each is restored into the *other* kind of
engine (through JSON, as the platform stores them) — the restored pair then runs on and must
still agree, event for event, draw for draw.
"""

from __future__ import annotations

import json
import os
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
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
from sparklecomm.acd.model import CallbackPolicy, PriorityRule
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import DomainError, InvalidInput

from .engine_pair import CompiledEngine, Pair


class SnapPair(Pair):
    """`Pair`, also tracking outbound contacts and callbacks that could not connect."""

    def track(self, type_: str, p: dict[str, Any]) -> None:
        pair = (p.get("interaction_id"), p.get("agent_id"))
        if type_ == "interaction.accepted" and p.get("kind") == "outbound":
            self.active.append(pair)
        elif type_ == "callback.attempt_failed":
            self.active.remove(pair)
        else:
            super().track(type_, p)


HOURS = {
    "office": {
        "timezone": "Europe/Brussels",
        "weekly": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    },
}
REQUIREMENTS = ["", "", "", "billing >= 2", "spanish and billing > 3", "not trainee"]


def same(python: Any, compiled: Any) -> None:
    """Equal values, and equal JSON text (int vs float, key order)."""
    assert compiled == python
    assert json.dumps(compiled, default=repr) == json.dumps(python, default=repr)


def both(pair: Pair, method: str, *args: Any, **kwargs: Any) -> Any:
    """The same query on both engines: the same answer, or the same error."""
    try:
        expected = getattr(pair.python, method)(*args, **kwargs)
    except (DomainError, TypeError) as exc:
        with pytest.raises(type(exc)) as caught:
            getattr(pair.compiled, method)(*args, **kwargs)
        assert str(caught.value) == str(exc)
        if isinstance(exc, DomainError):
            assert isinstance(caught.value, DomainError)
            assert caught.value.field == exc.field
        return None
    got = getattr(pair.compiled, method)(*args, **kwargs)
    if method == "iter_agent_states":
        expected, got = list(expected), list(got)
    assert type(got) is type(expected)
    assert got == expected, (method, args)
    assert repr(got) == repr(expected)
    return got


def restored(pair: Pair) -> Pair:
    """Snapshot both engines (equal data), then restore each into the other kind."""
    python_snap = pair.python.to_snapshot()
    compiled_snap = pair.compiled.to_snapshot()
    same(python_snap, compiled_snap)
    stored = json.dumps(python_snap)
    new = Pair.__new__(type(pair))
    new.__dict__.update(pair.__dict__)
    new.offers, new.active, new.wrapups = list(pair.offers), list(pair.active), list(pair.wrapups)
    new.python = AcdEngine.from_snapshot(json.loads(json.dumps(compiled_snap)), pair.clock)
    new.compiled = CompiledEngine.from_snapshot(json.loads(stored), pair.clock)
    # Restored engines write back what they were restored from.
    same(json.loads(stored), new.python.to_snapshot())
    same(json.loads(stored), new.compiled.to_snapshot())
    return new


def queries(pair: Pair, rng: random.Random, n: int) -> None:
    for iid in [*pair.python.interaction_ids()[-4:], f"i{rng.randrange(n + 1)}", 7]:
        both(pair, "estimated_wait", iid)
        both(pair, "interaction_snapshot", iid)
        both(pair, "position", iid)
    for qid in [*pair.python.queue_ids(), "nowhere"]:
        both(pair, "queue_snapshot", qid)
        both(pair, "queue_snapshot", qid, limit=rng.choice((0, 1, 2, -1, 100)))
        both(pair, "queue_config", qid)
        both(pair, "queue_open", qid)
    for aid in [*pair.python.agent_ids(), "nobody", None]:
        both(pair, "agent_snapshot", aid)
        both(pair, "agent_config", aid)
    both(pair, "iter_agent_states")
    both(pair, "next_deadline")
    both(pair, "business_hours")


def build(pair: Pair, rng: random.Random, n_agents: int, n_queues: int) -> None:
    members: list[list[Member]] = [[] for _ in range(n_queues)]
    for a in range(n_agents):
        for q in rng.sample(range(n_queues), min(rng.randint(1, 3), n_queues)):
            members[q].append(
                Member(f"a{a}", penalty=rng.choice((0, 0, 1, 2)), weight=rng.randint(1, 5))
            )
    for a in range(n_agents // 2):  # some agents exist before the queues listing them
        pair.run("add_agent", agent_config(rng, a))
    if rng.random() < 0.5:
        pair.run("set_business_hours", HOURS)
    if rng.random() < 0.3:
        pair.run("set_break_reasons", ["lunch", "training", "zzz"])
    for q in range(n_queues):
        pair.run(
            "add_queue",
            QueueConfig(
                f"q{q}",
                **rules(rng, f"q{(q + 1) % n_queues}"),
                strategy=rng.choice(list(Strategy)),
                channels=rng.choice(
                    (
                        (Channel.VOICE, Channel.CHAT),
                        (Channel.VOICE,),
                        (Channel.VOICE, Channel.CALLBACK, Channel.CHAT),
                    )
                ),
                members=tuple(members[q]),
                callback=CallbackPolicy(
                    max_attempts=rng.randint(1, 2), retry_delay_seconds=rng.choice((0, 4))
                ),
                best_skill="billing",
                wrapup_seconds=rng.choice((0, 2, 5, None)),
                offer_timeout_seconds=rng.choice((5, 20)),
                reoffer_delay_seconds=rng.choice((0, 10)),
                weight=rng.choice((0, 30)),
                ageing_rate=rng.choice((1, 0.5, 2)),
            ),
        )
    for a in range(n_agents // 2, n_agents):
        pair.run("add_agent", agent_config(rng, a))
    for a in range(n_agents):
        if rng.random() < 0.9:
            pair.run("login", f"a{a}")


def rules(rng: random.Random, other: str) -> dict[str, object]:
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
        out["hours"] = "office"
        out["on_closed"] = divert
    if rng.random() < 0.3:
        out["priority_rules"] = (PriorityRule("vip", "gold", 5),)
    if rng.random() < 0.25:
        out["member_expression"] = rng.choice(("billing >= 3", "", "spanish"))
        out["member_expression_penalty"] = rng.choice((0, 1))
    return out


def agent_config(rng: random.Random, a: int) -> AgentConfig:
    skills = {"billing": rng.randint(1, 5)}
    if rng.random() < 0.5:
        skills["spanish"] = rng.randint(1, 5)
    return AgentConfig(
        f"a{a}",
        name=rng.choice(("", f"Agent {a}")),
        skills=skills,
        attributes={"trainee": rng.random() < 0.3},
        capacity=rng.choice(
            (
                {Channel.VOICE: 1, Channel.CHAT: 2},
                {Channel.VOICE: 1},
                {Channel.VOICE: 1, Channel.CALLBACK: 1, Channel.CHAT: 1},
            )
        ),
        voice_blocks_other_channels=rng.random() < 0.7,
    )


def step(pair: Pair, rng: random.Random, n_agents: int, n_queues: int, n: int) -> int:
    """One random command; the number of interactions created so far."""
    roll = rng.random()
    agent = f"a{rng.randrange(n_agents)}"
    if roll < 0.25:
        pair.run(
            "create_interaction",
            f"i{n}",
            f"q{rng.randrange(n_queues)}",
            rng.choice(("voice", "chat")),
            priority=rng.choice((0, 0, 1, 2, 100)),
            required_skills=rng.choice(REQUIREMENTS),
            customer_id=rng.choice((None, "c1")),
            attributes=rng.choice((None, {"vip": "gold"}, {"tier": 2, "nested": [1.5, None]})),
        )
        return n + 1
    if roll < 0.38 and pair.offers:
        iid, aid = pair.offers[rng.randrange(len(pair.offers))]
        pair.run(rng.choice(("accept", "accept", "reject")), iid, aid)
    elif roll < 0.47 and pair.active:
        iid, aid = pair.active[rng.randrange(len(pair.active))]
        pair.run(rng.choice(("complete", "complete", "hold", "resume")), iid, aid)
    elif roll < 0.51 and n:
        pair.run("abandon", f"i{rng.randrange(n)}")
    elif roll < 0.57:
        command = rng.choice(("set_break", "set_available", "logout", "login"))
        if command == "set_break":
            pair.run(command, agent, rng.choice(("lunch", "training")))
        else:
            pair.run(command, agent)
    elif roll < 0.61 and n:
        at = pair.clock.now() + timedelta(seconds=rng.choice((0, 5, 60, 600)))
        pair.run("request_callback", f"i{rng.randrange(n)}", phone="+3221234567", at=at)
    elif roll < 0.63 and pair.active:
        iid, aid = pair.active[rng.randrange(len(pair.active))]
        pair.run("callback_failed", iid, aid)
    elif roll < 0.66:
        channel = rng.choice(("voice", "chat", "callback"))
        queue = rng.choice((None, f"q{rng.randrange(n_queues)}"))
        pair.run("start_outbound", f"o{n}", agent, queue, channel)
        return n + 1
    elif roll < 0.69:
        config = rng.choice(("join_queue", "leave_queue", "update_agent"))
        if config == "update_agent":
            pair.run(config, agent_config(rng, rng.randrange(n_agents)))
        elif config == "join_queue":
            pair.run(config, agent, f"q{rng.randrange(n_queues)}", penalty=rng.randint(0, 2))
        else:
            pair.run(config, agent, f"q{rng.randrange(n_queues)}")
    elif roll < 0.7:
        if rng.random() < 0.5:
            pair.run("set_break_reasons", rng.choice((None, ["lunch"], ("lunch", "training"))))
        else:
            pair.run("set_business_hours", rng.choice((None, HOURS)))
    elif roll < 0.73 and pair.wrapups:
        iid, aid = pair.wrapups[rng.randrange(len(pair.wrapups))]
        pair.run("end_wrapup", iid, aid)
    else:
        pair.clock.advance(rng.choice((0.5, 1, 3, 6, 21, 3600)))
        pair.run("tick")
    return n


@settings(
    max_examples=int(os.environ.get("ENGINE_SNAPSHOT_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(10, 120))
def test_snapshots_and_views_match_and_restore_across_engines(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    pair = SnapPair(
        seed,
        priority_points=rng.choice((60.0, 30, 12.5)),
        max_consecutive_misses=rng.choice((1, 3)),
        reject_counts_as_miss=rng.random() < 0.5,
        handle_time_window=rng.choice((2, 50)),
    )
    n_queues = rng.randint(1, 5)
    n_agents = rng.randint(1, 10)
    build(pair, rng, n_agents, n_queues)
    n = 0
    cuts = {rng.randrange(steps), rng.randrange(steps)}
    for k in range(steps):
        n = step(pair, rng, n_agents, n_queues, n)
        if rng.random() < 0.15:
            queries(pair, rng, n)
        if k in cuts:
            pair = restored(pair)
            queries(pair, rng, n)
    pair = restored(pair)
    for _ in range(20):
        n = step(pair, rng, n_agents, n_queues, n)
    queries(pair, rng, n)
    same(pair.python.to_snapshot(), pair.compiled.to_snapshot())


def lifecycle_pair() -> Pair:
    """Two queues, two agents, work in every state: offered, active (held), queued, wrap-up."""
    pair = Pair(7)
    pair.run("set_business_hours", HOURS)
    pair.run("add_agent", AgentConfig("a", skills={"billing": 3}))
    pair.run(
        "add_queue",
        QueueConfig(
            "q",
            members=(Member("a"), Member("b", penalty=1)),
            wrapup_seconds=30,
            hours="office",
            relaxation=(RelaxationStep(5, max_penalty=1),),
            max_wait_seconds=60,
        ),
    )
    pair.run("add_queue", QueueConfig("r", members=(Member("b"),), strategy="random"))
    pair.run("add_agent", AgentConfig("b", capacity={"chat": 2}))
    pair.run("login", "a")
    pair.run("login", "b")
    pair.run("create_interaction", "i1", "q", "voice", attributes={"vip": "gold"})
    pair.run("accept", "i1", "a")
    pair.run("hold", "i1", "a")
    pair.run("create_interaction", "i2", "q", "voice", priority=5, customer_id="c")
    pair.run("create_interaction", "i3", "r", "chat")
    pair.run("create_interaction", "i4", "q", "chat", required_skills="billing > 1")
    pair.clock.advance(7)
    pair.run("tick")
    return pair


def test_queries_in_every_state() -> None:
    pair = lifecycle_pair()
    queries(pair, random.Random(1), 4)
    for qid in ("q", "r"):
        for limit in (None, 0, 1, -1, -5, True):
            both(pair, "queue_snapshot", qid, limit=limit)
        both(pair, "queue_snapshot", qid, limit=1.5)  # TypeError, same message
        both(pair, "queue_snapshot", qid, limit="2")
    pair.run("complete", "i1", "a")
    queries(pair, random.Random(2), 4)
    pair = restored(pair)
    queries(pair, random.Random(3), 4)
    pair.clock.advance(40)
    pair.run("tick")
    queries(pair, random.Random(4), 4)


def test_lookups_refuse_unknown_ids_alike() -> None:
    pair = lifecycle_pair()
    for method in ("estimated_wait", "interaction_snapshot"):
        for bad in ("nope", 5, None):
            both(pair, method, bad)
    for method in ("queue_snapshot", "queue_config"):
        for bad in ("nope", 5, None):
            both(pair, method, bad)
    for method in ("agent_snapshot", "agent_config"):
        for bad in ("nope", 5, None):
            both(pair, method, bad)


def test_the_configurations_are_the_normalized_objects() -> None:
    pair = lifecycle_pair()
    assert pair.compiled.queue_config("q") == pair.python.queue_config("q")
    assert pair.compiled.queue_config("q").name == "q"
    assert pair.compiled.agent_config("b").capacity == {Channel.CHAT: 2}


def test_restored_engines_keep_routing_alike() -> None:
    pair = restored(lifecycle_pair())
    pair.run("reject", "i2", "b") if ("i2", "b") in pair.offers else None
    pair.run("resume", "i1", "a")
    pair.run("complete", "i1", "a")
    pair.clock.advance(31)
    pair.run("tick")
    pair.clock.advance(120)
    pair.run("tick")
    pair = restored(pair)
    pair.run("logout", "b") if not pair.offers else None
    pair.clock.advance(3600)
    pair.run("tick")
    same(pair.python.to_snapshot(), pair.compiled.to_snapshot())


def test_engine_settings_round_trip_with_their_types() -> None:
    pair = Pair(
        3,
        max_consecutive_misses=2,
        missed_offers_reason="missed",
        reject_counts_as_miss=True,
        priority_points=25,
        handle_time_window=5,
        max_overflow_hops=1,
        expression_cache_size=10,
        break_reasons=frozenset({"lunch", "b\u00e9", "Zed"}),
    )
    pair.run("set_break_reasons", ["x", "a"])
    snap = pair.compiled.to_snapshot()
    same(pair.python.to_snapshot(), snap)
    points = snap["config"]["priority_points"]
    assert points == 25 and type(points) is int
    restored(pair)


def from_both(data: Any) -> None:
    """Both engines refuse the data with the same error."""
    clock = FakeClock()
    with pytest.raises(InvalidInput) as expected:
        AcdEngine.from_snapshot(data, clock)
    with pytest.raises(InvalidInput) as got:
        CompiledEngine.from_snapshot(data, clock)
    assert (got.value.detail, got.value.field) == (expected.value.detail, expected.value.field)


def test_bad_snapshots_are_refused_alike() -> None:
    good = lifecycle_pair().python.to_snapshot()
    from_both(None)
    from_both([1, 2])
    from_both({"format": "sparklecomm.acd/0"})
    for key in ("rng", "counters", "queues", "agents", "interactions", "timers", "config"):
        data = json.loads(json.dumps(good))
        del data[key]
        from_both(data)
    data = json.loads(json.dumps(good))
    data["interactions"][0]["channel"] = "fax"
    from_both(data)
    data = json.loads(json.dumps(good))
    data["interactions"][1]["required_skills"] = "(("
    from_both(data)
    data = json.loads(json.dumps(good))
    data["queues"][0]["config"]["strategy"] = "nope"
    from_both(data)
    data = json.loads(json.dumps(good))
    data["config"]["max_consecutive_misses"] = 0
    from_both(data)
    data = json.loads(json.dumps(good))
    data["interactions"][0]["entries"] = [{"queue_id": "gone"}]
    from_both(data)
    data = json.loads(json.dumps(good))
    data["rng"] = [3, 5, None]
    from_both(data)


def test_data_only_the_python_engine_accepts_is_refused_as_corrupt() -> None:
    """A timer of a kind no engine fires: the Python engine loads it (and never runs it);
    the compiled one refuses the snapshot as corrupt rather than guess."""
    data = lifecycle_pair().python.to_snapshot()
    data["timers"].append([999, 0, "mystery", "x", "y"])
    AcdEngine.from_snapshot(data, FakeClock())
    with pytest.raises(InvalidInput, match="Corrupt ACD engine snapshot: ValueError"):
        CompiledEngine.from_snapshot(data, FakeClock())


def test_an_engine_config_default_snapshot_loads_into_a_fresh_compiled_engine() -> None:
    clock = FakeClock()
    empty = AcdEngine(clock, EngineConfig(rng=random.Random(5))).to_snapshot()
    engine = CompiledEngine.from_snapshot(empty, clock)
    same(empty, engine.to_snapshot())
    assert engine.rng.getstate() == random.Random(5).getstate()


def test_older_snapshots_load_alike() -> None:
    """Fields added later (rings, connected_at, outbound, direction, business_hours) take
    their defaults in both engines."""
    pair = lifecycle_pair()
    data = json.loads(json.dumps(pair.python.to_snapshot()))
    del data["business_hours"]
    for agent in data["agents"]:
        del agent["rings"]
        for wrapup in agent["wrapups"]:
            del wrapup["outbound"]
    for it in data["interactions"]:
        del it["direction"]
        for participant in it["participants"]:
            del participant["connected_at"]
    python = AcdEngine.from_snapshot(data, pair.clock)
    compiled = CompiledEngine.from_snapshot(data, pair.clock)
    same(python.to_snapshot(), compiled.to_snapshot())


def test_member_expression_queues_restore_or_are_refused_as_unported() -> None:
    clock = FakeClock()
    python = AcdEngine(clock)
    python.add_agent(AgentConfig("a", skills={"billing": 2}))
    python.add_agent(AgentConfig("b"))
    python.add_queue(QueueConfig("q", member_expression="billing", members=(Member("b"),)))
    python.login("a")
    python.create_interaction("i", "q", "voice")
    data = python.to_snapshot()
    try:
        CompiledEngine(clock).add_queue(QueueConfig("q", member_expression="billing"))
    except NotImplementedError:
        with pytest.raises(NotImplementedError, match="member expressions"):
            CompiledEngine.from_snapshot(data, clock)
        return
    compiled = CompiledEngine.from_snapshot(data, clock)
    same(data, compiled.to_snapshot())
    assert compiled.agent_snapshot("a") == python.agent_snapshot("a")
    assert compiled.queue_snapshot("q") == python.queue_snapshot("q")


def test_settings_this_engine_cannot_hold_are_refused_as_corrupt() -> None:
    data = lifecycle_pair().python.to_snapshot()
    data["config"]["expression_cache_size"] = -1  # the Python engine does not check it
    AcdEngine.from_snapshot(data, FakeClock())
    with pytest.raises(InvalidInput, match="Corrupt ACD engine snapshot: OverflowError"):
        CompiledEngine.from_snapshot(data, FakeClock())
