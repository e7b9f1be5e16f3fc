"""Today's figures per tenant, kept up to date incrementally from the event stream.

Each tenant has one :class:`~sparklecomm.analytics.KpiAccumulator` for the day (15-minute
intervals, counting from local midnight) and one per agent, fed only that agent's events, so
an agent's handled count, handle time and time in each state use the very same definitions.
A request folds in the events committed since the previous one (an indexed range read), so a
wallboard refreshing every second costs little. At midnight everything starts afresh.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sparklecomm.acd.persistence import queue_config_to_dict
from sparklecomm.acd.service import AcdService
from sparklecomm.analytics import JsonEvent, KpiAccumulator, KpiConfig, Kpis
from sparklecomm.auth.service import Principal
from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import PermissionDenied
from sparklecomm.core.events import Event
from sparklecomm.stats.store import first_event_id_since
from sparklecomm.stats.thresholds import ThresholdService
from sparklecomm.store.db import Database, read_events

PAGE = 1000
INTERVAL_SECONDS = 900
#: Events that concern one agent (its own accumulator gets only these).
AGENT_EVENTS = frozenset(
    {
        "agent.state_changed",
        "interaction.created",  # only an outbound one names an agent: the agent's own contact
        "interaction.accepted",
        "interaction.wrapup_ended",
        "interaction.transferred",
        "survey.answered",  # the customer's rating of the agent's interaction
    }
)
STATE_FIELDS = {
    "available": "available_seconds",
    "reserved": "reserved_seconds",
    "busy": "busy_seconds",
    "wrap_up": "wrap_up_seconds",
    "break": "break_seconds",
}


def local_midnight(now: datetime) -> datetime:
    local = now.astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class _Day:
    start: datetime
    tenant: KpiAccumulator
    agents: dict[str, KpiAccumulator] = field(default_factory=dict)
    last_event_id: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _figures(k: Kpis) -> dict[str, Any]:
    return {
        "offered": k.offered,
        "answered": k.answered,
        "abandoned": k.abandoned,
        "short_abandoned": k.short_abandoned,
        "answered_within_sl": k.answered_within,
        "service_level": k.service_level,
        "service_level_seconds": k.service_level_seconds,
        "abandon_rate": k.abandon_rate,
        "asa_seconds": k.asa,
        "handled": k.handled,
        "aht_seconds": k.aht,
        "outbound": k.outbound,
        "outbound_aht_seconds": k.outbound_aht,
        "surveys": k.surveys,
        "csat": k.csat,
        "csat_satisfied": k.csat_satisfied,
        "survey_response_rate": k.survey_response_rate,
        "waiting": k.waiting,
        "oldest_waiting_seconds": k.oldest_waiting,
    }


class StatsService:
    """Wallboard and agent "today" figures; live routing state comes from the engine."""

    def __init__(self, db: Database, clock: Clock, acd: AcdService) -> None:
        self.db = db
        self.clock = clock
        self.acd = acd
        self._days: dict[str, _Day] = {}
        self._lock = threading.Lock()
        self.thresholds = ThresholdService(db, clock, acd)

    def _config(self, start: datetime) -> KpiConfig:
        return KpiConfig(interval_seconds=INTERVAL_SECONDS, since=start)

    def _new_day(self, tenant_id: str, start: datetime) -> _Day:
        day = _Day(start, KpiAccumulator(self._config(start)))
        # Queues were configured before today: tell the accumulator their service-level
        # thresholds the way the stream would (a ``queue.updated`` with the configuration).
        configs = self.acd.read(
            tenant_id, lambda e: [queue_config_to_dict(e.queue_config(q)) for q in e.queue_ids()]
        )
        for config in configs:
            day.tenant.feed(
                JsonEvent("queue.updated", start, {"queue_id": config["id"], "config": config})
            )
        return day

    def _feed(self, day: _Day, event: Event) -> None:
        day.last_event_id = event.id
        day.tenant.feed(event)
        if event.type in AGENT_EVENTS:
            agent = event.payload.get("agent_id")
            if isinstance(agent, str):
                acc = day.agents.get(agent)
                if acc is None:
                    acc = day.agents[agent] = KpiAccumulator(self._config(day.start))
                acc.feed(event)

    def today(self, tenant_id: str) -> _Day:
        """The tenant's day, caught up with the committed stream."""
        start = local_midnight(self.clock.now())
        with self._lock:
            day = self._days.get(tenant_id)
            if day is None or day.start != start:
                day = self._days[tenant_id] = self._new_day(tenant_id, start)
        with day.lock, self.db.read() as s:
            if day.last_event_id == 0:
                first = first_event_id_since(s, tenant_id, start)
                if first is None:
                    return day
                day.last_event_id = first - 1
            while True:
                page = read_events(s, tenant_id, day.last_event_id, PAGE)
                for event in page:
                    self._feed(day, event)
                if len(page) < PAGE:
                    break
        return day

    def queues(self, principal: Principal) -> dict[str, Any]:
        """Per queue today (offered, answered, abandoned, service level, ASA, AHT) and the
        day by 15-minute interval (offered, answered, service level)."""
        day = self.today(principal.tenant_id)
        now = self.clock.now()
        with day.lock:
            report = day.tenant.report(now)
        names = self.acd.read(
            principal.tenant_id,
            lambda e: {q: e.queue_snapshot(q, limit=0).name for q in e.queue_ids()},
        )
        queue_ids = sorted(set(names) | set(report.queues))
        empty = KpiAccumulator(self._config(day.start)).report(now).overall
        by_start = {iv.start: iv.overall for iv in report.intervals}
        intervals = []
        slot = day.start.timestamp()
        while slot <= now.timestamp():
            start = datetime.fromtimestamp(slot, now.tzinfo)
            k = by_start.get(start)
            intervals.append(
                {
                    "start": start.isoformat(),
                    "offered": k.offered if k else 0,
                    "answered": k.answered if k else 0,
                    "abandoned": k.abandoned if k else 0,
                    "service_level": k.service_level if k else None,
                }
            )
            slot += INTERVAL_SECONDS
        return {
            "generated_at": now.isoformat(),
            "day_start": day.start.isoformat(),
            "last_event_id": day.last_event_id,
            "queues": {
                q: {"name": names.get(q, q), **_figures(report.queues.get(q, empty))}
                for q in queue_ids
            },
            "total": _figures(report.overall),
            "intervals": intervals,
        }

    def agent_today(self, principal: Principal, agent_id: str) -> dict[str, Any]:
        """An agent's day: handled, average handle time, contacts they started (outbound),
        seconds in each state (the current state's running time included), the customers'
        satisfaction with them (``csat`` 0–100, ``surveys`` answered today, the response
        rate per handled contact)."""
        if agent_id != principal.user_id and not principal.has_role("supervisor"):
            raise PermissionDenied("agents see only their own figures")
        day = self.today(principal.tenant_id)
        with day.lock:
            acc = day.agents.get(agent_id)
            k = acc.report(self.clock.now(), intervals=False).overall if acc else None
        return {
            "agent_id": agent_id,
            "handled": k.handled if k else 0,
            "aht_seconds": k.aht if k else None,
            "outbound": k.outbound if k else 0,
            "outbound_aht_seconds": k.outbound_aht if k else None,
            "occupancy": k.occupancy if k else None,
            "surveys": k.surveys if k else 0,
            "csat": k.csat if k else None,
            "csat_satisfied": k.csat_satisfied if k else None,
            # An agent's own figures count no answered contacts (that is the queues'): the
            # answers are per contact the agent handled.
            "survey_response_rate": (k.surveys / k.handled if k.handled else None) if k else None,
            "state_seconds": {s: getattr(k, f) for s, f in STATE_FIELDS.items()} if k else {},
        }

    def presence(self, principal: Principal) -> list[dict[str, Any]]:
        """Who is logged in and in which state: what an agent needs to pick a transfer
        target (``GET /agents`` is for supervisors and shows more)."""

        def build(e: Any) -> list[dict[str, Any]]:
            out = []
            for a in e.agent_ids():
                snap = e.agent_snapshot(a)
                out.append(
                    {
                        "agent_id": snap.agent_id,
                        "name": snap.name,
                        "state": snap.state,
                        "queues": list(snap.queues),
                        "routable_channels": list(snap.routable_channels),
                    }
                )
            return out

        return self.acd.read(principal.tenant_id, build)  # type: ignore[no-any-return]
