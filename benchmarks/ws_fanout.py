"""WebSocket fan-out: N clients follow a tenant's events while events are published.

The server (a real ``build_app`` under uvicorn, SQLite, the in-process bus) runs in its own
process pinned to one CPU core; the clients run in this process (pinned to the other cores
when there are any), on a minimal WebSocket client so that they cost little. Each event is
published the real way (``Database.write`` + ``tx.emit``) and carries its publish time; a
client's delay is receive time - publish time. By default the publisher is a separate
process (on the clients' cores) that sends the committed events to the server, which hands
them to its bus as a Redis bus would for another node; ``--publisher server`` publishes
inside the server process instead, where the writes compete with delivery for its core.
``published`` below ``target_events`` means the publisher could not keep up; ``server_cpu``
and ``client_cpu`` (share of one core) tell which side was saturated.

Reference, measured in the same run on the same server: a bare WebSocket echo route (no
auth, no database, no bus) driven at the same message rate by the same number of clients;
its delay is the round trip / 2.

    .venv/bin/python benchmarks/ws_fanout.py --clients 1000 --rate 200 --seconds 10

Prints one JSON line: clients, events_per_s, p99_ms, reference_p99_ms (and more).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# At module level: FastAPI resolves the route's (postponed) annotations in this namespace.
from fastapi import WebSocket, WebSocketDisconnect


def _pin(cores: set[int]) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cores)


# ---- server process -------------------------------------------------------------------------


def serve(port: int, data_dir: Path) -> None:
    _pin({0})
    if os.environ.get("BENCH_SWITCH"):
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH"]))
    import uvicorn

    from sparklecomm.app import build_app, build_services
    from sparklecomm.audit.store import Actor
    from sparklecomm.auth.passwords import Passwords
    from sparklecomm.core.events import Event, NewEvent
    from sparklecomm.settings import Settings
    from sparklecomm.store.migrate import upgrade

    services = build_services(
        Settings(data_dir=data_dir, log_level="WARNING"), passwords=Passwords.fast_for_tests()
    )
    upgrade(services.db.engine)
    actor = Actor.cli()
    tenant = services.auth.do_create_tenant("bench", "Bench", actor)
    user = services.auth.do_create_user(
        tenant.tenant_id, actor, username="bench", password="bench-password-1", role="agent"
    )
    del user  # the client signs in over HTTP to get its token
    app = build_app(services)

    @app.websocket("/bench/echo")  # type: ignore[untyped-decorator]
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except WebSocketDisconnect:
            pass

    @app.websocket("/bench/notify")  # type: ignore[untyped-decorator]
    async def notify(ws: WebSocket) -> None:
        # Events committed by the publisher process: what a bus delivers from another node.
        await ws.accept()
        try:
            while True:
                batch = json.loads(await ws.receive_text())
                services.bus.publish([Event.from_json(e) for e in batch])
        except WebSocketDisconnect:
            pass

    @app.post("/bench/publish")  # type: ignore[untyped-decorator]
    async def publish(rate: float, seconds: float) -> dict[str, int]:
        def one(n: int) -> None:
            with services.db.write() as tx:
                tx.emit(tenant.tenant_id, NewEvent("bench.tick", {"n": n, "sent": time.time()}))

        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while loop.time() - start < seconds:
            n += 1
            await asyncio.to_thread(one, n)
            delay = start + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return {"published": n}

    (data_dir / "ready.json").write_text(json.dumps({"tenant_id": tenant.tenant_id}))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_ping_interval=None,
        ws=os.environ.get("BENCH_WS", "auto"),
    )


def publish_process(port: int, data_dir: Path, rate: float, seconds: float) -> None:
    """Publish the real way (Database.write + tx.emit) from another process.

    The committed events go to the server over a WebSocket, and the server hands them to its
    bus, as a Redis bus would for events committed on another node. Prints
    {"published": n}.
    """
    _pin(set(range(1, os.cpu_count() or 1)) or {0})
    from websockets.sync.client import connect

    from sparklecomm.app import build_services
    from sparklecomm.auth.passwords import Passwords
    from sparklecomm.core.events import NewEvent
    from sparklecomm.settings import Settings

    tenant_id = json.loads((data_dir / "ready.json").read_text())["tenant_id"]
    services = build_services(
        Settings(data_dir=data_dir, log_level="WARNING"), passwords=Passwords.fast_for_tests()
    )
    with connect(f"ws://127.0.0.1:{port}/bench/notify") as ws:
        services.db.publisher = lambda events: ws.send(json.dumps([e.to_json() for e in events]))
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            n += 1
            with services.db.write() as tx:
                tx.emit(tenant_id, NewEvent("bench.tick", {"n": n, "sent": time.time()}))
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    print(json.dumps({"published": n}), flush=True)


# ---- clients -----------------------------------------------------------------------------


def p99(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return statistics.quantiles(values, n=100)[98]


class RawClient(asyncio.Protocol):
    """A minimal WebSocket client (no extensions; server frames are unmasked and whole).

    A thousand clients share one core on a small machine: the websockets library costs tens
    of microseconds per frame, which would make the clients, not the server, the bottleneck.
    """

    def __init__(self, path: str, host: str, on_frame: Any) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.on_frame = on_frame
        self.buf = bytearray()
        self.upgraded = False
        self.hello: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.hello.set_exception(RuntimeError(bytes(buf[:end]).decode()))
                return
            del buf[: end + 4]
            self.upgraded = True
        pos, n = 0, len(buf)
        while n - pos >= 2:
            size = buf[pos + 1] & 0x7F
            head = 2 if size < 126 else 4 if size == 126 else 10
            if n - pos < head:
                break
            if size == 126:
                size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if n - pos < head + size:
                break
            if buf[pos] & 0x0F == 1:  # text
                if not self.hello.done():
                    self.hello.set_result(None)
                else:
                    self.on_frame(bytes(buf[pos + head : pos + head + size]))
            pos += head + size
        del buf[:pos]


async def fanout(
    url: str, token: str, clients: int, rate: float, seconds: float, publisher: list[str] | None
) -> dict[str, Any]:
    import httpx

    delays: list[float] = []
    received = 0

    def on_frame(raw: bytes) -> None:
        nonlocal received
        now = time.time()
        msg = json.loads(raw)
        op = msg.get("op")
        batch = [msg["event"]] if op == "event" else msg["events"] if op == "events" else []
        for event in batch:  # a batch frame ({"op": "events"}) counts each event
            delays.append(now - event["payload"]["sent"])
            received += 1

    loop = asyncio.get_running_loop()
    host, port = url.split(":")
    sockets: list[RawClient] = []
    for _ in range(clients):
        _, proto = await loop.create_connection(
            lambda: RawClient(f"/api/v1/events/ws?access_token={token}", url, on_frame),
            host,
            int(port),
        )
        await proto.hello  # subscribed: the server sent {"op": "hello"}
        sockets.append(proto)

    if publisher is not None:  # a separate process
        proc = await asyncio.create_subprocess_exec(*publisher, stdout=subprocess.PIPE)
        stdout, _ = await proc.communicate()
        published = json.loads(stdout.decode().strip().splitlines()[-1])["published"]
    else:  # inside the server process, competing with delivery for its core
        async with httpx.AsyncClient(timeout=seconds + 60) as http:
            r = await http.post(
                f"http://{url}/bench/publish", params={"rate": rate, "seconds": seconds}
            )
            published = r.json()["published"]
    deadline = time.monotonic() + 30
    while received < published * clients and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    for proto in sockets:
        proto.transport.close()
    return {"published": published, "received": received, "delays": delays}


async def echo(url: str, clients: int, rate: float, seconds: float) -> list[float]:
    from websockets.asyncio.client import connect

    sockets = [await connect(f"ws://{url}/bench/echo") for _ in range(clients)]
    delays: list[float] = []

    async def reader(ws: Any) -> None:
        async for raw in ws:
            delays.append((time.time() - float(raw)) / 2)

    tasks = [asyncio.create_task(reader(ws)) for ws in sockets]
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    while loop.time() - start < seconds:
        n += 1
        await random.choice(sockets).send(repr(time.time()))
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(2)
    for t in tasks:
        t.cancel()
    for ws in sockets:
        await ws.close()
    return delays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0, help="events per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--publisher",
        choices=["process", "server"],
        default="process",
        help="publish from a separate process (default) or inside the server process",
    )
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "DATA_DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--publish", nargs=2, metavar=("PORT", "DATA_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return
    if args.publish:
        publish_process(int(args.publish[0]), Path(args.publish[1]), args.rate, args.seconds)
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data_dir = Path(tempfile.mkdtemp(prefix="ws-fanout-"))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    cores = os.cpu_count() or 1
    _pin(set(range(1, cores)) or {0})
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "ready.json").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(server.stderr.read().decode() if server.stderr else "no server")
            time.sleep(0.2)
        ready = json.loads((data_dir / "ready.json").read_text())
        del ready
        time.sleep(1.0)
        token = _token(port)
        url = f"127.0.0.1:{port}"
        ref = asyncio.run(echo(url, args.clients, args.rate, args.seconds))
        cpu0, client0, wall0 = _cpu(server.pid), _own_cpu(), time.monotonic()
        publisher = [sys.executable, __file__, "--publish", str(port), str(data_dir)]
        publisher += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
        out = _run(
            fanout(
                url,
                token,
                args.clients,
                args.rate,
                args.seconds,
                publisher if args.publisher == "process" else None,
            )
        )
        wall = time.monotonic() - wall0
        server_busy, client_busy = (_cpu(server.pid) - cpu0) / wall, (_own_cpu() - client0) / wall
    finally:
        server.terminate()
        server.wait(timeout=10)
    fan = out["delays"]
    result = {
        "clients": args.clients,
        "events_per_s": args.rate,
        "seconds": args.seconds,
        "server_cores": 1,
        "publisher": args.publisher,
        # The publisher runs in the server process: when the server is saturated it falls
        # behind, so compare published with the target before trusting p99_ms.
        "target_events": int(args.rate * args.seconds),
        "published": out["published"],
        "delivered": out["received"],
        "expected": out["published"] * args.clients,
        "p50_ms": round(1000 * statistics.median(fan), 2) if fan else None,
        "p99_ms": round(1000 * (p99(fan) or 0), 2) if fan else None,
        "reference_p50_ms": round(1000 * statistics.median(ref), 2) if ref else None,
        "reference_p99_ms": round(1000 * (p99(ref) or 0), 2) if ref else None,
        # Share of one core used during the fan-out phase: near 1.0 means that side is the
        # bottleneck (the clients share one core too on a two-core machine).
        "server_cpu": round(server_busy, 2),
        "client_cpu": round(client_busy, 2),
    }
    print(json.dumps(result))


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux), else 0."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _token(port: int) -> str:
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1") as http:
        r = http.post("/auth/login", json={"username": "bench", "password": "bench-password-1"})
        r.raise_for_status()
        t = http.post(
            "/tokens", json={"name": "bench"}, headers={"X-CSRF-Token": r.json()["csrf_token"]}
        )
        t.raise_for_status()
        return str(t.json()["token"])


if __name__ == "__main__":
    main()
