"""The routing engine (automatic call distribution): commands in, events out.

:class:`AcdEngine` is pure: no I/O, no asyncio, no wall clock (an injected
:class:`~sparklecomm.core.clock.Clock`), no randomness but the seeded ``random.Random`` of its
:class:`~sparklecomm.acd.model.EngineConfig`. Every mutating method validates first (raising
:mod:`sparklecomm.core.errors` and changing nothing), then mutates, routes eagerly (an available
agent gets an offer at once) and returns the :class:`~sparklecomm.core.events.NewEvent` list
describing what happened, in order. Timers (offer timeouts, wrap-up, relaxation, max wait,
callbacks) fire in :meth:`AcdEngine.tick`; :meth:`AcdEngine.next_deadline` says when.

Routing keeps one invariant after every command and tick: no waiting interaction could be
offered to an agent who is available for it. It is kept incrementally — whenever an
interaction becomes routable it looks for an agent in its queues' ready indexes, and whenever
an agent becomes available it looks at the heads of its queues' waiting lists — so no routing
decision scans all agents or all interactions. See docs/routing.md for the rules.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sparklecomm.core.events import NewEvent
from sparklecomm.core.hours import BusinessHours, hours_from_spec, spec_of

from . import persistence
from .expressions import SkillExpression, compile_expression
from .model import (
    EPOCH,
    MAX_PRIORITY,
    PHONE_CHANNELS,
    US,
    Agent,
    AgentConfig,
    AgentState,
    Channel,
    Diversion,
    EngineConfig,
    Interaction,
    InteractionState,
    IsoText,
    Member,
    Membership,
    Offer,
    Participant,
    Queue,
    QueueConfig,
    QueueEntry,
    Role,
    Strategy,
    WaitKey,
    Wrapup,
    check_attributes,
    compile_member_expression,
    from_us,
    parse_channel,
    seconds_to_us,
    to_us,
)
from .sortedlist import SortedList
from .strategies import LOAD_STRATEGIES, ReadyIndex, strategy_key_for
from .views import AgentSnapshot, InteractionSnapshot, QueueSnapshot, WaitingEntry

Payload = dict[str, Any]

_VOICE = Channel.VOICE
_CALLBACK = Channel.CALLBACK
_QUEUED = InteractionState.QUEUED
_SCHEDULED = InteractionState.SCHEDULED
_OFFERED = InteractionState.OFFERED
_ACTIVE = InteractionState.ACTIVE
_LOGGED_OUT = AgentState.LOGGED_OUT
_BUSY = AgentState.BUSY
_RESERVED = AgentState.RESERVED
_WRAP_UP = AgentState.WRAP_UP
_BREAK = AgentState.BREAK
_AVAILABLE = AgentState.AVAILABLE
_LOAD_STRATEGIES = LOAD_STRATEGIES
_LONGEST_IDLE = Strategy.LONGEST_IDLE
_FEWEST = Strategy.FEWEST_INTERACTIONS
_LEAST_TALK = Strategy.LEAST_TALK_TIME
_WEIGHTED = Strategy.WEIGHTED_RANDOM
_EXPRESSION_ORDER_BASE = 1_000_000  # expression members come after the listed members
# Arrivals a closed queue turns away (a transfer that comes back, or a callback that falls
# due, keeps its place instead).
_CLOSABLE = frozenset(("new", "transfer", "overflow"))
# Enum member -> its string, for event payloads (a dict lookup beats the ``.value`` property
# on the hot path).
_CHANNELS: dict[str, Channel] = {c.value: c for c in Channel}
_NAME: dict[Any, str] = {
    m: m.value for enum in (Channel, AgentState, InteractionState, Role, Strategy) for m in enum
}


def _sec(us: int) -> float:
    return us / US


_object_new = object.__new__
# The slot descriptors of the frozen, slotted NewEvent: setting them directly builds the very
# same object as ``NewEvent(type, payload, time)`` without the frozen dataclass ``__init__``
# (three ``object.__setattr__`` calls through a builtins lookup), about twice as fast.
if [f.name for f in fields(NewEvent)] != ["type", "payload", "time"]:  # pragma: no cover
    raise RuntimeError("NewEvent changed: update _new_event in sparklecomm.acd.engine.")
_set_type: Callable[[NewEvent, str], None] = vars(NewEvent)["type"].__set__
_set_payload: Callable[[NewEvent, Payload], None] = vars(NewEvent)["payload"].__set__
_set_time: Callable[[NewEvent, datetime], None] = vars(NewEvent)["time"].__set__


def _new_event(type_: str, payload: Payload, time: datetime) -> NewEvent:
    """``NewEvent(type_, payload, time)``, built faster (events are the bulk of the work)."""
    event: NewEvent = _object_new(NewEvent)
    _set_type(event, type_)
    _set_payload(event, payload)
    _set_time(event, time)
    return event


class AcdEngine:
    """Queues, agents and interactions, routed by score and strategy. See the module doc."""

    def __init__(self, clock: Clock, config: EngineConfig | None = None) -> None:
        self._clock = clock
        self._config = (config or EngineConfig()).normalized()
        self._rng = self._config.rng
        self._agents: dict[str, Agent] = {}
        self._queues: dict[str, Queue] = {}
        self._interactions: dict[str, Interaction] = {}
        self._timers: dict[int, tuple[int, str, str, str]] = {}  # id -> (due, kind, a, b)
        self._heap: list[tuple[int, int]] = []
        self._next_timer = 1
        self._next_seq = 1
        self._next_agent_ordinal = 0
        self._next_queue_ordinal = 0
        self._expressions: dict[str, SkillExpression] = {}
        self._listed_in: dict[str, dict[str, None]] = {}  # agent -> queues listing it
        self._expression_queues: dict[str, None] = {}  # queues with a member expression
        self._hours: dict[str, BusinessHours] = {}  # business hours by name (queues' hours)
        # Per command:
        self._events: list[NewEvent] = []
        self._now = 0
        self._now_dt: datetime = EPOCH
        self._now_iso: str | None = None
        self._iso_dt: datetime | None = None  # the instant ``_now_iso`` was made for
        # ISO text of instants in us, one cache per kind (each keeps its last second):
        self._now_text = IsoText()  # "now" (a UTC clock)
        self._expiry_text = IsoText()  # offer deadlines
        self._work: deque[tuple[bool, str]] = deque()  # (is agent, id) still to route
        self._to_empty: list[str] = []  # queues whose last staffed member just left

    @property
    def config(self) -> EngineConfig:
        return self._config

    # ==========================================================================================
    # Command plumbing
    # ==========================================================================================

    def _begin(self) -> int:
        moment = self._clock.now()
        if moment is not self._now_dt:
            # A new instant (the same datetime object is the same instant: skip the
            # conversion and keep its cached ISO text).
            self._now = to_us(moment)
            self._now_dt = moment
        self._events = []
        if self._work:
            self._work.clear()
        if self._to_empty:
            self._to_empty.clear()
        return self._now

    def _finish(self) -> list[NewEvent]:
        if self._work or self._to_empty:
            self._dispatch()
        events = self._events
        self._events = []
        return events

    def _iso(self) -> str:
        """The current instant as an ISO string, computed once per instant."""
        if self._iso_dt is self._now_dt and self._now_iso is not None:
            return self._now_iso
        moment = self._now_dt
        if moment.tzinfo is UTC and type(moment) is datetime:  # the text of from_us(now)
            iso = self._now_text(self._now)
        else:
            iso = moment.isoformat()
        self._now_iso = iso
        self._iso_dt = moment
        return iso

    def _emit(self, type_: str, payload: Payload) -> None:
        self._events.append(_new_event(type_, payload, self._now_dt))

    def _ievent(
        self,
        type_: str,
        it: Interaction,
        *,
        agent_id: str | None = None,
        queue_id: str | None = None,
        **extra: Any,
    ) -> None:
        payload: Payload = {
            "interaction_id": it.id,
            "queue_id": queue_id if queue_id is not None else it.queue_id,
            "agent_id": agent_id,
            "channel": _NAME[it.channel],
        }
        payload.update(extra)
        self._events.append(_new_event(type_, payload, self._now_dt))

    # -- lookups that raise -------------------------------------------------------------------

    def _agent(self, agent_id: str, field: str = "agent_id") -> Agent:
        agent = self._agents.get(agent_id) if isinstance(agent_id, str) else None
        if agent is None:
            raise NotFound(f"No agent {agent_id!r}.", field=field)
        return agent

    def _queue(self, queue_id: str, field: str = "queue_id") -> Queue:
        queue = self._queues.get(queue_id) if isinstance(queue_id, str) else None
        if queue is None:
            raise NotFound(f"No queue {queue_id!r}.", field=field)
        return queue

    def _interaction(self, interaction_id: str) -> Interaction:
        it = self._interactions.get(interaction_id) if isinstance(interaction_id, str) else None
        if it is None:
            raise NotFound(
                f"No interaction {interaction_id!r} in routing (unknown or already ended).",
                field="interaction_id",
            )
        return it

    def _owned_active(
        self, interaction_id: str, agent_id: str, *, answered: bool = True
    ) -> tuple[Interaction, Agent]:
        """The active interaction and its owner. ``answered``: the owner must be talking,
        not still ringing (a consulted agent handed the interaction before answering)."""
        it = self._interaction(interaction_id)
        agent = self._agent(agent_id)
        if it.state is not _ACTIVE:
            raise Conflict(
                f"Interaction {it.id!r} is {it.state.value}, not connected to an agent.",
                field="interaction_id",
            )
        if it.agent_id != agent.id:
            raise PermissionDenied(
                f"Interaction {it.id!r} is handled by another agent, not {agent.id!r}.",
                field="agent_id",
            )
        if answered and agent.rings and it.id in agent.rings:
            raise Conflict(
                f"Agent {agent.id!r} has not answered interaction {it.id!r} yet: its phone "
                "still rings.",
                field="agent_id",
            )
        return it, agent

    def _compile(self, source: str, field: str) -> SkillExpression:
        expr = self._expressions.get(source)
        if expr is None:
            expr = compile_expression(source, field=field)
            if len(self._expressions) >= self._config.expression_cache_size:
                self._expressions.clear()
            self._expressions[source] = expr
        return expr

    # ==========================================================================================
    # Configuration: queues and agents
    # ==========================================================================================

    def add_queue(self, config: QueueConfig) -> list[NewEvent]:
        """Create a queue; agents listed or matching its member expression become members."""
        self._begin()
        cfg = config.normalized()
        if cfg.id in self._queues:
            raise Conflict(f"Queue {cfg.id!r} exists already.", field="id")
        queue = self._build_queue(cfg, self._next_queue_ordinal)
        self._next_queue_ordinal += 1
        self._queues[cfg.id] = queue
        self._track_listing(queue, add=True)
        self._emit(
            "queue.created",
            {"queue_id": cfg.id, "config": persistence.queue_config_to_dict(cfg)},
        )
        self._sync_memberships(queue, self._candidate_members(queue))
        return self._finish()

    def update_queue(self, config: QueueConfig) -> list[NewEvent]:
        """Replace a queue's configuration; waiting interactions keep their place in line.

        Max-wait deadlines already running keep their old value; relaxation levels beyond the
        new number of steps are capped. Removing a channel that has waiting interactions is
        refused.
        """
        self._begin()
        cfg = config.normalized()
        queue = self._queue(cfg.id, "id")
        channels = set(cfg.channels)
        for it in self._interactions.values():
            if cfg.id in it.entries and it.channel not in channels:
                raise Conflict(
                    f"Interaction {it.id!r} waits in {cfg.id!r} on {it.channel.value}; "
                    "the queue must keep that channel.",
                    field="channels",
                )
        # Mutate: drop the derived indexes, swap the config, rebuild.
        members = list(queue.members)
        for aid in members:
            self._drop_index_entries(self._agents[aid], cfg.id)
        entries = self._queue_entries(queue)
        for it, entry in entries:
            if entry.listed:
                self._unlist_entry(it, entry)
        fresh = self._build_queue(cfg, queue.ordinal)
        self._track_listing(queue, add=False)
        queue.config = fresh.config
        queue.expression = fresh.expression
        queue.level_max_penalty = fresh.level_max_penalty
        queue.level_relax = fresh.level_relax
        queue.channel_set = fresh.channel_set
        queue.offer_timeout_us = fresh.offer_timeout_us
        queue.wrapup_us = fresh.wrapup_us
        queue.listed = fresh.listed
        self._track_listing(queue, add=True)
        queue.ready = ReadyIndex(cfg.strategy, cfg.channels)
        queue.waiting = {}
        queue.rr_last = -1
        for it, entry in entries:
            entry.level = min(entry.level, cfg.levels - 1)
            entry.priority = self._effective_priority(it, queue)
            entry.key = self._wait_key(queue, entry.priority, it)
            if it.state is _QUEUED:
                self._list_entry(it, entry)
                self._work.append((False, it.id))
        self._emit(
            "queue.updated",
            {"queue_id": cfg.id, "config": persistence.queue_config_to_dict(cfg)},
        )
        candidates = dict.fromkeys(members)
        candidates.update(dict.fromkeys(self._candidate_members(queue)))
        self._sync_memberships(queue, list(candidates))
        for aid in members:
            agent = self._agents[aid]
            self._reindex(agent)
        return self._finish()

    def remove_queue(self, queue_id: str) -> list[NewEvent]:
        """Delete a queue that no interaction is waiting in or attached to."""
        self._begin()
        queue = self._queue(queue_id)
        for it in self._interactions.values():
            if it.queue_id == queue_id or queue_id in it.entries:
                raise Conflict(
                    f"Queue {queue_id!r} still has interaction {it.id!r}.", field="queue_id"
                )
        for aid in list(queue.members):
            self._set_membership(self._agents[aid], queue, None)
        self._track_listing(queue, add=False)
        del self._queues[queue_id]
        self._emit("queue.removed", {"queue_id": queue_id})
        return self._finish()

    def add_agent(self, config: AgentConfig) -> list[NewEvent]:
        """Register an agent (logged out) and work out its queue memberships."""
        now = self._begin()
        cfg = config.normalized()
        if cfg.id in self._agents:
            raise Conflict(f"Agent {cfg.id!r} exists already.", field="id")
        agent = Agent(
            id=cfg.id, config=cfg, ordinal=self._next_agent_ordinal, since=now, idle_since=now
        )
        self._next_agent_ordinal += 1
        self._agents[cfg.id] = agent
        self._emit(
            "agent.created",
            {"agent_id": cfg.id, "config": persistence.agent_config_to_dict(cfg)},
        )
        for queue in self._possible_queues(agent):
            self._set_membership(agent, queue, self._membership_for(queue, agent))
        self._emit_agent_queues(agent)
        return self._finish()

    def update_agent(self, config: AgentConfig) -> list[NewEvent]:
        """Change an agent's name, skills, attributes or capacity (memberships follow)."""
        self._begin()
        cfg = config.normalized()
        agent = self._agent(cfg.id, "id")
        before = dict(agent.queues)
        was_staffed = agent.staffed
        if was_staffed:
            self._staff(agent, -1)
        agent.config = cfg
        if was_staffed:
            self._staff(agent, +1)
        self._emit(
            "agent.updated",
            {"agent_id": cfg.id, "config": persistence.agent_config_to_dict(cfg)},
        )
        for queue in self._possible_queues(agent):
            self._set_membership(agent, queue, self._membership_for(queue, agent))
        if agent.queues != before:
            self._emit_agent_queues(agent)
        # Strategy keys (best-skill) may have changed: rebuild this agent's entries.
        for qid in list(agent.index_keys):
            self._drop_index_entries(agent, qid)
        self._reindex(agent)
        return self._finish()

    def remove_agent(self, agent_id: str) -> list[NewEvent]:
        """Delete a logged-out agent."""
        self._begin()
        agent = self._agent(agent_id)
        if agent.logged_in_at is not None or agent.wrapups:
            raise Conflict(f"Agent {agent_id!r} must be logged out first.", field="agent_id")
        for qid in list(agent.queues):
            self._set_membership(agent, self._queues[qid], None)
        del self._agents[agent_id]
        self._emit("agent.removed", {"agent_id": agent_id})
        return self._finish()

    def join_queue(
        self, agent_id: str, queue_id: str, *, penalty: int = 0, weight: int = 1
    ) -> list[NewEvent]:
        """The agent becomes a listed member of the queue (``penalty`` = tier, ``weight`` for
        weighted-random), after the members listed already.

        The queue's configuration gains the member (``queue.updated`` carries it), so the
        membership is kept like any other. An agent matched by the member expression becomes
        listed with these terms.
        """
        self._begin()
        agent = self._agent(agent_id)
        queue = self._queue(queue_id)
        if agent.id in queue.listed:
            raise Conflict(
                f"Agent {agent.id!r} is a member of queue {queue.id!r} already.", field="agent_id"
            )
        members = (*queue.config.members, Member(agent.id, penalty, weight))
        cfg = replace(queue.config, members=members).normalized()  # checks penalty and weight
        self._emit(
            "agent.queue_joined",
            {"agent_id": agent.id, "queue_id": queue.id, "penalty": penalty, "weight": weight},
        )
        self._relist(queue, cfg)
        return self._finish()

    def leave_queue(self, agent_id: str, queue_id: str) -> list[NewEvent]:
        """The agent stops being a listed member of the queue. Work in progress is unaffected.

        Refused when the agent is not listed, or would stay a member through the queue's member
        expression (change the expression or the agent's skills instead).
        """
        self._begin()
        agent = self._agent(agent_id)
        queue = self._queue(queue_id)
        if agent.id not in queue.listed:
            raise Conflict(
                f"Agent {agent.id!r} is not a listed member of queue {queue.id!r}.",
                field="agent_id",
            )
        expr = queue.expression
        if expr is not None and expr.matches(agent.config.skills, agent.config.attributes):
            raise Conflict(
                f"Agent {agent.id!r} matches the member expression of queue {queue.id!r} and "
                "would stay a member; change the expression or the agent's skills.",
                field="agent_id",
            )
        members = tuple(m for m in queue.config.members if m.agent_id != agent.id)
        self._emit("agent.queue_left", {"agent_id": agent.id, "queue_id": queue.id})
        self._relist(queue, replace(queue.config, members=members))
        return self._finish()

    def _relist(self, queue: Queue, cfg: QueueConfig) -> None:
        """Swap in ``cfg`` (the same queue with other listed members), publish it, and bring
        the memberships in step (members after a removed one move up in member order).

        Only ``members`` differs from the queue's config, so the values :meth:`_build_queue`
        derives from the rest stay valid."""
        before = list(queue.listed)
        self._track_listing(queue, add=False)
        queue.config = cfg
        queue.listed = {
            m.agent_id: Membership(m.penalty, m.weight, n) for n, m in enumerate(cfg.members)
        }
        self._track_listing(queue, add=True)
        self._emit(
            "queue.updated",
            {"queue_id": cfg.id, "config": persistence.queue_config_to_dict(cfg)},
        )
        affected = dict.fromkeys(before)
        affected.update(dict.fromkeys(queue.listed))
        self._sync_memberships(queue, [aid for aid in affected if aid in self._agents])

    # -- membership ---------------------------------------------------------------------------

    def _build_queue(self, cfg: QueueConfig, ordinal: int) -> Queue:
        return Queue(
            id=cfg.id,
            config=cfg,
            ordinal=ordinal,
            expression=compile_member_expression(cfg),
            level_max_penalty=tuple(cfg.level_max_penalty(lv) for lv in range(cfg.levels)),
            level_relax=tuple(cfg.level_relax(lv) for lv in range(cfg.levels)),
            channel_set=frozenset(cfg.channels),
            offer_timeout_us=seconds_to_us(cfg.offer_timeout_seconds),
            wrapup_us=None if cfg.wrapup_seconds is None else seconds_to_us(cfg.wrapup_seconds),
            ready=ReadyIndex(cfg.strategy, cfg.channels),
            listed={
                m.agent_id: Membership(m.penalty, m.weight, order)
                for order, m in enumerate(cfg.members)
            },
        )

    def _possible_queues(self, agent: Agent) -> list[Queue]:
        """Queues the agent is or could be a member of (listing it, or by expression)."""
        ids = set(agent.queues)
        ids.update(self._listed_in.get(agent.id, ()))
        ids.update(self._expression_queues)
        found = [self._queues[qid] for qid in ids]
        found.sort(key=lambda q: q.ordinal)
        return found

    def _track_listing(self, queue: Queue, *, add: bool) -> None:
        """Keep the agent -> listing queues map and the expression-queue set in step."""
        for aid in queue.listed:
            listed_in = self._listed_in.setdefault(aid, {})
            if add:
                listed_in[queue.id] = None
            else:
                listed_in.pop(queue.id, None)
                if not listed_in:
                    del self._listed_in[aid]
        if queue.expression is not None and add:
            self._expression_queues[queue.id] = None
        else:
            self._expression_queues.pop(queue.id, None)

    def _candidate_members(self, queue: Queue) -> list[str]:
        if queue.expression is not None:
            return list(self._agents)
        return [m.agent_id for m in queue.config.members if m.agent_id in self._agents]

    def _membership_for(self, queue: Queue, agent: Agent) -> Membership | None:
        listed = queue.listed.get(agent.config.id)
        if listed is not None:
            return Membership(listed.penalty, listed.weight, listed.order)
        expr = queue.expression
        if expr is not None and expr.matches(agent.config.skills, agent.config.attributes):
            cfg = queue.config
            return Membership(
                cfg.member_expression_penalty,
                cfg.member_expression_weight,
                _EXPRESSION_ORDER_BASE + agent.ordinal,
            )
        return None

    def _sync_memberships(self, queue: Queue, agent_ids: Iterable[str]) -> None:
        for aid in agent_ids:
            agent = self._agents[aid]
            before = agent.queues.get(queue.id)
            after = self._membership_for(queue, agent)
            if before != after:
                self._set_membership(agent, queue, after)
                self._emit_agent_queues(agent)

    def _set_membership(self, agent: Agent, queue: Queue, member: Membership | None) -> None:
        old = agent.queues.get(queue.id)
        if old == member:
            return
        if old is not None:
            self._drop_index_entries(agent, queue.id)
            if agent.staffed:
                self._staff_queue(agent, queue, -1)
            del agent.queues[queue.id]
            del queue.members[agent.id]
        if member is not None:
            agent.queues[queue.id] = member
            queue.members[agent.id] = member
            if agent.staffed:
                self._staff_queue(agent, queue, +1)
        self._reindex(agent)

    def _emit_agent_queues(self, agent: Agent) -> None:
        self._emit(
            "agent.queues_changed",
            {"agent_id": agent.id, "queues": self._membership_payload(agent)},
        )

    def _membership_payload(self, agent: Agent) -> list[Payload]:
        rows = sorted(agent.queues.items(), key=lambda kv: self._queues[kv[0]].ordinal)
        return [{"queue_id": qid, "penalty": m.penalty, "weight": m.weight} for qid, m in rows]

    # -- staffing (EWT, join/leave when empty) -------------------------------------------------

    def _staff(self, agent: Agent, delta: int) -> None:
        for qid in agent.queues:
            self._staff_queue(agent, self._queues[qid], delta)

    def _staff_queue(self, agent: Agent, queue: Queue, delta: int) -> None:
        queue.staffed_agents += delta
        for ch, n in agent.config.capacity.items():
            queue.staffed_capacity[ch] = queue.staffed_capacity.get(ch, 0) + delta * n
        if delta < 0 and queue.staffed_agents == 0 and queue.config.leave_when_empty:
            # Acted on once the command's changes are done (a member whose terms change is
            # briefly counted out and back in).
            self._to_empty.append(queue.id)

    def _empty_queue(self, queue: Queue) -> None:
        """``leave_when_empty``: the last staffed member left; waiting interactions leave too."""
        leaving = [
            it
            for it, entry in self._queue_entries(queue)
            if entry.listed and it.queue_id == queue.id
        ]
        leaving.sort(key=lambda it: it.entries[queue.id].key)
        for it in leaving:
            self._send_away(it, queue, "empty", queue.config.on_empty)

    # ==========================================================================================
    # Agent state
    # ==========================================================================================

    def login(self, agent_id: str) -> list[NewEvent]:
        """Log an agent in; it becomes available and is offered waiting work at once."""
        now = self._begin()
        agent = self._agent(agent_id)
        if agent.logged_in_at is not None:
            raise Conflict(f"Agent {agent_id!r} is logged in already.", field="agent_id")
        agent.logged_in_at = now
        agent.aux_reason = None
        agent.handled = 0
        agent.talk_us = 0
        agent.consecutive_misses = 0
        self._staff(agent, +1)
        self._emit(
            "agent.logged_in",
            {"agent_id": agent.id, "queues": self._membership_payload(agent)},
        )
        self._refresh(agent, "login")
        return self._finish()

    def logout(self, agent_id: str, reason: str = "logout") -> list[NewEvent]:
        """Log an agent out. Refused while it has an offer, an interaction or wrap-up."""
        now = self._begin()
        agent = self._agent(agent_id)
        _check_reason(reason)
        if agent.logged_in_at is None:
            raise Conflict(f"Agent {agent_id!r} is not logged in.", field="agent_id")
        if agent.offer is not None or agent.interactions or agent.wrapups:
            raise Conflict(
                f"Agent {agent_id!r} still has work (offer, interaction or wrap-up).",
                field="agent_id",
            )
        session = now - agent.logged_in_at
        if agent.staffed:
            self._staff(agent, -1)
        agent.logged_in_at = None
        agent.aux_reason = None
        self._emit(
            "agent.logged_out",
            {
                "agent_id": agent.id,
                "reason": reason,
                "session_seconds": _sec(session),
                "handled": agent.handled,
                "talk_seconds": _sec(agent.talk_us),
            },
        )
        self._refresh(agent, reason)
        return self._finish()

    def set_break(self, agent_id: str, reason: str) -> list[NewEvent]:
        """Put an agent on break (aux) with a reason code.

        With work in progress the break starts when the work (and wrap-up) ends; no new work
        is offered meanwhile. A pending offer is withdrawn and goes to the next agent.
        """
        self._begin()
        agent = self._agent(agent_id)
        _check_reason(reason)
        allowed = self._config.break_reasons
        if allowed is not None and reason not in allowed:
            raise InvalidInput(
                f"Unknown break reason {reason!r}; allowed: {', '.join(sorted(allowed))}.",
                field="reason",
            )
        if agent.logged_in_at is None:
            raise Conflict(f"Agent {agent_id!r} is not logged in.", field="agent_id")
        if agent.aux_reason == reason:
            raise Conflict(f"Agent {agent_id!r} is on break ({reason}) already.", field="reason")
        if agent.staffed:
            self._staff(agent, -1)
        agent.aux_reason = reason
        if agent.offer is not None:
            it = self._interactions[agent.offer]
            self._withdraw(it, agent, "agent_break")  # reserved -> break directly
            if not it.offers:
                self._return_to_queue(it)
        if agent.interactions or agent.wrapups:
            self._emit("agent.break_scheduled", {"agent_id": agent.id, "reason": reason})
        self._refresh(agent, reason)
        return self._finish()

    def set_available(self, agent_id: str, reason: str = "ready") -> list[NewEvent]:
        """End an agent's break (or cancel a scheduled one)."""
        self._begin()
        agent = self._agent(agent_id)
        _check_reason(reason)
        if agent.logged_in_at is None:
            raise Conflict(f"Agent {agent_id!r} is not logged in.", field="agent_id")
        if agent.aux_reason is None:
            raise Conflict(f"Agent {agent_id!r} is not on break.", field="agent_id")
        agent.aux_reason = None
        agent.consecutive_misses = 0
        self._staff(agent, +1)
        self._refresh(agent, reason)
        return self._finish()

    def set_break_reasons(self, reasons: Iterable[str] | None) -> list[NewEvent]:
        """Replace the allowed break reason codes (None: any); emits nothing.

        Agents already on break keep their reason; only later ``set_break`` calls are checked.
        """
        self._begin()
        codes = reasons if reasons is None or isinstance(reasons, str) else frozenset(reasons)
        self._config = replace(self._config, break_reasons=codes).normalized()  # type: ignore[arg-type]
        return self._finish()

    def set_business_hours(self, hours: Mapping[str, Any] | None) -> list[NewEvent]:
        """Replace the business hours queues may name (``QueueConfig.hours``): name → JSON
        timetable ``{"timezone", "weekly", "exceptions"}`` (:mod:`sparklecomm.core.hours`).
        Emits nothing; contacts already waiting stay. A queue naming hours not given here is
        open (the shell keeps these in step with the organisation's business hours)."""
        self._begin()
        if hours is not None and not isinstance(hours, Mapping):
            raise InvalidInput("hours must map names to timetables.", field="hours")
        parsed = {
            name: hours_from_spec(name, spec, f"hours.{name}")
            for name, spec in (hours or {}).items()
        }
        self._hours = parsed
        return self._finish()

    def business_hours(self) -> dict[str, dict[str, Any]]:
        """The business hours given by :meth:`set_business_hours` (their JSON form)."""
        return {name: spec_of(h) for name, h in self._hours.items()}

    def queue_open(self, queue_id: str) -> bool | None:
        """Whether the queue's business hours are open now (None: it names none, or hours
        this engine was not given, so it is always open)."""
        self._query_now()
        return self._open_now(self._queue(queue_id))

    def _open_now(self, queue: Queue) -> bool | None:
        name = queue.config.hours
        hours = self._hours.get(name) if name is not None else None
        return None if hours is None else hours.is_open(self._now_dt)

    # -- derived state, routability and the ready indexes --------------------------------------

    def _refresh(self, agent: Agent, reason: str) -> None:
        """Recompute the agent's state (emitting ``agent.state_changed``) and its index entries."""
        if agent.logged_in_at is None:
            state = _LOGGED_OUT
        elif agent.interactions:
            # A consultation still ringing reserves the agent, as an offer does: busy only
            # once it talks on something.
            rings = agent.rings
            state = _RESERVED if rings and len(rings) == len(agent.interactions) else _BUSY
        elif agent.offer is not None:
            state = _RESERVED
        elif agent.wrapups:
            state = _WRAP_UP
        elif agent.aux_reason is not None:
            state = _BREAK
            reason = agent.aux_reason or reason
        else:
            state = _AVAILABLE
        previous = agent.state
        if state is not previous or (state is _BREAK and reason != agent.reason):
            now = self._now
            iso = self._iso()
            load: dict[str, int] = {}
            for ch, n in agent.load.items():  # a loop: no comprehension function to build
                if n:
                    load[_NAME[ch]] = n
            self._events.append(
                _new_event(
                    "agent.state_changed",
                    {
                        "agent_id": agent.config.id,
                        "state": _NAME[state],
                        "reason": reason,
                        "since": iso,
                        "previous_state": _NAME[previous],
                        "previous_reason": agent.reason,
                        "previous_since": agent.since_iso or from_us(agent.since).isoformat(),
                        "previous_seconds": (now - agent.since) / US,
                        "load": load,
                    },
                    self._now_dt,
                )
            )
            if state is _AVAILABLE:
                agent.idle_since = now
            agent.state = state
            agent.reason = reason
            agent.since = now
            agent.since_iso = iso
        if agent.index_keys or (
            agent.logged_in_at is not None and agent.aux_reason is None and agent.offer is None
        ):
            # Otherwise the agent is routable on no channel and in no index: nothing to do.
            self._reindex(agent)

    def _routable_channels(self, agent: Agent) -> list[Channel]:
        """Channels the agent could be offered something on right now."""
        if agent.logged_in_at is not None and agent.aux_reason is None and agent.offer is None:
            cap = agent.config.capacity
            load = agent.load
            if agent.config.voice_blocks_other_channels and (
                load.get(_VOICE) or load.get(_CALLBACK)
            ):
                # A call in progress blocks every other channel (but not more calls of its
                # own channel, should its capacity allow them).
                return [c for c in PHONE_CHANNELS if load.get(c) and load[c] < cap.get(c, 0)]
            if not load:
                return [ch for ch, n in cap.items() if n > 0]
            channels = []
            for ch, n in cap.items():
                if load.get(ch, 0) < n:
                    channels.append(ch)
            return channels
        return []

    def _can_take(self, agent: Agent, channel: Channel) -> bool:
        return channel in self._routable_channels(agent)

    def _reindex(self, agent: Agent) -> None:
        """Put the agent in exactly the ready indexes it belongs in now, with fresh keys.

        The hot path of routing (every offer, accept, wrap-up end): the strategy keys of
        :func:`~sparklecomm.acd.strategies.strategy_key` are built inline, and an agent whose
        entries are unchanged touches no index.
        """
        # _routable_channels, inlined (loops: no comprehension function to build).
        channels: list[Channel] = []
        if agent.logged_in_at is not None and agent.aux_reason is None and agent.offer is None:
            load = agent.load
            cfg = agent.config
            cap = cfg.capacity
            if cfg.voice_blocks_other_channels and (load.get(_VOICE) or load.get(_CALLBACK)):
                for ch in PHONE_CHANNELS:
                    if load.get(ch) and load[ch] < cap.get(ch, 0):
                        channels.append(ch)
            else:
                for ch, n in cap.items():
                    if load.get(ch, 0) < n:
                        channels.append(ch)
        old = agent.index_keys
        queues = self._queues
        aid = agent.id
        if not channels:
            if old:  # no longer available on any channel: leave every index
                for qid in old:
                    queues[qid].ready.remove(aid)
                agent.index_keys = {}
            return
        all_channels = tuple(channels)
        desired: dict[str, tuple[int, tuple[Any, ...], tuple[Channel, ...]]] = {}
        load_sum = -1
        idle = agent.idle_since
        for qid, member in agent.queues.items():
            queue = queues[qid]
            channel_set = queue.channel_set
            if channel_set.issuperset(all_channels):
                chans = all_channels
            else:
                chans = tuple(ch for ch in all_channels if ch in channel_set)
                if not chans:
                    continue
            strategy = queue.config.strategy
            if strategy in _LOAD_STRATEGIES:
                if load_sum < 0:
                    load_sum = sum(agent.load.values())
                if strategy is _LONGEST_IDLE:
                    key: tuple[Any, ...] = (load_sum, idle, member.order, aid)
                elif strategy is _FEWEST:
                    key = (agent.handled, load_sum, idle, member.order, aid)
                elif strategy is _LEAST_TALK:
                    key = (agent.talk_us, load_sum, idle, member.order, aid)
                else:
                    key = strategy_key_for(queue.config, agent, member, load_sum)
            elif strategy is _WEIGHTED:
                key = (member.weight, member.order, aid)
            else:
                key = (member.order, aid)
            desired[qid] = (member.penalty, key, chans)
            if not old:  # in no index yet (e.g. available again): join this one now
                queue.ready.add(aid, member.penalty, key, chans)
        if old and old != desired:
            for qid, entry in old.items():
                new = desired.get(qid)
                if new is None:
                    queues[qid].ready.remove(aid)
                elif new != entry:
                    ready = queues[qid].ready
                    if new[1] == entry[1] and new[0] == entry[0]:
                        ready.set_channels(aid, new[2])
                    else:
                        ready.remove(aid)
                        ready.add(aid, new[0], new[1], new[2])
            for qid, new in desired.items():
                if qid not in old:
                    queues[qid].ready.add(aid, new[0], new[1], new[2])
        agent.index_keys = desired
        if desired:
            self._work.append((True, aid))

    def _drop_index_entries(self, agent: Agent, queue_id: str) -> None:
        if agent.index_keys.pop(queue_id, None) is not None:
            self._queues[queue_id].ready.remove(agent.id)

    # ==========================================================================================
    # Interactions: arrival and queueing
    # ==========================================================================================

    def create_interaction(
        self,
        interaction_id: str,
        queue_id: str,
        channel: Channel | str,
        *,
        priority: int = 0,
        required_skills: str = "",
        customer_id: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> list[NewEvent]:
        """A new contact arrives for ``queue_id``; it is offered at once or starts waiting.

        ``priority`` 0–100 (higher first; the queue's priority rules may add to it);
        ``required_skills`` is a skill expression the agent must satisfy (may be relaxed while
        waiting); ``attributes`` carry DNIS, VIP tier, campaign... for rules and reports.
        """
        now = self._begin()
        self._check_new_id(interaction_id)
        queue = self._queue(queue_id)
        ch = _CHANNELS.get(channel) if isinstance(channel, str) else None
        if ch is None:
            ch = parse_channel(channel)  # raises with the list of channels
        _check_takes(queue, ch)
        _check_priority(priority)
        if not isinstance(required_skills, str):
            raise InvalidInput("required_skills must be a string.", field="required_skills")
        expr = self._expressions.get(required_skills)
        if expr is None:
            expr = self._compile(required_skills, "required_skills")
        _check_customer(customer_id)
        attrs = check_attributes(attributes) if attributes is not None else {}
        it = Interaction(
            id=interaction_id,
            channel=ch,
            priority=priority,
            required_skills=required_skills,
            expression=expr,
            customer_id=customer_id,
            attributes=attrs,
            created_at=now,
            queued_at=now,
            queue_id=queue.id,
            seq=0,
        )
        self._interactions[interaction_id] = it
        self._events.append(
            _new_event(
                "interaction.created",
                {
                    "interaction_id": interaction_id,
                    "queue_id": queue.id,
                    "agent_id": None,
                    "channel": _NAME[ch],
                    "priority": priority,
                    "required_skills": required_skills,
                    "customer_id": customer_id,
                    "attributes": attrs,
                    "created_at": self._iso(),
                },
                self._now_dt,
            )
        )
        self._enqueue(it, queue, "new", keep_place=False, route_now=True)
        return self._finish()

    def _check_new_id(self, interaction_id: object) -> None:
        if not isinstance(interaction_id, str) or not interaction_id or len(interaction_id) > 200:
            raise InvalidInput("interaction_id must be a non-empty string.", field="interaction_id")
        if interaction_id in self._interactions:
            raise Conflict(
                f"Interaction {interaction_id!r} exists already.", field="interaction_id"
            )

    def _effective_priority(self, it: Interaction, queue: Queue) -> int:
        priority = it.priority
        for rule in queue.config.priority_rules:
            if it.attributes.get(rule.attribute) == rule.value:
                priority += rule.boost
        return max(0, min(MAX_PRIORITY, priority))

    def _wait_key(self, queue: Queue, priority: int, it: Interaction) -> WaitKey:
        """Static sort key: score(t) = static + ageing_rate * t, so ordering never changes.

        In micro-points: score = (weight + priority * priority_points) * 1e6
        + ageing_rate * (now - queued_at) [us]; the key stores -(score - ageing_rate * now).
        """
        cfg = queue.config
        base = (cfg.weight + priority * self._config.priority_points) * US
        return (round(cfg.ageing_rate * it.queued_at - base), it.queued_at, it.seq, it.id)

    def _score(self, queue: Queue, key: WaitKey) -> int:
        """Score in micro-points at the current instant of the interaction with ``key``."""
        return round(queue.config.ageing_rate * self._now) - key[0]

    def _enqueue(
        self,
        it: Interaction,
        queue: Queue,
        reason: str,
        *,
        keep_place: bool,
        route_now: bool = False,
    ) -> None:
        """Enter ``queue`` as primary queue, unless one of its entry rules sends it away.

        ``route_now``: when no other routing work is pending (the interaction would be the
        first and only item :meth:`_dispatch` routes), route it here, before putting it in the
        waiting lists, and list it only if no agent took it: the same offer as routing it
        from the waiting lists, without listing and at once unlisting an interaction that
        never waits (the usual case when agents are free).
        """
        cfg = queue.config
        if not keep_place:
            it.seq = self._next_seq
            self._next_seq += 1
        if it.channel not in queue.channel_set:
            self._send_away(it, queue, "channel", Diversion())
            return
        staffed = queue.staffed_agents
        waiting = queue.waiting_count
        rule: tuple[str, Diversion] | None = None
        if cfg.hours is not None and reason in _CLOSABLE and self._closed(cfg.hours):
            rule = ("closed", cfg.on_closed)
        elif not cfg.join_when_empty and staffed == 0:
            rule = ("empty", cfg.on_empty)
        elif cfg.max_length is not None and waiting >= cfg.max_length:
            rule = ("full", cfg.on_full)
        elif cfg.max_waiting_per_agent is not None and (
            staffed == 0 or (waiting + 1) / staffed > cfg.max_waiting_per_agent
        ):
            rule = ("ratio", cfg.on_ratio)
        elif cfg.ewt_threshold_seconds is not None:
            ahead = sum(len(lst) for lst in queue.waiting.get(it.channel, ()))
            ewt = self._ewt(queue, it.channel, ahead + 1)
            if ewt is None or ewt > cfg.ewt_threshold_seconds:
                rule = ("ewt", cfg.on_ewt)
        if rule is not None:
            self._send_away(it, queue, rule[0], rule[1])
            return
        it.queue_id = queue.id
        it.state = _QUEUED
        it.offer_kind = "queue"
        it.max_wait_reached = False
        now = self._now
        # _new_entry, _effective_priority and _wait_key, inlined.
        priority = self._effective_priority(it, queue) if cfg.priority_rules else it.priority
        base = (cfg.weight + priority * self._config.priority_points) * US
        entry = QueueEntry(
            queue.id,
            now,
            0,
            priority,
            (round(cfg.ageing_rate * it.queued_at - base), it.queued_at, it.seq, it.id),
        )
        it.entries = {queue.id: entry}
        # Routed first: nothing reads the waiting lists before the interaction is routed (its
        # own place in line counts only the keys before it).
        route_now = route_now and not self._work and not self._to_empty
        if not route_now:
            self._list_entry(it, entry)
        if cfg.relaxation or cfg.max_wait_seconds is not None:
            self._schedule_entry_timers(it, queue, entry, primary=True)
        position, same_channel = self._places(queue, entry.key, it.channel)
        self._events.append(
            _new_event(
                "interaction.queued",
                {
                    "interaction_id": it.id,
                    "queue_id": queue.id,
                    "agent_id": None,
                    "channel": _NAME[it.channel],
                    "reason": reason,
                    "priority": entry.priority,
                    "position": position,
                    "ewt_seconds": self._ewt(queue, it.channel, same_channel),
                    "queued_at": self._iso()
                    if it.queued_at == now
                    else from_us(it.queued_at).isoformat(),
                    "score": (round(cfg.ageing_rate * now) - entry.key[0]) / US,  # _score
                },
                self._now_dt,
            )
        )
        if not route_now:
            self._work.append((False, it.id))
            return
        self._route_interaction(it)
        if it.state is _QUEUED:  # no agent for it now: it waits
            self._list_entry(it, entry)

    def _closed(self, hours_name: str) -> bool:
        hours = self._hours.get(hours_name)
        return hours is not None and not hours.is_open(self._now_dt)

    def _new_entry(self, it: Interaction, queue: Queue) -> QueueEntry:
        priority = self._effective_priority(it, queue)
        return QueueEntry(
            queue_id=queue.id,
            entered_at=self._now,
            level=0,
            priority=priority,
            key=self._wait_key(queue, priority, it),
        )

    def _list_entry(self, it: Interaction, entry: QueueEntry) -> None:
        queue = self._queues[entry.queue_id]
        lists = queue.waiting.get(it.channel)
        if lists is None:
            lists = queue.waiting[it.channel] = [SortedList() for _ in range(queue.config.levels)]
        lists[entry.level].add(entry.key)
        entry.listed = True
        queue.waiting_count += 1

    def _unlist_entry(self, it: Interaction, entry: QueueEntry) -> None:
        queue = self._queues[entry.queue_id]
        queue.waiting[it.channel][entry.level].remove(entry.key)
        entry.listed = False
        queue.waiting_count -= 1

    def _unlist(self, it: Interaction) -> None:
        for entry in it.entries.values():
            if entry.listed:
                self._unlist_entry(it, entry)

    def _list_all(self, it: Interaction) -> None:
        for entry in it.entries.values():
            if not entry.listed:
                self._list_entry(it, entry)

    def _schedule_entry_timers(
        self, it: Interaction, queue: Queue, entry: QueueEntry, *, primary: bool
    ) -> None:
        cfg = queue.config
        if primary and cfg.max_wait_seconds is not None and it.channel is not Channel.CALLBACK:
            due = entry.entered_at + seconds_to_us(cfg.max_wait_seconds)
            self._set_it_timer(it, "max_wait", due, "max_wait", it.id, queue.id)
        if entry.level < len(cfg.relaxation):
            due = entry.entered_at + seconds_to_us(cfg.relaxation[entry.level].after_seconds)
            self._set_it_timer(it, f"relax:{queue.id}", due, "relax", it.id, queue.id)

    def _queue_entries(self, queue: Queue) -> list[tuple[Interaction, QueueEntry]]:
        return [
            (it, it.entries[queue.id])
            for it in self._interactions.values()
            if queue.id in it.entries
        ]

    def _send_away(self, it: Interaction, queue: Queue, reason: str, div: Diversion) -> None:
        """Overflow to ``div.queue_id`` (keeping the place in line) or divert out of routing."""
        wait = _sec(self._now - it.queued_at)
        target = self._queues.get(div.queue_id) if div.queue_id else None
        if (
            target is not None
            and target is not queue
            and it.hops < self._config.max_overflow_hops
            and it.channel in target.channel_set
        ):
            it.hops += 1
            self._leave_queues(it)
            self._ievent(
                "interaction.overflowed",
                it,
                queue_id=target.id,
                from_queue_id=queue.id,
                reason=reason,
                wait_seconds=wait,
            )
            self._enqueue(it, target, "overflow", keep_place=True)
            return
        self._ievent(
            "interaction.diverted",
            it,
            queue_id=queue.id,
            reason=reason,
            divert_to=div.divert_to,
            overflow_queue_id=div.queue_id,
            wait_seconds=wait,
        )
        self._drop(it)

    def _leave_queues(self, it: Interaction) -> None:
        """Take the interaction out of every queue (lists, timers, exclusions)."""
        if it.entries:
            for entry in it.entries.values():  # _unlist, inlined
                if entry.listed:
                    self._unlist_entry(it, entry)
            if it.state is _SCHEDULED:
                for qid in it.entries:
                    queue = self._queues.get(qid)
                    if queue is not None:
                        queue.scheduled.pop(it.id, None)
            it.entries = {}
        if it.timers:
            for name in [n for n in it.timers if n != "callback"]:
                self._cancel(it.timers.pop(name))
        if it.excluded:
            it.excluded = {}

    def _drop(self, it: Interaction) -> None:
        """The interaction leaves routing for good (terminal event already emitted)."""
        self._leave_queues(it)
        for offer in it.offers.values():
            self._cancel(offer.timer_id)
        for tid in it.timers.values():
            self._cancel(tid)
        it.timers = {}
        del self._interactions[it.id]

    # ==========================================================================================
    # Routing
    # ==========================================================================================

    def _dispatch(self) -> None:
        while self._to_empty:
            queue = self._queues.get(self._to_empty.pop(0))
            if queue is not None and queue.staffed_agents == 0:
                self._empty_queue(queue)
        work = self._work
        agents = self._agents
        interactions = self._interactions
        while work:
            is_agent, ident = work.popleft()
            if is_agent:
                agent = agents.get(ident)
                if agent is not None and agent.index_keys:
                    self._route_agent(agent)
            else:
                it = interactions.get(ident)
                if it is not None and it.state is _QUEUED:
                    self._route_interaction(it)

    def _eligible(self, it: Interaction, agent: Agent, relax: int) -> bool:
        if it.excluded and agent.id in it.excluded:
            return False
        expr = it.expression
        if expr.is_empty:
            return True
        return expr.matches(agent.config.skills, agent.config.attributes, relax)

    def _route_interaction(self, it: Interaction) -> None:
        """Interaction side: the best available agent of its queues, by tier then strategy."""
        agents = self._agents
        queues = self._queues
        rng = self._rng
        channel = it.channel
        # Without a requirement or exclusions every indexed agent qualifies: take the first.
        anyone = it.expression.is_empty and not it.excluded
        for qid, entry in it.entries.items():
            queue = queues[qid]
            index = queue.ready
            level = entry.level
            ring_all = queue.config.strategy is Strategy.RING_ALL
            if anyone and not ring_all:
                # The lowest tier with agents on the channel is the answer if it is allowed.
                lowest = index.lowest(channel)
                if lowest is None:
                    continue
                penalty, keys = lowest
                limit = queue.level_max_penalty[level]
                if limit is None or penalty <= limit:
                    agent = agents[index.first(penalty, keys, rng, queue.rr_last, channel)]
                    self._offer(it, [agent], queue, ring_all=False)
                    return
                continue
            if not index.serves(channel):
                continue
            relax = queue.level_relax[level]
            for penalty, keys in index.tiers(queue.level_max_penalty[level], channel):
                if ring_all:
                    chosen = [
                        agents[aid]
                        for aid in index.candidates(penalty, keys, rng, queue.rr_last, channel)
                        if anyone or self._eligible(it, agents[aid], relax)
                    ]
                    if chosen:
                        self._offer(it, chosen, queue, ring_all=True)
                        return
                    continue
                for aid in index.candidates(penalty, keys, rng, queue.rr_last, channel):
                    agent = agents[aid]
                    if self._eligible(it, agent, relax):
                        self._offer(it, [agent], queue, ring_all=False)
                        return

    def _route_agent(self, agent: Agent) -> None:
        """Agent side: the best-scoring waiting interaction across all the agent's queues."""
        channels: set[Channel] | None = None  # built once a queue has someone waiting
        interactions = self._interactions
        queues = self._queues
        now = self._now
        best: tuple[int, int, int, int] | None = None
        best_it: Interaction | None = None
        best_queue: Queue | None = None
        for qid, member in agent.queues.items():
            queue = queues[qid]
            if not queue.waiting_count:
                continue
            if channels is None:
                channels = {ch for entry in agent.index_keys.values() for ch in entry[2]}
            rate = queue.config.ageing_rate
            for ch, lists in queue.waiting.items():
                if ch not in channels:
                    continue
                for level, keys in enumerate(lists):
                    if not keys:
                        continue
                    limit = queue.level_max_penalty[level]
                    if limit is not None and member.penalty > limit:
                        continue
                    relax = queue.level_relax[level]
                    for key in keys:
                        it = interactions[key[3]]
                        if self._eligible(it, agent, relax):
                            rank = (key[0] - round(rate * now), key[1], key[2], queue.ordinal)
                            if best is None or rank < best:
                                best, best_it, best_queue = rank, it, queue
                            break
        if best_it is not None and best_queue is not None:
            self._offer(best_it, [agent], best_queue, ring_all=False)

    # ==========================================================================================
    # Offers
    # ==========================================================================================

    def _offer(self, it: Interaction, agents: list[Agent], queue: Queue, *, ring_all: bool) -> None:
        now = self._now
        ch = it.channel
        for listed in it.entries.values():  # _unlist, inlined
            if listed.listed:
                self._unlist_entry(it, listed)
        it.state = _OFFERED
        it.offer_attempts += 1
        timeout = queue.offer_timeout_us
        deadline = now + timeout
        expires = self._expiry_text(deadline)  # from_us(deadline).isoformat()
        entry = it.entries.get(queue.id)
        for agent in agents:
            tid = self._schedule(deadline, "offer", it.id, agent.id)
            it.offers[agent.id] = Offer(agent.id, queue.id, now, deadline, tid, ring_all)
            agent.offer = it.id
            agent.load[ch] = agent.load.get(ch, 0) + 1
            member = agent.queues.get(queue.id)
            if member is not None and it.offer_kind == "queue":
                queue.rr_last = member.order
            self._events.append(
                _new_event(
                    "interaction.offered",
                    {
                        "interaction_id": it.id,
                        "queue_id": queue.id,
                        "agent_id": agent.id,
                        "channel": _NAME[ch],
                        "kind": it.offer_kind,
                        "attempt": it.offer_attempts,
                        "ring_all": ring_all,
                        "strategy": _NAME[queue.config.strategy],
                        "penalty": member.penalty if member is not None else None,
                        "level": entry.level if entry is not None else None,
                        "priority": entry.priority if entry is not None else it.priority,
                        "wait_seconds": (now - it.queued_at) / US,
                        "timeout_seconds": timeout / US,
                        "expires_at": expires,
                    },
                    self._now_dt,
                )
            )
            self._refresh(agent, "offered")

    def _end_offer(self, it: Interaction, agent: Agent) -> Offer:
        offer = it.offers.pop(agent.id)
        self._timers.pop(offer.timer_id, None)  # _cancel
        agent.offer = None
        agent.load[it.channel] -= 1
        return offer

    def _withdraw(self, it: Interaction, agent: Agent, reason: str) -> None:
        offer = self._end_offer(it, agent)
        self._ievent(
            "interaction.offer_withdrawn",
            it,
            agent_id=agent.id,
            queue_id=offer.queue_id,
            reason=reason,
            ring_seconds=_sec(self._now - offer.offered_at),
        )
        self._refresh(agent, "offer_withdrawn")

    def _exclude(self, it: Interaction, agent: Agent, queue_id: str) -> None:
        queue = self._queues.get(queue_id)
        delay = seconds_to_us(queue.config.reoffer_delay_seconds) if queue is not None else 0
        if delay <= 0:
            return
        until = self._now + delay
        it.excluded[agent.id] = until
        self._set_it_timer(it, f"unexclude:{agent.id}", until, "unexclude", it.id, agent.id)

    def _return_to_queue(self, it: Interaction) -> None:
        """No offer left and none accepted: back to waiting, in the same place in line."""
        queue = self._queues[it.queue_id]
        if it.offer_kind == "transfer":
            self._enqueue(it, queue, "transfer_returned", keep_place=False)
            return
        if it.max_wait_reached:
            self._leave_queues(it)
            self._send_away(it, queue, "max_wait", queue.config.on_max_wait)
            return
        it.state = _QUEUED
        self._list_all(it)
        self._work.append((False, it.id))

    def accept(self, interaction_id: str, agent_id: str) -> list[NewEvent]:
        """The agent accepts its offer; with ring-all the other offers are withdrawn."""
        now = self._begin()
        it = self._interactions.get(interaction_id) if isinstance(interaction_id, str) else None
        if it is None:
            it = self._interaction(interaction_id)  # raises
        agent = self._agents.get(agent_id) if isinstance(agent_id, str) else None
        if agent is None:
            agent = self._agent(agent_id)  # raises
        offer = it.offers.get(agent.id) if it.state is _OFFERED else None
        if offer is None:
            self._check_offer(it, agent)  # raises
        offer = self._end_offer(it, agent)
        if it.offers:
            for other_id in list(it.offers):
                self._withdraw(it, self._agents[other_id], "accepted_elsewhere")
        entry = it.entries.get(offer.queue_id)
        queue_wait = now - (entry.entered_at if entry is not None else it.queued_at)
        if it.entries or it.timers or it.excluded:
            self._leave_queues(it)
        it.state = _ACTIVE
        it.agent_id = agent.id
        it.participants = {agent.id: Participant(Role.OWNER, now, now)}
        it.leg_started_at = now
        it.leg_hold_us = 0
        it.hold_started_at = None
        kind = it.offer_kind
        it.offer_kind = "queue"
        agent.interactions[it.id] = it.channel
        agent.load[it.channel] = agent.load.get(it.channel, 0) + 1
        agent.consecutive_misses = 0
        agent.handled += 1
        queue = self._queues.get(offer.queue_id)
        sl = queue.config.service_level_seconds if queue is not None else 0.0
        queue_wait_seconds = queue_wait / US
        self._events.append(
            _new_event(
                "interaction.accepted",
                {
                    "interaction_id": it.id,
                    "queue_id": offer.queue_id,
                    "agent_id": agent.id,
                    "channel": _NAME[it.channel],
                    "kind": kind,
                    "wait_seconds": (now - it.queued_at) / US,
                    "queue_wait_seconds": queue_wait_seconds,
                    "ring_seconds": (now - offer.offered_at) / US,
                    "service_level_seconds": sl,
                    "within_service_level": queue_wait_seconds <= sl,
                    "attempt": it.offer_attempts,
                },
                self._now_dt,
            )
        )
        self._refresh(agent, "accepted")
        return self._finish()

    def reject(
        self, interaction_id: str, agent_id: str, reason: str = "rejected"
    ) -> list[NewEvent]:
        """The agent declines its offer; the interaction goes to the next agent."""
        self._begin()
        it = self._interaction(interaction_id)
        agent = self._agent(agent_id)
        _check_reason(reason)
        self._check_offer(it, agent)
        offer = self._end_offer(it, agent)
        self._ievent(
            "interaction.rejected",
            it,
            agent_id=agent.id,
            queue_id=offer.queue_id,
            reason=reason,
            ring_seconds=_sec(self._now - offer.offered_at),
        )
        self._exclude(it, agent, offer.queue_id)
        state_reason = "rejected"
        if self._config.reject_counts_as_miss:
            state_reason = self._count_miss(agent, state_reason)
        self._refresh(agent, state_reason)
        if not it.offers:
            self._return_to_queue(it)
        return self._finish()

    def _check_offer(self, it: Interaction, agent: Agent) -> None:
        if it.state is not _OFFERED:
            raise Conflict(
                f"Interaction {it.id!r} is {it.state.value}, not being offered.",
                field="interaction_id",
            )
        if agent.id not in it.offers:
            raise PermissionDenied(
                f"Interaction {it.id!r} is not offered to agent {agent.id!r}.", field="agent_id"
            )

    def _count_miss(self, agent: Agent, reason: str) -> str:
        agent.consecutive_misses += 1
        if agent.consecutive_misses >= self._config.max_consecutive_misses:
            agent.consecutive_misses = 0
            if agent.aux_reason is None:
                if agent.staffed:
                    self._staff(agent, -1)
                agent.aux_reason = self._config.missed_offers_reason
            return self._config.missed_offers_reason
        return reason

    def _on_offer_timeout(self, interaction_id: str, agent_id: str) -> None:
        it = self._interactions[interaction_id]
        agent = self._agents[agent_id]
        offer = self._end_offer(it, agent)
        misses = agent.consecutive_misses + 1
        self._ievent(
            "interaction.offer_timed_out",
            it,
            agent_id=agent.id,
            queue_id=offer.queue_id,
            ring_seconds=_sec(self._now - offer.offered_at),
            consecutive_misses=misses,
        )
        self._exclude(it, agent, offer.queue_id)
        reason = self._count_miss(agent, "offer_timed_out")
        self._refresh(agent, reason)
        if not it.offers:
            self._return_to_queue(it)

    # ==========================================================================================
    # Connected interactions
    # ==========================================================================================

    def hold(self, interaction_id: str, agent_id: str) -> list[NewEvent]:
        """Put the customer on hold (hold time is reported per agent leg)."""
        now = self._begin()
        it, agent = self._owned_active(interaction_id, agent_id)
        if it.hold_started_at is not None:
            raise Conflict(f"Interaction {it.id!r} is on hold already.", field="interaction_id")
        it.hold_started_at = now
        self._ievent("interaction.held", it, agent_id=agent.id)
        return self._finish()

    def resume(self, interaction_id: str, agent_id: str) -> list[NewEvent]:
        """Take the customer off hold."""
        now = self._begin()
        it, agent = self._owned_active(interaction_id, agent_id)
        if it.hold_started_at is None:
            raise Conflict(f"Interaction {it.id!r} is not on hold.", field="interaction_id")
        held = now - it.hold_started_at
        it.leg_hold_us += held
        it.hold_started_at = None
        self._ievent("interaction.resumed", it, agent_id=agent.id, hold_seconds=_sec(held))
        return self._finish()

    def _close_leg(self, it: Interaction) -> tuple[int, int]:
        """End the owner's leg: (talk us, hold us); talk excludes hold."""
        now = self._now
        if it.hold_started_at is not None:
            it.leg_hold_us += now - it.hold_started_at
            it.hold_started_at = None
        started = it.leg_started_at if it.leg_started_at is not None else now
        hold = it.leg_hold_us
        talk = max(0, now - started - hold)
        it.leg_started_at = now
        it.leg_hold_us = 0
        return talk, hold

    def _start_wrapup(
        self, agent: Agent, it: Interaction, queue_id: str, talk: int, hold: int, cause: str
    ) -> None:
        """The agent's part ends: wrap-up for the queue's wrap-up seconds (0: none).

        An agent still wrapping up an earlier leg of the same interaction (it was offered
        back to them, e.g. from a queue it was transferred to) ends that wrap-up first
        (reason ``replaced``): its load unit and timer go with it."""
        earlier = agent.wrapups.get(it.id)
        if earlier is not None:
            self._end_wrapup(agent, earlier, "replaced", cause)
        agent.interactions.pop(it.id, None)
        if agent.rings:  # it took the interaction over and completes before answering
            agent.rings.discard(it.id)
        agent.talk_us += talk
        queue = self._queues.get(queue_id)
        seconds = queue.config.wrapup_seconds if queue is not None else 0.0
        wrap = Wrapup(it.id, it.channel, queue_id, self._now, None, None, talk, hold)
        if it.direction == "outbound":
            wrap.outbound = True
        agent.wrapups[it.id] = wrap
        if seconds is None:  # until the agent ends it (end_wrapup)
            self._refresh(agent, cause)
        elif seconds > 0:
            assert queue is not None and queue.wrapup_us is not None
            wrap.deadline = self._now + queue.wrapup_us
            wrap.timer_id = self._schedule(wrap.deadline, "wrapup", agent.id, it.id)
            self._refresh(agent, cause)
        else:
            self._end_wrapup(agent, wrap, "none", cause)

    def _end_wrapup(
        self, agent: Agent, wrap: Wrapup, reason: str, cause: str = "wrapup_ended"
    ) -> None:
        del agent.wrapups[wrap.interaction_id]
        if wrap.timer_id is not None:
            self._timers.pop(wrap.timer_id, None)  # _cancel
        agent.load[wrap.channel] -= 1
        wrapup = self._now - wrap.started_at
        handle = wrap.talk_us + wrap.hold_us + wrapup
        self._events.append(
            _new_event(
                "interaction.wrapup_ended",
                {
                    "interaction_id": wrap.interaction_id,
                    "queue_id": wrap.queue_id,
                    "agent_id": agent.id,
                    "channel": _NAME[wrap.channel],
                    "reason": reason,
                    "wrapup_seconds": wrapup / US,
                    "talk_seconds": wrap.talk_us / US,
                    "hold_seconds": wrap.hold_us / US,
                    "handle_seconds": handle / US,
                },
                self._now_dt,
            )
        )
        queue = self._queues.get(wrap.queue_id)
        if queue is not None and not wrap.outbound:  # outbound work does not predict waits
            window = queue.handle_times.setdefault(wrap.channel, [])
            window.append(handle / US)
            if len(window) > self._config.handle_time_window:
                del window[0]
        self._refresh(agent, cause)

    def complete(
        self, interaction_id: str, agent_id: str, disposition: str | None = None
    ) -> list[NewEvent]:
        """The owner ends the interaction; other participants drop; the owner wraps up.

        An owner whose phone still rings (a consulted agent handed the interaction before
        answering) may complete it too: with no talk time."""
        self._begin()
        it, agent = self._owned_active(interaction_id, agent_id, answered=False)
        if disposition is not None:
            _check_reason(disposition, "disposition")
        if len(it.participants) > 1:
            for other_id in [a for a in it.participants if a != agent.id]:
                self._remove_participant(it, self._agents[other_id], "completed")
        talk, hold = self._close_leg(it)
        queue = self._queues.get(it.queue_id)
        self._events.append(
            _new_event(
                "interaction.completed",
                {
                    "interaction_id": it.id,
                    "queue_id": it.queue_id,
                    "agent_id": agent.id,
                    "channel": _NAME[it.channel],
                    "disposition": disposition,
                    "talk_seconds": talk / US,
                    "hold_seconds": hold / US,
                    "wrapup_planned_seconds": queue.config.wrapup_seconds
                    if queue is not None
                    else 0.0,
                    "original_channel": it.original_channel.value if it.original_channel else None,
                },
                self._now_dt,
            )
        )
        self._drop(it)
        self._start_wrapup(agent, it, it.queue_id, talk, hold, "completed")
        return self._finish()

    def end_wrapup(self, interaction_id: str, agent_id: str) -> list[NewEvent]:
        """The agent ends its wrap-up early (or the only way, when the timer is off)."""
        self._begin()
        agent = self._agent(agent_id)
        wrap = agent.wrapups.get(interaction_id)
        if wrap is None:
            raise Conflict(
                f"Agent {agent_id!r} is not wrapping up interaction {interaction_id!r}.",
                field="interaction_id",
            )
        self._end_wrapup(agent, wrap, "agent")
        return self._finish()

    def abandon(self, interaction_id: str, reason: str = "hangup") -> list[NewEvent]:
        """The customer left while waiting, while being offered, or cancelled a callback."""
        now = self._begin()
        it = self._interaction(interaction_id)
        _check_reason(reason)
        if it.state is _ACTIVE:
            raise Conflict(
                f"Interaction {it.id!r} is connected; the agent completes it.",
                field="interaction_id",
            )
        state = it.state
        position = self._position(it)
        entry = it.entries.get(it.queue_id)
        for aid in list(it.offers):
            self._withdraw(it, self._agents[aid], "abandoned")
        self._ievent(
            "interaction.abandoned",
            it,
            reason=reason,
            state=state.value,
            position=position,
            wait_seconds=_sec(now - it.queued_at),
            queue_wait_seconds=_sec(now - entry.entered_at) if entry is not None else None,
            service_level_seconds=self._queues[it.queue_id].config.service_level_seconds,
            original_channel=it.original_channel.value if it.original_channel else None,
        )
        self._drop(it)
        return self._finish()

    # -- transfers, consultation, conference ---------------------------------------------------

    def transfer(
        self,
        interaction_id: str,
        agent_id: str,
        *,
        to_agent_id: str | None = None,
        to_queue_id: str | None = None,
        to_number: str | None = None,
        priority: int | None = None,
    ) -> list[NewEvent]:
        """Hand the interaction over.

        - to an agent already consulted or in conference: *consult transfer*, connected at once
          (if that agent's phone still rings, its leg starts when it answers:
          :meth:`consult_connected`);
        - to another agent: *blind transfer*, offered to that agent (on no answer or reject it
          goes back to its queue, at the back);
        - to a queue: *blind transfer* into that queue, waiting from now;
        - to a number (``to_number``: an extension, a colleague outside routing, an outside
          number, as the shell dialled it): *transfer out* of routing — the call goes on
          without the engine, so the interaction is over for it (``interaction.transferred``
          with kind ``external``, then ``interaction.completed`` with ``transferred_to``).
        The transferring agent's leg ends and it wraps up.
        """
        self._begin()
        it, agent = self._owned_active(interaction_id, agent_id)
        targets = (to_agent_id, to_queue_id, to_number)
        if sum(t is not None for t in targets) != 1:
            raise InvalidInput(
                "Give exactly one of to_agent_id, to_queue_id and to_number.", field="to"
            )
        if priority is not None:
            _check_priority(priority)
        others = [a for a in it.participants if a != agent.id]
        if to_number is not None:
            self._transfer_out(it, agent, _checked_number(to_number), others)
            return self._finish()
        if to_agent_id is not None:
            target = self._agent(to_agent_id, "to_agent_id")
            if target is agent:
                raise InvalidInput("An agent cannot transfer to itself.", field="to_agent_id")
            if target.id in it.participants:
                self._hand_over(it, agent, target)
                return self._finish()
            self._alone(others, "a blind transfer", "to_agent_id")
            self._check_can_take(target, it.channel, "to_agent_id")
            talk, hold = self._leg_transferred(it, agent, to_agent_id=target.id)
            self._detach_owner(it)
            if priority is not None:
                it.priority = priority
            it.queued_at = self._now
            it.offer_kind = "transfer"
            self._start_wrapup(agent, it, it.queue_id, talk, hold, "transferred")
            self._offer(it, [target], self._queues[it.queue_id], ring_all=False)
            return self._finish()
        assert to_queue_id is not None
        queue = self._queue(to_queue_id, "to_queue_id")
        if it.channel not in queue.channel_set:
            raise InvalidInput(
                f"Queue {queue.id!r} does not take {it.channel.value} interactions.",
                field="to_queue_id",
            )
        self._alone(others, "a transfer to a queue", "to_queue_id")
        talk, hold = self._leg_transferred(it, agent, to_queue_id=queue.id)
        old_queue = it.queue_id
        self._detach_owner(it)
        if priority is not None:
            it.priority = priority
        it.queued_at = self._now
        it.hops = 0
        self._start_wrapup(agent, it, old_queue, talk, hold, "transferred")
        self._enqueue(it, queue, "transfer", keep_place=False)
        return self._finish()

    @staticmethod
    def _alone(others: list[str], what: str, field: str) -> None:
        """A blind transfer needs the owner alone on the interaction."""
        if others:
            raise Conflict(f"End the consultation or conference before {what}.", field=field)

    def _leg_transferred(
        self,
        it: Interaction,
        agent: Agent,
        *,
        to_agent_id: str | None = None,
        to_queue_id: str | None = None,
        **extra: Any,
    ) -> tuple[int, int]:
        """The owner's leg ends by a blind transfer (or one out of routing: ``extra``):
        ``interaction.transferred``; returns the leg's (talk us, hold us)."""
        talk, hold = self._close_leg(it)
        self._ievent(
            "interaction.transferred",
            it,
            agent_id=agent.id,
            to_agent_id=to_agent_id,
            to_queue_id=to_queue_id,
            kind=extra.pop("kind", "blind"),
            talk_seconds=_sec(talk),
            hold_seconds=_sec(hold),
            **extra,
        )
        return talk, hold

    def _transfer_out(self, it: Interaction, agent: Agent, number: str, others: list[str]) -> None:
        self._alone(others, "a transfer to a number", "to_number")
        talk, hold = self._leg_transferred(it, agent, kind="external", to_number=number)
        queue = self._queues.get(it.queue_id)
        self._ievent(
            "interaction.completed",
            it,
            agent_id=agent.id,
            disposition=None,
            talk_seconds=_sec(talk),
            hold_seconds=_sec(hold),
            wrapup_planned_seconds=queue.config.wrapup_seconds if queue is not None else 0.0,
            original_channel=it.original_channel.value if it.original_channel else None,
            transferred_to=number,
        )
        self._drop(it)
        self._start_wrapup(agent, it, it.queue_id, talk, hold, "transferred")

    def _detach_owner(self, it: Interaction) -> None:
        it.agent_id = None
        it.participants = {}
        it.leg_started_at = None

    def _hand_over(self, it: Interaction, owner: Agent, target: Agent) -> None:
        """Ownership passes to a consulted / conferenced agent; the old owner wraps up."""
        role = it.participants[target.id].role
        talk, hold = self._close_leg(it)
        self._ievent(
            "interaction.transferred",
            it,
            agent_id=owner.id,
            to_agent_id=target.id,
            to_queue_id=None,
            kind=role.value,
            talk_seconds=_sec(talk),
            hold_seconds=_sec(hold),
        )
        del it.participants[owner.id]
        part = it.participants[target.id]
        part.role = Role.OWNER
        if part.connected_at is None:
            # Still ringing: no talk until it answers (consult_connected starts its leg).
            it.leg_started_at = None
        it.agent_id = target.id
        self._start_wrapup(owner, it, it.queue_id, talk, hold, "transferred")

    def _check_can_take(self, target: Agent, channel: Channel, field: str) -> None:
        if not self._can_take(target, channel):
            raise Conflict(
                f"Agent {target.id!r} cannot take a {channel.value} interaction now "
                f"({target.state.value}).",
                field=field,
            )

    def consult(
        self,
        interaction_id: str,
        agent_id: str,
        target_agent_id: str,
        *,
        ringing: bool | None = None,
    ) -> list[NewEvent]:
        """The owner brings in another agent privately (the customer is typically on hold).

        ``ringing``: whether the consulted agent's phone rings first (``None``: the channel
        decides, a phone channel, voice or callback, rings). A ringing consultation holds the
        consulted agent (its capacity is taken: nothing else is offered to it) in state
        ``reserved``, not ``busy``, and counts no talk time until :meth:`consult_connected`
        (its phone answered); it may end before that (``leave`` with ``busy``,
        ``no_answer``..., ``end_consult``, ``complete``) or be handed the interaction
        (``transfer``, the owner leaving) or turned into a conference, still ringing.
        Otherwise (chat, e-mail, task) it is connected at once.
        """
        now = self._begin()
        it, agent = self._owned_active(interaction_id, agent_id)
        target = self._agent(target_agent_id, "target_agent_id")
        if ringing is not None and not isinstance(ringing, bool):
            raise InvalidInput("ringing must be true, false or null.", field="ringing")
        if target.id in it.participants:
            raise Conflict(f"Agent {target.id!r} is already on this interaction.", field="target")
        self._check_can_take(target, it.channel, "target_agent_id")
        if ringing is None:
            ringing = it.channel in PHONE_CHANNELS
        self._join(it, target, Role.CONSULT, now, ringing)
        self._ievent(
            "interaction.consult_started",
            it,
            agent_id=agent.id,
            consulted_agent_id=target.id,
            ringing=ringing,
        )
        self._refresh(target, "consult")
        return self._finish()

    def consult_connected(self, interaction_id: str, agent_id: str) -> list[NewEvent]:
        """The consulted agent ``agent_id`` answered its ringing phone: it talks from now on
        (``interaction.consult_connected`` with ``ring_seconds``; the agent turns ``busy``).
        Also for an agent that was handed the interaction, or brought into a conference,
        while its phone rang: for the new owner, its talk time starts now."""
        now = self._begin()
        it = self._interaction(interaction_id)
        agent = self._agent(agent_id)
        part = it.participants.get(agent.id) if it.state is _ACTIVE else None
        if part is None:
            raise PermissionDenied(
                f"Agent {agent.id!r} is not on interaction {it.id!r}.", field="agent_id"
            )
        if part.connected_at is not None:
            raise Conflict(
                f"Agent {agent.id!r} is connected to interaction {it.id!r} already (its "
                "phone is not ringing).",
                field="agent_id",
            )
        part.connected_at = now
        agent.rings.discard(it.id)
        if it.agent_id == agent.id:  # handed the interaction while ringing: its leg starts
            it.leg_started_at = now
            it.leg_hold_us = 0
        self._ievent(
            "interaction.consult_connected",
            it,
            agent_id=it.agent_id,
            consulted_agent_id=agent.id,
            role=part.role.value,
            ring_seconds=_sec(now - part.joined_at),
        )
        self._refresh(agent, "consult_connected")
        return self._finish()

    def conference(
        self, interaction_id: str, agent_id: str, target_agent_id: str
    ) -> list[NewEvent]:
        """Bring an agent (possibly the one being consulted) into a conference."""
        now = self._begin()
        it, agent = self._owned_active(interaction_id, agent_id)
        target = self._agent(target_agent_id, "target_agent_id")
        part = it.participants.get(target.id)
        if part is not None and part.role is not Role.CONSULT:
            raise Conflict(f"Agent {target.id!r} is already in the conference.", field="target")
        if part is None:
            self._check_can_take(target, it.channel, "target_agent_id")
            self._join(it, target, Role.CONFERENCE, now, False)
        else:
            part.role = Role.CONFERENCE  # a consultation still ringing keeps ringing
        self._ievent(
            "interaction.conference_joined",
            it,
            agent_id=agent.id,
            joined_agent_id=target.id,
            from_consult=part is not None,
            ringing=part is not None and part.connected_at is None,
        )
        self._refresh(target, "conference")
        return self._finish()

    def _join(self, it: Interaction, target: Agent, role: Role, now: int, ringing: bool) -> None:
        it.participants[target.id] = Participant(role, now, None if ringing else now)
        target.interactions[it.id] = it.channel
        if ringing:
            target.rings.add(it.id)
        target.load[it.channel] = target.load.get(it.channel, 0) + 1

    def leave(self, interaction_id: str, agent_id: str, reason: str = "left") -> list[NewEvent]:
        """A participant leaves (``participant_left`` with ``reason``: ``left``, or why, e.g.
        ``busy`` when a consulted agent's phone could not take the call). If the owner
        leaves, the earliest other participant who is talking takes over (the earliest one
        whose phone still rings if none is)."""
        self._begin()
        it = self._interaction(interaction_id)
        agent = self._agent(agent_id)
        if it.state is not _ACTIVE or agent.id not in it.participants:
            raise PermissionDenied(
                f"Agent {agent.id!r} is not on interaction {it.id!r}.", field="agent_id"
            )
        if it.agent_id == agent.id:
            others = [a for a in it.participants if a != agent.id]
            if not others:
                raise Conflict(
                    "The only agent on the interaction completes it instead.", field="agent_id"
                )
            talking = [a for a in others if it.participants[a].connected_at is not None]
            self._hand_over(it, agent, self._agents[(talking or others)[0]])
        else:
            self._remove_participant(it, agent, reason)
        return self._finish()

    def end_consult(
        self, interaction_id: str, agent_id: str, target_agent_id: str
    ) -> list[NewEvent]:
        """The owner ends a consultation: the consulted agent leaves (``participant_left``,
        reason ``consult_ended``) and the owner is alone with the customer again."""
        self._begin()
        it, _owner = self._owned_active(interaction_id, agent_id)
        target = self._agent(target_agent_id, "target_agent_id")
        part = it.participants.get(target.id)
        if part is None or part.role is not Role.CONSULT:
            raise Conflict(
                f"Agent {target.id!r} is not being consulted on interaction {it.id!r}.",
                field="target_agent_id",
            )
        self._remove_participant(it, target, "consult_ended")
        return self._finish()

    def _remove_participant(self, it: Interaction, agent: Agent, reason: str) -> None:
        part = it.participants.pop(agent.id)
        agent.interactions.pop(it.id, None)
        agent.load[it.channel] -= 1
        now = self._now
        connected = part.connected_at
        if connected is None:  # it never answered: all ringing, no talk
            agent.rings.discard(it.id)
        talked_from = now if connected is None else connected
        self._ievent(
            "interaction.participant_left",
            it,
            agent_id=agent.id,
            role=part.role.value,
            reason=reason,
            seconds=_sec(now - talked_from),
            ring_seconds=_sec(talked_from - part.joined_at),
            connected=connected is not None,
        )
        self._refresh(agent, "left_interaction")

    # ==========================================================================================
    # Outbound: contacts the agent starts (click-to-dial, an e-mail or task of their own)
    # ==========================================================================================

    def start_outbound(
        self,
        interaction_id: str,
        agent_id: str,
        queue_id: str | None = None,
        channel: Channel | str = Channel.VOICE,
        *,
        customer_id: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> list[NewEvent]:
        """The agent starts a contact: it is connected to them at once, never queued.

        ``queue_id`` is the outbound queue it is reported under and whose wrap-up applies
        (the agent need not be a member); None: the first of the agent's queues that takes
        ``channel``. The agent must be logged in, have no offer ringing
        and room for ``channel`` (a call blocks other channels as configured); an agent on a
        break may place it and returns to the break after the wrap-up. Events:
        ``interaction.created`` with ``direction: "outbound"`` and ``interaction.accepted``
        with ``kind: "outbound"``; it then ends like any other (``complete``, wrap-up).
        Outbound contacts do not count as offered or answered and their handle times do not
        feed the queue's estimated wait (docs/routing.md).
        """
        now = self._begin()
        self._check_new_id(interaction_id)
        agent = self._agent(agent_id)
        ch = parse_channel(channel)
        if queue_id is None:
            queue_id = next((q for q in agent.queues if ch in self._queues[q].channel_set), None)
            if queue_id is None:
                raise InvalidInput(
                    f"Agent {agent.id!r} is in no queue that takes {ch.value}: name the "
                    "queue to report this contact under.",
                    field="queue_id",
                )
        queue = self._queue(queue_id)
        _check_takes(queue, ch)
        _check_customer(customer_id)
        attrs = check_attributes(attributes) if attributes is not None else {}
        refusal = self._outbound_refusal(agent, ch)
        if refusal is not None:
            raise Conflict(refusal, field="agent_id")
        it = Interaction(
            id=interaction_id,
            channel=ch,
            priority=0,
            required_skills="",
            expression=self._compile("", "required_skills"),
            customer_id=customer_id,
            attributes=attrs,
            created_at=now,
            queued_at=now,
            queue_id=queue.id,
            seq=0,
            state=_ACTIVE,
            agent_id=agent.id,
            leg_started_at=now,
            direction="outbound",
        )
        it.participants = {agent.id: Participant(Role.OWNER, now, now)}
        self._interactions[interaction_id] = it
        agent.interactions[it.id] = ch
        agent.load[ch] = agent.load.get(ch, 0) + 1
        self._ievent(
            "interaction.created",
            it,
            agent_id=agent.id,
            priority=0,
            required_skills="",
            customer_id=customer_id,
            attributes=attrs,
            created_at=self._iso(),
            direction="outbound",
        )
        self._ievent(
            "interaction.accepted",
            it,
            agent_id=agent.id,
            kind="outbound",
            wait_seconds=0.0,
            queue_wait_seconds=0.0,
            ring_seconds=0.0,
            service_level_seconds=queue.config.service_level_seconds,
            within_service_level=True,
            attempt=0,
        )
        self._refresh(agent, "outbound")
        return self._finish()

    def outbound_refusal(self, agent_id: str, channel: Channel | str = Channel.VOICE) -> str | None:
        """Why :meth:`start_outbound` would refuse ``agent_id`` a ``channel`` contact right
        now (None: it would not), e.g. to check before a phone rings."""
        self._query_now()
        return self._outbound_refusal(self._agent(agent_id), parse_channel(channel))

    def _outbound_refusal(self, agent: Agent, channel: Channel) -> str | None:
        if agent.logged_in_at is None:
            return f"Agent {agent.id!r} is not logged in."
        if agent.offer is not None:
            return f"Agent {agent.id!r} has an offer ringing: accept or reject it first."
        if not self._has_room(agent, channel):
            busy = "is wrapping up: end the wrap-up first" if agent.wrapups else "is busy"
            return f"Agent {agent.id!r} {busy} (no room for another {channel.value} interaction)."
        return None

    def _has_room(self, agent: Agent, channel: Channel) -> bool:
        """Capacity alone (not state): whether the agent could carry one more ``channel``."""
        load = agent.load
        if load.get(channel, 0) >= agent.config.capacity.get(channel, 0):
            return False
        if not agent.config.voice_blocks_other_channels or channel in PHONE_CHANNELS:
            return True
        return not any(load.get(c) for c in PHONE_CHANNELS)

    # ==========================================================================================
    # Callbacks
    # ==========================================================================================

    def request_callback(
        self, interaction_id: str, *, phone: str | None = None, at: datetime | None = None
    ) -> list[NewEvent]:
        """A waiting customer asks to be called back; it keeps its place in line.

        The interaction becomes a ``callback`` (an outbound call the agent places), is not
        offered before ``at`` (if given), and keeps its original queued time and score.
        """
        now = self._begin()
        it = self._interaction(interaction_id)
        if it.state is not _QUEUED:
            raise Conflict(
                f"Only a waiting interaction can ask for a callback ({it.id!r} is "
                f"{it.state.value}).",
                field="interaction_id",
            )
        if it.channel is Channel.CALLBACK:
            raise Conflict(f"Interaction {it.id!r} is a callback already.", field="interaction_id")
        queue = self._queues[it.queue_id]
        policy = queue.config.callback
        if not policy.enabled or Channel.CALLBACK not in queue.channel_set:
            raise Conflict(f"Queue {queue.id!r} does not offer callbacks.", field="queue_id")
        if phone is not None and (not isinstance(phone, str) or not 0 < len(phone) <= 64):
            raise InvalidInput("phone must be a string of 1 to 64 characters.", field="phone")
        due = now
        if at is not None:
            if not isinstance(at, datetime) or at.tzinfo is None:
                raise InvalidInput("at must be a timezone-aware datetime.", field="at")
            due = max(now, to_us(at))
            if due - now > seconds_to_us(policy.max_delay_seconds):
                raise InvalidInput(
                    f"A callback can be at most {policy.max_delay_seconds:g} seconds ahead.",
                    field="at",
                )
        # Mutate.
        position = self._position(it)
        self._unlist(it)
        it.original_channel = it.channel
        it.channel = Channel.CALLBACK
        it.callback_phone = phone
        if "max_wait" in it.timers:
            self._cancel(it.timers.pop("max_wait"))
        for qid in [q for q in it.entries if q != queue.id]:
            if Channel.CALLBACK not in self._queues[qid].channel_set:
                del it.entries[qid]
                if f"relax:{qid}" in it.timers:
                    self._cancel(it.timers.pop(f"relax:{qid}"))
        self._ievent(
            "interaction.callback_requested",
            it,
            original_channel=it.original_channel.value,
            phone=phone,
            due_at=from_us(due).isoformat(),
            wait_seconds=_sec(now - it.queued_at),
            position=position,
        )
        self._schedule_callback(it, queue, due)
        return self._finish()

    def _schedule_callback(self, it: Interaction, queue: Queue, due: int) -> None:
        if due > self._now:
            it.state = _SCHEDULED
            it.callback_due_at = due
            queue.scheduled[it.id] = None
            self._set_it_timer(it, "callback", due, "callback", it.id, "")
        else:
            it.state = _QUEUED
            it.callback_due_at = None
            self._list_all(it)
            self._work.append((False, it.id))

    def _on_callback_due(self, interaction_id: str) -> None:
        it = self._interactions[interaction_id]
        it.timers.pop("callback", None)
        queue = self._queues[it.queue_id]
        queue.scheduled.pop(it.id, None)
        it.state = _QUEUED
        it.callback_due_at = None
        self._list_all(it)
        self._ievent(
            "callback.due",
            it,
            attempt=it.callback_attempts + 1,
            position=self._position(it),
            wait_seconds=_sec(self._now - it.queued_at),
        )
        self._work.append((False, it.id))

    def callback_failed(
        self, interaction_id: str, agent_id: str, reason: str = "no_answer"
    ) -> list[NewEvent]:
        """The agent's call to the customer did not connect; retry per the queue's policy."""
        now = self._begin()
        it, agent = self._owned_active(interaction_id, agent_id, answered=False)
        _check_reason(reason)
        if it.channel is not Channel.CALLBACK:
            raise Conflict(f"Interaction {it.id!r} is not a callback.", field="interaction_id")
        if len(it.participants) > 1:
            raise Conflict("End the consultation or conference first.", field="interaction_id")
        queue = self._queues[it.queue_id]
        policy = queue.config.callback
        talk, _ = self._close_leg(it)
        agent.interactions.pop(it.id, None)
        agent.rings.discard(it.id)
        agent.load[it.channel] -= 1
        agent.talk_us += talk
        self._detach_owner(it)
        it.callback_attempts += 1
        retry = it.callback_attempts < policy.max_attempts
        due = now + seconds_to_us(policy.retry_delay_seconds)
        self._ievent(
            "callback.attempt_failed",
            it,
            agent_id=agent.id,
            attempt=it.callback_attempts,
            reason=reason,
            retry_at=from_us(due).isoformat() if retry else None,
        )
        if retry:
            entry = self._new_entry(it, queue)
            it.entries = {queue.id: entry}
            self._schedule_entry_timers(it, queue, entry, primary=True)
            self._schedule_callback(it, queue, due)
        else:
            self._ievent("callback.exhausted", it, attempts=it.callback_attempts)
            self._drop(it)
        self._refresh(agent, "callback_failed")
        return self._finish()

    # ==========================================================================================
    # Timers
    # ==========================================================================================

    def _schedule(self, due: int, kind: str, a: str, b: str) -> int:
        tid = self._next_timer
        self._next_timer += 1
        self._timers[tid] = (due, kind, a, b)
        heapq.heappush(self._heap, (due, tid))
        if len(self._heap) > 2 * len(self._timers) + 4096:
            self._heap = [(t[0], i) for i, t in self._timers.items()]
            heapq.heapify(self._heap)
        return tid

    def _cancel(self, timer_id: int) -> None:
        self._timers.pop(timer_id, None)

    def _set_it_timer(
        self, it: Interaction, name: str, due: int, kind: str, a: str, b: str
    ) -> None:
        old = it.timers.pop(name, None)
        if old is not None:
            self._cancel(old)
        it.timers[name] = self._schedule(due, kind, a, b)

    def next_deadline(self) -> datetime | None:
        """When :meth:`tick` next has something to do (None: nothing scheduled)."""
        heap = self._heap
        timers = self._timers
        while heap and heap[0][1] not in timers:
            heapq.heappop(heap)
        return from_us(heap[0][0]) if heap else None

    def tick(self) -> list[NewEvent]:
        """Fire every timer due at ``clock.now()``, in deadline order, routing after each."""
        now = self._begin()
        heap = self._heap
        timers = self._timers
        while heap and heap[0][0] <= now:
            _, tid = heapq.heappop(heap)
            timer = timers.pop(tid, None)
            if timer is None:
                continue
            _, kind, a, b = timer
            if kind == "offer":
                self._on_offer_timeout(a, b)
            elif kind == "wrapup":
                agent = self._agents[a]
                self._end_wrapup(agent, agent.wrapups[b], "timer")
            elif kind == "relax":
                self._on_relax(a, b)
            elif kind == "max_wait":
                self._on_max_wait(a, b)
            elif kind == "unexclude":
                self._on_unexclude(a, b)
            elif kind == "callback":
                self._on_callback_due(a)
            if self._work or self._to_empty:
                self._dispatch()
        return self._finish()

    def _on_relax(self, interaction_id: str, queue_id: str) -> None:
        it = self._interactions[interaction_id]
        it.timers.pop(f"relax:{queue_id}", None)
        entry = it.entries[queue_id]
        queue = self._queues[queue_id]
        steps = queue.config.relaxation
        if entry.level >= len(steps):
            return
        step = steps[entry.level]
        listed = entry.listed
        if listed:
            self._unlist_entry(it, entry)
        entry.level += 1
        if listed:
            self._list_entry(it, entry)
        added: Queue | None = None
        if step.add_queue_id is not None:
            candidate = self._queues.get(step.add_queue_id)
            if (
                candidate is not None
                and candidate.id not in it.entries
                and it.channel in candidate.channel_set
            ):
                added = candidate
        self._ievent(
            "interaction.relaxed",
            it,
            queue_id=queue_id,
            level=entry.level,
            max_penalty=queue.level_max_penalty[entry.level],
            lowered_levels=queue.level_relax[entry.level],
            added_queue_id=added.id if added is not None else None,
            wait_seconds=_sec(self._now - it.queued_at),
        )
        if added is not None:
            extra = self._new_entry(it, added)
            it.entries[added.id] = extra
            if it.state is _QUEUED:
                self._list_entry(it, extra)
            self._schedule_entry_timers(it, added, extra, primary=False)
        self._schedule_entry_timers(it, queue, entry, primary=False)
        if it.state is _QUEUED:
            self._work.append((False, it.id))

    def _on_max_wait(self, interaction_id: str, queue_id: str) -> None:
        it = self._interactions[interaction_id]
        it.timers.pop("max_wait", None)
        queue = self._queues[queue_id]
        if it.state is _QUEUED:
            self._leave_queues(it)
            self._send_away(it, queue, "max_wait", queue.config.on_max_wait)
        elif it.state is _OFFERED:
            it.max_wait_reached = True  # acted on if the offer is not accepted

    def _on_unexclude(self, interaction_id: str, agent_id: str) -> None:
        it = self._interactions[interaction_id]
        it.timers.pop(f"unexclude:{agent_id}", None)
        it.excluded.pop(agent_id, None)
        if it.state is _QUEUED:
            self._work.append((False, it.id))

    # ==========================================================================================
    # Queries: position, EWT, snapshots for UIs
    # ==========================================================================================

    def _places(self, queue: Queue, key: WaitKey, channel: Channel) -> tuple[int, int]:
        """1-based place of ``key`` in ``queue``: among all channels, and on ``channel``."""
        ahead = same = 0
        for ch, lists in queue.waiting.items():
            for keys in lists:
                if keys:
                    n = keys.rank(key)
                    ahead += n
                    if ch is channel:
                        same += n
        return ahead + 1, same + 1

    def _position(self, it: Interaction, *, same_channel: bool = False) -> int | None:
        """1-based place in its queue (0 while offered, None when connected)."""
        if it.state is _OFFERED:
            return 0
        if it.state is _ACTIVE:
            return None
        entry = it.entries.get(it.queue_id)
        if entry is None:
            return None
        queue = self._queues[it.queue_id]
        ahead = 0
        for ch, lists in queue.waiting.items():
            if same_channel and ch is not it.channel:
                continue
            for keys in lists:
                if keys:
                    ahead += keys.rank(entry.key)
        return ahead + 1

    def _ewt(self, queue: Queue, channel: Channel, position: int) -> float | None:
        """Estimated wait of the interaction at ``position`` (same channel) in ``queue``."""
        ready = queue.ready.count(channel)
        if position <= ready:
            return 0.0
        staffed = queue.staffed_capacity.get(channel, 0)
        if staffed <= 0:
            return None
        window = queue.handle_times.get(channel)
        aht = sum(window) / len(window) if window else queue.config.default_handle_seconds
        return (position - ready) * aht / staffed

    def _interaction_ewt(self, it: Interaction) -> float | None:
        if it.state is _OFFERED:
            return 0.0
        if it.state is _ACTIVE:
            return None
        position = self._position(it, same_channel=True)
        if position is None:
            return None
        ewt = self._ewt(self._queues[it.queue_id], it.channel, position)
        if it.state is _SCHEDULED and it.callback_due_at is not None:
            until_due = _sec(it.callback_due_at - self._now)
            return max(until_due, ewt or 0.0)
        return ewt

    def _query_now(self) -> None:
        moment = self._clock.now()
        self._now_dt = moment
        self._now = to_us(moment)

    def position(self, interaction_id: str) -> int | None:
        """Place in line: 1 = next; 0 while being offered; None once connected."""
        self._query_now()
        return self._position(self._interaction(interaction_id))

    def estimated_wait(self, interaction_id: str) -> float | None:
        """Estimated seconds until offered (None: no staffed agent to estimate from)."""
        self._query_now()
        return self._interaction_ewt(self._interaction(interaction_id))

    def interaction_snapshot(self, interaction_id: str) -> InteractionSnapshot:
        self._query_now()
        it = self._interaction(interaction_id)
        return InteractionSnapshot(
            interaction_id=it.id,
            state=it.state.value,
            channel=it.channel.value,
            queue_id=it.queue_id,
            queue_ids=tuple(it.entries),
            priority=it.priority,
            agent_id=it.agent_id,
            offered_to=tuple(it.offers),
            participants={a: p.role.value for a, p in it.participants.items()},
            ringing=tuple(a for a, p in it.participants.items() if p.connected_at is None),
            position=self._position(it),
            ewt_seconds=self._interaction_ewt(it),
            wait_seconds=_sec(self._now - it.queued_at),
            created_at=from_us(it.created_at),
            queued_at=from_us(it.queued_at),
            on_hold=it.hold_started_at is not None,
            callback_due_at=from_us(it.callback_due_at) if it.callback_due_at else None,
            callback_attempts=it.callback_attempts,
            customer_id=it.customer_id,
            required_skills=it.required_skills,
            attributes=dict(it.attributes),
            callback_phone=it.callback_phone,
            direction=it.direction,
        )

    def queue_snapshot(self, queue_id: str, *, limit: int | None = None) -> QueueSnapshot:
        """Waiting count, longest wait, agents by state and the waiting list (by position)."""
        self._query_now()
        queue = self._queue(queue_id)
        now = self._now
        by_state: dict[str, int] = {s.value: 0 for s in AgentState}
        for aid in queue.members:
            by_state[self._agents[aid].state.value] += 1
        rows: list[tuple[WaitKey, Interaction, QueueEntry]] = []
        offered = 0
        for it, entry in self._queue_entries(queue):
            if it.state is _OFFERED:
                offered += 1
            elif it.state in (_QUEUED, _SCHEDULED):
                rows.append((entry.key, it, entry))
        rows.sort(key=lambda r: r[0])
        longest = max((_sec(now - r[1].queued_at) for r in rows), default=0.0)
        waiting: list[WaitingEntry] = []
        for key, it, entry in rows[: limit if limit is not None else len(rows)]:
            per_channel = sum(lst.rank(key) for lst in queue.waiting.get(it.channel, ()) if lst)
            ewt = self._ewt(queue, it.channel, per_channel + 1)
            if it.state is _SCHEDULED and it.callback_due_at is not None:
                ewt = max(_sec(it.callback_due_at - now), ewt or 0.0)
            waiting.append(
                WaitingEntry(
                    interaction_id=it.id,
                    channel=it.channel.value,
                    state=it.state.value,
                    priority=entry.priority,
                    position=sum(lst.rank(key) for lists in queue.waiting.values() for lst in lists)
                    + 1,
                    wait_seconds=_sec(now - it.queued_at),
                    ewt_seconds=ewt,
                    level=entry.level,
                    score=self._score(queue, key) / US,
                    primary=it.queue_id == queue.id,
                )
            )
        return QueueSnapshot(
            queue_id=queue.id,
            name=queue.config.name,
            strategy=queue.config.strategy.value,
            waiting=queue.waiting_count,
            scheduled_callbacks=len(queue.scheduled),
            offered=offered,
            longest_wait_seconds=longest,
            staffed_agents=queue.staffed_agents,
            agents_by_state=by_state,
            service_level_seconds=queue.config.service_level_seconds,
            entries=tuple(waiting),
            open=self._open_now(queue),
        )

    def agent_snapshot(self, agent_id: str) -> AgentSnapshot:
        """State, reason, since, current work and load per channel of one agent."""
        self._query_now()
        agent = self._agent(agent_id)
        return AgentSnapshot(
            agent_id=agent.id,
            name=agent.config.name,
            state=agent.state.value,
            reason=agent.reason,
            since=from_us(agent.since),
            seconds_in_state=_sec(self._now - agent.since),
            pending_break=agent.aux_reason
            if agent.aux_reason is not None and agent.state is not AgentState.BREAK
            else None,
            offer=agent.offer,
            interactions=tuple(agent.interactions),
            wrapups=tuple(agent.wrapups),
            load={c.value: n for c, n in agent.load.items() if n},
            capacity={c.value: n for c, n in agent.config.capacity.items()},
            routable_channels=tuple(c.value for c in self._routable_channels(agent)),
            queues=tuple(row["queue_id"] for row in self._membership_payload(agent)),
            consecutive_misses=agent.consecutive_misses,
            handled=agent.handled,
        )

    def queue_config(self, queue_id: str) -> QueueConfig:
        """The (normalized) configuration of a queue."""
        return self._queue(queue_id).config

    def agent_config(self, agent_id: str) -> AgentConfig:
        """The (normalized) configuration of an agent."""
        return self._agent(agent_id).config

    def queue_ids(self) -> list[str]:
        return list(self._queues)

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def interaction_ids(self) -> list[str]:
        return list(self._interactions)

    def iter_agent_states(self) -> Iterator[tuple[str, str, str]]:
        """(agent_id, state, reason) for every agent, e.g. for a wallboard."""
        for agent in self._agents.values():
            yield agent.id, agent.state.value, agent.reason

    # ==========================================================================================
    # Persistence
    # ==========================================================================================

    def to_snapshot(self) -> dict[str, Any]:
        """The complete state as JSON data; :meth:`from_snapshot` restores an identical engine."""
        return persistence.dump_engine(self)

    @classmethod
    def from_snapshot(cls, data: dict[str, Any], clock: Clock) -> AcdEngine:
        """Rebuild an engine from :meth:`to_snapshot` output; same future behaviour."""
        return persistence.load_engine(cls, data, clock)

    def _restore_indexes(self) -> None:
        """Rebuild the derived structures (members, staffing, ready and waiting indexes)."""
        self._listed_in = {}
        self._expression_queues = {}
        for queue in self._queues.values():
            self._track_listing(queue, add=True)
            queue.members = {}
            queue.staffed_agents = 0
            queue.staffed_capacity = {}
            queue.ready = ReadyIndex(queue.config.strategy, queue.config.channels)
            queue.waiting = {}
            queue.waiting_count = 0
            queue.scheduled = {}
        for agent in self._agents.values():
            agent.queues = {}
            agent.index_keys = {}
        for queue in self._queues.values():
            for aid in queue.listed if queue.expression is None else self._agents:
                candidate = self._agents.get(aid)
                if candidate is not None:
                    member = self._membership_for(queue, candidate)
                    if member is not None:
                        candidate.queues[queue.id] = member
                        queue.members[candidate.id] = member
        for agent in self._agents.values():
            if agent.staffed:
                for qid in agent.queues:
                    queue = self._queues[qid]
                    queue.staffed_agents += 1
                    for ch, n in agent.config.capacity.items():
                        queue.staffed_capacity[ch] = queue.staffed_capacity.get(ch, 0) + n
        for it in self._interactions.values():
            for entry in it.entries.values():
                queue = self._queues[entry.queue_id]
                entry.key = self._wait_key(queue, entry.priority, it)
                if entry.listed:
                    entry.listed = False
                    self._list_entry(it, entry)
            if it.state is _SCHEDULED:
                self._queues[it.queue_id].scheduled[it.id] = None
        for agent in self._agents.values():
            self._reindex(agent)
        self._work.clear()
        self._heap = [(t[0], tid) for tid, t in self._timers.items()]
        heapq.heapify(self._heap)


def _checked_number(number: object) -> str:
    """A number an interaction is transferred out to, as the shell dials it."""
    text = number.strip() if isinstance(number, str) else ""
    if not 1 <= len(text) <= 64 or not text.isprintable():
        raise InvalidInput(
            "to_number must be a number or address of 1-64 printable characters.",
            field="to_number",
        )
    return text


def _check_reason(reason: object, field: str = "reason") -> None:
    if not isinstance(reason, str) or not reason or len(reason) > 100:
        raise InvalidInput(
            f"{field} must be a non-empty string of at most 100 characters.", field=field
        )


def _check_takes(queue: Queue, channel: Channel) -> None:
    if channel not in queue.channel_set:
        raise InvalidInput(
            f"Queue {queue.id!r} does not take {channel.value} interactions.", field="channel"
        )


def _check_customer(customer_id: object) -> None:
    if customer_id is not None and (not isinstance(customer_id, str) or len(customer_id) > 200):
        raise InvalidInput("customer_id must be a string.", field="customer_id")


def _check_priority(priority: object) -> None:
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidInput("priority must be an integer.", field="priority")
    if not 0 <= priority <= MAX_PRIORITY:
        raise InvalidInput(
            f"priority must be an integer from 0 to {MAX_PRIORITY}.", field="priority"
        )
