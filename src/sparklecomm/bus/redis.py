"""Redis pub/sub bus: several ``serve`` processes share one live event flow.

Each process delivers its own events locally at once and publishes them on the tenant's
channel; the other processes receive them from Redis. Messages carry the origin node id so
a process ignores its own. Redis pub/sub is fire-and-forget; that is fine here because the
durable stream is the database and readers fill any gap from it.

The same Redis arbitrates what exactly one node may do about an event every node hears
(:meth:`RedisBus.claim`, ``SET NX`` with an expiry): the voice bridge claims each queued
callback's offer before it rings the agent's phones.

Nodes also keep small shared records there (:meth:`RedisBus.remember`, with an expiry) and
ask one particular node something (:meth:`RedisBus.ask`): the request goes on that node's
own channel, the answer comes back in a list the asking node pops (``BLPOP``), so an answer
that arrives before the asker waits is not lost. Calls use both: which node holds each
placed or queued call, and a hang-up or a transfer to a number sent to it
(:mod:`sparklecomm.telephony.call_directory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
import structlog

from sparklecomm.bus.base import LocalFanout
from sparklecomm.core.events import Event
from sparklecomm.core.ids import new_id

log = structlog.get_logger(__name__)
CHANNEL_PREFIX = "sparklecomm:events:"
REPLY_TTL_MS = 30_000
"""An answer nobody popped (the asker gave up) is dropped after this."""

RequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers a request another node sent this one (:meth:`RedisBus.ask`)."""


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
        self._handlers: dict[str, RequestHandler] = {}
        self._answering: set[asyncio.Task[None]] = set()

    @property
    def _node_prefix(self) -> bytes:
        return f"{self.prefix}node:".encode()

    def _node_channel(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

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
        for answering in list(self._answering):
            answering.cancel()
        await asyncio.gather(*self._answering, return_exceptions=True)
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

    # ---- records shared by the nodes ----------------------------------------------------

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the Redis bus is not started")
        return self._redis

    async def remember(self, records: Mapping[str, str], ttl_seconds: float) -> None:
        """Keep each value under its key for every node, ``ttl_seconds`` long (call it again
        to keep them longer); raises the client's error when Redis cannot be asked."""
        if not records:
            return
        ttl = max(1, round(ttl_seconds * 1000))
        async with self._client().pipeline(transaction=False) as pipe:
            for key, value in records.items():
                pipe.set(f"{self.prefix}{key}", value, px=ttl)
            await pipe.execute()

    async def recall(self, key: str) -> str | None:
        """What :meth:`remember` keeps under ``key`` (any node's), None once gone."""
        value = await self._client().get(f"{self.prefix}{key}")
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def forget(self, key: str) -> None:
        await self._client().delete(f"{self.prefix}{key}")

    # ---- requests to one node ------------------------------------------------------------

    def on_request(self, kind: str, handler: RequestHandler) -> None:
        """Answer the requests of ``kind`` that other nodes send this one."""
        self._handlers[kind] = handler

    async def ask(
        self, node_id: str, kind: str, body: dict[str, Any], wait_seconds: float
    ) -> dict[str, Any] | None:
        """Send a request to node ``node_id`` and wait up to ``wait_seconds`` seconds for
        its answer; None when none came (the node is gone, or too slow). Raises the
        client's error when Redis cannot be asked."""
        redis = self._client()
        request_id = new_id()
        message = json.dumps({"node": self.node_id, "id": request_id, "kind": kind, "body": body})
        await redis.publish(self._node_channel(node_id), message)
        reply = f"{self.prefix}reply:{request_id}"
        got = await redis.blpop([reply], timeout=max(wait_seconds, 0.01))
        if got is None:
            return None
        try:
            answer = json.loads(got[1])
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def _take_request(self, data: Any) -> None:
        try:
            request = json.loads(data)
            request_id, kind, body = str(request["id"]), str(request["kind"]), request["body"]
            if not isinstance(body, dict):
                raise TypeError("body")
        except (ValueError, KeyError, TypeError):
            log.warning("redis_bad_request")
            return
        task = asyncio.get_running_loop().create_task(self._answer(request_id, kind, body))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, request_id: str, kind: str, body: dict[str, Any]) -> None:
        handler = self._handlers.get(kind)
        try:
            answer = {"error": "unknown_request"} if handler is None else await handler(body)
        except Exception:
            log.exception("redis_request_failed", kind=kind)
            answer = {"error": "failed"}
        key = f"{self.prefix}reply:{request_id}"
        try:
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.rpush(key, json.dumps(answer))
                pipe.pexpire(key, REPLY_TTL_MS)
                await pipe.execute()
        except Exception:
            if not self._stopping:
                log.exception("redis_answer_failed", kind=kind)

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
            channel = message.get("channel")
            if isinstance(channel, bytes) and channel.startswith(self._node_prefix):
                # A request to one node: ours to answer, or another node's business.
                if channel.decode() == self._node_channel(self.node_id):
                    self._take_request(message.get("data"))
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
