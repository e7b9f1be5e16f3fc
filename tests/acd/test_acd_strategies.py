"""Each routing strategy picks the agent it promises, and tiers relax over time."""

from __future__ import annotations

from collections import Counter

import pytest
from acd_helpers import build, of, offers, one_offer, serve

from sparklecomm.acd import AgentConfig, Member, QueueConfig, RelaxationStep, Strategy
from sparklecomm.core.errors import Conflict


def queue(strategy: Strategy, agents: list[str], **kw: object) -> QueueConfig:
    return QueueConfig("q", strategy=strategy, members=tuple(Member(a) for a in agents), **kw)  # type: ignore[arg-type]


def first_agent_for(engine, iid: str) -> str:  # type: ignore[no-untyped-def]
    return one_offer(engine.create_interaction(iid, "q", "voice"))[1]


def test_linear_always_starts_at_the_top() -> None:
    engine, _clock = build([queue(Strategy.LINEAR, ["a", "b", "c"])], ["c", "b", "a"])
    picked = []
    for n in range(3):
        aid = first_agent_for(engine, f"i{n}")
        picked.append(aid)
        serve(engine, f"i{n}", aid)
    assert picked == ["a", "a", "a"]
    # with a busy, the next in list order gets it
    engine.accept(*one_offer(engine.create_interaction("x", "q", "voice")))
    assert first_agent_for(engine, "y") == "b"


def test_round_robin_remembers_where_it_stopped() -> None:
    engine, _ = build([queue(Strategy.ROUND_ROBIN, ["a", "b", "c"])], ["a", "b", "c"])
    picked = []
    for n in range(7):
        aid = first_agent_for(engine, f"i{n}")
        picked.append(aid)
        serve(engine, f"i{n}", aid)
    assert picked == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_skips_busy_members_and_wraps() -> None:
    engine, _ = build([queue(Strategy.ROUND_ROBIN, ["a", "b", "c"])], ["a", "b", "c"])
    i0 = first_agent_for(engine, "i0")  # a
    engine.accept("i0", i0)
    i1 = first_agent_for(engine, "i1")  # b
    serve(engine, "i1", i1)
    i2 = first_agent_for(engine, "i2")  # c
    serve(engine, "i2", i2)
    i3 = first_agent_for(engine, "i3")  # a is busy: wraps to b
    assert (i0, i1, i2, i3) == ("a", "b", "c", "b")


def test_longest_idle_prefers_the_agent_free_the_longest() -> None:
    engine, clock = build(
        [queue(Strategy.LONGEST_IDLE, ["a", "b", "c"])], ["a", "b", "c"], login=False
    )
    engine.login("b")
    clock.advance(10)
    engine.login("c")
    clock.advance(10)
    engine.login("a")
    clock.advance(10)
    aid = first_agent_for(engine, "i0")
    assert aid == "b"
    serve(engine, "i0", "b")  # b is now the most recently idle
    assert first_agent_for(engine, "i1") == "c"


def test_fewest_interactions_balances_handled_counts() -> None:
    engine, clock = build([queue(Strategy.FEWEST_INTERACTIONS, ["a", "b"])], ["a", "b"])
    counts: Counter[str] = Counter()
    for n in range(6):
        aid = first_agent_for(engine, f"i{n}")
        counts[aid] += 1
        serve(engine, f"i{n}", aid)
        clock.advance(1)
    assert counts == Counter({"a": 3, "b": 3})
    # handled counts are per login session
    assert engine.agent_snapshot("a").handled == 3


def test_least_talk_time_prefers_the_agent_who_talked_least() -> None:
    engine, clock = build([queue(Strategy.LEAST_TALK_TIME, ["a", "b"])], ["a", "b"])
    engine.accept(*one_offer(engine.create_interaction("long", "q", "voice")))  # a (order)
    engine.accept(*one_offer(engine.create_interaction("short", "q", "voice")))  # b
    clock.advance(10)
    engine.complete("short", "b")
    clock.advance(290)
    engine.complete("long", "a")
    # b talked 10 s, a 300 s
    assert first_agent_for(engine, "next") == "b"
    engine2, clock2 = build([queue(Strategy.LEAST_TALK_TIME, ["a", "b"])], ["a", "b"])
    engine2.accept(*one_offer(engine2.create_interaction("long", "q", "voice")))  # a
    engine2.accept(*one_offer(engine2.create_interaction("short", "q", "voice")))  # b
    clock2.advance(300)
    engine2.complete("long", "a")
    clock2.advance(1)
    engine2.complete("short", "b")  # b is idle more recently but talked 301 s, a 300 s
    assert first_agent_for(engine2, "next") == "a"


def test_best_skill_prefers_the_highest_proficiency() -> None:
    agents = [
        AgentConfig("novice", skills={"billing": 1}),
        AgentConfig("expert", skills={"billing": 5}),
        AgentConfig("mid", skills={"billing": 3}),
    ]
    cfg = QueueConfig(
        "q", strategy=Strategy.BEST_SKILL, best_skill="billing", member_expression="billing"
    )
    engine, _ = build([cfg], agents)
    order = []
    for n in range(3):
        iid = f"i{n}"
        aid = first_agent_for(engine, iid)
        engine.accept(iid, aid)
        order.append(aid)
    assert order == ["expert", "mid", "novice"]


def test_random_is_seeded_and_covers_every_agent() -> None:
    def run(seed: int) -> list[str]:
        engine, _ = build(
            [queue(Strategy.RANDOM, ["a", "b", "c", "d"])], ["a", "b", "c", "d"], seed=seed
        )
        picked = []
        for n in range(200):
            aid = first_agent_for(engine, f"i{n}")
            picked.append(aid)
            serve(engine, f"i{n}", aid)
        return picked

    first = run(7)
    assert first == run(7)  # same seed, same choices
    assert first != run(8)
    counts = Counter(first)
    assert set(counts) == {"a", "b", "c", "d"}
    assert min(counts.values()) > 25  # roughly uniform (expected 50 each)


def test_weighted_random_follows_member_weights() -> None:
    cfg = QueueConfig(
        "q",
        strategy=Strategy.WEIGHTED_RANDOM,
        members=(Member("heavy", weight=9), Member("light", weight=1)),
    )
    engine, _ = build([cfg], ["heavy", "light"], seed=3)
    counts: Counter[str] = Counter()
    for n in range(1000):
        aid = first_agent_for(engine, f"i{n}")
        counts[aid] += 1
        serve(engine, f"i{n}", aid)
    assert 850 <= counts["heavy"] <= 950


def test_weighted_random_falls_back_when_the_drawn_agent_lacks_the_skill() -> None:
    cfg = QueueConfig(
        "q",
        strategy=Strategy.WEIGHTED_RANDOM,
        members=(Member("heavy", weight=50), Member("light", weight=1)),
    )
    agents = [AgentConfig("heavy"), AgentConfig("light", skills={"french": 2})]
    engine, _ = build([cfg], agents, seed=1)
    for n in range(20):
        events = engine.create_interaction(f"i{n}", "q", "voice", required_skills="french")
        assert one_offer(events) == (f"i{n}", "light")
        serve(engine, f"i{n}", "light")


def test_ring_all_offers_everyone_and_first_accept_wins() -> None:
    engine, _ = build([queue(Strategy.RING_ALL, ["a", "b", "c"])], ["a", "b", "c"])
    events = engine.create_interaction("i", "q", "voice")
    assert sorted(agent for _, agent in offers(events)) == ["a", "b", "c"]
    assert all(p["ring_all"] for p in of(events, "interaction.offered"))
    events = engine.accept("i", "b")
    withdrawn = of(events, "interaction.offer_withdrawn")
    assert sorted(p["agent_id"] for p in withdrawn) == ["a", "c"]
    assert {p["reason"] for p in withdrawn} == {"accepted_elsewhere"}
    assert engine.agent_snapshot("a").state == "available"
    assert engine.agent_snapshot("b").state == "busy"
    # a late accept by a loser is refused
    with pytest.raises(Conflict, match=r"not being offered"):
        engine.accept("i", "a")


def test_ring_all_reject_keeps_ringing_the_others() -> None:
    engine, clock = build([queue(Strategy.RING_ALL, ["a", "b"])], ["a", "b"])
    engine.create_interaction("i", "q", "voice")
    events = engine.reject("i", "a")
    assert of(events, "interaction.rejected")[0]["agent_id"] == "a"
    assert engine.interaction_snapshot("i").offered_to == ("b",)
    clock.advance(20)
    events = engine.tick()
    timed_out = of(events, "interaction.offer_timed_out")
    assert [p["agent_id"] for p in timed_out] == ["b"]
    # a's exclusion (reoffer delay: 10 s after its reject) is over, so a is rung again
    assert offers(events) == [("i", "a")]


def test_penalty_tiers_prefer_lower_penalty() -> None:
    cfg = QueueConfig("q", members=(Member("backup", penalty=1), Member("main", penalty=0)))
    engine, _ = build([cfg], ["backup", "main"])
    assert first_agent_for(engine, "i0") == "main"
    assert first_agent_for(engine, "i1") == "backup"  # main busy: next tier


def test_tiers_relax_over_waiting_time() -> None:
    cfg = QueueConfig(
        "q",
        members=(Member("main", penalty=0), Member("backup", penalty=1), Member("far", penalty=2)),
        initial_max_penalty=0,
        relaxation=(RelaxationStep(30, max_penalty=1), RelaxationStep(60, max_penalty=2)),
    )
    engine, clock = build([cfg], ["main", "backup", "far"], login=["main", "backup"])
    engine.accept(*one_offer(engine.create_interaction("i0", "q", "voice")))
    events = engine.create_interaction("i1", "q", "voice")
    assert offers(events) == []  # backup is available but not allowed yet
    assert engine.next_deadline() is not None
    clock.advance(29.9)
    assert offers(engine.tick()) == []
    clock.advance(0.1)
    events = engine.tick()
    relaxed = of(events, "interaction.relaxed")
    assert relaxed[0]["level"] == 1 and relaxed[0]["max_penalty"] == 1
    assert offers(events) == [("i1", "backup")]
    # the agent-side path honours tiers as well: far logs in, i2 waits for level 2
    engine.accept("i1", "backup")
    engine.login("far")
    assert offers(engine.create_interaction("i2", "q", "voice")) == []
    clock.advance(30)
    assert offers(engine.tick()) == []  # level 1 only widens to penalty 1
    clock.advance(30)
    assert offers(engine.tick()) == [("i2", "far")]
