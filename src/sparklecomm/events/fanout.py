"""Per-tenant broadcast of live events to WebSocket clients.

One ``TenantHub`` per tenant with connected clients follows the tenant's stream once
(``EventStream.follow``: bus first, gaps filled from the database) and hands each batch of
events, encoded and framed once, to every client that is *in step* (its last delivered id is
the hub's). A client that has just connected (or resumes) is *catching up*: its own
coroutine reads the missing range from the database and sends it, then joins the hub when it
has reached the hub's position. So the live path costs one write per client per batch, and
the gapless, ordered, duplicate-free guarantee comes from the same place as before: the
database is the stream, ids are checked at joins.

Coalescing: events that arrive within a short window after the previous frame go out
together as one ``{"op": "events"}`` frame (the first event after a quiet spell goes at once);
the window widens with the number of clients (10 ms → 50 ms for 1,000), so at 200 events/s
a thousand clients get about 20 frames/s each rather than 200.

Bounded buffers: a client whose socket buffer (raw path) or queue of frames (ASGI path)
is over its limit is too far behind. It leaves the live set at once, so it costs the others
nothing more, and its coroutine closes the socket with code ``BEHIND_CODE`` and the id to
resume from; the browser reconnects with that id and catches up from the database.

Under uvicorn the hub writes the already-framed bytes straight to the client's transport
(an uncompressed text frame is valid whatever extensions were negotiated); elsewhere (the
test client, other servers), or with ``SPARKLECOMM_EVENTS_RAW_WRITES=0``, it queues the
frame text for the client's coroutine, which sends it through ASGI. The raw path is what
makes 1,000 clients on one core fit (docs/performance.md); both are tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import Callable
from typing import Any

import structlog

from sparklecomm.bus.base import EventBus
from sparklecomm.core.events import Event

log = structlog.get_logger(__name__)

# A socket whose transport buffer holds more than this is too far behind: it is closed with
# the id to resume from (the browser reconnects and catches up from the database).
WRITE_BUFFER_LIMIT = 256 * 1024
# Frames queued for a client sent through ASGI before it is too far behind.
OUTBOX_LIMIT = 500
# The close code (and reason prefix) that tells a client to reconnect at once and resume.
BEHIND_CODE = 4429
# Coalescing: a hub sends at most one frame per window to its clients (the first event after
# a quiet spell goes out at once; later ones wait for the window's end and go out together as
# one {"op": "events"} frame). The window is COALESCE_S, widened with the number of clients
# so that a hub makes at most about WRITES_PER_S socket writes a second (each costs a system
# call), up to MAX_COALESCE_S: 10 ms for a few wallboards, 50 ms for 1,000 clients.
COALESCE_S = float(os.environ.get("SPARKLECOMM_EVENTS_COALESCE_MS", "10")) / 1000
WRITES_PER_S = float(os.environ.get("SPARKLECOMM_EVENTS_WRITES_PER_S", "20000"))
MAX_COALESCE_S = 0.05
# Write pre-framed bytes straight to uvicorn's transport (1) or always go through ASGI (0).
RAW_WRITES = os.environ.get("SPARKLECOMM_EVENTS_RAW_WRITES", "1") != "0"


def ws_frame(text: str) -> bytes:
    """A complete, unmasked, uncompressed server-to-client text frame."""
    data = text.encode()
    n = len(data)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + data


def raw_transport_of(*channels: Any) -> Callable[[], asyncio.Transport | None] | None:
    """For uvicorn's WebSocket protocols, a function giving the transport while it is open.

    ``channels`` are the ASGI receive and send callables: uvicorn passes bound methods of
    the connection's protocol (middleware may wrap send, rarely receive). The
    function returns None once the connection is closing or closed, so that no data frame
    ever follows a close frame. Returns None for anything else (then ASGI is used).
    """
    if not RAW_WRITES:
        return None
    for channel in channels:
        raw = _raw_transport(getattr(channel, "__self__", None))
        if raw is not None:
            return raw
    return None


def _raw_transport(proto: Any) -> Callable[[], asyncio.Transport | None] | None:
    if proto is None:
        return None
    try:
        from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol
    except ImportError:  # pragma: no cover - uvicorn without websockets
        WebSocketProtocol = None  # type: ignore[assignment,misc]
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )
    except ImportError:  # pragma: no cover
        WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]
    from websockets.protocol import State

    if WebSocketProtocol is not None and isinstance(proto, WebSocketProtocol):
        legacy = proto

        def legacy_transport() -> asyncio.Transport | None:
            t = legacy.transport
            if legacy.state is not State.OPEN or t is None or t.is_closing():
                return None
            return t

        return legacy_transport
    if WebSocketsSansIOProtocol is not None and isinstance(proto, WebSocketsSansIOProtocol):
        sansio = proto

        def sansio_transport() -> asyncio.Transport | None:
            t = sansio.transport
            if (
                sansio.close_sent
                or sansio.conn.state is not State.OPEN
                or t is None
                or t.is_closing()
            ):
                return None
            return t

        return sansio_transport
    return None


class Client:
    """One WebSocket client of a hub."""

    __slots__ = ("behind", "closed", "last", "live", "outbox", "raw", "sent", "wake")

    def __init__(self, last: int, raw: Callable[[], asyncio.Transport | None] | None) -> None:
        self.last = last  # the last event id delivered (or queued for delivery)
        self.sent = last  # the last event id handed to the socket (ASGI path: sent)
        self.raw = raw
        self.live = False  # in the hub's live set: the hub sends it every batch
        self.closed = False
        self.behind = False  # too far behind: its coroutine closes it with a resume id
        # Frames for the client's coroutine (no raw transport): (text, last id in it).
        self.outbox: list[tuple[str, int]] = []
        self.wake = asyncio.Event()


Encoder = Callable[[list[Event]], str]


class TenantHub:
    """Follows one tenant's stream and broadcasts it to the clients in step."""

    def __init__(self, tenant_id: str, follow: Any, head: Callable[[str], Any]) -> None:
        self.tenant_id = tenant_id
        self._follow = follow
        self._head = head
        self.last = -1  # the last event id the hub has seen (-1 until started)
        self.live: set[Client] = set()
        self.waiting: set[Client] = set()  # catching up, waiting for the hub to advance
        self.users = 0
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._pending: list[Event] = []  # received, not yet sent (coalescing window)
        self._flushed_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, bus: EventBus, encode: Encoder) -> None:
        sub = bus.subscribe(self.tenant_id)
        try:
            from starlette.concurrency import run_in_threadpool

            while True:
                try:
                    if self.last < 0:
                        self.last = await run_in_threadpool(self._head, self.tenant_id)
                        self.ready.set()
                    async for batch in self._follow(self.tenant_id, self.last, sub):
                        self.broadcast(batch, encode)
                    return  # interrupted
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database hiccuped: clients catch up on their own
                    log.exception("event_hub_failed", tenant_id=self.tenant_id)
                    for client in list(self.live):
                        self.detach(client)
                    await asyncio.sleep(1.0)
        finally:
            if self._timer is not None:
                self._timer.cancel()
            sub.close()
            self.ready.set()

    def broadcast(self, batch: list[Event], encode: Encoder) -> None:
        """Send ``batch`` now, or with the next events at the end of the window."""
        self._pending.extend(batch)
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        window = (
            min(MAX_COALESCE_S, max(COALESCE_S, len(self.live) / WRITES_PER_S))
            if COALESCE_S > 0
            else 0.0  # coalescing turned off
        )
        wait = self._flushed_at + window - loop.time()
        if wait <= 0:
            self._flush(encode)
        else:
            self._timer = loop.call_later(wait, self._flush, encode)

    def _flush(self, encode: Encoder) -> None:
        self._timer = None
        batch, self._pending = self._pending, []
        self._flushed_at = asyncio.get_running_loop().time()
        if batch:
            self._send(batch, encode)

    def _send(self, batch: list[Event], encode: Encoder) -> None:
        first = batch[0].id
        last = self.last = batch[-1].id
        if self.live:
            text = encode(batch)  # once for all clients
            frame: bytes | None = None
            dropped: list[Client] = []
            for client in self.live:
                if client.last != first - 1:  # cannot happen; be safe rather than gappy
                    dropped.append(client)
                    continue
                raw = client.raw
                if raw is not None:
                    transport = raw()
                    if transport is None:
                        dropped.append(client)  # closing: its coroutine finds out
                        continue
                    if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                        client.behind = True
                        dropped.append(client)
                        continue
                    if frame is None:
                        frame = ws_frame(text)
                    transport.write(frame)
                    client.sent = last
                else:
                    if len(client.outbox) >= OUTBOX_LIMIT:
                        client.behind = True
                        dropped.append(client)
                        continue
                    client.outbox.append((text, last))
                    client.wake.set()
                client.last = last
            for client in dropped:
                self.detach(client)
        for client in self.waiting:
            client.wake.set()

    def join(self, client: Client) -> bool:
        """Put a client in step with the hub into the live set (no await in between)."""
        if client.last != self.last or client.closed:
            return False
        client.live = True
        self.live.add(client)
        self.waiting.discard(client)
        return True

    def detach(self, client: Client) -> None:
        client.live = False
        self.live.discard(client)
        client.wake.set()

    def remove(self, client: Client) -> None:
        client.closed = True
        self.live.discard(client)
        self.waiting.discard(client)
        client.wake.set()


class Hubs:
    """The hubs of one process, created with their first client and ended with their last."""

    def __init__(self, bus: EventBus, follow: Any, head: Callable[[str], Any]) -> None:
        self.bus = bus
        self._follow = follow
        self._head = head
        self._hubs: dict[str, TenantHub] = {}

    async def acquire(self, tenant_id: str, encode: Encoder) -> TenantHub:
        hub = self._hubs.get(tenant_id)
        if hub is None or hub.task is None or hub.task.done():
            hub = TenantHub(tenant_id, self._follow, self._head)
            self._hubs[tenant_id] = hub
            hub.task = asyncio.create_task(hub.run(self.bus, encode), name=f"hub-{tenant_id}")
        hub.users += 1
        await hub.ready.wait()
        if hub.last < 0:
            self.release(hub)
            raise RuntimeError(f"the event hub of {tenant_id} did not start")
        return hub

    def release(self, hub: TenantHub) -> None:
        hub.users -= 1
        if hub.users <= 0 and self._hubs.get(hub.tenant_id) is hub:
            del self._hubs[hub.tenant_id]
            if hub.task is not None:
                hub.task.cancel()

    async def aclose(self) -> None:
        for hub in list(self._hubs.values()):
            if hub.task is not None:
                hub.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await hub.task
        self._hubs.clear()
