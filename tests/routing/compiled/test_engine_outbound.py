"""The compiled engine against the Python engine: outbound contacts and queued callbacks.

Hypothesis draws a centre (queues taking calls, chats and callbacks, with callback policies,
relaxation that adds queues, max wait and priority rules; agents with room for calls,
callbacks and chats) and a sequence of commands: the basic lifecycle (arrivals, offers
accepted or rejected, completions, abandons, breaks, wrap-ups, time passing) mixed with
outbound contacts the agents start, the questions asked before one (``outbound_refusal``),
customers asking to be called back (now, later, too late, with bad input), and callbacks
the agent could not connect (retried, then exhausted). Both engines get the same commands
on the same fake clock; their events, errors, answers and random draws must be equal.
"""

from __future__ import annotations

import os
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparklecomm.acd import AgentConfig, Channel, Diversion, Member, QueueConfig, Strategy
from sparklecomm.acd.model import CallbackPolicy, PriorityRule, RelaxationStep
from sparklecomm.core.errors import DomainError

from .engine_pair import Pair

_MISSING = object()


class OutboundPair(Pair):
    """`Pair`, also tracking outbound contacts and callbacks that failed."""

    def __init__(self, seed: int, **config: Any) -> None:
        super().__init__(seed, **config)
        self.callbacks: set[str] = set()  # interactions that are callbacks now

    def track(self, type_: str, p: dict[str, Any]) -> None:
        pair = (p.get("interaction_id"), p.get("agent_id"))
        if type_ == "interaction.callback_requested":
            self.callbacks.add(p["interaction_id"])
        if type_ == "interaction.accepted" and p.get("kind") == "outbound":
            self.active.append(pair)
        elif type_ == "callback.attempt_failed":
            self.active.remove(pair)
        else:
            super().track(type_, p)

    def ask(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A query on both engines: the same answer or the same error."""
        try:
            expected = getattr(self.python, method)(*args, **kwargs)
        except DomainError as exc:
            with pytest.raises(type(exc)) as info:
                getattr(self.compiled, method)(*args, **kwargs)
            assert (info.value.detail, info.value.field) == (exc.detail, exc.field)
            return exc
        got = getattr(self.compiled, method)(*args, **kwargs)
        assert got == expected, (method, args, kwargs)
        return got


def agent_config(rng: random.Random, a: int) -> AgentConfig:
    skills = {"billing": rng.randint(1, 5)}
    return AgentConfig(
        f"a{a}",
        skills=skills,
        capacity=rng.choice(
            (
                {Channel.VOICE: 1, Channel.CALLBACK: 1, Channel.CHAT: 2},
                {Channel.VOICE: 1, Channel.CALLBACK: 2},
                {Channel.CHAT: 2, Channel.EMAIL: 1, Channel.TASK: 1, Channel.CALLBACK: 1},
                {Channel.VOICE: 1},
            )
        ),
        voice_blocks_other_channels=rng.random() < 0.7,
    )


def queue_config(rng: random.Random, q: int, n_queues: int, members: list[Member]) -> QueueConfig:
    other = f"q{(q + 1) % n_queues}"
    extra: dict[str, Any] = {}
    if n_queues > 1 and rng.random() < 0.3:
        extra["relaxation"] = (
            RelaxationStep(rng.choice((3, 10)), add_queue_id=other),
            RelaxationStep(20, lower_levels=1),
        )
    if rng.random() < 0.3:
        extra["max_wait_seconds"] = rng.choice((8, 30))
        extra["on_max_wait"] = rng.choice((Diversion(other), Diversion(divert_to="vm")))
    if rng.random() < 0.2:
        extra["priority_rules"] = (PriorityRule("vip", "gold", 5),)
    return QueueConfig(
        f"q{q}",
        **extra,
        strategy=rng.choice(list(Strategy)),
        channels=rng.choice(
            (
                (Channel.VOICE, Channel.CALLBACK),
                (Channel.VOICE, Channel.CALLBACK),
                (Channel.VOICE, Channel.CHAT, Channel.CALLBACK),
                (Channel.CHAT, Channel.EMAIL, Channel.TASK),
                (Channel.VOICE,),
            )
        ),
        members=tuple(members),
        best_skill="billing",
        wrapup_seconds=rng.choice((0, 2, 5, None)),
        offer_timeout_seconds=rng.choice((5, 20)),
        reoffer_delay_seconds=rng.choice((0, 10)),
        service_level_seconds=rng.choice((20, 30.5)),
        callback=CallbackPolicy(
            enabled=rng.random() < 0.85,
            max_attempts=rng.randint(1, 3),
            retry_delay_seconds=rng.choice((0, 4, 30)),
            max_delay_seconds=rng.choice((60, 3600.5)),
        ),
    )


def build(pair: Pair, rng: random.Random, n_agents: int, n_queues: int) -> None:
    members: list[list[Member]] = [[] for _ in range(n_queues)]
    for a in range(n_agents):
        for q in rng.sample(range(n_queues), min(rng.randint(1, 3), n_queues)):
            members[q].append(Member(f"a{a}", penalty=rng.choice((0, 0, 1))))
    for q in range(n_queues):
        pair.run("add_queue", queue_config(rng, q, n_queues, members[q]))
    for a in range(n_agents):
        pair.run("add_agent", agent_config(rng, a))
        if rng.random() < 0.9:
            pair.run("login", f"a{a}")


CHANNELS: list[Any] = ["voice", "voice", "chat", "callback", "email", "task", Channel.VOICE]
CHANNELS += [_MISSING, _MISSING, "fax", None]


def outbound(pair: OutboundPair, rng: random.Random, n_queues: int, iid: str, agent: str) -> None:
    kwargs: dict[str, Any] = {}
    channel = rng.choice(CHANNELS)
    if channel is not _MISSING:
        kwargs["channel"] = channel
    queue = rng.choice((None, None, f"q{rng.randrange(n_queues)}", "q-unknown"))
    if queue is not None or rng.random() < 0.3:
        kwargs["queue_id"] = queue
    if rng.random() < 0.3:
        kwargs["customer_id"] = rng.choice(("c1", None, 7, "x" * 201))
    if rng.random() < 0.3:
        kwargs["attributes"] = rng.choice(({"vip": "gold"}, None, {}, ["bad"]))
    if rng.random() < 0.2:
        pair.ask("outbound_refusal", agent, *([channel] if channel is not _MISSING else []))
    pair.run("start_outbound", iid, agent, **kwargs)


def callback_request(pair: OutboundPair, rng: random.Random, iid: str) -> None:
    kwargs: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.5:
        kwargs["phone"] = rng.choice(("+3221234567", "0470", None, "", "9" * 65, 5))
    now = pair.clock.now()
    kwargs["at"] = rng.choice(
        (
            None,
            None,
            now,
            now - timedelta(seconds=30),
            now + timedelta(seconds=rng.choice((0.5, 3, 10, 45))),
            now + timedelta(seconds=4000),
            now.replace(tzinfo=None),
            "tomorrow",
        )
    )
    if kwargs["at"] is None and rng.random() < 0.5:
        del kwargs["at"]
    pair.run("request_callback", iid, **kwargs)


@settings(
    max_examples=int(os.environ.get("ENGINE_PAIR_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(20, 160))
def test_outbound_and_callbacks_match_the_python_engine(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    pair = OutboundPair(seed)
    n_queues = rng.randint(1, 4)
    n_agents = rng.randint(1, 8)
    build(pair, rng, n_agents, n_queues)
    n = 0
    for _ in range(steps):
        roll = rng.random()
        agent = f"a{rng.randrange(n_agents)}"
        if roll < 0.2:
            pair.run(
                "create_interaction",
                f"i{n}",
                f"q{rng.randrange(n_queues)}",
                rng.choice(("voice", "voice", "voice", "chat", "email")),
                priority=rng.choice((0, 0, 1, 5)),
                required_skills=rng.choice(("", "", "billing >= 3")),
                attributes=rng.choice((None, {"vip": "gold"})),
            )
            n += 1
        elif roll < 0.3:
            # A live id is refused; ids of ended interactions are not reused (an agent
            # wrapping up two interactions of the same id is beyond this port).
            live = pair.python.interaction_ids()
            iid = rng.choice(live) if live and rng.random() < 0.1 else f"i{n}"
            outbound(pair, rng, n_queues, iid, agent)
            n += 1
        elif roll < 0.4 and n:
            live = pair.python.interaction_ids()
            if live and rng.random() < 0.85:
                callback_request(pair, rng, rng.choice(live))
            else:
                callback_request(pair, rng, f"i{rng.randrange(n)}")
        elif roll < 0.5 and pair.offers:
            calls = [p for p in pair.offers if p[0] in pair.callbacks]
            choices = calls if calls and rng.random() < 0.7 else pair.offers
            iid, aid = choices[rng.randrange(len(choices))]
            pair.run(rng.choice(("accept", "accept", "accept", "reject")), iid, aid)
        elif roll < 0.6 and pair.active:
            calls = [p for p in pair.active if p[0] in pair.callbacks]
            choices = calls if calls and rng.random() < 0.5 else pair.active
            iid, aid = choices[rng.randrange(len(choices))]
            if iid in pair.callbacks and rng.random() < 0.6:
                reason = rng.choice((_MISSING, "busy", "no_answer", "", None))
                if reason is _MISSING:
                    pair.run("callback_failed", iid, aid)
                else:
                    pair.run("callback_failed", iid, aid, reason)
            else:
                pair.run(rng.choice(("complete", "complete", "hold", "resume")), iid, aid)
        elif roll < 0.63 and n:
            pair.run("abandon", f"i{rng.randrange(n)}")
        elif roll < 0.68:
            command = rng.choice(("set_break", "set_available", "logout", "login"))
            if command == "set_break":
                pair.run(command, agent, "lunch")
            else:
                pair.run(command, agent)
        elif roll < 0.72 and pair.wrapups:
            iid, aid = pair.wrapups[rng.randrange(len(pair.wrapups))]
            pair.run("end_wrapup", iid, aid)
        elif roll < 0.92:
            pair.clock.advance(rng.choice((0.5, 1, 3, 6, 21, 60)))
            pair.run("tick")
        else:  # mistakes: refused the same way, changing nothing
            iid = f"i{rng.randrange(n)}" if n else "nobody"
            command = rng.choice(MISTAKES)(iid, agent)
            if isinstance(command[-1], dict):
                pair.run(*command[:-1], **command[-1])
            else:
                pair.run(*command)
        if n and rng.random() < 0.2:
            iid = f"i{rng.randrange(n)}"
            if iid in pair.python.interaction_ids():
                assert pair.compiled.position(iid) == pair.python.position(iid)
        if rng.random() < 0.1:
            pair.ask("outbound_refusal", agent, rng.choice(("voice", "chat", "callback")))
        assert pair.compiled.interaction_ids() == pair.python.interaction_ids()
        assert pair.compiled.next_deadline() == pair.python.next_deadline()
    for aid in pair.python.agent_ids():
        snap = pair.python.agent_snapshot(aid)
        assert pair.compiled.agent_state(aid) == (snap.state, snap.reason)


MISTAKES: list[Any] = [
    lambda i, a: ("callback_failed", i, a),
    lambda i, a: ("callback_failed", "nobody", a),
    lambda i, a: ("callback_failed", i, "nobody"),
    lambda i, a: ("callback_failed", i, a, "x" * 101),
    lambda i, a: ("request_callback", "nobody"),
    lambda i, a: ("request_callback", i, {"phone": 12}),
    lambda i, a: ("start_outbound", "", a),
    lambda i, a: ("start_outbound", "new", "nobody"),
    lambda i, a: ("start_outbound", "new", a, "q0", "fax"),
    lambda i, a: ("start_outbound", "new", a, "q0", "voice", {"customer_id": 5}),
]


# -- targeted examples: each message, each path ------------------------------------------------


def centre(**policy: Any) -> OutboundPair:
    """q: calls and callbacks (agents a, b); chat: chats only (a); a with a call and a
    callback of room, b with room for one call; c logged out."""
    pair = OutboundPair(7)
    cb = CallbackPolicy(**policy) if policy else CallbackPolicy()
    pair.run(
        "add_queue",
        QueueConfig(
            "q",
            channels=(Channel.VOICE, Channel.CALLBACK),
            members=(Member("a"), Member("b")),
            wrapup_seconds=5,
            callback=cb,
        ),
    )
    pair.run(
        "add_queue",
        QueueConfig("chat", channels=(Channel.CHAT,), members=(Member("a"),), wrapup_seconds=0),
    )
    pair.run(
        "add_queue",
        QueueConfig(
            "nocb",
            channels=(Channel.VOICE, Channel.CALLBACK),
            callback=CallbackPolicy(enabled=False),
        ),
    )
    pair.run("add_queue", QueueConfig("voiceonly", channels=(Channel.VOICE,)))
    pair.run(
        "add_agent",
        AgentConfig("a", capacity={Channel.VOICE: 1, Channel.CALLBACK: 1, Channel.CHAT: 2}),
    )
    pair.run("add_agent", AgentConfig("b", capacity={Channel.VOICE: 1, Channel.CALLBACK: 1}))
    pair.run("add_agent", AgentConfig("c"))
    pair.run("login", "a")
    pair.run("login", "b")
    return pair


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def refused(pair: OutboundPair, method: str, *args: Any, **kwargs: Any) -> DomainError:
    """Both engines refuse the command the same way; returns the Python error."""
    with pytest.raises(DomainError) as info:
        getattr(pair.python, method)(*args, **kwargs)
    pair.run(method, *args, **kwargs)  # compares the compiled engine's error
    return info.value


def test_an_outbound_call_is_connected_at_once_and_ends_like_any_other() -> None:
    pair = centre()
    events = pair.run("start_outbound", "o1", "a", customer_id="c9", attributes={"x": 1})
    assert types(events) == [
        "interaction.created",
        "interaction.accepted",
        "agent.state_changed",
    ]
    assert events[0].payload["direction"] == "outbound"
    assert events[0].payload["queue_id"] == "q"  # the agent's first queue taking voice
    pair.clock.advance(30)
    pair.run("hold", "o1", "a")
    pair.clock.advance(5)
    pair.run("resume", "o1", "a")
    pair.run("complete", "o1", "a")
    pair.clock.advance(5)
    assert types(pair.run("tick")) == ["interaction.wrapup_ended", "agent.state_changed"]
    # Outbound work does not feed the queue's estimated wait: same EWT on both engines.
    pair.run("create_interaction", "i1", "q", "voice")
    pair.run("start_outbound", "o2", "a", "chat", "chat")
    pair.run("start_outbound", "o3", "a", channel=Channel.CHAT)
    pair.run("start_outbound", "o4", "a", "nocb")  # a need not be a member
    pair.run("complete", "o4", "a")  # no wrap-up in nocb


def test_an_agent_on_break_may_call_out_and_returns_to_the_break() -> None:
    pair = centre()
    pair.run("set_break", "a", "lunch")
    pair.run("start_outbound", "o1", "a", "q")
    pair.run("complete", "o1", "a")
    pair.clock.advance(5)
    events = pair.run("tick")
    assert events[-1].payload["state"] == "break"


def test_outbound_refusals_and_errors_match() -> None:
    pair = centre()
    for channel in ("voice", "chat", "callback", "email", Channel.TASK):
        pair.ask("outbound_refusal", "a", channel)
    pair.ask("outbound_refusal", "a")
    assert pair.ask("outbound_refusal", "c") == "Agent 'c' is not logged in."
    pair.ask("outbound_refusal", "nobody")
    pair.ask("outbound_refusal", "a", "fax")
    pair.ask("outbound_refusal", "a", None)
    pair.ask("outbound_refusal", 5)
    refused(pair, "start_outbound", "", "a")
    refused(pair, "start_outbound", 5, "a")
    refused(pair, "start_outbound", "x" * 201, "a")
    refused(pair, "start_outbound", "o", "nobody")
    refused(pair, "start_outbound", "o", "a", channel="fax")
    refused(pair, "start_outbound", "o", "a", channel=None)
    refused(pair, "start_outbound", "o", "a", channel=3)
    refused(pair, "start_outbound", "o", "b", channel="chat")  # no queue of b takes chat
    refused(pair, "start_outbound", "o", "a", "q-unknown")
    refused(pair, "start_outbound", "o", "a", 5)
    refused(pair, "start_outbound", "o", "a", "chat", "voice")
    refused(pair, "start_outbound", "o", "a", customer_id=5)
    refused(pair, "start_outbound", "o", "a", customer_id="x" * 201)
    refused(pair, "start_outbound", "o", "a", attributes=["bad"])
    refused(pair, "start_outbound", "o", "c")  # not logged in
    pair.run("start_outbound", "o1", "a", "q")
    refused(pair, "start_outbound", "o1", "b")  # exists already
    refused(pair, "start_outbound", "o2", "a")  # busy
    refused(pair, "start_outbound", "o2", "a", "chat", "chat")  # a call blocks chats
    assert pair.ask("outbound_refusal", "a", "chat").startswith("Agent 'a' is busy")
    pair.run("complete", "o1", "a")  # wrap-up: the load stays
    assert "wrapping up" in refused(pair, "start_outbound", "o2", "a").detail
    pair.ask("outbound_refusal", "a")
    pair.run("create_interaction", "i1", "q", "voice")  # offered to b
    assert "offer ringing" in refused(pair, "start_outbound", "o3", "b").detail
    pair.ask("outbound_refusal", "b", "callback")


def test_a_callback_keeps_its_place_waits_for_its_time_and_retries() -> None:
    pair = centre(max_attempts=2, retry_delay_seconds=30, max_delay_seconds=600)
    pair.run("set_break", "a", "lunch")
    pair.run("set_break", "b", "lunch")
    for i in range(3):
        pair.run("create_interaction", f"i{i}", "q", "voice")
        pair.clock.advance(1)
    events = pair.run(
        "request_callback", "i1", phone="+32 2 123", at=pair.clock.now() + timedelta(seconds=60)
    )
    assert types(events) == ["interaction.callback_requested"]
    assert events[0].payload["position"] == 2
    assert pair.compiled.position("i1") == pair.python.position("i1") == 2
    pair.run("abandon", "i0")
    assert pair.compiled.position("i2") == pair.python.position("i2") == 1  # i1 not listed
    pair.clock.advance(30)
    assert pair.run("tick") == []
    pair.run("set_available", "a")  # takes i2: i1 is not due
    pair.run("accept", "i2", "a")
    pair.clock.advance(30)
    events = pair.run("tick")
    assert types(events)[:1] == ["callback.due"]
    pair.run("set_available", "b")  # takes the callback
    assert ("i1", "b") in pair.offers
    pair.run("accept", "i1", "b")
    pair.clock.advance(20)
    events = pair.run("callback_failed", "i1", "b")
    assert events[0].payload["retry_at"] is not None
    assert pair.compiled.position("i1") == pair.python.position("i1")
    pair.clock.advance(30)
    events = pair.run("tick")
    assert "callback.due" in types(events)
    pair.run("accept", "i1", "b")
    events = pair.run("callback_failed", "i1", "b", "busy")
    assert types(events)[:2] == ["callback.attempt_failed", "callback.exhausted"]
    assert "i1" not in pair.compiled.interaction_ids()


def test_a_callback_due_now_is_routed_now_and_completes() -> None:
    pair = centre(retry_delay_seconds=0)
    pair.run("create_interaction", "i0", "q", "voice")  # offered to a
    pair.run("create_interaction", "i1", "q", "voice")  # offered to b
    pair.run("create_interaction", "i2", "q", "voice")
    pair.run("request_callback", "i2", at=pair.clock.now() - timedelta(hours=1))
    refused(pair, "request_callback", "i2")  # a callback already
    pair.run("accept", "i0", "a")
    pair.run("complete", "i0", "a")
    pair.clock.advance(5)
    pair.run("tick")  # a is free again: offered the callback
    pair.run("accept", "i2", "a")
    pair.run("callback_failed", "i2", "a", "no_answer")  # retried at once (delay 0)
    pair.run("accept", "i2", "a")
    events = pair.run("complete", "i2", "a")
    assert events[0].payload["original_channel"] == "voice"


def test_a_scheduled_callback_can_be_abandoned() -> None:
    pair = centre()
    pair.run("logout", "a")
    pair.run("logout", "b")
    pair.run("create_interaction", "i0", "q", "voice")
    pair.run("request_callback", "i0", at=pair.clock.now() + timedelta(seconds=100))
    events = pair.run("abandon", "i0", "cancelled")
    assert events[0].payload["state"] == "scheduled"
    assert pair.compiled.next_deadline() == pair.python.next_deadline() is None


def test_request_callback_errors_match() -> None:
    pair = centre(max_delay_seconds=90)
    pair.run("set_break", "a", "lunch")
    pair.run("create_interaction", "i0", "q", "voice")  # offered to b
    pair.run("create_interaction", "i1", "q", "voice")
    pair.run("create_interaction", "n1", "nocb", "voice")
    pair.run("create_interaction", "v1", "voiceonly", "voice")
    refused(pair, "request_callback", "nobody")
    refused(pair, "request_callback", 5)
    refused(pair, "request_callback", "i0")  # offered
    refused(pair, "request_callback", "n1")  # callbacks disabled
    refused(pair, "request_callback", "v1")  # no callback channel
    for phone in ("", "9" * 65, 5):
        refused(pair, "request_callback", "i1", phone=phone)
    now = pair.clock.now()
    refused(pair, "request_callback", "i1", at=now.replace(tzinfo=None))
    refused(pair, "request_callback", "i1", at="soon")
    error = refused(pair, "request_callback", "i1", at=now + timedelta(seconds=91))
    assert error.detail == "A callback can be at most 90 seconds ahead."
    pair.run("request_callback", "i1", phone="9" * 64, at=now + timedelta(seconds=90))
    refused(pair, "request_callback", "i1")  # scheduled
    pair.run("accept", "i0", "b")
    refused(pair, "request_callback", "i0")  # active


def test_callback_failed_errors_match() -> None:
    pair = centre()
    pair.run("create_interaction", "i0", "q", "voice")  # offered to a
    refused(pair, "callback_failed", "i0", "a")  # offered, not active
    pair.run("accept", "i0", "a")
    refused(pair, "callback_failed", "i0", "a")  # not a callback
    refused(pair, "callback_failed", "nobody", "a")
    refused(pair, "callback_failed", "i0", "nobody")
    refused(pair, "callback_failed", "i0", "b")  # someone else's
    refused(pair, "callback_failed", "i0", "a", "")
    refused(pair, "callback_failed", "i0", "a", None)
    refused(pair, "callback_failed", "i0", "a", reason="x" * 101)


def test_callbacks_drop_queues_without_callbacks_and_their_timers() -> None:
    pair = OutboundPair(3)
    pair.run(
        "add_queue",
        QueueConfig(
            "q",
            channels=(Channel.VOICE, Channel.CALLBACK),
            members=(Member("a"),),
            relaxation=(RelaxationStep(5, add_queue_id="v"), RelaxationStep(10)),
            max_wait_seconds=60,
        ),
    )
    pair.run(
        "add_queue",
        QueueConfig(
            "v",
            channels=(Channel.VOICE,),
            members=(Member("b"),),
            relaxation=(RelaxationStep(4),),
        ),
    )
    pair.run("add_agent", AgentConfig("a", capacity={Channel.VOICE: 1, Channel.CALLBACK: 1}))
    pair.run("add_agent", AgentConfig("b"))
    pair.run("create_interaction", "i0", "q", "voice")
    pair.clock.advance(6)
    assert "interaction.relaxed" in types(pair.run("tick"))  # joins v too
    pair.run("request_callback", "i0", at=pair.clock.now() + timedelta(seconds=20))
    pair.clock.advance(10)
    pair.run("tick")  # relaxation goes on while scheduled
    pair.clock.advance(60)
    events = pair.run("tick")  # due; no max wait for a callback
    assert types(events) == ["callback.due"]
    pair.run("login", "b")  # b is in v only: v left with the callback
    assert pair.offers == []
    pair.run("login", "a")
    assert pair.offers == [("i0", "a")]
