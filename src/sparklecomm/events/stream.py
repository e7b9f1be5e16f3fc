"""Gapless, duplicate-free reading of a tenant's event stream, live.

A reader subscribes to the bus *before* it reads the backlog from the database, then
delivers live events in id order. Whenever the next live event is not ``last + 1`` (another
process committed in between, a message was lost, the buffer overflowed) it reads the missing
range from the database. Events already delivered are skipped. This is what lets a WebSocket
client resume from the last id it saw without gaps or duplicates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from sparklecomm.bus.base import EventBus, Subscription
from sparklecomm.core.events import Event
from sparklecomm.events.fanout import Hubs
from sparklecomm.store.db import Database, last_event_id, read_events

PAGE = 500


class EventStream:
    """Reads tenants' streams from the database and follows them live through the bus."""

    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db = db
        self.bus = bus
        # WebSocket fan-out: one follower per tenant, shared by its clients (fanout.py).
        self.hubs = Hubs(bus, self.follow, self.head)

    def head(self, tenant_id: str) -> int:
        with self.db.read() as s:
            return last_event_id(s, tenant_id)

    def page(self, tenant_id: str, after: int, limit: int = PAGE) -> list[Event]:
        with self.db.read() as s:
            return read_events(s, tenant_id, after, limit)

    async def _backlog(self, tenant_id: str, after: int, upto: int | None) -> list[Event]:
        out: list[Event] = []
        cursor = after
        while True:
            batch = await run_in_threadpool(self.page, tenant_id, cursor, PAGE)
            if upto is not None:
                batch = [e for e in batch if e.id <= upto]
            out.extend(batch)
            if len(batch) < PAGE:
                return out
            cursor = batch[-1].id

    async def follow(
        self, tenant_id: str, after: int, subscription: Subscription | None = None
    ) -> AsyncIterator[list[Event]]:
        """Every event with id > ``after``, in order, then live ones as they come.

        Yields batches: whatever is buffered when the reader gets to run goes out together,
        so a reader that falls behind catches up in a few large steps instead of many small
        ones. Ends when the subscription is interrupted.
        """
        sub = subscription or self.bus.subscribe(tenant_id)
        last = after
        try:
            backlog = await self._backlog(tenant_id, last, None)
            for start in range(0, len(backlog), PAGE):
                page = backlog[start : start + PAGE]
                yield page
                last = page[-1].id
            while not sub.interrupted:
                if sub.overflowed:
                    sub.overflowed = False
                    sub.drain()
                    missed = await self._backlog(tenant_id, last, None)
                    if missed:
                        yield missed
                        last = missed[-1].id
                    continue
                first = await sub.get()
                if first is None:
                    return
                out: list[Event] = []
                for event in [first, *sub.drain()]:
                    if event.id <= last:
                        continue
                    if event.id > last + 1:
                        out.extend(await self._backlog(tenant_id, last, event.id - 1))
                    out.append(event)
                    last = event.id
                if out:
                    yield out
        finally:
            if subscription is None:
                sub.close()
