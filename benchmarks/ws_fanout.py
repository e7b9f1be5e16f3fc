"""WebSocket fan-out: N clients follow a tenant's events while events are published.

Fair split of a small machine: the server (a real ``build_app`` under uvicorn, SQLite, the
in-process bus) runs in its own process pinned to core 0 with ``os.sched_setaffinity``; the
N clients run multiplexed in this process (uvloop, a minimal WebSocket client that costs a
few microseconds per frame), pinned to the other core(s).

Events are published the real way, inside the server process as the platform does: a
``Database.write()`` transaction with ``tx.emit`` on a worker thread, then the bus. The
publish cost is measured separately (wall and CPU time of each write transaction), and the
delivery latency is measured from the commit (the moment the event is handed to the bus)
to the client's receive; ``e2e_p99_ms`` adds the write itself (from the start of the
transaction). ``--publisher process`` publishes from a separate process instead (its
commits reach the server's bus over a WebSocket, as a Redis bus would from another node).

Reference, measured in the same run on the same server: a bare WebSocket echo route (no
auth, no database, no bus) driven at the same message rate by the same number of clients;
its delay is the round trip / 2.

    .venv/bin/python benchmarks/ws_fanout.py --clients 1000 --rate 200 --seconds 10

``SPARKLECOMM_EVENTS_COALESCE_MS`` (default 10), ``SPARKLECOMM_EVENTS_WRITES_PER_S``
(default 20000: the coalescing window widens to keep a hub under that many socket writes a
second) and ``SPARKLECOMM_EVENTS_RAW_WRITES`` (default 1: the hub writes pre-framed bytes to
uvicorn's transport; 0: through ASGI) are passed to the server. Prints one JSON line:
clients, events_per_s, p99_ms, reference_p99_ms (and more).
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
import threading
import time
from pathlib import Path
from typing import Any

# At module level: FastAPI resolves the route's (postponed) annotations in this namespace.
from fastapi import WebSocket, WebSocketDisconnect


def _pin(cores: set[int]) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cores)


def _client_cores() -> set[int]:
    return set(range(1, os.cpu_count() or 1)) or {0}


# ---- server process -------------------------------------------------------------------------


def serve(port: int, data_dir: Path) -> None:
    _pin({0})
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
    services.auth.do_create_user(
        tenant.tenant_id, actor, username="bench", password="bench-password-1", role="agent"
    )
    app = build_app(services)

    @app.websocket("/bench/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except WebSocketDisconnect:
            pass

    @app.websocket("/bench/notify")
    async def notify(ws: WebSocket) -> None:
        # Events committed by the publisher process: what a bus delivers from another node.
        await ws.accept()
        try:
            while True:
                batch = json.loads(await ws.receive_text())
                services.bus.publish([Event.from_json(e) for e in batch])
        except WebSocketDisconnect:
            pass

    @app.post("/bench/publish")
    async def publish(rate: float, seconds: float) -> dict[str, Any]:
        """Publish ``rate`` events/s for ``seconds`` on one writer thread (the real path)."""
        out: dict[str, Any] = {"commits": {}, "write_ms": [], "cpu_ms": 0.0, "published": 0}

        def writer() -> None:
            start = time.monotonic()
            cpu0 = time.thread_time()
            n = 0
            while time.monotonic() - start < seconds:
                n += 1
                t0 = time.perf_counter()
                with services.db.write() as tx:  # commits, then hands the event to the bus
                    tx.emit(tenant.tenant_id, NewEvent("bench.tick", {"n": n}))
                out["commits"][n] = time.time()
                out["write_ms"].append(1000 * (time.perf_counter() - t0))
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            out["cpu_ms"] = 1000 * (time.thread_time() - cpu0) / max(n, 1)
            out["published"] = n

        thread = threading.Thread(target=writer, name="bench-publisher")
        thread.start()
        await asyncio.to_thread(thread.join)
        return out

    (data_dir / "ready.json").write_text(json.dumps({"tenant_id": tenant.tenant_id}))
    from sparklecomm.runtime import tune_gc

    tune_gc(services.settings.gc_threshold)  # as `sparklecomm serve` does
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", ws_ping_interval=None, ws="auto"
    )


def publish_process(port: int, data_dir: Path, rate: float, seconds: float) -> None:
    """Publish from another process; prints the same figures as ``/bench/publish``."""
    _pin(_client_cores())
    from websockets.sync.client import connect

    from sparklecomm.app import build_services
    from sparklecomm.auth.passwords import Passwords
    from sparklecomm.core.events import NewEvent
    from sparklecomm.settings import Settings

    tenant_id = json.loads((data_dir / "ready.json").read_text())["tenant_id"]
    services = build_services(
        Settings(data_dir=data_dir, log_level="WARNING"), passwords=Passwords.fast_for_tests()
    )
    commits: dict[int, float] = {}
    write_ms: list[float] = []
    with connect(f"ws://127.0.0.1:{port}/bench/notify") as ws:
        services.db.publisher = lambda events: ws.send(json.dumps([e.to_json() for e in events]))
        start = time.monotonic()
        cpu0 = time.process_time()
        n = 0
        while time.monotonic() - start < seconds:
            n += 1
            t0 = time.perf_counter()
            with services.db.write() as tx:
                tx.emit(tenant_id, NewEvent("bench.tick", {"n": n}))
            commits[n] = time.time()
            write_ms.append(1000 * (time.perf_counter() - t0))
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        cpu_ms = 1000 * (time.process_time() - cpu0) / max(n, 1)
    out = {"published": n, "commits": commits, "write_ms": write_ms, "cpu_ms": cpu_ms}
    print(json.dumps(out), flush=True)


# ---- clients -----------------------------------------------------------------------------


def pct(values: Any, q: float) -> float | None:
    import numpy as np

    return None if len(values) == 0 else float(np.percentile(values, q))


class RawClient(asyncio.Protocol):
    """A minimal WebSocket client (no extensions; server frames are unmasked and whole).

    A thousand clients share one core: the websockets library costs tens of microseconds per
    frame, which would make the clients, not the server, the bottleneck. Per frame this only
    takes the receive time and looks the frame's bytes up in a cache shared by all clients
    (every client gets the very same frames), so that JSON is parsed once per frame.
    """

    def __init__(self, path: str, host: str, sink: Sink) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.sink = sink
        self.buf = bytearray()
        self.upgraded = False
        self.hello: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport
        self.received = 0
        self.closes: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
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
        sink = self.sink
        while n - pos >= 2:
            size = buf[pos + 1] & 0x7F
            head = 2 if size < 126 else 4 if size == 126 else 10
            if n - pos < head:
                break
            if size == 126:
                size = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif size == 127:
                size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if n - pos < head + size:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1:  # text
                if not self.hello.done():
                    self.hello.set_result(None)
                else:
                    payload = bytes(buf[pos + head : pos + head + size])
                    ids = sink.cache.get(payload)
                    if ids is None:
                        ids = sink.parse(payload)
                    sink.frames.append((now, ids))
                    self.received += len(ids)
            elif opcode == 8:  # close: the server dropped us (too far behind)
                self.closes.append(bytes(buf[pos + head : pos + head + size]))
            pos += head + size
        del buf[:pos]


class Sink:
    """Frames received by all clients: (receive time, the event numbers the frame holds)."""

    def __init__(self) -> None:
        self.cache: dict[bytes, tuple[int, ...]] = {}
        self.frames: list[tuple[float, tuple[int, ...]]] = []

    def parse(self, payload: bytes) -> tuple[int, ...]:
        msg = json.loads(payload)
        op = msg.get("op")
        batch = [msg["event"]] if op == "event" else msg["events"] if op == "events" else []
        ids = tuple(int(e["payload"]["n"]) for e in batch)
        if len(self.cache) > 100_000:
            self.cache.clear()
        self.cache[payload] = ids
        return ids


async def fanout(
    url: str,
    token: str,
    clients: int,
    rate: float,
    seconds: float,
    publisher: list[str] | None,
    server_pid: int,
) -> dict[str, Any]:
    import httpx

    sink = Sink()
    loop = asyncio.get_running_loop()
    host, port = url.split(":")
    sockets: list[RawClient] = []
    for _ in range(clients):
        _, proto = await loop.create_connection(
            lambda: RawClient(f"/api/v1/events/ws?access_token={token}", url, sink),
            host,
            int(port),
        )
        await proto.hello  # subscribed: the server sent {"op": "hello"}
        sockets.append(proto)
    await asyncio.sleep(0.5)
    cpu0 = _own_cpu()
    server0 = _cpu(server_pid)
    wall0 = time.monotonic()
    if publisher is not None:  # a separate process
        proc = await asyncio.create_subprocess_exec(*publisher, stdout=subprocess.PIPE)
        stdout, _ = await proc.communicate()
        pub = json.loads(stdout.decode().strip().splitlines()[-1])
    else:  # inside the server process, as the platform publishes
        async with httpx.AsyncClient(timeout=seconds + 60) as http:
            r = await http.post(
                f"http://{url}/bench/publish", params={"rate": rate, "seconds": seconds}
            )
            r.raise_for_status()
            pub = r.json()
    publish_wall = time.monotonic() - wall0
    client_cpu = (_own_cpu() - cpu0) / publish_wall
    expected = pub["published"] * clients
    deadline = time.monotonic() + 30
    while sum(s.received for s in sockets) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    server_cpu_s = _cpu(server_pid) - server0
    server_wall = time.monotonic() - wall0
    for proto in sockets:
        proto.transport.close()
    return {
        "server_cpu_s": server_cpu_s,
        "server_busy": server_cpu_s / server_wall,
        "pub": pub,
        "frames": sink.frames,
        "received": sum(s.received for s in sockets),
        "closed_behind": sum(1 for s in sockets if s.closes),
        "client_cpu": client_cpu,
    }


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
        default="server",
        help="publish inside the server process (default, as the platform does) or from "
        "a separate process",
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

    import numpy as np

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data_dir = Path(tempfile.mkdtemp(prefix="ws-fanout-"))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _pin(_client_cores())
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "ready.json").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(server.stderr.read().decode() if server.stderr else "no server")
            time.sleep(0.2)
        time.sleep(1.0)
        token = _token(port)
        url = f"127.0.0.1:{port}"
        ref = _run(echo(url, args.clients, args.rate, args.seconds))
        publisher = None
        if args.publisher == "process":
            publisher = [sys.executable, __file__, "--publish", str(port), str(data_dir)]
            publisher += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
        out = _run(fanout(url, token, args.clients, args.rate, args.seconds, publisher, server.pid))
        server_cpu_s, server_busy = out["server_cpu_s"], out["server_busy"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    pub = out["pub"]
    commits = np.zeros(pub["published"] + 1)
    for n, t in pub["commits"].items():
        commits[int(n)] = t
    starts = commits - np.array([0.0, *pub["write_ms"]]) / 1000
    recv: list[float] = []
    nums: list[int] = []
    for t, ids in out["frames"]:
        recv.extend([t] * len(ids))
        nums.extend(ids)
    recv_a, nums_a = np.array(recv), np.array(nums, dtype=np.int64)
    delivery = (recv_a - commits[nums_a]) * 1000 if len(nums) else np.array([])
    e2e = (recv_a - starts[nums_a]) * 1000 if len(nums) else np.array([])

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    frames = len(out["frames"])
    result = {
        "clients": args.clients,
        "events_per_s": args.rate,
        "p99_ms": r(pct(delivery, 99)),
        "reference_p99_ms": r(pct(np.array(ref) * 1000, 99)),
        "p50_ms": r(pct(delivery, 50)),
        "e2e_p99_ms": r(pct(e2e, 99)),
        "reference_p50_ms": r(pct(np.array(ref) * 1000, 50)),
        "seconds": args.seconds,
        "publisher": args.publisher,
        "target_events": int(args.rate * args.seconds),
        "published": pub["published"],
        "delivered": out["received"],
        "expected": pub["published"] * args.clients,
        "events_per_frame": round(len(nums) / frames, 2) if frames else None,
        "closed_behind": out["closed_behind"],
        # The publish cost, apart from the delivery: one write transaction (wall, CPU).
        "publish_p50_ms": r(statistics.median(pub["write_ms"])) if pub["write_ms"] else None,
        "publish_p99_ms": r(pct(np.array(pub["write_ms"]), 99)),
        "publish_cpu_ms": r(pub["cpu_ms"]),
        # Server CPU per frame written to a client, the publishing (in the server) excluded:
        # what the fan-out costs whatever else runs on the machine.
        "server_us_per_frame": round(
            1e6
            * (
                server_cpu_s
                - (pub["cpu_ms"] * pub["published"] / 1000 if args.publisher == "server" else 0)
            )
            / max(frames, 1),
            2,
        ),
        # Share of one core used from the first publish to the last delivery (the server)
        # and while publishing (this process, the clients): near 1.0 means saturated.
        "server_cpu": round(server_busy, 2),
        "client_cpu": round(out["client_cpu"], 2),
        "coalesce_ms": float(os.environ.get("SPARKLECOMM_EVENTS_COALESCE_MS", "10")),
        "writes_per_s": float(os.environ.get("SPARKLECOMM_EVENTS_WRITES_PER_S", "20000")),
        "raw_writes": os.environ.get("SPARKLECOMM_EVENTS_RAW_WRITES", "1") != "0",
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
