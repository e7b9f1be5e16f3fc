"""The WebSocket fan-out under a real uvicorn server: both delivery paths (pre-framed bytes
written to uvicorn's transport, and ASGI sends), coalescing into batch frames, and a client
too far behind being closed with the id to resume from."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect

from sparklecomm.app import build_app
from sparklecomm.core.events import NewEvent
from sparklecomm.events import fanout
from tests.conftest import PASSWORD, World


class Server:
    def __init__(self, world: World, ws: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            build_app(world.services),
            host="127.0.0.1",
            port=self.port,
            ws=ws,
            ws_ping_interval=None,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def token(self) -> str:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}/api/v1") as http:
            r = http.post("/auth/login", json={"username": "sup", "password": PASSWORD})
            r.raise_for_status()
            t = http.post(
                "/tokens", json={"name": "t"}, headers={"X-CSRF-Token": r.json()["csrf_token"]}
            )
            t.raise_for_status()
            return str(t.json()["token"])


@pytest.fixture
def frames_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the hub framed a batch itself (the raw path does, ASGI does not)."""
    built: list[int] = []
    real = fanout.ws_frame

    def counting(text: str) -> bytes:
        built.append(len(text))
        return real(text)

    monkeypatch.setattr(fanout, "ws_frame", counting)
    return built


def publish(world: World, n: int, size: int = 10) -> None:
    for i in range(n):
        with world.services.db.write() as tx:
            tx.emit(world.tenant_id, NewEvent("test.tick", {"i": i, "pad": "x" * size}))


def receive_events(ws: Any, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    frames = 0
    while len(out) < count:
        msg = json.loads(ws.recv(timeout=10))
        frames += 1
        out.extend([msg["event"]] if msg["op"] == "event" else msg["events"])
    assert frames < count  # coalesced: several events share a frame
    return out


@pytest.mark.parametrize(
    ("ws_impl", "raw"),
    [("websockets-sansio", True), ("websockets", True), ("websockets-sansio", False)],
)
def test_both_delivery_paths_deliver_every_event_in_order(
    sqlite_world: World,
    frames_built: list[int],
    monkeypatch: pytest.MonkeyPatch,
    ws_impl: str,
    raw: bool,
) -> None:
    monkeypatch.setattr(fanout, "RAW_WRITES", raw)
    # a wide window, so that coalescing shows even when each write is slow (a busy machine)
    monkeypatch.setattr(fanout, "COALESCE_S", 0.2)
    world = sqlite_world
    with Server(world, ws_impl) as server:
        token = server.token()
        url = f"ws://127.0.0.1:{server.port}/api/v1/events/ws?access_token={token}"
        with connect(url) as a, connect(url) as b:
            hello = json.loads(a.recv(timeout=10))
            json.loads(b.recv(timeout=10))
            head = hello["last_event_id"]
            publish(world, 60)
            for ws in (a, b):
                got = receive_events(ws, 60)
                assert [e["id"] for e in got] == list(range(head + 1, head + 61))
                assert [e["payload"]["i"] for e in got] == list(range(60))
    if raw:
        assert frames_built, "the hub should have written pre-framed bytes"
    else:
        assert not frames_built, "RAW_WRITES=0 must go through ASGI"


def test_a_client_too_far_behind_is_closed_with_its_resume_id(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "WRITE_BUFFER_LIMIT", 64 * 1024)
    world = sqlite_world
    with Server(world, "websockets-sansio") as server:
        token = server.token()
        url = f"ws://127.0.0.1:{server.port}/api/v1/events/ws?access_token={token}"
        with connect(url, max_size=None, max_queue=None) as ok:
            head = json.loads(ok.recv(timeout=10))["last_event_id"]
            slow = socket.create_connection(("127.0.0.1", server.port))
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            slow.sendall(
                (
                    f"GET /api/v1/events/ws?access_token={token} HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                ).encode()
            )
            time.sleep(0.5)  # subscribed; from now on it reads nothing
            count = 120
            publish(world, count, size=50_000)  # ~6 MB: more than the socket buffers hold
            # the reader that keeps up gets everything
            got = receive_events(ok, count)
            assert [e["id"] for e in got] == list(range(head + 1, head + count + 1))
            # the slow one: what was written before it fell behind, then a 4429 close
            data = _read_all(slow)
            slow.close()
    events, close = _parse(data)
    assert close is not None, "the slow client was not closed"
    code, reason = close
    assert code == fanout.BEHIND_CODE
    resume = int(reason.rsplit("=", 1)[1])
    assert [e["id"] for e in events] == list(range(head + 1, resume + 1))
    assert resume < head + count  # it did fall behind


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        if b"\x88" in chunk[-200:] and fanout.BEHIND_CODE.to_bytes(2, "big") in chunk[-200:]:
            break
    return b"".join(chunks)


def _parse(data: bytes) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
    head_end = data.index(b"\r\n\r\n") + 4
    assert data.startswith(b"HTTP/1.1 101")
    buf, pos = data[head_end:], 0
    events: list[dict[str, Any]] = []
    close = None
    hello = True
    while pos + 2 <= len(buf):
        opcode, size = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
        head = 2
        if size == 126:
            size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif size == 127:
            size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        if pos + head + size > len(buf):
            break
        payload = buf[pos + head : pos + head + size]
        if opcode == 1:
            msg = json.loads(payload)
            if hello:
                assert msg["op"] == "hello"
                hello = False
            else:
                events.extend([msg["event"]] if msg["op"] == "event" else msg["events"])
        elif opcode == 8:
            close = (int.from_bytes(payload[:2], "big"), payload[2:].decode())
        pos += head + size
    return events, close


@pytest.fixture(autouse=True)
def _no_leaked_loop() -> Iterator[None]:
    yield
    asyncio.set_event_loop(None)
