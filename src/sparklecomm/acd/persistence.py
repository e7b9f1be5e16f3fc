"""Plain-data forms of the routing configuration and of a whole engine.

``queue_config_to_dict`` / ``queue_config_from_dict`` (and the agent pair) give the JSON form
of the configuration objects, used in events and by the shell's store and API; ``from_dict``
rejects unknown keys with :class:`~sparklecomm.core.errors.InvalidInput`.

``dump_engine`` / ``load_engine`` back ``AcdEngine.to_snapshot`` / ``from_snapshot``: the
snapshot holds every record (queues, agents, interactions, timers, counters and the random
generator's state); the indexes are derived and rebuilt on load. Times in the snapshot are
integer microseconds since 2020-01-01T00:00:00Z, exactly as the engine keeps them, so a
restored engine makes bit-for-bit the same decisions.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import fields
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import InvalidInput
from sparklecomm.core.hours import hours_from_spec, spec_of

from .model import (
    Agent,
    AgentConfig,
    AgentState,
    CallbackPolicy,
    Channel,
    Diversion,
    EngineConfig,
    Interaction,
    InteractionState,
    Member,
    Offer,
    Participant,
    PostCallSurvey,
    PriorityRule,
    Queue,
    QueueConfig,
    QueueEntry,
    RelaxationStep,
    Role,
    WaitingMedia,
    Wrapup,
)

if TYPE_CHECKING:
    from .engine import AcdEngine

FORMAT = "sparklecomm.acd/1"
E = TypeVar("E", bound="AcdEngine")

_NESTED: dict[str, type[Any]] = {
    "on_max_wait": Diversion,
    "on_full": Diversion,
    "on_ewt": Diversion,
    "on_ratio": Diversion,
    "on_empty": Diversion,
    "on_closed": Diversion,
    "callback": CallbackPolicy,
    "waiting": WaitingMedia,
    "survey": PostCallSurvey,
}
_NESTED_LISTS: dict[str, type[Any]] = {
    "members": Member,
    "relaxation": RelaxationStep,
    "priority_rules": PriorityRule,
}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where} must be an object.", field=where)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidInput(f"Unknown field(s) in {where}: {', '.join(unknown)}.", field=where)
    try:
        return cls(**dict(data))
    except TypeError as exc:
        raise InvalidInput(f"Bad {where}: {exc}.", field=where) from None


def queue_config_to_dict(config: QueueConfig) -> dict[str, Any]:
    result: dict[str, Any] = _plain(config)
    return result


def queue_config_from_dict(data: Mapping[str, Any]) -> QueueConfig:
    """A :class:`QueueConfig` from its JSON form (not yet normalized)."""
    if not isinstance(data, Mapping):
        raise InvalidInput("A queue configuration must be an object.")
    values = dict(data)
    for name, cls in _NESTED.items():
        if name in values and values[name] is not None:
            values[name] = _build(cls, values[name], name)
    for name, cls in _NESTED_LISTS.items():
        if name in values:
            items = values[name]
            if not isinstance(items, list | tuple):
                raise InvalidInput(f"{name} must be a list.", field=name)
            values[name] = tuple(_build(cls, item, name) for item in items)
    if "channels" in values and isinstance(values["channels"], list | tuple):
        values["channels"] = tuple(values["channels"])
    config: QueueConfig = _build(QueueConfig, values, "queue")
    return config


def agent_config_to_dict(config: AgentConfig) -> dict[str, Any]:
    result: dict[str, Any] = _plain(config)
    return result


def agent_config_from_dict(data: Mapping[str, Any]) -> AgentConfig:
    """An :class:`AgentConfig` from its JSON form (not yet normalized)."""
    config: AgentConfig = _build(AgentConfig, data, "agent")
    return config


# --- whole engine ---------------------------------------------------------------------------


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from(state: list[Any]) -> random.Random:
    rng = random.Random()
    rng.setstate((state[0], tuple(state[1]), state[2]))
    return rng


def _dump_interaction(it: Interaction) -> dict[str, Any]:
    return {
        "id": it.id,
        "channel": it.channel.value,
        "priority": it.priority,
        "required_skills": it.required_skills,
        "customer_id": it.customer_id,
        "attributes": it.attributes,
        "created_at": it.created_at,
        "queued_at": it.queued_at,
        "queue_id": it.queue_id,
        "seq": it.seq,
        "state": it.state.value,
        "entries": [
            {
                "queue_id": e.queue_id,
                "entered_at": e.entered_at,
                "level": e.level,
                "priority": e.priority,
                "listed": e.listed,
            }
            for e in it.entries.values()
        ],
        "offers": [
            {
                "agent_id": o.agent_id,
                "queue_id": o.queue_id,
                "offered_at": o.offered_at,
                "deadline": o.deadline,
                "timer_id": o.timer_id,
                "ring_all": o.ring_all,
            }
            for o in it.offers.values()
        ],
        "offer_kind": it.offer_kind,
        "offer_attempts": it.offer_attempts,
        "excluded": it.excluded,
        "agent_id": it.agent_id,
        "participants": [
            {
                "agent_id": aid,
                "role": p.role.value,
                "joined_at": p.joined_at,
                "connected_at": p.connected_at,
            }
            for aid, p in it.participants.items()
        ],
        "leg_started_at": it.leg_started_at,
        "hold_started_at": it.hold_started_at,
        "leg_hold_us": it.leg_hold_us,
        "hops": it.hops,
        "max_wait_reached": it.max_wait_reached,
        "original_channel": it.original_channel.value if it.original_channel else None,
        "callback_phone": it.callback_phone,
        "callback_due_at": it.callback_due_at,
        "callback_attempts": it.callback_attempts,
        "timers": it.timers,
        "direction": it.direction,
    }


def _load_interaction(engine: AcdEngine, d: Mapping[str, Any]) -> Interaction:
    return Interaction(
        id=d["id"],
        channel=Channel(d["channel"]),
        priority=d["priority"],
        required_skills=d["required_skills"],
        expression=engine._compile(d["required_skills"], "required_skills"),
        customer_id=d["customer_id"],
        attributes=dict(d["attributes"]),
        created_at=d["created_at"],
        queued_at=d["queued_at"],
        queue_id=d["queue_id"],
        seq=d["seq"],
        state=InteractionState(d["state"]),
        entries={
            e["queue_id"]: QueueEntry(
                queue_id=e["queue_id"],
                entered_at=e["entered_at"],
                level=e["level"],
                priority=e["priority"],
                key=(0, 0, 0, ""),  # recomputed by _restore_indexes
                listed=e["listed"],
            )
            for e in d["entries"]
        },
        offers={
            o["agent_id"]: Offer(
                o["agent_id"],
                o["queue_id"],
                o["offered_at"],
                o["deadline"],
                o["timer_id"],
                o["ring_all"],
            )
            for o in d["offers"]
        },
        offer_kind=d["offer_kind"],
        offer_attempts=d["offer_attempts"],
        excluded=dict(d["excluded"]),
        agent_id=d["agent_id"],
        participants={
            # Snapshots from before ringing consultations: everyone connected when joining.
            p["agent_id"]: Participant(
                Role(p["role"]), p["joined_at"], p.get("connected_at", p["joined_at"])
            )
            for p in d["participants"]
        },
        leg_started_at=d["leg_started_at"],
        hold_started_at=d["hold_started_at"],
        leg_hold_us=d["leg_hold_us"],
        hops=d["hops"],
        max_wait_reached=d["max_wait_reached"],
        original_channel=Channel(d["original_channel"]) if d["original_channel"] else None,
        callback_phone=d["callback_phone"],
        callback_due_at=d["callback_due_at"],
        callback_attempts=d["callback_attempts"],
        timers=dict(d["timers"]),
        direction=d.get("direction", "inbound"),
    )


def _dump_agent(agent: Agent) -> dict[str, Any]:
    return {
        "config": agent_config_to_dict(agent.config),
        "ordinal": agent.ordinal,
        "state": agent.state.value,
        "reason": agent.reason,
        "since": agent.since,
        "since_iso": agent.since_iso,
        "logged_in_at": agent.logged_in_at,
        "aux_reason": agent.aux_reason,
        "offer": agent.offer,
        "interactions": {iid: ch.value for iid, ch in agent.interactions.items()},
        "rings": sorted(agent.rings),
        "wrapups": [
            {
                "interaction_id": w.interaction_id,
                "channel": w.channel.value,
                "queue_id": w.queue_id,
                "started_at": w.started_at,
                "deadline": w.deadline,
                "timer_id": w.timer_id,
                "talk_us": w.talk_us,
                "hold_us": w.hold_us,
                "outbound": w.outbound,
            }
            for w in agent.wrapups.values()
        ],
        "load": {ch.value: n for ch, n in agent.load.items()},
        "consecutive_misses": agent.consecutive_misses,
        "handled": agent.handled,
        "talk_us": agent.talk_us,
        "idle_since": agent.idle_since,
    }


def _load_agent(d: Mapping[str, Any]) -> Agent:
    config = agent_config_from_dict(d["config"]).normalized()
    return Agent(
        id=config.id,
        config=config,
        ordinal=d["ordinal"],
        state=AgentState(d["state"]),
        reason=d["reason"],
        since=d["since"],
        since_iso=d["since_iso"],
        logged_in_at=d["logged_in_at"],
        aux_reason=d["aux_reason"],
        offer=d["offer"],
        interactions={iid: Channel(ch) for iid, ch in d["interactions"].items()},
        rings=set(d.get("rings", ())),
        wrapups={
            w["interaction_id"]: Wrapup(
                w["interaction_id"],
                Channel(w["channel"]),
                w["queue_id"],
                w["started_at"],
                w["deadline"],
                w["timer_id"],
                w["talk_us"],
                w["hold_us"],
                w.get("outbound", False),
            )
            for w in d["wrapups"]
        },
        load={Channel(ch): n for ch, n in d["load"].items()},
        consecutive_misses=d["consecutive_misses"],
        handled=d["handled"],
        talk_us=d["talk_us"],
        idle_since=d["idle_since"],
    )


def dump_engine(engine: AcdEngine) -> dict[str, Any]:
    cfg = engine._config
    return {
        "format": FORMAT,
        "config": {
            "max_consecutive_misses": cfg.max_consecutive_misses,
            "missed_offers_reason": cfg.missed_offers_reason,
            "reject_counts_as_miss": cfg.reject_counts_as_miss,
            "priority_points": cfg.priority_points,
            "handle_time_window": cfg.handle_time_window,
            "max_overflow_hops": cfg.max_overflow_hops,
            "expression_cache_size": cfg.expression_cache_size,
            "break_reasons": None if cfg.break_reasons is None else sorted(cfg.break_reasons),
        },
        "rng": _rng_state(engine._rng),
        "counters": {
            "next_timer": engine._next_timer,
            "next_seq": engine._next_seq,
            "next_agent_ordinal": engine._next_agent_ordinal,
            "next_queue_ordinal": engine._next_queue_ordinal,
        },
        "queues": [
            {
                "config": queue_config_to_dict(q.config),
                "ordinal": q.ordinal,
                "rr_last": q.rr_last,
                "handle_times": {ch.value: list(v) for ch, v in q.handle_times.items()},
            }
            for q in engine._queues.values()
        ],
        "agents": [_dump_agent(a) for a in engine._agents.values()],
        "interactions": [_dump_interaction(it) for it in engine._interactions.values()],
        "timers": [[tid, t[0], t[1], t[2], t[3]] for tid, t in engine._timers.items()],
        "business_hours": {name: spec_of(h) for name, h in engine._hours.items()},
    }


def load_engine(cls: type[E], data: Mapping[str, Any], clock: Clock) -> E:
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise InvalidInput(f"Not an ACD engine snapshot (expected format {FORMAT!r}).")
    try:
        config = EngineConfig(rng=_rng_from(data["rng"]), **data["config"])
        engine = cls(clock, config)
        counters = data["counters"]
        engine._next_timer = counters["next_timer"]
        engine._next_seq = counters["next_seq"]
        engine._next_agent_ordinal = counters["next_agent_ordinal"]
        engine._next_queue_ordinal = counters["next_queue_ordinal"]
        for qd in data["queues"]:
            qcfg = queue_config_from_dict(qd["config"]).normalized()
            queue: Queue = engine._build_queue(qcfg, qd["ordinal"])
            queue.rr_last = qd["rr_last"]
            queue.handle_times = {Channel(ch): list(v) for ch, v in qd["handle_times"].items()}
            engine._queues[qcfg.id] = queue
        for ad in data["agents"]:
            agent = _load_agent(ad)
            engine._agents[agent.id] = agent
        for idata in data["interactions"]:
            it = _load_interaction(engine, idata)
            engine._interactions[it.id] = it
        engine._timers = {
            int(t[0]): (int(t[1]), str(t[2]), str(t[3]), str(t[4])) for t in data["timers"]
        }
        engine._hours = {
            name: hours_from_spec(name, spec)
            for name, spec in data.get("business_hours", {}).items()
        }
        engine._restore_indexes()
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InvalidInput(f"Corrupt ACD engine snapshot: {exc!r}.") from None
    return engine
