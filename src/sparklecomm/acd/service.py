"""The routing service: one engine per tenant, journaled, timed, and published.

The pure :class:`~sparklecomm.acd.engine.AcdEngine` decides; this shell

* serialises commands per tenant (a lock: the engine is single-threaded by design),
* gives each command the current time through the engine's own clock,
* writes the command to the journal and its events to the stream in one transaction,
  publishing the events after commit (``Database.write``),
* snapshots the engine every ``snapshot_every`` commands,
* runs the engine's timers (offer timeouts, wrap-up, relaxation, callbacks) in a
  background task on the event loop, and
* rebuilds each tenant's engine on start from its snapshot and journal.

Several processes ("nodes") may route the same tenant on one database. Each command claims
the next journal ``seq`` *before* the engine runs it (expected version): a node that is
behind finds ``seq`` taken, catches its engine up from the journal (or the newer snapshot)
and runs the command again on the current state, up to ``max_attempts`` times, then gives
up with :class:`~sparklecomm.core.errors.Conflict`. Reads and the timer loop check the
journal's head (at most every ``freshness_seconds``) so a node that only reads still sees
what the others decided.

If writing a command fails after the engine accepted it, the tenant's engine is rebuilt from
the database, so memory never runs ahead of what was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sparklecomm.acd.compiled import engine_class
from sparklecomm.acd.engine import AcdEngine
from sparklecomm.acd.persistence import agent_config_from_dict, queue_config_from_dict
from sparklecomm.acd.store import (
    AcdCommand,
    JournalConflict,
    journal_command_txn,
    journal_head,
    load_journal,
    load_snapshot,
    save_snapshot_txn,
    tenants_with_routing,
)
from sparklecomm.audit.store import Actor, write_audit_txn
from sparklecomm.bus.base import EventBus
from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import Conflict, InvalidInput
from sparklecomm.core.events import Event, NewEvent
from sparklecomm.customers.store import list_codes
from sparklecomm.store.db import Database

log = structlog.get_logger(__name__)


class EngineClock:
    """The engine's clock: set by the service to each command's time (never backwards).

    Between commands it shows the time of the last stored command: a read or a refused
    command moves it to "now" only while it runs (:meth:`reset` puts it back), so commands
    another node stored meanwhile replay here at their recorded times, as in a rebuild.
    """

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._now.timestamp()

    def set(self, when: datetime) -> None:
        if when > self._now:
            self._now = when

    def reset(self, when: datetime) -> None:
        """Back to ``when`` (a value :meth:`now` gave before), even if earlier."""
        self._now = when


def _parse_time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 date and time", field=name) from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} must include a timezone offset", field=name)
    return parsed


def _apply(engine: AcdEngine, name: str, args: dict[str, Any]) -> list[NewEvent]:
    """Run one journaled command on ``engine``."""
    if name in ("add_queue", "update_queue"):
        return getattr(engine, name)(queue_config_from_dict(args["config"]))  # type: ignore[no-any-return]
    if name in ("add_agent", "update_agent"):
        return getattr(engine, name)(agent_config_from_dict(args["config"]))  # type: ignore[no-any-return]
    if name == "request_callback":
        return engine.request_callback(
            args["interaction_id"], phone=args.get("phone"), at=_parse_time(args.get("at"), "at")
        )
    if name == "tick":
        return engine.tick()
    if name == "set_break_reasons":
        return engine.set_break_reasons(args["reasons"])
    if name not in COMMANDS:
        raise InvalidInput(f"unknown routing command {name!r}", field="command")
    method: Callable[..., list[NewEvent]] = getattr(engine, name)
    return method(**args)


def _replay(engine: AcdEngine, clock: EngineClock, commands: Iterable[AcdCommand]) -> None:
    """Apply stored commands at their recorded times (a rebuild and a catch-up alike)."""
    for command in commands:
        clock.set(command.time)
        args = command.args
        if command.name == "consult" and "ringing" not in args:
            # Journaled before consultations could ring: they were connected at once.
            args = {**args, "ringing": False}
        _apply(engine, command.name, args)


ROUTING_EVENT_PREFIXES = ("interaction.", "agent.", "queue.", "callback.")
"""The types of the events the routing engine emits (see docs/routing.md's catalogue)."""

COMMANDS = frozenset(
    {
        "add_queue",
        "update_queue",
        "remove_queue",
        "add_agent",
        "update_agent",
        "remove_agent",
        "join_queue",
        "leave_queue",
        "login",
        "logout",
        "set_break",
        "set_available",
        "set_break_reasons",
        "set_business_hours",
        "create_interaction",
        "start_outbound",
        "accept",
        "reject",
        "hold",
        "resume",
        "complete",
        "end_wrapup",
        "abandon",
        "transfer",
        "consult",
        "consult_connected",
        "end_consult",
        "conference",
        "leave",
        "request_callback",
        "callback_failed",
        "tick",
    }
)


@dataclass(frozen=True)
class AuditNote:
    """An audit row to write with a command."""

    actor: Actor
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TenantRouting:
    """One tenant's engine and its bookkeeping."""

    tenant_id: str
    engine: AcdEngine
    clock: EngineClock
    seq: int = 0
    since_snapshot: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    checked_at: float | None = None  # service clock's monotonic time of the last head check
    # Other nodes' routing events seen (bumped on the event loop): a head check that read
    # the database before one of them arrived must not count as fresh.
    remote_changes: int = 0

    def mark_checked(self, at: float, seen: int) -> None:
        """Record a head check made at ``at`` that started when ``remote_changes`` was
        ``seen``; when another node's events arrived meanwhile, the check may predate their
        command, so the next read checks again."""
        self.checked_at = at if self.remote_changes == seen else None


class AcdService:
    """Routing for all tenants of this process. See the module docstring.

    ``freshness_seconds``: how old a tenant's view of the journal head may be before a read
    (or the timer loop) checks it again (one indexed query; 0 = before every read).
    ``max_attempts``: how many times a command is tried when other nodes keep storing
    commands first.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        snapshot_every: int = 500,
        freshness_seconds: float = 0.5,
        max_attempts: int = 3,
    ) -> None:
        self.db = db
        self.clock = clock
        self.snapshot_every = snapshot_every
        self.freshness_seconds = freshness_seconds
        self.max_attempts = max_attempts
        self._tenants: dict[str, TenantRouting] = {}
        self._tenants_lock = threading.Lock()
        self._timer_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[str, list[Event]], None]] = []
        self._bus: EventBus | None = None
        self._loading: set[str] = set()  # tenants being built for other nodes' events
        self._stopping = False
        # The organisation's business hours (name → timetable), for queues that follow
        # them; set by the application from the PBX (None: no business hours at all).
        self.hours_source: Callable[[str], dict[str, Any]] | None = None

    def add_listener(self, listener: Callable[[str, list[Event]], None]) -> None:
        """Call ``listener(tenant_id, events)`` after each command commits (timers included),
        and, once :meth:`follow` was given the shared bus, with the routing events other
        nodes committed.

        For this node's commands it runs in the committing thread, under the tenant's lock;
        for other nodes' events on the event loop's thread: keep it short and hand the events
        to your own loop (``loop.call_soon_threadsafe``). Events of one interaction may reach
        it out of order across nodes (compare ``Event.id``). Used by the voice bridge to ring
        agents' phones when the engine (of any node) offers them a call.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str, list[Event]], None]) -> None:
        """Stop calling ``listener`` (no-op when it was not added)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # ---- other nodes -----------------------------------------------------------------------

    def follow(self, bus: EventBus) -> None:
        """Hear the routing decisions of the other nodes sharing the database, through the
        shared bus (Redis): their events go to this service's listeners, an organisation
        this node has loaded catches up at its next read or timer check, and one it has not
        loaded yet is loaded (so its timers run here too)."""
        self.unfollow()
        self._bus = bus
        bus.add_remote_listener(self._remote_events)

    def unfollow(self) -> None:
        if self._bus is not None:
            self._bus.remove_remote_listener(self._remote_events)
            self._bus = None

    def _remote_events(self, events: Sequence[Event]) -> None:
        """Events another node committed (event loop thread, see :meth:`follow`)."""
        by_tenant: dict[str, list[Event]] = {}
        for event in events:
            if event.type.startswith(ROUTING_EVENT_PREFIXES):
                by_tenant.setdefault(event.tenant_id, []).append(event)
        for tenant_id, batch in by_tenant.items():
            rt = self._tenants.get(tenant_id)
            if rt is not None:
                rt.remote_changes += 1
                rt.checked_at = None  # the next read or timer check catches up first
            elif self._loop is not None and tenant_id not in self._loading:
                # Build it off the loop (a replay), once; the timer loop picks it up after.
                self._loading.add(tenant_id)
                self._loop.run_in_executor(None, self._load_quietly, tenant_id)
            for listener in self._listeners:
                try:
                    listener(tenant_id, batch)
                except Exception:
                    log.exception("acd_listener_failed", tenant_id=tenant_id, command="remote")
        if by_tenant:
            self._poke()

    def _load_quietly(self, tenant_id: str) -> None:
        try:
            self.routing(tenant_id)
        except Exception:
            log.exception("acd_load_failed", tenant_id=tenant_id)
        finally:
            self._loading.discard(tenant_id)
        self._poke()

    # ---- lifecycle -----------------------------------------------------------------------

    def load_all(self) -> int:
        """Rebuild every tenant's engine from the database; returns how many."""
        with self.db.read() as s:
            tenant_ids = tenants_with_routing(s)
        for tenant_id in tenant_ids:
            self.routing(tenant_id)
        return len(tenant_ids)

    async def start(self) -> None:
        await run_in_threadpool(self.load_all)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        self._timer_task = asyncio.create_task(self._timers(), name="acd-timers")

    async def stop(self) -> None:
        # The flag ends the timer loop even if a cancellation is lost in a wake-up that
        # happens at the same moment (a command committing during shutdown).
        self._stopping = True
        if self._timer_task is not None:
            self._timer_task.cancel()
            if self._wake is not None:
                self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
        await run_in_threadpool(self.snapshot_all)

    def snapshot_all(self) -> None:
        """Snapshot every tenant with commands since its last snapshot (at a clean stop).

        Only an engine at the journal's head is written: a node that is behind must not
        replace another node's newer snapshot (nor would its state be worth keeping).
        """
        for rt in list(self._tenants.values()):
            with rt.lock:
                if not rt.since_snapshot:
                    continue
                try:
                    with self.db.write() as tx:
                        if journal_head(tx.session, rt.tenant_id) == rt.seq:
                            save_snapshot_txn(
                                tx.session,
                                rt.tenant_id,
                                rt.seq,
                                rt.clock.now(),
                                rt.engine.to_snapshot(),
                            )
                except Exception:
                    # A snapshot only saves replay time; another node may be writing one.
                    log.exception("acd_snapshot_failed", tenant_id=rt.tenant_id)
                    continue
                rt.since_snapshot = 0

    def _build(self, tenant_id: str) -> TenantRouting:
        with self.db.read() as s:
            snap = load_snapshot(s, tenant_id)
            journal = load_journal(s, tenant_id, snap.seq if snap else 0)
        if snap is not None:
            clock = EngineClock(snap.time)
            engine = engine_class().from_snapshot(snap.data, clock)
            seq = snap.seq
        else:
            clock = EngineClock(journal[0].time if journal else self.clock.now())
            engine = engine_class()(clock)
            seq = 0
        _replay(engine, clock, journal)
        if journal:
            seq = journal[-1].seq
            log.info("acd_replayed", tenant_id=tenant_id, commands=len(journal))
        return TenantRouting(
            tenant_id,
            engine,
            clock,
            seq=seq,
            since_snapshot=len(journal),
            checked_at=self.clock.monotonic(),
        )

    def _rebuild(self, rt: TenantRouting) -> None:
        """Replace ``rt``'s engine with one built from the database (same lock, in place)."""
        seen = rt.remote_changes
        fresh = self._build(rt.tenant_id)
        rt.engine, rt.clock, rt.seq = fresh.engine, fresh.clock, fresh.seq
        rt.since_snapshot = fresh.since_snapshot
        rt.mark_checked(self.clock.monotonic(), seen)

    def _catch_up(self, rt: TenantRouting) -> None:
        """Apply the commands other nodes stored after ``rt.seq`` (under ``rt.lock``).

        Incremental when the journal still holds ``rt.seq + 1``; a full rebuild when a newer
        snapshot already dropped it (or the database is behind this engine: a restore).
        """
        seen = rt.remote_changes
        with self.db.read() as s:
            commands = load_journal(s, rt.tenant_id, rt.seq)
            head = commands[-1].seq if commands else journal_head(s, rt.tenant_id)
        rt.mark_checked(self.clock.monotonic(), seen)
        if head == rt.seq:
            return
        if not commands or commands[0].seq != rt.seq + 1:
            log.info("acd_rebuild_behind_snapshot", tenant_id=rt.tenant_id, seq=rt.seq, head=head)
            self._rebuild(rt)
            return
        try:
            _replay(rt.engine, rt.clock, commands)
        except Exception:
            # Cannot happen with a deterministic engine; never leave a half-applied catch-up.
            log.exception("acd_catch_up_failed", tenant_id=rt.tenant_id, seq=rt.seq)
            self._rebuild(rt)
            return
        rt.seq = head
        rt.since_snapshot += len(commands)

    def _refresh(self, rt: TenantRouting) -> None:
        """Catch up when other nodes stored commands; checks the head at most every
        ``freshness_seconds`` (under ``rt.lock``)."""
        now = self.clock.monotonic()
        if rt.checked_at is not None and now - rt.checked_at < self.freshness_seconds:
            return
        seen = rt.remote_changes
        with self.db.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            head = journal_head(conn, rt.tenant_id)
        rt.mark_checked(now, seen)
        if head != rt.seq:
            self._catch_up(rt)

    def routing(self, tenant_id: str) -> TenantRouting:
        """The tenant's engine, built on first use (then given the tenant's break codes and
        business hours)."""
        with self._tenants_lock:
            rt = self._tenants.get(tenant_id)
            built = rt is None
            if rt is None:
                rt = self._tenants[tenant_id] = self._build(tenant_id)
        if built:
            try:
                self.sync_break_reasons(tenant_id)
            except Exception:
                # set_break syncs again before it runs, so a failure here costs nothing.
                log.exception("acd_break_reasons_sync_failed", tenant_id=tenant_id)
            try:
                self.sync_business_hours(tenant_id)
            except Exception:  # the engine keeps the hours of its journal meanwhile
                log.exception("acd_business_hours_sync_failed", tenant_id=tenant_id)
        return rt

    # ---- the administrator's desk codes --------------------------------------------------

    def desk_codes(self, tenant_id: str, kind: str) -> frozenset[str] | None:
        """The tenant's active ``reason`` or ``disposition`` codes; None when it has none
        (then any code is accepted, as before codes existed)."""
        with self.db.read() as s:
            rows = list_codes(s, tenant_id, kind)
        active = frozenset(row.code for row in rows if row.active)
        return active or None

    def sync_break_reasons(self, tenant_id: str) -> list[Event]:
        """Give the tenant's engine its administrator's break reason codes.

        A change is applied as the journaled command ``set_break_reasons`` (so a replay sees
        the same set at the same point of the command stream); no command when unchanged.
        The engine's own ``missed-offers`` reason is always included.
        """
        rt = self.routing(tenant_id)
        with rt.lock:
            wanted = self._wanted_break_reasons(rt)

            def differs() -> bool:  # checked again after catching up with other nodes
                current = rt.engine.config.break_reasons
                return (None if current is None else sorted(current)) != wanted

            if not differs():
                return []
            events = self._execute(rt, "set_break_reasons", {"reasons": wanted}, guard=differs)
        self._poke()
        return events

    def sync_business_hours(self, tenant_id: str) -> list[Event]:
        """Give the tenant's engine the organisation's business hours (``hours_source``),
        as the journaled command ``set_business_hours``; no command when unchanged or when
        this service has no source (a routing service without the PBX)."""
        source = self.hours_source
        if source is None:
            return []
        wanted = source(tenant_id)
        rt = self.routing(tenant_id)
        with rt.lock:

            def differs() -> bool:  # checked again after catching up with other nodes
                return bool(rt.engine.business_hours() != wanted)

            if not differs():
                return []
            events = self._execute(rt, "set_business_hours", {"hours": wanted}, guard=differs)
        self._poke()
        return events

    def hours_changed(self, tenant_id: str) -> None:
        """Called by the PBX service after an administrator changed business hours."""
        try:
            self.sync_business_hours(tenant_id)
        except Exception:
            # The change is committed; the engine gets it when it is next built or changed.
            log.exception("acd_business_hours_sync_failed", tenant_id=tenant_id)

    def codes_changed(self, tenant_id: str, kind: str) -> None:
        """Called by the customer service after an administrator changed desk codes."""
        if kind != "reason":
            return  # dispositions are read from the database at each ``complete``
        try:
            self.sync_break_reasons(tenant_id)
        except Exception:
            # The change is committed; the next set_break syncs before it runs.
            log.exception("acd_break_reasons_sync_failed", tenant_id=tenant_id)

    def _wanted_break_reasons(self, rt: TenantRouting) -> list[str] | None:
        codes = self.desk_codes(rt.tenant_id, "reason")
        if codes is None:
            return None
        return sorted(codes | {rt.engine.config.missed_offers_reason})

    def _check_disposition(self, tenant_id: str, disposition: Any) -> None:
        """The engine has no list of dispositions: the service checks the desk's codes."""
        if disposition is None:
            return
        allowed = self.desk_codes(tenant_id, "disposition")
        if allowed is not None and disposition not in allowed:
            raise InvalidInput(
                f"Unknown disposition {disposition!r}; allowed: {', '.join(sorted(allowed))}.",
                field="disposition",
            )

    # ---- commands ------------------------------------------------------------------------

    def execute(
        self, tenant_id: str, name: str, *, audit: AuditNote | None = None, **args: Any
    ) -> list[Event]:
        """Apply one command and store it with its events; returns the committed events.

        ``audit`` writes an audit row in the same transaction (administrative changes and
        supervisors acting for agents). Raises the engine's domain errors unchanged (the
        engine validates before it changes anything, so a refused command leaves no trace).
        """
        rt = self.routing(tenant_id)
        with rt.lock:
            if name == "set_break":
                # Codes may have changed since (another process, a direct edit): catch up
                # first, as its own journaled command, so the check below is current.
                self.sync_break_reasons(tenant_id)
            elif name == "complete":
                self._check_disposition(tenant_id, args.get("disposition"))
            events = self._execute(rt, name, args, audit)
        self._poke()
        return events

    def _execute(
        self,
        rt: TenantRouting,
        name: str,
        args: dict[str, Any],
        audit: AuditNote | None = None,
        guard: Callable[[], bool] | None = None,
    ) -> list[Event]:
        """Store and run one command (under ``rt.lock``), catching up with other nodes.

        When another node stored the ``seq`` this node wanted, the engine catches up and the
        command runs again on the current state, so the engine validates it again (an offer
        the other node withdrew is now the engine's usual error). ``guard``, when given, is
        asked again after each catch-up: False means the command is no longer needed (a
        timer another node already fired) and nothing is stored.
        """
        for attempt in range(1, self.max_attempts + 1):
            try:
                events = self._store(rt, name, args, audit)
            except JournalConflict:
                pass
            except IntegrityError:
                with self.db.read() as s:
                    head = journal_head(s, rt.tenant_id)
                if head <= rt.seq:
                    raise  # not the journal's key: a real error
            else:
                for listener in self._listeners:
                    try:
                        listener(rt.tenant_id, events)
                    except Exception:
                        log.exception("acd_listener_failed", tenant_id=rt.tenant_id, command=name)
                return events
            log.info("acd_conflict", tenant_id=rt.tenant_id, command=name, attempt=attempt)
            self._catch_up(rt)
            if guard is not None and not guard():
                return []
        raise Conflict(
            f"Routing changed on another server {self.max_attempts} times while applying "
            f"{name!r}; nothing was changed, try again."
        )

    def _store(
        self,
        rt: TenantRouting,
        name: str,
        args: dict[str, Any],
        audit: AuditNote | None = None,
    ) -> list[Event]:
        """Claim the next ``seq``, run the command on the engine, store its events.

        The engine runs inside the transaction, after the journal row is in: a node that is
        behind fails on that row before its engine changes (so it can catch up instead of
        rebuilding). A refused command rolls the transaction back and leaves no trace.
        """
        seq = rt.seq + 1
        snapshot = rt.since_snapshot + 1 >= self.snapshot_every
        before = rt.clock.now()
        rt.clock.set(self.clock.now())
        applied = False
        try:
            with self.db.write() as tx:
                now = rt.clock.now()
                journal_command_txn(tx.session, rt.tenant_id, seq, now, name, args)
                new = _apply(rt.engine, name, args)
                applied = True
                events = tx.emit(rt.tenant_id, new)
                if audit is not None:
                    write_audit_txn(
                        tx.session,
                        self.clock,
                        tenant_id=rt.tenant_id,
                        actor=audit.actor,
                        action=audit.action,
                        target_type=audit.target_type,
                        target_id=audit.target_id,
                        details=audit.details,
                    )
                if snapshot:
                    save_snapshot_txn(tx.session, rt.tenant_id, seq, now, rt.engine.to_snapshot())
        except BaseException:
            if not applied:
                rt.clock.reset(before)  # nothing ran: the clock stays at the last command
            else:
                log.exception("acd_store_failed", tenant_id=rt.tenant_id, command=name)
                self._rebuild(rt)  # the engine ran a command that was not stored
            raise
        rt.seq = seq
        rt.since_snapshot = 0 if snapshot else rt.since_snapshot + 1
        return events

    def read(self, tenant_id: str, fn: Callable[[AcdEngine], Any]) -> Any:
        """Run a read-only function of the engine under the tenant's lock (at "now").

        The engine first catches up with commands other nodes stored, when its view of the
        journal is older than ``freshness_seconds`` (best effort: when the database cannot be
        reached the read answers from memory, as before several nodes existed).
        """
        rt = self.routing(tenant_id)
        with rt.lock:
            try:
                self._refresh(rt)
            except SQLAlchemyError:
                log.warning("acd_refresh_failed", tenant_id=tenant_id, exc_info=True)
            before = rt.clock.now()
            rt.clock.set(self.clock.now())
            try:
                return fn(rt.engine)
            finally:
                rt.clock.reset(before)

    # ---- timers --------------------------------------------------------------------------

    def tick_due(self, tenant_id: str) -> list[Event]:
        """Run the tenant's timers that are due now (no-op when none is)."""
        rt = self.routing(tenant_id)
        with rt.lock:

            def due() -> bool:  # asked again after catching up: another node may have ticked
                deadline = rt.engine.next_deadline()
                return deadline is not None and deadline <= self.clock.now()

            if not due():
                return []
            events = self._execute(rt, "tick", {}, guard=due)
        self._poke()
        return events

    def next_deadline(self) -> datetime | None:
        """The earliest timer of all tenants (each caught up first, see ``_refresh``)."""
        deadlines = []
        for rt in list(self._tenants.values()):
            with rt.lock:
                try:
                    self._refresh(rt)
                except Exception:
                    log.exception("acd_refresh_failed", tenant_id=rt.tenant_id)
                d = rt.engine.next_deadline()
            if d is not None:
                deadlines.append(d)
        return min(deadlines) if deadlines else None

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def _timers(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            deadline = await run_in_threadpool(self.next_deadline)
            delay = 1.0
            if deadline is not None:
                delay = min(delay, max(0.0, (deadline - self.clock.now()).total_seconds()))
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            for tenant_id in list(self._tenants):
                try:
                    await run_in_threadpool(self.tick_due, tenant_id)
                except Exception:
                    log.exception("acd_tick_failed", tenant_id=tenant_id)
                    await asyncio.sleep(0.5)
