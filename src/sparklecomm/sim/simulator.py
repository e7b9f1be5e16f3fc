"""The discrete-event simulator: synthetic customers and agents driving the real routing engine.

Not a queueing model of its own: :class:`Simulation` builds an
:class:`~sparklecomm.acd.AcdEngine` on a :class:`~sparklecomm.core.clock.FakeClock` and plays
customers and agents through the engine's public commands — ``create_interaction`` when a
customer arrives, ``accept`` as soon as an offer appears, ``complete`` (or ``transfer``) after
the sampled handle time, ``abandon`` when patience runs out, ``request_callback``, ``login`` /
``set_break`` / ``set_available`` / ``logout`` for shifts and shrinkage — and fires the
engine's own timers (wrap-up, max wait, callbacks) through ``tick`` at ``next_deadline``. The
events the engine returns are therefore the live event stream, and the figures come from the
same :class:`~sparklecomm.analytics.KpiAccumulator` a live wallboard uses.

Time jumps from one event to the next (a heap of the simulator's own future actions merged
with the engine's next deadline, asked again only after the engine was called), so a day
runs in seconds of wall time. Handle times, patience and inter-arrival times are drawn
ahead in numpy batches (:class:`~sparklecomm.sim.distributions.Draws`), and the fake clock
is moved only when the engine is about to be called (a caller whose patience runs out after
being answered costs a heap pop and nothing else).

Simulated agents accept offers at once, or after a sampled ``answer_time`` (and may reject
them or let them ring out: ``reject``, ``no_answer``); an agent the engine sends to the
missed-offers break is ready again :data:`MISSED_RECOVERY_SECONDS` later. Agents follow
their group's daily ``shift`` or, from a roster (:func:`~sparklecomm.sim.scenario.apply_roster`),
one rostered ``work`` period with its breaks.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sparklecomm.acd import (
    AgentConfig,
    Diversion,
    EngineConfig,
    Member,
    QueueConfig,
)
from sparklecomm.acd.compiled import engine_class
from sparklecomm.analytics import KpiAccumulator, KpiConfig, KpiReport, ServiceLevelBasis
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import DomainError
from sparklecomm.core.events import JSON, NewEvent
from sparklecomm.sim.distributions import Constant, Distribution, Draws, Exponential, generator
from sparklecomm.sim.scenario import AgentGroup, ArrivalSpec, Scenario, shift_periods

#: Wrap-up with a random length is ended by the simulator; the engine's own timer is set
#: far beyond any simulated day so that it never fires first.
_MANUAL_WRAPUP_SECONDS = 10 * 365 * 86400.0

SHIFT_END = "shift-end"
SHRINKAGE = "shrinkage"
ROSTER_BREAK = "roster-break"
#: An agent the engine put on its missed-offers break makes themselves ready after this.
MISSED_RECOVERY_SECONDS = 60.0

# Kinds of the simulator's own future actions.
_ARRIVAL = 0
_PATIENCE = 1
_CALLBACK = 2
_COMPLETE = 3
_WRAPUP_END = 4
_SHIFT_START = 5
_SHIFT_END = 6
_BREAK_START = 7
_BREAK_END = 8
_ANSWER = 9
_REJECT = 10
_ROSTER_BREAK_START = 11
_ROSTER_BREAK_END = 12
_READY_AGAIN = 13

EventSink = Callable[[NewEvent], None]
Progress = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class SimResult:
    """One replication: the KPI report and what it took.

    ``in_progress`` counts contacts still unresolved when the run stopped (arrivals stop at
    ``duration``; the run then drains for at most ``drain`` seconds).
    """

    replication: int
    report: KpiReport
    arrivals: int
    events: int
    in_progress: int
    simulated_seconds: float
    wall_seconds: float


class _Contact:
    __slots__ = ("agent", "done", "queue", "spec", "stream", "transfer", "waiting")

    def __init__(self, spec: ArrivalSpec, stream: int, queue: str, transfer: bool) -> None:
        self.spec = spec
        self.stream = stream  # index of its arrival stream (its handle-time draws)
        self.queue = queue  # the queue it was last answered from (wrap-up rules)
        self.agent: str | None = None  # the agent handling it now
        self.waiting = True  # waiting in line, may still hang up or ask for a callback
        self.transfer = transfer  # will be transferred after the first talk
        self.done = False  # completed; forgotten when its wrap-up ends


class _Ring:
    """How one group's agents answer offers (only for groups that do not accept at once)."""

    __slots__ = ("answer", "no_answer", "reject")

    def __init__(self, group: AgentGroup, gen_seed: str) -> None:
        dist = group.answer_time if group.answer_time is not None else Constant(0.0)
        self.answer = Draws(dist, generator(gen_seed)).next
        self.reject = group.reject
        self.no_answer = group.no_answer


class _AgentPlan:
    __slots__ = (
        "break_length",
        "generation",
        "logged_in",
        "mean_on",
        "on_break",
        "on_roster_break",
        "on_shift",
        "ring",
    )

    def __init__(self, shrinkage: float, break_length: float, ring: _Ring | None) -> None:
        self.break_length = break_length
        # Exponential working spells of this mean between breaks give the shrinkage share.
        self.mean_on = break_length * (1.0 - shrinkage) / shrinkage if shrinkage > 0 else 0.0
        self.on_shift = False
        self.on_break = False  # a random (shrinkage) break
        self.on_roster_break = False  # a break the roster plans
        self.logged_in = False
        self.generation = 0  # bumped at shift end: stale break actions are ignored
        self.ring = ring  # None: offers are accepted the moment they appear


def replication_seed(seed: int, replication: int) -> str:
    """The seed of one replication's random streams (independent of the others)."""
    return f"sparklecomm.sim:{seed}:{replication}"


class Simulation:
    """One replication of a scenario. ``run()`` once; it returns a :class:`SimResult`.

    ``on_event`` sees every engine event in stream order (e.g. to write them out);
    ``progress`` is called now and then with the share of simulated time done (0–1).
    """

    def __init__(
        self,
        scenario: Scenario,
        replication: int = 0,
        *,
        on_event: EventSink | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.scenario = scenario
        self.replication = replication
        self._sink = on_event
        self._progress = progress
        seed = replication_seed(scenario.seed, replication)
        self._seed = seed
        self._rng = random.Random(seed + ":main")
        unit = Exponential(1.0)
        # Per arrival stream: unit exponentials (scaled by each segment's rate), handle
        # times and patience, each its own numpy stream drawn in batches.
        self._gaps = [
            Draws(unit, generator(f"{seed}:arrivals:{i}")).next
            for i in range(len(scenario.arrivals))
        ]
        self._handles = [
            Draws(a.handle_time, generator(f"{seed}:handle:{i}")).next
            for i, a in enumerate(scenario.arrivals)
        ]
        self._patiences = [
            None
            if a.patience is None
            else Draws(a.patience, generator(f"{seed}:patience:{i}")).next
            for i, a in enumerate(scenario.arrivals)
        ]
        self.clock = FakeClock(scenario.start)
        self.engine = engine_class()(self.clock, EngineConfig(rng=random.Random(seed + ":engine")))
        start = scenario.start
        self.kpis = KpiAccumulator(
            KpiConfig(
                interval_seconds=scenario.interval,
                service_level_seconds=None,  # each queue's threshold, from its config event
                short_abandon_seconds=scenario.short_abandon_threshold,
                sl_basis=cast(ServiceLevelBasis, scenario.sl_basis),
                since=start + timedelta(seconds=scenario.warmup),
                until=start + timedelta(seconds=scenario.duration),
            )
        )
        self._heap: list[tuple[float, int, int, str, str]] = []
        self._seq = 0
        self._now = 0.0
        self._now_us = 0
        self._pending: deque[list[NewEvent]] = deque()  # batches still to react to
        self._reacting = False
        self._feed = self.kpis.feeder
        self._contacts: dict[str, _Contact] = {}
        self._agents: dict[str, _AgentPlan] = {}
        self._wrapups: dict[str, Distribution] = {}  # queues whose wrap-up we end ourselves
        self._arrivals = 0
        self._dirty = True  # the engine was called since its next deadline was asked
        self._ran = False
        self._reactions: dict[str, Callable[[JSON], None]] = {
            "interaction.offered": self._on_offered,
            "interaction.accepted": self._on_accepted,
            "interaction.wrapup_ended": self._on_wrapup_ended,
            "interaction.abandoned": self._on_gone,
            "interaction.diverted": self._on_gone,
            "callback.exhausted": self._on_gone,
        }

    # -- scheduling ----------------------------------------------------------------------------

    def _at(self, when: float, kind: int, a: str = "", b: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, a, b))

    def _next_arrival(self, stream: int, after: float) -> None:
        """Schedule the next Poisson arrival of ``stream`` after ``after`` (piecewise rates)."""
        spec = self.scenario.arrivals[stream]
        gap = self._gaps[stream]
        t = after
        for seg in spec.segments:
            if seg.end <= t:
                continue
            t = max(t, seg.start)
            t += gap() / seg.rate
            if t < seg.end:
                self._at(t, _ARRIVAL, str(stream))
                return
            t = seg.end  # memoryless: start afresh in the next segment

    # -- set-up --------------------------------------------------------------------------------

    def _build(self) -> None:
        sc = self.scenario
        members: dict[str, list[Member]] = {q.name: [] for q in sc.queues}
        for group in sc.agents:
            for agent_id in group.agent_ids():
                for m in group.queues:
                    members[m.queue].append(Member(agent_id, penalty=m.penalty))
        hours = {q.name: q.hours for q in sc.queues if q.hours is not None}
        if hours:  # each queue's business hours, under the queue's own name
            self._process(self.engine.set_business_hours(hours))
        for q in sc.queues:
            wrapup = 0.0
            if isinstance(q.wrapup, Constant):
                wrapup = q.wrapup.value
            elif q.wrapup is not None:
                wrapup = _MANUAL_WRAPUP_SECONDS
                self._wrapups[q.name] = q.wrapup
            self._process(
                self.engine.add_queue(
                    QueueConfig(
                        q.name,
                        strategy=q.strategy,
                        members=tuple(members[q.name]),
                        best_skill=q.best_skill,
                        service_level_seconds=sc.threshold(q),
                        wrapup_seconds=wrapup,
                        max_wait_seconds=q.max_wait,
                        on_max_wait=Diversion(queue_id=q.overflow_to),
                        hours=q.name if q.hours is not None else None,
                        on_closed=Diversion(queue_id=q.closed_to),
                    )
                )
            )
        horizon = sc.duration + sc.drain
        for index, group in enumerate(sc.agents):
            ring = _Ring(group, f"{self._seed}:answer:{index}") if group.rings else None
            for agent_id in group.agent_ids():
                self._process(self.engine.add_agent(AgentConfig(agent_id, skills=group.skills)))
                self._agents[agent_id] = _AgentPlan(group.shrinkage, group.break_length, ring)
                if group.work is not None:
                    work = group.work
                    if work.logout <= 0.0 or work.login >= horizon:
                        continue
                    self._at(max(work.login, 0.0), _SHIFT_START, agent_id)
                    self._at(work.logout, _SHIFT_END, agent_id)
                    for b_start, b_end in work.breaks:
                        if b_end > 0.0:
                            self._at(max(b_start, 0.0), _ROSTER_BREAK_START, agent_id)
                            self._at(b_end, _ROSTER_BREAK_END, agent_id)
                elif group.shift is None:
                    self._at(0.0, _SHIFT_START, agent_id)
                else:
                    for login, logout in shift_periods(group.shift, sc.start, horizon):
                        self._at(login, _SHIFT_START, agent_id)
                        self._at(logout, _SHIFT_END, agent_id)
        for stream in range(len(sc.arrivals)):
            self._next_arrival(stream, 0.0)

    # -- the loop ------------------------------------------------------------------------------

    def _handlers(self) -> tuple[Callable[[str, str], None], ...]:
        """The handler of each kind of the simulator's own actions, indexed by kind."""
        by_kind = {
            _ARRIVAL: self._on_arrival,
            _PATIENCE: self._on_patience,
            _CALLBACK: self._on_callback,
            _COMPLETE: self._on_complete,
            _WRAPUP_END: self._on_wrapup_end,
            _SHIFT_START: self._on_shift_start,
            _SHIFT_END: self._on_shift_end,
            _BREAK_START: self._on_break_start,
            _BREAK_END: self._on_break_end,
            _ANSWER: self._on_answer,
            _REJECT: self._on_reject,
            _ROSTER_BREAK_START: self._on_roster_break_start,
            _ROSTER_BREAK_END: self._on_roster_break_end,
            _READY_AGAIN: self._on_ready_again,
        }
        return tuple(by_kind[kind] for kind in range(len(by_kind)))

    def _sync(self) -> None:
        """Bring the engine's clock to the simulated time (before calling the engine)."""
        target = round(self._now * 1_000_000)
        if target > self._now_us:
            self.clock.advance((target - self._now_us) / 1_000_000)
            self._now_us = target

    def run(self) -> SimResult:
        """Simulate the scenario; KPIs cover contacts arriving in ``[warmup, duration)``."""
        if self._ran:
            raise RuntimeError("A Simulation runs once; make a new one for another run.")
        self._ran = True
        wall = time.perf_counter()
        self._build()
        sc = self.scenario
        start = sc.start
        duration = sc.duration
        limit = duration + sc.drain
        heap = self._heap
        heappop = heapq.heappop
        engine = self.engine
        contacts = self._contacts
        progress = self._progress
        sync = self._sync
        handlers = self._handlers()
        inf = math.inf
        t_engine = inf
        steps = 0
        while True:
            if self._dirty:
                # Only engine commands (all of which pass through _process) move its timers.
                self._dirty = False
                deadline = engine.next_deadline()
                t_engine = (deadline - start).total_seconds() if deadline is not None else inf
            t_sim = heap[0][0] if heap else inf
            t = t_sim if t_sim < t_engine else t_engine
            if t >= duration and not contacts:
                break  # arrivals are over and every contact is done
            if t > limit:
                break
            self._now = t
            if t_engine <= t_sim:
                sync()
                self._process(engine.tick())
            else:
                _, _, kind, a, b = heappop(heap)
                if kind != _PATIENCE:
                    sync()
                    handlers[kind](a, b)
                else:
                    # Most patience timers find the caller answered: skip them cheaply.
                    contact = contacts.get(a)
                    if contact is not None and contact.waiting:
                        self._on_patience(a, b)
            steps += 1
            if progress is not None and steps % 4096 == 0:
                progress(min(1.0, self._now / duration))
        if progress is not None:
            progress(1.0)
        end = min(self._now, limit)
        return SimResult(
            replication=self.replication,
            report=self.kpis.report(start + timedelta(seconds=end)),
            arrivals=self._arrivals,
            events=self.kpis.events,
            in_progress=len(contacts),
            simulated_seconds=end,
            wall_seconds=time.perf_counter() - wall,
        )

    # -- engine events -------------------------------------------------------------------------

    def _process(self, events: list[NewEvent]) -> None:
        """Account for the engine's events in order, reacting to those that need an actor.

        The KPIs and the sink take each command's events as they come, which is stream
        order. Reactions call the engine again: the events those calls return wait in
        ``_pending`` until the reactions to every earlier event are done, so the simulated
        actors act in stream order too.
        """
        self._dirty = True
        if not events:
            return
        self._feed(events)
        sink = self._sink
        if sink is not None:
            for event in events:
                sink(event)
        if self._reacting:
            self._pending.append(events)  # an outer call is reacting: it comes to these
            return
        self._reacting = True
        reactions = self._reactions
        pending = self._pending
        try:
            while True:
                for event in events:
                    kind = event.type
                    react = reactions.get(kind)
                    if react is not None:
                        react(event.payload)
                    elif kind == "agent.state_changed":
                        # A third of the stream; only a break needs the agent to act.
                        payload = event.payload
                        if payload["state"] == "break":
                            self._on_break(payload)
                if not pending:
                    break
                events = pending.popleft()
        finally:
            self._reacting = False

    def _on_offered(self, p: JSON) -> None:
        iid = p["interaction_id"]
        contact = self._contacts.get(iid)
        if contact is None or contact.agent is not None:
            return
        agent_id = p["agent_id"]
        plan = self._agents.get(agent_id)
        ring = plan.ring if plan is not None else None
        if ring is not None:
            # The phone rings: answer after a while, decline, or let it ring out.
            u = self._rng.random() if ring.reject > 0 or ring.no_answer > 0 else 1.0
            if u < ring.reject:
                self._at(self._now + ring.answer(), _REJECT, iid, agent_id)
            elif u >= ring.reject + ring.no_answer:
                delay = ring.answer()
                if delay > 0:
                    self._at(self._now + delay, _ANSWER, iid, agent_id)
                else:
                    self._accept(contact, iid, agent_id)
            return  # no answer: the engine's offer timeout moves it on
        self._accept(contact, iid, agent_id)

    def _accept(self, contact: _Contact, iid: str, agent_id: str) -> None:
        try:
            more = self.engine.accept(iid, agent_id)
        except DomainError:
            return  # ring-all: another agent took it; or the offer is gone
        contact.agent = agent_id
        contact.waiting = False
        self._process(more)

    def _on_accepted(self, p: JSON) -> None:
        iid = p["interaction_id"]
        contact = self._contacts.get(iid)
        if contact is not None:
            contact.queue = p["queue_id"]
            handle = self._handles[contact.stream]()
            self._seq += 1
            heapq.heappush(
                self._heap,
                (self._now + handle, self._seq, _COMPLETE, iid, p["agent_id"]),
            )

    def _on_wrapup_ended(self, p: JSON) -> None:
        iid = p["interaction_id"]
        contact = self._contacts.get(iid)
        if contact is not None and contact.done and contact.agent == p["agent_id"]:
            del self._contacts[iid]

    def _on_gone(self, p: JSON) -> None:
        self._contacts.pop(p["interaction_id"], None)

    def _on_break(self, p: JSON) -> None:
        agent_id = p["agent_id"]
        reason = p["reason"]
        if reason == SHIFT_END:
            self._agents[agent_id].logged_in = False
            self._process(self.engine.logout(agent_id, SHIFT_END))
            return
        plan = self._agents.get(agent_id)
        if plan is None:
            return
        if reason == SHRINKAGE:
            self._at(self._now + plan.break_length, _BREAK_END, agent_id, str(plan.generation))
        elif reason != ROSTER_BREAK and plan.ring is not None:
            # The engine benched an agent who missed offers; they come back a bit later.
            self._at(
                self._now + MISSED_RECOVERY_SECONDS, _READY_AGAIN, agent_id, str(plan.generation)
            )

    # -- the simulator's own actions ------------------------------------------------------------

    def _on_arrival(self, stream_text: str, _: str) -> None:
        stream = int(stream_text)
        spec = self.scenario.arrivals[stream]
        self._arrivals += 1
        iid = f"c{self._arrivals}"
        rng = self._rng
        transfer = spec.transfer is not None and rng.random() < spec.transfer.fraction
        self._contacts[iid] = _Contact(spec, stream, spec.queue, transfer)
        now = self._now
        patience = self._patiences[stream]
        if patience is not None:
            self._seq += 1
            heapq.heappush(self._heap, (now + patience(), self._seq, _PATIENCE, iid, ""))
        if spec.callback is not None and rng.random() < spec.callback.fraction:
            self._at(now + spec.callback.after, _CALLBACK, iid)
        self._process(
            self.engine.create_interaction(
                iid,
                spec.queue,
                spec.channel,
                priority=spec.priority,
                required_skills=spec.required_skills,
            )
        )
        self._next_arrival(stream, now)

    def _on_patience(self, iid: str, _: str) -> None:
        contact = self._contacts.get(iid)
        if contact is not None and contact.waiting:
            contact.waiting = False
            self._sync()
            self._process(self.engine.abandon(iid))

    def _on_callback(self, iid: str, _: str) -> None:
        contact = self._contacts.get(iid)
        if contact is None or not contact.waiting or contact.spec.callback is None:
            return
        contact.waiting = False
        delay = contact.spec.callback.delay
        at = self.clock.now() + timedelta(seconds=delay) if delay > 0 else None
        try:
            events = self.engine.request_callback(iid, at=at)
        except DomainError:
            self._dirty = True
            contact.waiting = True  # e.g. it overflowed to a queue without callbacks
            return
        self._process(events)

    def _on_complete(self, iid: str, agent_id: str) -> None:
        contact = self._contacts[iid]
        spec = contact.spec
        queue = contact.queue
        if contact.transfer and spec.transfer is not None:
            contact.transfer = False
            contact.agent = None
            events = self.engine.transfer(iid, agent_id, to_queue_id=spec.transfer.to)
        else:
            contact.done = True
            events = self.engine.complete(iid, agent_id)
        wrapup = self._wrapups.get(queue)
        if wrapup is not None:
            self._at(self._now + wrapup.sample(self._rng), _WRAPUP_END, iid, agent_id)
        self._process(events)

    def _on_wrapup_end(self, iid: str, agent_id: str) -> None:
        self._process(self.engine.end_wrapup(iid, agent_id))

    def _on_shift_start(self, agent_id: str, _: str) -> None:
        plan = self._agents[agent_id]
        if plan.on_shift:
            return
        plan.on_shift = True
        plan.on_break = False
        plan.on_roster_break = False
        if plan.logged_in:
            # Still finishing the previous shift's last contact: call off its logout.
            self._process(self.engine.set_available(agent_id))
        else:
            plan.logged_in = True
            self._process(self.engine.login(agent_id))
        if plan.mean_on > 0:
            # Start in the long-run mix: on break with probability = shrinkage.
            share = plan.break_length / (plan.break_length + plan.mean_on)
            if self._rng.random() < share:
                plan.on_break = True
                self._process(self.engine.set_break(agent_id, SHRINKAGE))
            else:
                self._at(
                    self._now + self._rng.expovariate(1.0 / plan.mean_on),
                    _BREAK_START,
                    agent_id,
                    str(plan.generation),
                )

    def _on_shift_end(self, agent_id: str, _: str) -> None:
        plan = self._agents[agent_id]
        if not plan.on_shift:
            return
        plan.on_shift = False
        plan.on_break = False
        plan.on_roster_break = False
        plan.generation += 1
        # The break starts once the work in hand is done; the agent then logs out.
        self._process(self.engine.set_break(agent_id, SHIFT_END))

    def _on_break_start(self, agent_id: str, generation: str) -> None:
        plan = self._agents[agent_id]
        if not plan.on_shift or plan.on_break or str(plan.generation) != generation:
            return
        if plan.on_roster_break:  # already off the phones: try again later
            self._at(
                self._now + self._rng.expovariate(1.0 / plan.mean_on),
                _BREAK_START,
                agent_id,
                generation,
            )
            return
        plan.on_break = True
        self._process(self.engine.set_break(agent_id, SHRINKAGE))

    def _on_break_end(self, agent_id: str, generation: str) -> None:
        plan = self._agents[agent_id]
        if not plan.on_shift or not plan.on_break or str(plan.generation) != generation:
            return
        plan.on_break = False
        if not plan.on_roster_break:
            self._process(self.engine.set_available(agent_id))
        self._at(
            self._now + self._rng.expovariate(1.0 / plan.mean_on),
            _BREAK_START,
            agent_id,
            str(plan.generation),
        )

    def _on_answer(self, iid: str, agent_id: str) -> None:
        contact = self._contacts.get(iid)
        if contact is not None and contact.agent is None:
            self._accept(contact, iid, agent_id)

    def _on_reject(self, iid: str, agent_id: str) -> None:
        contact = self._contacts.get(iid)
        if contact is None or contact.agent is not None:
            return
        try:
            events = self.engine.reject(iid, agent_id)
        except DomainError:
            return  # the offer is gone already (timed out, caller hung up)
        self._process(events)

    def _on_roster_break_start(self, agent_id: str, _: str) -> None:
        plan = self._agents[agent_id]
        if not plan.on_shift or plan.on_roster_break:
            return
        plan.on_roster_break = True
        if not plan.on_break:
            self._process(self.engine.set_break(agent_id, ROSTER_BREAK))

    def _on_roster_break_end(self, agent_id: str, _: str) -> None:
        plan = self._agents[agent_id]
        if not plan.on_shift or not plan.on_roster_break:
            return
        plan.on_roster_break = False
        if not plan.on_break:
            self._process(self.engine.set_available(agent_id))

    def _on_ready_again(self, agent_id: str, generation: str) -> None:
        plan = self._agents[agent_id]
        if (
            plan.on_shift
            and plan.logged_in
            and not plan.on_break
            and not plan.on_roster_break
            and str(plan.generation) == generation
        ):
            try:
                events = self.engine.set_available(agent_id)
            except DomainError:
                return
            self._process(events)


def simulate(
    scenario: Scenario,
    replication: int = 0,
    *,
    on_event: EventSink | None = None,
    progress: Progress | None = None,
) -> SimResult:
    """Run one replication of ``scenario`` (see :class:`Simulation`)."""
    return Simulation(scenario, replication, on_event=on_event, progress=progress).run()
