"""WebSocket fan-out: N clients follow a tenant's events while events are published.

The server (a real ``build_app`` under uvicorn, SQLite, the in-process bus) runs in its own
process pinned to one CPU core; the clients run in this process (pinned to the other cores
when there are any). Each event is published the real way (``Database.write`` + ``tx.emit``,
then the bus) and carries its publish time; a client's delay is receive time - publish time.

Reference, measured in the same run on the same server: a bare WebSocket echo route (no
auth, no database, no bus) driven at the same message rate by the same number of clients;
its delay is the round trip / 2.

    .venv/bin/python benchmarks/ws_fanout.py --clients 1000 --rate 200 --seconds 10

Prints one JSON line: clients, events_per_s, p99_ms, reference_p99_ms (and more).
"""

from __future__ import annotations

import argparse
import asyncio
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
    import uvicorn

    from sparklecomm.app import build_app, build_services
    from sparklecomm.audit.store import Actor
    from sparklecomm.auth.passwords import Passwords
    from sparklecomm.core.events import NewEvent
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

    @app.websocket("/bench/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except WebSocketDisconnect:
            pass

    @app.post("/bench/publish")
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


# ---- clients -----------------------------------------------------------------------------


def p99(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return statistics.quantiles(values, n=100)[98]


async def fanout(url: str, token: str, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    import httpx
    from websockets.asyncio.client import connect

    delays: list[float] = []
    received = 0
    sockets = []
    for _ in range(clients):
        sockets.append(
            await connect(f"ws://{url}/api/v1/events/ws?access_token={token}", max_queue=None)
        )
    for ws in sockets:
        json.loads(await ws.recv())  # hello

    async def reader(ws: Any) -> None:
        nonlocal received
        async for raw in ws:
            now = time.time()
            msg = json.loads(raw)
            if msg.get("op") == "event":
                delays.append(now - msg["event"]["payload"]["sent"])
                received += 1

    tasks = [asyncio.create_task(reader(ws)) for ws in sockets]
    async with httpx.AsyncClient(timeout=seconds + 60) as http:
        r = await http.post(
            f"http://{url}/bench/publish", params={"rate": rate, "seconds": seconds}
        )
        published = r.json()["published"]
    deadline = time.monotonic() + 30
    while received < published * clients and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()
    for ws in sockets:
        await ws.close()
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
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "DATA_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
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
        out = asyncio.run(fanout(url, token, args.clients, args.rate, args.seconds))
    finally:
        server.terminate()
        server.wait(timeout=10)
    fan = out["delays"]
    result = {
        "clients": args.clients,
        "events_per_s": args.rate,
        "seconds": args.seconds,
        "server_cores": 1,
        "published": out["published"],
        "delivered": out["received"],
        "expected": out["published"] * args.clients,
        "p50_ms": round(1000 * statistics.median(fan), 2) if fan else None,
        "p99_ms": round(1000 * (p99(fan) or 0), 2) if fan else None,
        "reference_p50_ms": round(1000 * statistics.median(ref), 2) if ref else None,
        "reference_p99_ms": round(1000 * (p99(ref) or 0), 2) if ref else None,
    }
    print(json.dumps(result))


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
