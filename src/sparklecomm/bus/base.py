"""Live fan-out of committed events to subscribers (WebSocket clients, the engine's shell).

The bus only *notifies*: the durable, ordered stream is the ``events`` table. A subscriber
that sees a gap in ids, or that fell behind, reads the missing events from the database, so
delivery is gapless and duplicate-free whatever the bus does (see ``events/stream.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from sparklecomm.core.events import Event

log = structlog.get_logger(__name__)

SUBSCRIBER_BUFFER = 10_000

RemoteListener = Callable[[Sequence[Event]], None]
"""Called on the event loop's thread with events that other nodes committed."""

_remote = threading.local()  # per thread: not inherited by tasks or worker threads


def delivering_remote() -> bool:
    """True while the remote listeners are being handed events that *another node*
    committed (and so inside anything they call synchronously, such as the routing
    service's own listeners); False for this node's own events, and in any task or thread
    started meanwhile. The voice bridge uses it to tell the offers its own engine made
    from those it only heard about."""
    return bool(getattr(_remote, "delivering", False))


class Subscription:
    """One subscriber's buffer of live events for a tenant."""

    def __init__(self, bus: LocalFanout, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._bus = bus
        # None is the wake-up that ends a reader (see interrupt()).
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER + 1)
        # Set when events were dropped because the buffer was full: the reader must catch
        # up from the database before trusting the buffer again.
        self.overflowed = False

        self.interrupted = False

    def _offer(self, event: Event) -> None:
        if self._queue.qsize() >= SUBSCRIBER_BUFFER:
            self.overflowed = True
            return
        self._queue.put_nowait(event)

    def interrupt(self) -> None:
        """Wake the reader and make it stop (its client went away); loop thread only."""
        self.interrupted = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def get(self) -> Event | None:
        """The next event, or None when interrupted."""
        return await self._queue.get()

    def drain(self) -> list[Event]:
        """Everything buffered right now, without waiting (stops at an interrupt)."""
        out: list[Event] = []
        while True:
            try:
                event = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return out
            if event is None:
                self.interrupted = True
                return out
            out.append(event)

    def close(self) -> None:
        self._bus._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def publish(self, events: Sequence[Event]) -> None:
        """Hand committed events to live subscribers; thread-safe and non-blocking."""
        ...

    def subscribe(self, tenant_id: str) -> Subscription: ...

    def add_remote_listener(self, listener: RemoteListener) -> None: ...

    def remove_remote_listener(self, listener: RemoteListener) -> None: ...


class LocalFanout:
    """Subscriptions of this process, fed on the event loop's thread."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._remote_listeners: list[RemoteListener] = []

    def add_remote_listener(self, listener: RemoteListener) -> None:
        """Also hand ``listener`` every batch of events that *another node* committed (as
        they arrive from the broker, on the loop's thread; never this node's own events).

        Services that act on events in memory (the routing service and, through it, the
        voice bridge) use it to hear decisions made elsewhere. Like every live delivery it
        is best effort: a message the broker lost is not repeated (the database has it).
        """
        self._remote_listeners.append(listener)

    def remove_remote_listener(self, listener: RemoteListener) -> None:
        if listener in self._remote_listeners:
            self._remote_listeners.remove(listener)

    def _deliver_remote(self, events: Sequence[Event]) -> None:
        """Events from another node: to the subscriptions, then to the remote listeners."""
        self._deliver_now(events)
        outer = delivering_remote()
        _remote.delivering = True
        try:
            for listener in list(self._remote_listeners):
                try:
                    listener(events)
                except Exception:
                    log.exception("remote_listener_failed")
        finally:
            _remote.delivering = outer

    def bind_loop(self) -> None:
        self._loop = asyncio.get_running_loop()

    def subscribe(self, tenant_id: str) -> Subscription:
        sub = Subscription(self, tenant_id)
        with self._lock:
            self._subs.setdefault(tenant_id, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.tenant_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.tenant_id]

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def deliver(self, events: Sequence[Event]) -> None:
        """Put events into the matching subscriptions; from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver_now(events)
        else:
            with contextlib.suppress(RuntimeError):  # loop closed while shutting down
                loop.call_soon_threadsafe(self._deliver_now, list(events))

    def _deliver_now(self, events: Sequence[Event]) -> None:
        with self._lock:
            targets = {t: list(s) for t, s in self._subs.items()}
        for event in events:
            for sub in targets.get(event.tenant_id, ()):
                sub._offer(event)


class InProcessBus(LocalFanout):
    """The default bus: one process, no broker."""

    async def start(self) -> None:
        self.bind_loop()

    async def stop(self) -> None:
        self._loop = None

    def publish(self, events: Sequence[Event]) -> None:
        self.deliver(events)
