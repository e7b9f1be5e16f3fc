"""Read-only views of the routing state for agent desktops, wallboards and the API.

They are computed on demand from the engine (nothing here is stored) and contain only plain
values, so ``dataclasses.asdict`` gives JSON-ready data (datetimes aside).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class WaitingEntry:
    """One interaction waiting in a queue, as a wallboard lists it."""

    interaction_id: str
    channel: str
    state: str  # queued | scheduled (a callback before its time)
    priority: int  # effective priority in this queue
    position: int  # 1-based, all channels of the queue
    wait_seconds: float
    ewt_seconds: float | None  # None: no staffed agent to estimate from
    level: int  # relaxation level reached in this queue
    score: float  # current routing score (points)
    primary: bool  # False when the queue was added by a relaxation step


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    queue_id: str
    name: str
    strategy: str
    waiting: int  # waiting and offerable now
    scheduled_callbacks: int  # callbacks waiting for their chosen time
    offered: int  # being offered to an agent
    longest_wait_seconds: float
    staffed_agents: int  # members logged in and not on break
    agents_by_state: dict[str, int]  # members by state
    service_level_seconds: float
    entries: tuple[WaitingEntry, ...]  # by position
    open: bool | None = None  # its business hours now (None: it follows none)


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    agent_id: str
    name: str
    state: str
    reason: str
    since: datetime
    seconds_in_state: float
    pending_break: str | None  # a break that starts once the current work is done
    offer: str | None  # interaction being offered
    interactions: tuple[str, ...]  # on them (owner, consult or conference; ringing too)
    wrapups: tuple[str, ...]
    load: dict[str, int]  # per channel: offers + connected + wrap-up
    capacity: dict[str, int]
    routable_channels: tuple[str, ...]  # channels it could be offered right now
    queues: tuple[str, ...]
    consecutive_misses: int
    handled: int  # accepted since login


@dataclass(frozen=True, slots=True)
class InteractionSnapshot:
    interaction_id: str
    state: str
    channel: str
    queue_id: str
    queue_ids: tuple[str, ...]  # queues it waits in (primary first)
    priority: int
    agent_id: str | None
    offered_to: tuple[str, ...]
    participants: dict[str, str]  # agent -> owner | consult | conference
    position: int | None
    ewt_seconds: float | None
    wait_seconds: float
    created_at: datetime
    queued_at: datetime
    on_hold: bool
    callback_due_at: datetime | None
    callback_attempts: int
    customer_id: str | None = None
    required_skills: str = ""
    attributes: dict[str, object] = field(default_factory=dict)  # DNIS, VIP tier, campaign
    callback_phone: str | None = None  # the number a queued callback calls
    direction: str = "inbound"  # outbound: started by the agent (click-to-dial ...)
    ringing: tuple[str, ...] = ()  # participants whose phone still rings (a consultation)
