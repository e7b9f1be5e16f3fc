"""Per-tenant broadcast of live events to WebSocket clients.

One ``TenantHub`` per tenant with connected clients follows the tenant's stream once
(``EventStream.follow``: bus first, gaps filled from the database) and hands each batch of
events, encoded and framed once, to every client that is *in step* (its last delivered id is
the hub's). A client that has just connected, or fell behind (its socket's buffer filled
up), is *catching up*: its own coroutine reads the missing range from the database and
sends it, then joins the hub again when it has reached the hub's position. So the live path
costs one write per client per batch, and the gapless, ordered, duplicate-free guarantee
comes from the same place as before: the database is the stream, ids are checked at joins.

Under uvicorn the hub writes the already-framed bytes straight to the client's transport
(an uncompressed text frame is valid whatever extensions were negotiated); elsewhere (the
test client, other servers) it queues the frame text for the client's coroutine, which sends
it through ASGI.
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

# A socket whose kernel + transport buffers hold more than this is treated as behind: it
# leaves the live set and catches up from the database at its own pace.
WRITE_BUFFER_LIMIT = 1 << 20
# Frames queued for a client sent through ASGI before it is treated as behind.
OUTBOX_LIMIT = 1000
# Coalescing: a hub sends at most one frame per this many seconds to its clients (the first
# event after a quiet spell goes out at once; later ones wait for the window's end and go
# out together as one {"op": "events"} frame). 0 sends every batch at once.
COALESCE_S = float(os.environ.get("SPARKLECOMM_EVENTS_COALESCE_MS", "10")) / 1000


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

    __slots__ = ("closed", "last", "live", "outbox", "raw", "wake")

    def __init__(self, last: int, raw: Callable[[], asyncio.Transport | None] | None) -> None:
        self.last = last  # the last event id delivered (or queued for delivery)
        self.raw = raw
        self.live = False  # in the hub's live set: the hub sends it every batch
        self.closed = False
        self.outbox: list[str] = []  # frames for the client's coroutine (no raw transport)
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
        wait = self._flushed_at + COALESCE_S - loop.time()
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
        self.last = batch[-1].id
        text: str | None = None
        frame: bytes | None = None
        for client in list(self.live):
            if client.last != first - 1:  # cannot happen; be safe rather than gappy
                self.detach(client)
                continue
            if text is None:
                text = encode(batch)
            if client.raw is not None:
                transport = client.raw()
                if transport is None or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                    self.detach(client)
                    continue
                if frame is None:
                    frame = ws_frame(text)
                transport.write(frame)
            else:
                if len(client.outbox) >= OUTBOX_LIMIT:
                    self.detach(client)
                    continue
                client.outbox.append(text)
                client.wake.set()
            client.last = self.last
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
