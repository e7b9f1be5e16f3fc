"""The public surface: pinned method signatures, configuration checks and JSON forms."""

from __future__ import annotations

import inspect
import json

import pytest
from acd_helpers import build

import sparklecomm.acd as acd
from sparklecomm.acd import (
    AcdEngine,
    AgentConfig,
    CallbackPolicy,
    Channel,
    Diversion,
    EngineConfig,
    Member,
    PriorityRule,
    QueueConfig,
    RelaxationStep,
    Strategy,
    WaitingMedia,
    agent_config_from_dict,
    agent_config_to_dict,
    queue_config_from_dict,
    queue_config_to_dict,
)
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import InvalidInput

PINNED = {
    "add_queue": "(self, config: 'QueueConfig') -> 'list[NewEvent]'",
    "update_queue": "(self, config: 'QueueConfig') -> 'list[NewEvent]'",
    "remove_queue": "(self, queue_id: 'str') -> 'list[NewEvent]'",
    "add_agent": "(self, config: 'AgentConfig') -> 'list[NewEvent]'",
    "update_agent": "(self, config: 'AgentConfig') -> 'list[NewEvent]'",
    "remove_agent": "(self, agent_id: 'str') -> 'list[NewEvent]'",
    "login": "(self, agent_id: 'str') -> 'list[NewEvent]'",
    "logout": "(self, agent_id: 'str', reason: 'str' = 'logout') -> 'list[NewEvent]'",
    "set_break": "(self, agent_id: 'str', reason: 'str') -> 'list[NewEvent]'",
    "set_available": "(self, agent_id: 'str', reason: 'str' = 'ready') -> 'list[NewEvent]'",
    "set_break_reasons": "(self, reasons: 'Iterable[str] | None') -> 'list[NewEvent]'",
    "set_business_hours": "(self, hours: 'Mapping[str, Any] | None') -> 'list[NewEvent]'",
    "business_hours": "(self) -> 'dict[str, dict[str, Any]]'",
    "queue_open": "(self, queue_id: 'str') -> 'bool | None'",
    "create_interaction": (
        "(self, interaction_id: 'str', queue_id: 'str', channel: 'Channel | str', *, "
        "priority: 'int' = 0, required_skills: 'str' = '', customer_id: 'str | None' = None, "
        "attributes: 'dict[str, Any] | None' = None) -> 'list[NewEvent]'"
    ),
    "accept": "(self, interaction_id: 'str', agent_id: 'str') -> 'list[NewEvent]'",
    "reject": (
        "(self, interaction_id: 'str', agent_id: 'str', reason: 'str' = 'rejected') "
        "-> 'list[NewEvent]'"
    ),
    "hold": "(self, interaction_id: 'str', agent_id: 'str') -> 'list[NewEvent]'",
    "resume": "(self, interaction_id: 'str', agent_id: 'str') -> 'list[NewEvent]'",
    "complete": (
        "(self, interaction_id: 'str', agent_id: 'str', disposition: 'str | None' = None) "
        "-> 'list[NewEvent]'"
    ),
    "end_wrapup": "(self, interaction_id: 'str', agent_id: 'str') -> 'list[NewEvent]'",
    "abandon": "(self, interaction_id: 'str', reason: 'str' = 'hangup') -> 'list[NewEvent]'",
    "transfer": (
        "(self, interaction_id: 'str', agent_id: 'str', *, to_agent_id: 'str | None' = None, "
        "to_queue_id: 'str | None' = None, to_number: 'str | None' = None, "
        "priority: 'int | None' = None) -> 'list[NewEvent]'"
    ),
    "consult": (
        "(self, interaction_id: 'str', agent_id: 'str', target_agent_id: 'str', *, "
        "ringing: 'bool | None' = None) -> 'list[NewEvent]'"
    ),
    "consult_connected": "(self, interaction_id: 'str', agent_id: 'str') -> 'list[NewEvent]'",
    "conference": (
        "(self, interaction_id: 'str', agent_id: 'str', target_agent_id: 'str') -> 'list[NewEvent]'"
    ),
    "leave": (
        "(self, interaction_id: 'str', agent_id: 'str', reason: 'str' = 'left') -> 'list[NewEvent]'"
    ),
    "end_consult": (
        "(self, interaction_id: 'str', agent_id: 'str', target_agent_id: 'str') -> 'list[NewEvent]'"
    ),
    "join_queue": (
        "(self, agent_id: 'str', queue_id: 'str', *, penalty: 'int' = 0, weight: 'int' = 1) "
        "-> 'list[NewEvent]'"
    ),
    "leave_queue": "(self, agent_id: 'str', queue_id: 'str') -> 'list[NewEvent]'",
    "outbound_refusal": (
        "(self, agent_id: 'str', channel: 'Channel | str' = <Channel.VOICE: 'voice'>) "
        "-> 'str | None'"
    ),
    "start_outbound": (
        "(self, interaction_id: 'str', agent_id: 'str', queue_id: 'str | None' = None, "
        "channel: 'Channel | str' = <Channel.VOICE: 'voice'>, *, customer_id: 'str | None' = "
        "None, attributes: 'dict[str, Any] | None' = None) -> 'list[NewEvent]'"
    ),
    "request_callback": (
        "(self, interaction_id: 'str', *, phone: 'str | None' = None, "
        "at: 'datetime | None' = None) -> 'list[NewEvent]'"
    ),
    "callback_failed": (
        "(self, interaction_id: 'str', agent_id: 'str', reason: 'str' = 'no_answer') "
        "-> 'list[NewEvent]'"
    ),
    "tick": "(self) -> 'list[NewEvent]'",
    "next_deadline": "(self) -> 'datetime | None'",
    "position": "(self, interaction_id: 'str') -> 'int | None'",
    "estimated_wait": "(self, interaction_id: 'str') -> 'float | None'",
    "interaction_snapshot": "(self, interaction_id: 'str') -> 'InteractionSnapshot'",
    "queue_snapshot": "(self, queue_id: 'str', *, limit: 'int | None' = None) -> 'QueueSnapshot'",
    "agent_snapshot": "(self, agent_id: 'str') -> 'AgentSnapshot'",
    "queue_config": "(self, queue_id: 'str') -> 'QueueConfig'",
    "agent_config": "(self, agent_id: 'str') -> 'AgentConfig'",
    "queue_ids": "(self) -> 'list[str]'",
    "agent_ids": "(self) -> 'list[str]'",
    "interaction_ids": "(self) -> 'list[str]'",
    "iter_agent_states": "(self) -> 'Iterator[tuple[str, str, str]]'",
    "to_snapshot": "(self) -> 'dict[str, Any]'",
    "from_snapshot": "(data: 'dict[str, Any]', clock: 'Clock') -> 'AcdEngine'",
}


def test_public_methods_are_pinned() -> None:
    public = {
        name: str(inspect.signature(getattr(AcdEngine, name)))
        for name in dir(AcdEngine)
        if not name.startswith("_") and callable(getattr(AcdEngine, name))
    }
    assert public == PINNED
    assert set(acd.__all__) <= set(dir(acd))


def test_configs_round_trip_through_json() -> None:
    queue = QueueConfig(
        "q",
        strategy=Strategy.WEIGHTED_RANDOM,
        channels=(Channel.VOICE, Channel.CALLBACK),
        members=(Member("a", penalty=1, weight=3),),
        relaxation=(RelaxationStep(10, max_penalty=2, lower_levels=1, add_queue_id="r"),),
        on_max_wait=Diversion("r"),
        max_wait_seconds=60,
        callback=CallbackPolicy(max_attempts=2),
        priority_rules=(PriorityRule("vip", True, 2),),
    ).normalized()
    data = json.loads(json.dumps(queue_config_to_dict(queue)))
    assert queue_config_from_dict(data).normalized() == queue
    agent = AgentConfig("a", skills={"x": 2}, attributes={"site": "lyon"}).normalized()
    data = json.loads(json.dumps(agent_config_to_dict(agent)))
    assert agent_config_from_dict(data).normalized() == agent
    with pytest.raises(InvalidInput, match="Unknown field"):
        queue_config_from_dict({"id": "q", "colour": "red"})


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (QueueConfig(""), "id"),
        (QueueConfig("q", strategy="fastest"), "strategy"),  # type: ignore[arg-type]
        (QueueConfig("q", channels=("fax",)), "channels"),  # type: ignore[arg-type]
        (QueueConfig("q", members=(Member("a"), Member("a"))), "members"),
        (QueueConfig("q", members=(Member("a", penalty=-1),)), "members"),
        (QueueConfig("q", member_expression="a ="), "member_expression"),
        (QueueConfig("q", strategy=Strategy.BEST_SKILL), "best_skill"),
        (QueueConfig("q", offer_timeout_seconds=0), "offer_timeout_seconds"),
        (QueueConfig("q", ageing_rate=-1), "ageing_rate"),
        (QueueConfig("q", relaxation=(RelaxationStep(20), RelaxationStep(10))), "relaxation"),
        (QueueConfig("q", on_full=Diversion("q")), "on_full"),
        (QueueConfig("q", max_length=-1), "max_length"),
        (QueueConfig("q", callback=CallbackPolicy(max_attempts=0)), "callback"),
        (
            QueueConfig("q", waiting=WaitingMedia(announce_every_seconds=5)),
            "waiting.announce_every_seconds",
        ),
        (QueueConfig("q", waiting=WaitingMedia(callback_key="11")), "waiting.callback_key"),
        (  # a key to ask for a callback in a queue that has no callback channel
            QueueConfig("q", channels=("voice",), waiting=WaitingMedia(callback_key="1")),  # type: ignore[arg-type]
            "waiting.callback_key",
        ),
        (QueueConfig("q", waiting=WaitingMedia(music_on_hold="yes")), "waiting.music_on_hold"),  # type: ignore[arg-type]
    ],
)
def test_bad_queue_configs_name_the_field(config: QueueConfig, field: str) -> None:
    engine = AcdEngine(FakeClock())
    with pytest.raises(InvalidInput) as err:
        engine.add_queue(config)
    assert err.value.field == field
    assert engine.queue_ids() == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (AgentConfig("a", skills={"x": 6}), "skills"),
        (AgentConfig("a", skills={"x": True}), "skills"),
        (AgentConfig("a", capacity={"fax": 1}), "capacity"),  # type: ignore[dict-item]
        (AgentConfig("a", attributes={"x": object()}), "attributes"),
    ],
)
def test_bad_agent_configs_name_the_field(config: AgentConfig, field: str) -> None:
    engine = AcdEngine(FakeClock())
    with pytest.raises(InvalidInput) as err:
        engine.add_agent(config)
    assert err.value.field == field
    assert engine.agent_ids() == []


def test_engine_config_is_checked() -> None:
    with pytest.raises(InvalidInput):
        AcdEngine(FakeClock(), EngineConfig(max_consecutive_misses=0))


def test_queries_do_not_emit_or_change_state() -> None:
    engine, _ = build([QueueConfig("q", members=(Member("a"),))], ["a"], login=False)
    engine.create_interaction("i", "q", "voice")
    before = engine.to_snapshot()
    engine.position("i")
    engine.estimated_wait("i")
    engine.queue_snapshot("q")
    engine.agent_snapshot("a")
    engine.interaction_snapshot("i")
    engine.next_deadline()
    assert list(engine.iter_agent_states()) == [("a", "logged_out", "created")]
    assert engine.to_snapshot() == before


def test_break_reasons_can_be_replaced_and_are_snapshotted() -> None:
    engine = AcdEngine(FakeClock())
    engine.add_agent(AgentConfig("ana"))
    engine.login("ana")
    assert engine.set_break_reasons(["lunch", "training"]) == []
    assert engine.config.break_reasons == frozenset({"lunch", "training"})
    with pytest.raises(InvalidInput, match="allowed: lunch, training") as info:
        engine.set_break("ana", "nap")
    assert info.value.field == "reason"
    restored = AcdEngine.from_snapshot(engine.to_snapshot(), FakeClock())
    assert restored.config.break_reasons == frozenset({"lunch", "training"})
    before = engine.to_snapshot()
    for bad in ("lunch", [""], [1]):
        with pytest.raises(InvalidInput) as info:
            engine.set_break_reasons(bad)  # type: ignore[arg-type]
        assert info.value.field == "break_reasons"
    assert engine.to_snapshot() == before  # a refused change changes nothing
    engine.set_break_reasons(None)
    engine.set_break("ana", "nap")
    assert engine.agent_snapshot("ana").reason == "nap"
