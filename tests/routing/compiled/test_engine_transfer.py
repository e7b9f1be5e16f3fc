"""The compiled engine against the Python engine: transfers, consultation and conference.

Hypothesis draws a centre (queues of every strategy, some with entry rules a transfer into
the queue meets; agents with room for one or several interactions) and a sequence of
commands: the basic lifecycle (arrivals, outbound contacts, accepts, rejects, completions,
hold/resume, wrap-ups, breaks, time passing) among blind transfers to an agent or a queue,
transfers out to a number, consultations (ringing or not) and their answers, conferences,
participants leaving, consultations ended, completions with other participants on the line,
and mistakes (each error message). Both engines get the same commands on the same fake
clock; their events, errors and random draws must be equal.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest
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
from sparklecomm.acd.model import InteractionState, Role

from .engine_pair import Pair

STRATEGIES = list(Strategy)
CAPACITIES = (
    {Channel.VOICE: 1, Channel.CHAT: 2},
    {Channel.CHAT: 3, Channel.EMAIL: 1},
    {Channel.VOICE: 1},
    {Channel.VOICE: 2, Channel.CHAT: 2, Channel.EMAIL: 2},
)
HOURS = {"night": {"timezone": "UTC", "weekly": {"sat": [["00:00", "01:00"]]}}}
NUMBERS: tuple[object, ...] = (
    "+32 2 555 01 01",
    "  2001 ",
    "sip:desk@example.org",
    "",
    "   ",
    "x" * 65,
    "12\x0734",
    5,
    None,
)


class TransferPair(Pair):
    """A pair whose commands are drawn from the reference's own state (not Pair's lists,
    which know nothing of participants)."""

    def track(self, type_: str, p: dict[str, Any]) -> None:
        pass


def build(pair: Pair, rng: random.Random, n_agents: int, n_queues: int) -> None:
    pair.run("set_business_hours", HOURS)
    members: list[list[Member]] = [[] for _ in range(n_queues)]
    for a in range(n_agents):
        for q in rng.sample(range(n_queues), min(rng.randint(1, 2), n_queues)):
            members[q].append(Member(f"a{a}", penalty=rng.choice((0, 0, 1)), weight=1))
    for q in range(n_queues):
        rules: dict[str, Any] = {}
        roll = rng.random()
        other = f"q{(q + 1) % n_queues}" if n_queues > 1 else "elsewhere"
        if roll < 0.1:
            rules = {"max_length": 0, "on_full": Diversion(other)}
        elif roll < 0.2:
            rules = {"hours": "night", "on_closed": Diversion(divert_to="voicemail:x")}
        elif roll < 0.3:
            rules = {"join_when_empty": False, "on_empty": Diversion(other)}
        elif roll < 0.4:
            rules = {"max_wait_seconds": 8, "on_max_wait": Diversion(other)}
        elif roll < 0.5:
            rules = {
                "relaxation": (
                    RelaxationStep(5, max_penalty=1),
                    RelaxationStep(10, add_queue_id=other),
                ),
                "initial_max_penalty": 0,
            }
        pair.run(
            "add_queue",
            QueueConfig(
                f"q{q}",
                strategy=rng.choice(STRATEGIES),
                channels=rng.choice(
                    ((Channel.VOICE, Channel.CHAT), (Channel.VOICE,), (Channel.CHAT, Channel.EMAIL))
                ),
                members=tuple(members[q]),
                best_skill="billing",
                wrapup_seconds=rng.choice((0, 3, 10, None)),
                offer_timeout_seconds=rng.choice((5, 20)),
                reoffer_delay_seconds=rng.choice((0, 10)),
                **rules,
            ),
        )
    for a in range(n_agents):
        pair.run(
            "add_agent",
            AgentConfig(
                f"a{a}",
                skills={"billing": rng.randint(1, 5)},
                capacity=rng.choice(CAPACITIES),
                voice_blocks_other_channels=rng.random() < 0.5,
            ),
        )
        if rng.random() < 0.9:
            pair.run("login", f"a{a}")


def active(pair: Pair) -> list[Any]:
    """The reference's active interactions (the commands are drawn from its state)."""
    return [it for it in pair.python._interactions.values() if it.state is InteractionState.ACTIVE]


def offered(pair: Pair) -> list[tuple[str, str]]:
    return [(it.id, aid) for it in pair.python._interactions.values() for aid in it.offers]


def wrapping(pair: Pair) -> list[tuple[str, str]]:
    return [(iid, a.config.id) for a in pair.python._agents.values() for iid in a.wrapups]


def on_interaction(pair: Pair, rng: random.Random, n_agents: int, n_queues: int) -> None:
    """One command on an active interaction: mostly well-formed, sometimes a mistake."""
    candidates = active(pair)
    busy = [it for it in candidates if len(it.participants) > 1]
    it = rng.choice(busy if busy and rng.random() < 0.6 else candidates)
    owner = it.agent_id
    others = [a for a in it.participants if a != owner]
    anyone = f"a{rng.randrange(n_agents)}"
    engine = pair.python
    free = [a for a, agent in engine._agents.items() if engine._can_take(agent, it.channel)]
    if free and rng.random() < 0.8:
        anyone = rng.choice(free)  # an agent that can be brought in
    # Who gives the command: the owner mostly; else a participant or anyone.
    actor = owner if rng.random() < 0.9 else rng.choice([*others, anyone, "nobody"])
    # Whom it names: an agent on the interaction or another one; sometimes a mistake.
    if rng.random() < 0.9:
        target: object = rng.choice(others + [anyone] * 3 if others else [anyone])
    else:
        target = rng.choice((owner, "nobody", 7))
    roll = rng.random()
    if roll < 0.1:
        disposition = rng.choice((None, None, None, "sale", "", "x" * 101))
        pair.run("complete", it.id, actor, disposition)
    elif roll < 0.16:
        pair.run(rng.choice(("hold", "resume")), it.id, actor)
    elif roll < 0.32:
        kwargs: dict[str, object] = {"to_agent_id": target}
        if rng.random() < 0.2:
            kwargs["priority"] = rng.choice((0, 7, 100, 101, -1, True, "1"))
        pair.run("transfer", it.id, actor, **kwargs)
    elif roll < 0.4:
        kwargs = {"to_queue_id": rng.choice((f"q{rng.randrange(n_queues)}", "nowhere"))}
        if rng.random() < 0.3:
            kwargs["priority"] = rng.choice((3, 50, 101, 2.5))
        pair.run("transfer", it.id, actor, **kwargs)
    elif roll < 0.45:
        pair.run("transfer", it.id, actor, to_number=rng.choice(NUMBERS))
    elif roll < 0.47:
        targets = rng.choice(
            (
                {},
                {"to_agent_id": anyone, "to_queue_id": "q0"},
                {"to_number": "1", "to_queue_id": "q0"},
            )
        )
        pair.run("transfer", it.id, actor, **targets)
    elif roll < 0.62:
        ringing = rng.choice((None, None, True, True, False, "yes"))
        if ringing is None and rng.random() < 0.5:
            pair.run("consult", it.id, actor, target)
        else:
            pair.run("consult", it.id, actor, target, ringing=ringing)
    elif roll < 0.72:
        ringing_ones = [a for a in it.participants if it.participants[a].connected_at is None]
        if ringing_ones and rng.random() < 0.9:
            pair.run("consult_connected", it.id, rng.choice(ringing_ones))
        else:
            pair.run("consult_connected", it.id, rng.choice((anyone, owner)))
    elif roll < 0.8:
        pair.run("conference", it.id, actor, target)
    elif roll < 0.9:
        who = rng.choice(others * 3 + [owner, anyone])
        reason = rng.choice(("default", "default", "busy", "no_answer", None, 7))
        if reason == "default":
            pair.run("leave", it.id, who)
        else:
            pair.run("leave", it.id, who, reason)
    else:
        consulted = [a for a in others if it.participants[a].role is Role.CONSULT]
        pair.run("end_consult", it.id, actor, rng.choice(consulted * 3 + [target]))


def tick(pair: Pair) -> bool:
    """Fire the timers due; False when the Python engine fails with a KeyError (a wrap-up
    replaced by a second one of the same interaction that ended first: the first one's
    timer finds none), which the compiled engine must raise too."""
    try:
        expected = pair.python.tick()
    except KeyError as exc:
        with pytest.raises(KeyError) as compiled:
            pair.compiled.tick()
        assert compiled.value.args == exc.args
        return False
    got = pair.compiled.tick()
    assert [(e.type, e.payload, e.time) for e in got] == [
        (e.type, e.payload, e.time) for e in expected
    ]
    assert pair.python.config.rng.getstate() == pair.compiled.rng.getstate()
    return True


def compare_agents(pair: Pair) -> None:
    for aid in pair.python.agent_ids():
        snap = pair.python.agent_snapshot(aid)
        assert pair.compiled.agent_state(aid) == (snap.state, snap.reason)
    # The whole state: participants (roles, ringing), wrap-ups, loads, timers.
    python, compiled = pair.python.to_snapshot(), pair.compiled.to_snapshot()
    assert compiled == python
    assert json.dumps(compiled, default=repr) == json.dumps(python, default=repr)


@settings(
    max_examples=int(os.environ.get("ENGINE_PAIR_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(20, 200))
def test_transfers_consultations_and_conferences_match_the_python_engine(
    seed: int, steps: int
) -> None:
    rng = random.Random(seed)
    pair = TransferPair(seed)
    n_queues = rng.randint(1, 4)
    n_agents = rng.randint(3, 10)
    build(pair, rng, n_agents, n_queues)
    n = 0
    for _ in range(steps):
        roll = rng.random()
        agent = f"a{rng.randrange(n_agents)}"
        if roll < 0.12:
            queue = pair.python._queues[f"q{rng.randrange(n_queues)}"]
            pair.run(
                "create_interaction",
                f"i{n}",
                queue.id,
                rng.choice(queue.config.channels),
                priority=rng.choice((0, 0, 5)),
            )
            n += 1
        elif roll < 0.32 and offered(pair):
            iid, aid = rng.choice(offered(pair))
            pair.run(rng.choice(("accept", "accept", "accept", "reject")), iid, aid)
        elif roll < 0.7 and active(pair):
            on_interaction(pair, rng, n_agents, n_queues)
        elif roll < 0.75 and wrapping(pair):
            iid, aid = rng.choice(wrapping(pair))
            pair.run("end_wrapup", iid, aid)
        elif roll < 0.79:
            command = rng.choice(("set_break", "set_available", "logout", "login"))
            if command == "set_break":
                pair.run(command, agent, "lunch")
            else:
                pair.run(command, agent)
        elif roll < 0.81 and n:
            pair.run("abandon", f"i{rng.randrange(n)}")
        elif roll < 0.83:  # an outbound contact: its wrap-up does not feed the EWT
            queue = pair.python._queues[f"q{rng.randrange(n_queues)}"]
            pair.run("start_outbound", f"i{n}", agent, queue.id, rng.choice(queue.config.channels))
            n += 1
        else:
            pair.clock.advance(rng.choice((0.5, 1, 3, 6, 21)))
            if not tick(pair):
                return
        assert pair.compiled.interaction_ids() == pair.python.interaction_ids()
    compare_agents(pair)


# -- targeted examples ---------------------------------------------------------------------


def centre(wrapup: float | None = 5) -> Pair:
    """q (voice, chat) and r (chat) with agents a..d; a takes voice i, b takes chat j."""
    pair = TransferPair(7)
    members = tuple(Member(x) for x in "abcd")
    pair.run("add_queue", QueueConfig("q", members=members, wrapup_seconds=wrapup))
    pair.run(
        "add_queue",
        QueueConfig("r", channels=(Channel.CHAT,), members=members[2:], wrapup_seconds=wrapup),
    )
    for x in "abcde":  # e stays logged out
        pair.run("add_agent", AgentConfig(x, capacity={Channel.VOICE: 1, Channel.CHAT: 2}))
    pair.run("login", "a")
    pair.run("create_interaction", "i", "q", "voice")
    pair.run("accept", "i", "a")
    for x in "bcd":
        pair.run("login", x)
    pair.run("create_interaction", "j", "q", "chat")
    offer = [aid for aid in pair.python._interactions["j"].offers]
    assert offer == ["b"]
    pair.run("accept", "j", "b")
    pair.clock.advance(10)
    return pair


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def test_a_ringing_consultation_answered_then_a_consult_transfer() -> None:
    pair = centre()
    events = pair.run("consult", "i", "a", "c")
    assert types(events) == ["interaction.consult_started", "agent.state_changed"]
    assert events[1].payload["state"] == "reserved"
    pair.clock.advance(4)
    events = pair.run("consult_connected", "i", "c")
    assert events[0].payload["ring_seconds"] == 4.0
    pair.clock.advance(30)
    events = pair.run("transfer", "i", "a", to_agent_id="c")
    assert events[0].payload["kind"] == "consult"
    pair.clock.advance(20)
    events = pair.run("complete", "i", "c")
    assert events[0].payload["talk_seconds"] == 20.0  # from the hand-over on
    assert pair.python._interactions.get("i") is None


def test_a_consult_transfer_before_the_phone_is_answered() -> None:
    pair = centre()
    pair.run("consult", "i", "a", "c")
    pair.clock.advance(3)
    pair.run("transfer", "i", "a", to_agent_id="c")
    pair.run("hold", "i", "c")  # refused: its phone still rings
    pair.clock.advance(2)
    events = pair.run("consult_connected", "i", "c")
    assert events[0].payload["role"] == "owner"
    pair.clock.advance(5)
    pair.run("hold", "i", "c")
    pair.clock.advance(5)
    events = pair.run("complete", "i", "c")
    assert (events[0].payload["talk_seconds"], events[0].payload["hold_seconds"]) == (5.0, 5.0)


def test_completing_before_answering_a_handed_over_interaction() -> None:
    pair = centre()
    pair.run("consult", "i", "a", "c")
    pair.run("leave", "i", "a")  # the owner leaves: the only other one takes over, ringing
    pair.clock.advance(2)
    events = pair.run("complete", "i", "c")
    assert events[0].payload["talk_seconds"] == 0.0


def test_a_conference_and_participants_leaving() -> None:
    pair = centre()
    pair.run("consult", "i", "a", "c", ringing=False)
    events = pair.run("conference", "i", "a", "c")
    assert events[0].payload["from_consult"] is True
    pair.run("conference", "i", "a", "d")
    pair.run("conference", "i", "a", "c")  # already in it
    pair.run("conference", "i", "a", "a")  # the owner: already in it too
    pair.run("end_consult", "i", "a", "d")  # not a consultation
    pair.clock.advance(8)
    events = pair.run("leave", "i", "d", "busy")
    assert events[0].payload["reason"] == "busy"
    pair.run("leave", "i", "d")  # not on it any more
    events = pair.run("leave", "i", "a")  # c talks: it takes over
    assert events[0].payload["kind"] == "conference"
    pair.run("leave", "i", "c")  # alone: completes instead
    compare_agents(pair)


def test_complete_drops_the_other_participants() -> None:
    pair = centre()
    pair.run("consult", "i", "a", "c")
    pair.run("conference", "i", "a", "d")
    compare_agents(pair)  # participants in the snapshots
    pair.clock.advance(6)
    events = pair.run("complete", "i", "a")
    assert types(events)[:4] == [
        "interaction.participant_left",
        "agent.state_changed",
        "interaction.participant_left",
        "agent.state_changed",
    ]
    assert [e.payload["connected"] for e in events[:3:2]] == [False, True]


def test_leave_keeps_an_explicit_reason_as_given() -> None:
    pair = centre()
    pair.run("consult", "j", "b", "c")
    events = pair.run("leave", "j", "c", None)
    assert events[0].payload["reason"] is None


def test_end_consult() -> None:
    pair = centre()
    pair.run("consult", "j", "b", "c")  # chat: connected at once
    pair.clock.advance(5)
    events = pair.run("end_consult", "j", "b", "c")
    assert events[0].payload["reason"] == "consult_ended"
    assert events[0].payload["seconds"] == 5.0
    pair.run("end_consult", "j", "b", "c")


def test_a_blind_transfer_not_answered_goes_back_to_its_queue() -> None:
    pair = centre(wrapup=0)
    events = pair.run("transfer", "j", "b", to_agent_id="c", priority=9)
    assert "interaction.offered" in types(events)
    pair.clock.advance(25)
    events = pair.run("tick")
    queued = [e for e in events if e.type == "interaction.queued"]
    assert queued[0].payload["reason"] == "transfer_returned"


def test_a_blind_transfer_accepted() -> None:
    pair = centre()
    pair.run("transfer", "j", "b", to_agent_id="d")
    pair.clock.advance(2)
    events = pair.run("accept", "j", "d")
    assert events[0].payload["kind"] == "transfer"


def test_an_agent_taking_back_the_interaction_it_wraps_up() -> None:
    """A second leg of the same interaction ends the agent's earlier wrap-up of it first
    (reason ``replaced``): its load unit and its timer go with it."""
    pair = centre()
    pair.run("transfer", "j", "b", to_agent_id="c")  # b wraps j up (5 s)
    pair.run("accept", "j", "c")
    pair.clock.advance(1)
    pair.run("transfer", "j", "c", to_agent_id="b")  # b has room for a second chat
    pair.run("accept", "j", "b")
    pair.clock.advance(2)
    events = pair.run("complete", "j", "b")
    ended = [e.payload["reason"] for e in events if e.type == "interaction.wrapup_ended"]
    assert ended == ["replaced"]
    pair.clock.advance(2)
    assert pair.run("tick") == []  # the replaced wrap-up's timer is gone
    pair.clock.advance(5)
    assert [e.payload["reason"] for e in pair.run("tick")][:1] == ["timer"]
    for engine in (pair.python, pair.compiled):
        assert engine.agent_snapshot("b").load == {}  # no load left behind


def test_a_replaced_wrap_up_outlived_by_its_timer_changes_nothing() -> None:
    """A wrap-up replaced by a shorter one of the same interaction: the first one's timer,
    due later, finds nothing to end (engine.py failed there with a KeyError)."""
    pair = TransferPair(3)
    members = (Member("b"),)
    for q, wrapup in (("q", 10), ("r", 2)):
        pair.run(
            "add_queue",
            QueueConfig(q, channels=(Channel.CHAT,), members=members, wrapup_seconds=wrapup),
        )
    pair.run("add_agent", AgentConfig("b", capacity={Channel.CHAT: 2}))
    pair.run("login", "b")
    pair.run("create_interaction", "j", "q", "chat")
    pair.run("accept", "j", "b")
    events = pair.run("transfer", "j", "b", to_queue_id="r")  # b wraps up for q's 10 s
    # b has room for a second chat: r offers j to b again.
    assert [e.payload["agent_id"] for e in events if e.type == "interaction.offered"] == ["b"]
    pair.run("accept", "j", "b")
    pair.run("complete", "j", "b")  # r's 2 s wrap-up replaces q's
    pair.clock.advance(3)
    assert tick(pair)
    pair.clock.advance(10)
    assert tick(pair)
    assert pair.python.agent_snapshot("b").state == "available"


def test_transfers_to_a_queue() -> None:
    pair = centre()
    pair.run("transfer", "i", "a", to_queue_id="r")  # r takes no voice
    events = pair.run("transfer", "j", "b", to_queue_id="r", priority=3)
    assert types(events)[0] == "interaction.transferred"
    assert "interaction.queued" in types(events)


def test_a_transfer_out_to_a_number() -> None:
    pair = centre()
    pair.run("hold", "i", "a")
    pair.clock.advance(2)
    events = pair.run("transfer", "i", "a", to_number="  +32 2 555 01 01 ")
    assert types(events)[:2] == ["interaction.transferred", "interaction.completed"]
    assert events[1].payload["transferred_to"] == "+32 2 555 01 01"
    assert pair.compiled.interaction_ids() == ["j"]


@pytest.mark.parametrize(
    ("command", "args", "kwargs"),
    [
        ("transfer", ("i", "a"), {}),
        ("transfer", ("i", "a"), {"to_agent_id": "c", "to_queue_id": "q"}),
        ("transfer", ("i", "a"), {"to_agent_id": "c", "priority": True}),
        ("transfer", ("i", "a"), {"to_agent_id": "c", "priority": 101}),
        ("transfer", ("i", "a"), {"to_agent_id": "nobody"}),
        ("transfer", ("i", "a"), {"to_agent_id": 3}),
        ("transfer", ("i", "a"), {"to_agent_id": "a"}),
        ("transfer", ("i", "a"), {"to_agent_id": "e"}),
        ("transfer", ("i", "b"), {"to_agent_id": "c"}),
        ("transfer", ("x", "a"), {"to_agent_id": "c"}),
        ("transfer", ("i", "a"), {"to_queue_id": "nowhere"}),
        ("transfer", ("i", "a"), {"to_queue_id": "r"}),
        ("transfer", ("i", "a"), {"to_number": ""}),
        ("transfer", ("i", "a"), {"to_number": "x" * 65}),
        ("transfer", ("i", "a"), {"to_number": "1\n2"}),
        ("transfer", ("i", "a"), {"to_number": 112}),
        ("consult", ("i", "a", "nobody"), {}),
        ("consult", ("i", "a", "c"), {"ringing": "yes"}),
        ("consult", ("i", "a", "c"), {"ringing": 1}),
        ("consult", ("i", "a", "a"), {}),
        ("consult", ("i", "c", "d"), {}),
        ("consult", ("i", "a", "e"), {}),
        ("conference", ("i", "a", "e"), {}),
        ("consult_connected", ("i", "a"), {}),
        ("consult_connected", ("i", "c"), {}),
        ("consult_connected", ("i", "nobody"), {}),
        ("conference", ("i", "a", "a"), {}),
        ("conference", ("i", "a", 5), {}),
        ("leave", ("i", "a"), {}),
        ("leave", ("i", "c"), {}),
        ("leave", ("nothing", "c"), {}),
        ("end_consult", ("i", "a", "c"), {}),
        ("end_consult", ("i", "a", "zz"), {}),
    ],
)
def test_mistakes_are_refused_alike(
    command: str, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    pair = centre()
    assert pair.run(command, *args, **kwargs) == []
    # Refused by both (no events), and nothing changed: the lifecycle goes on alike.
    pair.run("complete", "i", "a")
    pair.run("complete", "j", "b")


def test_mistakes_while_consulting() -> None:
    pair = centre()
    pair.run("consult", "i", "a", "c")
    pair.run("transfer", "i", "a", to_queue_id="q")  # not alone
    pair.run("transfer", "i", "a", to_number="100")  # not alone
    pair.run("transfer", "i", "a", to_agent_id="d")  # not alone
    pair.run("consult", "i", "a", "c")  # already on it
    pair.run("consult", "i", "c", "d")  # not the owner
    pair.run("consult_connected", "i", "a")  # the owner is connected
    pair.run("consult_connected", "j", "c")  # not on j
    pair.run("leave", "j", "c")
    pair.run("transfer", "i", "a", to_agent_id="c")
    pair.run("transfer", "i", "c", to_agent_id="a")  # c has not answered yet
    pair.run("conference", "i", "c", "d")  # nor this
    pair.run("complete", "i", "a")  # a is not the owner any more
    pair.run("consult_connected", "i", "c")
    pair.run("consult_connected", "i", "c")  # connected already
    pair.run("complete", "i", "c")
    pair.run("consult_connected", "i", "c")  # gone
