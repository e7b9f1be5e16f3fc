"""Scoring (priority, ageing, cross-queue weights), skills, queue entry rules, overflow."""

from __future__ import annotations

from dataclasses import replace

import pytest
from acd_helpers import build, of, offers, one_offer, serve, types

from sparklecomm.acd import (
    AgentConfig,
    Channel,
    Diversion,
    Member,
    PriorityRule,
    QueueConfig,
    RelaxationStep,
)
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound


def busy_engine(**queue_kw: object):  # type: ignore[no-untyped-def]
    """One queue, one agent made busy so that new arrivals wait."""
    engine, clock = build([QueueConfig("q", members=(Member("a"),), **queue_kw)], ["a"])  # type: ignore[arg-type]
    engine.accept(*one_offer(engine.create_interaction("busy", "q", "voice")))
    return engine, clock


def drain_order(engine, clock, agent: str = "a", first: str = "busy") -> list[str]:  # type: ignore[no-untyped-def]
    """Serve everything through one agent and return the order interactions were offered."""
    order = []
    events = engine.complete(first, agent)
    while True:
        found = offers(events)
        if not found:
            return order
        iid, aid = found[0]
        order.append(iid)
        clock.advance(1)
        events = serve(engine, iid, aid)


def test_fifo_within_equal_priority() -> None:
    engine, clock = busy_engine()
    for n in range(5):
        engine.create_interaction(f"i{n}", "q", "voice")
        clock.advance(1)
    assert drain_order(engine, clock) == ["i0", "i1", "i2", "i3", "i4"]


def test_fifo_even_at_the_same_instant() -> None:
    engine, clock = busy_engine()
    for n in range(5):
        engine.create_interaction(f"i{n}", "q", "voice")
    assert drain_order(engine, clock) == ["i0", "i1", "i2", "i3", "i4"]


def test_higher_priority_first() -> None:
    engine, clock = busy_engine()
    engine.create_interaction("low", "q", "voice", priority=0)
    clock.advance(5)
    engine.create_interaction("high", "q", "voice", priority=2)
    assert drain_order(engine, clock) == ["high", "low"]


def test_ageing_lets_a_long_wait_overtake_higher_priority() -> None:
    # one priority level = 60 points = 60 s of waiting at ageing rate 1
    engine, clock = busy_engine()
    engine.create_interaction("old", "q", "voice", priority=0)
    clock.advance(61)
    engine.create_interaction("vip", "q", "voice", priority=1)
    assert drain_order(engine, clock) == ["old", "vip"]
    engine2, clock2 = busy_engine()
    engine2.create_interaction("old", "q", "voice", priority=0)
    clock2.advance(59)
    engine2.create_interaction("vip", "q", "voice", priority=1)
    assert drain_order(engine2, clock2) == ["vip", "old"]


def test_equal_score_is_fifo() -> None:
    # "old" waited exactly one priority level's worth: equal scores, the earlier one first
    engine, clock = busy_engine()
    engine.create_interaction("old", "q", "voice", priority=0)
    clock.advance(60)
    engine.create_interaction("vip", "q", "voice", priority=1)
    snap = engine.queue_snapshot("q")
    assert [e.score for e in snap.entries] == [60.0, 60.0]
    assert drain_order(engine, clock) == ["old", "vip"]


def test_priority_rules_boost_vip_and_dnis() -> None:
    engine, clock = busy_engine(
        priority_rules=(PriorityRule("vip", "gold", 3), PriorityRule("dnis", "+3280012345", 1))
    )
    engine.create_interaction("plain", "q", "voice")
    engine.create_interaction("dnis", "q", "voice", attributes={"dnis": "+3280012345"})
    events = engine.create_interaction("gold", "q", "voice", attributes={"vip": "gold"})
    assert of(events, "interaction.queued")[0]["priority"] == 3
    assert of(events, "interaction.queued")[0]["position"] == 1
    assert drain_order(engine, clock) == ["gold", "dnis", "plain"]


def test_agent_in_several_queues_takes_the_best_score_across_them() -> None:
    queues = [
        QueueConfig("gold", members=(Member("a"),), weight=100),
        QueueConfig("std", members=(Member("a"),)),
    ]
    engine, clock = build(queues, ["a"])
    engine.accept(*one_offer(engine.create_interaction("busy", "std", "voice")))
    engine.create_interaction("s1", "std", "voice")
    clock.advance(50)
    engine.create_interaction("g1", "gold", "voice")  # 100 points of weight beat 50 s of wait
    clock.advance(1)
    assert drain_order(engine, clock) == ["g1", "s1"]
    # 150 s of wait beat the 100 points
    engine.accept(*one_offer(engine.create_interaction("busy2", "std", "voice")))
    engine.create_interaction("s2", "std", "voice")
    clock.advance(150)
    engine.create_interaction("g2", "gold", "voice")
    clock.advance(1)
    assert drain_order(engine, clock, first="busy2") == ["s2", "g2"]


def test_ageing_rate_per_queue() -> None:
    queues = [
        QueueConfig("fast", members=(Member("a"),), ageing_rate=2.0),
        QueueConfig("slow", members=(Member("a"),), ageing_rate=0.5),
    ]
    engine, clock = build(queues, ["a"])
    engine.accept(*one_offer(engine.create_interaction("busy", "slow", "voice")))
    engine.create_interaction("s", "slow", "voice")
    clock.advance(30)
    engine.create_interaction("f", "fast", "voice")
    clock.advance(30)
    # slow: 0.5 * 60 = 30 points; fast: 2 * 30 = 60 points
    assert drain_order(engine, clock) == ["f", "s"]


def test_required_skills_pick_a_qualified_agent() -> None:
    agents = [
        AgentConfig("en", skills={"billing": 3}),
        AgentConfig("es", skills={"billing": 3, "spanish": 4}),
    ]
    engine, _ = build([QueueConfig("q", member_expression="billing")], agents)
    events = engine.create_interaction("i", "q", "voice", required_skills="spanish >= 3")
    assert one_offer(events) == ("i", "es")
    # nobody qualified: it waits, even with "en" available
    events = engine.create_interaction("j", "q", "voice", required_skills="german")
    assert offers(events) == [] and engine.position("j") == 1
    with pytest.raises(InvalidInput) as err:
        engine.create_interaction("k", "q", "voice", required_skills="spanish >=")
    assert err.value.field == "required_skills"


def test_agent_side_routing_skips_interactions_it_cannot_take() -> None:
    agents = [AgentConfig("en", skills={"billing": 1}), AgentConfig("es", skills={"spanish": 2})]
    engine, clock = build(
        [QueueConfig("q", members=(Member("en"), Member("es")))], agents, login=False
    )
    engine.create_interaction("needs-es", "q", "voice", required_skills="spanish")
    clock.advance(1)
    engine.create_interaction("any", "q", "voice")
    # "en" logs in: the head needs Spanish, so it takes the second one
    assert offers(engine.login("en")) == [("any", "en")]
    assert offers(engine.login("es")) == [("needs-es", "es")]


def test_relaxation_lowers_required_levels() -> None:
    cfg = QueueConfig(
        "q", member_expression="spanish", relaxation=(RelaxationStep(20, lower_levels=1),)
    )
    engine, clock = build([cfg], [AgentConfig("es2", skills={"spanish": 2})])
    assert (
        offers(engine.create_interaction("i", "q", "voice", required_skills="spanish >= 3")) == []
    )
    clock.advance(20)
    events = engine.tick()
    assert of(events, "interaction.relaxed")[0]["lowered_levels"] == 1
    assert offers(events) == [("i", "es2")]


def test_relaxation_adds_an_overflow_queue_keeping_the_wait() -> None:
    queues = [
        QueueConfig(
            "tier1", members=(Member("t1"),), relaxation=(RelaxationStep(30, add_queue_id="tier2"),)
        ),
        QueueConfig("tier2", members=(Member("t2"),)),
    ]
    engine, clock = build(queues, ["t1", "t2"])
    engine.accept(*one_offer(engine.create_interaction("busy", "tier1", "voice")))
    engine.create_interaction("i", "tier1", "voice")
    clock.advance(30)
    events = engine.tick()
    assert of(events, "interaction.relaxed")[0]["added_queue_id"] == "tier2"
    offered = of(events, "interaction.offered")
    assert offered[0]["agent_id"] == "t2" and offered[0]["queue_id"] == "tier2"
    assert offered[0]["wait_seconds"] == 30.0
    events = engine.accept("i", "t2")
    assert of(events, "interaction.accepted")[0]["queue_wait_seconds"] == 0.0
    assert of(events, "interaction.accepted")[0]["wait_seconds"] == 30.0


def test_max_wait_overflows_to_the_target_queue_keeping_the_place() -> None:
    queues = [
        QueueConfig(
            "q", members=(Member("a"),), max_wait_seconds=60, on_max_wait=Diversion("backup")
        ),
        QueueConfig("backup", members=(Member("b"),)),
    ]
    engine, clock = build(queues, ["a", "b"])
    engine.accept(*one_offer(engine.create_interaction("busy-a", "q", "voice")))
    engine.accept(*one_offer(engine.create_interaction("busy-b", "backup", "voice")))
    engine.create_interaction("i", "q", "voice")
    clock.advance(10)
    engine.create_interaction("later", "backup", "voice")
    clock.advance(50)
    events = engine.tick()
    assert types(events) == ["interaction.overflowed", "interaction.queued"]
    p = of(events, "interaction.overflowed")[0]
    assert (p["from_queue_id"], p["queue_id"], p["reason"], p["wait_seconds"]) == (
        "q",
        "backup",
        "max_wait",
        60.0,
    )
    assert of(events, "interaction.queued")[0]["reason"] == "overflow"
    # it kept its original queued time: ahead of "later" although it arrived in backup after
    assert engine.position("i") == 1 and engine.position("later") == 2


def test_max_wait_without_target_diverts() -> None:
    engine, clock = busy_engine(max_wait_seconds=30, on_max_wait=Diversion(divert_to="voicemail:q"))
    engine.create_interaction("i", "q", "voice")
    clock.advance(30)
    events = engine.tick()
    assert of(events, "interaction.diverted") == [
        {
            "interaction_id": "i",
            "queue_id": "q",
            "agent_id": None,
            "channel": "voice",
            "reason": "max_wait",
            "divert_to": "voicemail:q",
            "overflow_queue_id": None,
            "wait_seconds": 30.0,
        }
    ]
    with pytest.raises(NotFound):
        engine.position("i")


def test_max_wait_while_offered_waits_for_the_offer_outcome() -> None:
    engine, clock = build(
        [QueueConfig("q", members=(Member("a"),), max_wait_seconds=30, offer_timeout_seconds=20)],
        ["a"],
        login=False,
    )
    engine.create_interaction("i", "q", "voice")
    clock.advance(25)
    engine.login("a")  # offered at 25 s
    clock.advance(5)
    assert types(engine.tick()) == []  # max wait reached while ringing: nothing yet
    clock.advance(15)
    events = engine.tick()  # no answer at 45 s -> now it leaves
    assert types(events)[:1] == ["interaction.offer_timed_out"]
    assert of(events, "interaction.diverted")[0]["reason"] == "max_wait"


def test_max_length_sends_new_arrivals_away() -> None:
    engine, _ = busy_engine(max_length=2, on_full=Diversion(divert_to="busy-tone"))
    engine.create_interaction("i1", "q", "voice")
    engine.create_interaction("i2", "q", "voice")
    events = engine.create_interaction("i3", "q", "voice")
    assert types(events) == ["interaction.created", "interaction.diverted"]
    assert of(events, "interaction.diverted")[0]["reason"] == "full"


def test_ewt_threshold_overflow() -> None:
    queues = [
        QueueConfig(
            "q",
            members=(Member("a"),),
            default_handle_seconds=100,
            ewt_threshold_seconds=150,
            on_ewt=Diversion("other"),
        ),
        QueueConfig("other"),
    ]
    engine, _ = build(queues, ["a"])
    engine.accept(*one_offer(engine.create_interaction("busy", "q", "voice")))
    e1 = engine.create_interaction("i1", "q", "voice")  # EWT 100 s
    assert of(e1, "interaction.queued")[0]["ewt_seconds"] == 100.0
    e2 = engine.create_interaction("i2", "q", "voice")  # EWT 200 s > 150
    assert of(e2, "interaction.overflowed")[0]["reason"] == "ewt"
    assert of(e2, "interaction.queued")[0]["queue_id"] == "other"


def test_waiting_per_agent_ratio_overflow() -> None:
    engine, _ = busy_engine(max_waiting_per_agent=1.0, on_ratio=Diversion(divert_to="vm"))
    engine.create_interaction("i1", "q", "voice")  # 1 waiting / 1 staffed agent
    events = engine.create_interaction("i2", "q", "voice")
    assert of(events, "interaction.diverted")[0]["reason"] == "ratio"


def test_join_when_empty_and_leave_when_empty() -> None:
    cfg = QueueConfig(
        "q",
        members=(Member("a"),),
        join_when_empty=False,
        leave_when_empty=True,
        on_empty=Diversion(divert_to="closed"),
    )
    engine, _clock = build([cfg], ["a"], login=False)
    events = engine.create_interaction("i0", "q", "voice")
    assert of(events, "interaction.diverted")[0]["reason"] == "empty"
    engine.login("a")
    engine.accept(*one_offer(engine.create_interaction("i1", "q", "voice")))
    engine.create_interaction("i2", "q", "voice")
    engine.complete("i1", "a")  # i2 offered to a
    engine.reject("i2", "a")
    events = engine.set_break("a", "lunch")  # last staffed member gone: waiting ones leave
    assert of(events, "interaction.diverted")[0]["interaction_id"] == "i2"
    assert engine.queue_snapshot("q").waiting == 0


def test_overflow_loops_are_cut() -> None:
    queues = [
        QueueConfig("a", join_when_empty=False, on_empty=Diversion("b")),
        QueueConfig("b", join_when_empty=False, on_empty=Diversion("a")),
    ]
    engine, _ = build(queues, [], max_overflow_hops=3)
    events = engine.create_interaction("i", "a", "voice")
    assert types(events).count("interaction.overflowed") == 3
    assert types(events)[-1] == "interaction.diverted"


def test_member_expression_membership_follows_agent_updates() -> None:
    engine, _ = build([QueueConfig("fr", member_expression="french >= 2")], [AgentConfig("a")])
    assert engine.agent_snapshot("a").queues == ()
    events = engine.update_agent(AgentConfig("a", skills={"french": 3}))
    assert of(events, "agent.queues_changed")[0]["queues"] == [
        {"queue_id": "fr", "penalty": 0, "weight": 1}
    ]
    assert engine.agent_snapshot("a").queues == ("fr",)
    assert one_offer(engine.create_interaction("i", "fr", "voice")) == ("i", "a")


def test_update_queue_rekeys_waiting_and_refuses_dropping_a_busy_channel() -> None:
    engine, _ = busy_engine()
    engine.create_interaction("chat", "q", "chat")
    with pytest.raises(Conflict):
        engine.update_queue(QueueConfig("q", members=(Member("a"),), channels=(Channel.VOICE,)))
    engine.update_queue(QueueConfig("q", members=(Member("a"), Member("b")), weight=5))
    assert engine.queue_snapshot("q").entries[0].score == 5.0
    assert (
        of(engine.add_agent(AgentConfig("b")), "agent.queues_changed")[0]["queues"][0]["queue_id"]
        == "q"
    )
    # chat can be taken by a while on voice? no: voice blocks other channels by default
    assert offers(engine.login("b")) == [("chat", "b")]


def test_position_and_ewt() -> None:
    cfg = QueueConfig("q", members=(Member("a"), Member("b")), default_handle_seconds=120)
    engine, clock = build([cfg], ["a", "b"])
    for iid in ("x", "y"):
        engine.accept(*one_offer(engine.create_interaction(iid, "q", "voice")))
    for n in range(3):
        engine.create_interaction(f"w{n}", "q", "voice")
    assert [engine.position(f"w{n}") for n in range(3)] == [1, 2, 3]
    # EWT = position * AHT / staffed agents
    assert [engine.estimated_wait(f"w{n}") for n in range(3)] == [60.0, 120.0, 180.0]
    clock.advance(100)
    engine.complete("x", "a")  # handle time 100 s feeds the average; w0 is offered to a
    assert engine.position("w0") == 0
    assert engine.estimated_wait("w1") == 50.0  # 1 * 100 / 2
    snap = engine.queue_snapshot("q")
    assert (snap.waiting, snap.offered, snap.longest_wait_seconds) == (2, 1, 100.0)
    assert [e.interaction_id for e in snap.entries] == ["w1", "w2"]
    assert snap.agents_by_state["busy"] == 1 and snap.agents_by_state["reserved"] == 1


def test_reconfiguring_the_last_member_does_not_empty_the_queue() -> None:
    cfg = QueueConfig(
        "q", members=(Member("a"),), leave_when_empty=True, on_empty=Diversion(divert_to="closed")
    )
    engine, _ = build([cfg], [AgentConfig("a", capacity={Channel.VOICE: 1})])
    engine.accept(*one_offer(engine.create_interaction("busy", "q", "voice")))
    engine.create_interaction("waiting", "q", "voice")
    events = engine.update_queue(replace(cfg, members=(Member("a", penalty=2),)))
    events += engine.update_agent(AgentConfig("a", capacity={Channel.VOICE: 1, Channel.CHAT: 2}))
    assert "interaction.diverted" not in types(events)
    assert engine.position("waiting") == 1
    events = engine.update_queue(replace(cfg, members=()))  # now it really is empty
    assert of(events, "interaction.diverted")[0]["interaction_id"] == "waiting"


def test_listing_follows_queue_updates_and_removal() -> None:
    engine, _ = build([QueueConfig("q", members=(Member("late"),))], [])
    engine.update_queue(QueueConfig("q", members=(Member("other"),)))
    engine.add_agent(AgentConfig("late"))
    assert engine.agent_snapshot("late").queues == ()
    engine.add_agent(AgentConfig("other"))
    assert engine.agent_snapshot("other").queues == ("q",)
    engine.remove_queue("q")
    assert engine.agent_snapshot("other").queues == ()
    engine.add_queue(QueueConfig("q2", member_expression=""))
    engine.add_agent(AgentConfig("newcomer"))
    assert engine.agent_snapshot("newcomer").queues == ("q2",)
