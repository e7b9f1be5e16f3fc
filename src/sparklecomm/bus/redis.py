"""Redis pub/sub bus: several ``serve`` processes share one live event flow.

Each process delivers its own events locally at once and publishes them on the tenant's
channel; the other processes receive them from Redis. Messages carry the origin node id so
a process ignores its own. Redis pub/sub is fire-and-forget; that is fine here because the
durable stream is the database and readers fill any gap from it.

The same Redis arbitrates what exactly one node may do about an event every node hears
(:meth:`RedisBus.claim`, ``SET NX`` with an expiry): the voice bridge claims each queued
callback's offer before it rings the agent's phones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import redis.asyncio as aioredis
import structlog

from sparklecomm.bus.base import LocalFanout
from sparklecomm.core.events import Event
from sparklecomm.core.ids import new_id

log = structlog.get_logger(__name__)
CHANNEL_PREFIX = "sparklecomm:events:"


class RedisBus(LocalFanout):
    def __init__(self, url: str, *, prefix: str = CHANNEL_PREFIX) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        self.node_id = new_id()
        self._redis: aioredis.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        self.bind_loop()
        self._redis = aioredis.from_url(self.url)
        await self._redis.ping()
        self._outbox = asyncio.Queue()
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(self.prefix + "*")
        self._reader = asyncio.create_task(self._read(pubsub), name="redis-bus-reader")
        self._writer = asyncio.create_task(self._write(), name="redis-bus-writer")

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._reader, self._writer):
            if task is not None:
                task.cancel()
                # redis-py may turn a cancellation inside a read into a TimeoutError, which
                # the loops below would take for a broker hiccup: they also watch
                # ``_stopping``, and a task that still does not end is left behind.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=5)
        if self._redis is not None:
            await self._redis.aclose()
        self._loop = None

    def publish(self, events: Sequence[Event]) -> None:
        self.deliver(events)
        loop = self._loop
        if loop is None or self._outbox is None or not events:
            return
        by_tenant: dict[str, list[Event]] = {}
        for event in events:
            by_tenant.setdefault(event.tenant_id, []).append(event)
        outbox = self._outbox
        for tenant_id, batch in by_tenant.items():
            message = json.dumps({"node": self.node_id, "events": [e.to_json() for e in batch]})
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(outbox.put_nowait, f"{tenant_id}\n{message}")

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """True for the first node to claim ``key`` (within ``ttl_seconds``), False for every
        other; raises the client's error when Redis cannot be asked."""
        if self._redis is None:
            raise RuntimeError("the Redis bus is not started")
        ttl = max(1, round(ttl_seconds * 1000))
        won = await self._redis.set(f"{self.prefix}claim:{key}", self.node_id, nx=True, px=ttl)
        return bool(won)

    async def _write(self) -> None:
        assert self._redis is not None and self._outbox is not None
        while True:
            item = await self._outbox.get()
            tenant_id, message = item.split("\n", 1)
            try:
                await self._redis.publish(self.prefix + tenant_id, message)
            except Exception:  # the database still has the event; readers will catch up
                if self._stopping:
                    return
                log.exception("redis_publish_failed", tenant_id=tenant_id)

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except Exception:
                if self._stopping:
                    return
                log.exception("redis_read_failed")
                await asyncio.sleep(1.0)
                continue
            if message is None:
                continue
            try:
                data = json.loads(message["data"])
                if data.get("node") == self.node_id:
                    continue
                events = [Event.from_json(e) for e in data["events"]]
            except (ValueError, KeyError, TypeError):
                log.warning("redis_bad_message", channel=message.get("channel"))
                continue
            self._deliver_remote(events)
