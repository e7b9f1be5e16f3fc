"""Shared builders for the ACD engine tests."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from sparklecomm.acd import AcdEngine, AgentConfig, EngineConfig, QueueConfig
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.events import NewEvent


def build(
    queues: Iterable[QueueConfig],
    agents: Iterable[AgentConfig | str],
    *,
    login: Iterable[str] | bool = True,
    seed: int = 0,
    **config: Any,
) -> tuple[AcdEngine, FakeClock]:
    """An engine with these queues and agents (logged in unless told otherwise)."""
    clock = FakeClock()
    engine = AcdEngine(clock, EngineConfig(rng=random.Random(seed), **config))
    for queue in queues:
        engine.add_queue(queue)
    ids = []
    for agent in agents:
        cfg = AgentConfig(agent) if isinstance(agent, str) else agent
        engine.add_agent(cfg)
        ids.append(cfg.id)
    to_login = ids if login is True else ([] if login is False else list(login))
    for aid in to_login:
        engine.login(aid)
    return engine, clock


def types(events: Iterable[NewEvent]) -> list[str]:
    return [e.type for e in events]


def of(events: Iterable[NewEvent], type_: str) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.type == type_]


def offers(events: Iterable[NewEvent]) -> list[tuple[str, str]]:
    """(interaction, agent) of every ``interaction.offered`` event, in order."""
    return [(p["interaction_id"], p["agent_id"]) for p in of(events, "interaction.offered")]


def one_offer(events: Iterable[NewEvent]) -> tuple[str, str]:
    found = offers(events)
    assert len(found) == 1, found
    return found[0]


def states(events: Iterable[NewEvent], agent_id: str) -> list[str]:
    return [p["state"] for p in of(events, "agent.state_changed") if p["agent_id"] == agent_id]


def serve(engine: AcdEngine, interaction_id: str, agent_id: str) -> list[NewEvent]:
    """Accept, complete and end wrap-up: the agent is free again afterwards."""
    events = engine.accept(interaction_id, agent_id)
    events += engine.complete(interaction_id, agent_id)
    if interaction_id in engine.agent_snapshot(agent_id).wrapups:
        events += engine.end_wrapup(interaction_id, agent_id)
    return events
