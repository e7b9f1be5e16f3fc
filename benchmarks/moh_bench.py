"""Benchmark: music on hold for N callers waiting at once, on one core.

Each waiting caller is an :class:`~sparklecomm.telephony.media.player.RtpPlayer` playing the
built-in music (PCMU, 20 ms packets, 50 per second) through a real UDP socket to a sink on
loopback, as the waiting room plays it out of the relay's caller leg. As the reference, the
same number of streams in the same run is sent by the plainest paced sender Python allows:
a ``loop.call_at`` per packet sending one pre-built packet (no program, no RTP header
updates). Both are measured in the same process, one after the other, ``--rounds`` times
alternated.

Printed per run: CPU microseconds per packet sent (process CPU time / packets), the share of
one core used, and how late the sends were against their 20 ms schedule (p99, ms; the event
loop's timer lateness, which a busy machine inflates for both). Ends with one JSON line.

Run:  .venv/bin/python benchmarks/moh_bench.py [--callers 300] [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sparklecomm.telephony.media.audio import default_music, encode
from sparklecomm.telephony.media.player import Playlist, RtpPlayer

PTIME = 0.020


class Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.received += 1


def _sender(
    sock: socket.socket, target: tuple[str, int], late: list[float]
) -> Callable[[bytes], None]:
    """Send out of ``sock``; lateness from the packet's RTP timestamp (the player's 20 ms
    grid, skipped frames included) against the first packet's send time."""
    loop = asyncio.get_running_loop()
    first: list[float] = []

    def send(packet: bytes) -> None:
        now = loop.time()
        stamp = int.from_bytes(packet[4:8], "big")
        if not first:
            first.extend((now, stamp))
        late.append(now - first[0] - ((stamp - int(first[1])) & 0xFFFFFFFF) / 8000)
        sock.sendto(packet, target)

    return send


async def _players(
    callers: int, seconds: float, target: tuple[str, int]
) -> tuple[int, list[float]]:
    music = encode("PCMU", default_music())
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(callers)]
    late: list[float] = []
    players = []
    for sock in sockets:
        sock.setblocking(False)
        player = RtpPlayer(_sender(sock, target, late), payload_type=0)
        player.play(Playlist((), music))
        players.append(player)
    await asyncio.sleep(seconds)
    sent = 0
    for player, sock in zip(players, sockets, strict=True):
        player.stop()
        sent += player.packets_sent
        sock.close()
    return sent, late


async def _plain(callers: int, seconds: float, target: tuple[str, int]) -> tuple[int, list[float]]:
    loop = asyncio.get_running_loop()
    packet = bytes(12) + bytes([0xFF]) * 160
    late: list[float] = []
    sent = [0]
    handles: list[asyncio.TimerHandle] = []
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(callers)]

    firsts: dict[int, float] = {}

    def tick(sock: socket.socket, start: float, n: int, slot: int) -> None:
        now = loop.time()
        first = firsts.setdefault(slot, now)  # lateness against the stream's first send
        late.append(now - first - n * PTIME)
        sock.sendto(packet, target)
        sent[0] += 1
        handles[slot] = loop.call_at(start + (n + 1) * PTIME, tick, sock, start, n + 1, slot)

    for slot, sock in enumerate(sockets):
        sock.setblocking(False)
        start = loop.time()
        handles.append(loop.call_at(start, tick, sock, start, 0, slot))
    await asyncio.sleep(seconds)
    for handle in handles:
        handle.cancel()
    for sock in sockets:
        sock.close()
    return sent[0], late


async def measure(kind: str, callers: int, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    receiver.bind(("127.0.0.1", 0))
    transport, sink = await loop.create_datagram_endpoint(Sink, sock=receiver)
    target = transport.get_extra_info("sockname")
    cpu, wall = time.process_time(), time.perf_counter()
    run = _players if kind == "player" else _plain
    sent, late = await run(callers, seconds, target)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await asyncio.sleep(0.2)
    transport.close()
    late.sort()
    return {
        "packets": sent,
        "received": sink.received,
        "cpu_us_per_packet": round(cpu / max(sent, 1) * 1e6, 2),
        "core_share": round(cpu / wall, 3),
        "late_p99_ms": round(late[int(len(late) * 0.99)] * 1000, 2) if late else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"player": [], "plain": []}
    for _ in range(args.rounds):
        for kind in ("player", "plain"):
            figures = asyncio.run(measure(kind, args.callers, args.seconds))
            results[kind].append(figures)
            print(kind, figures, flush=True)
    best = {k: min(v, key=lambda f: f["cpu_us_per_packet"]) for k, v in results.items()}
    print(
        json.dumps(
            {
                "callers": args.callers,
                "seconds": args.seconds,
                "player_cpu_us_per_packet": best["player"]["cpu_us_per_packet"],
                "plain_cpu_us_per_packet": best["plain"]["cpu_us_per_packet"],
                "player_core_share": best["player"]["core_share"],
                "plain_core_share": best["plain"]["core_share"],
                "player_late_p99_ms": best["player"]["late_p99_ms"],
                "plain_late_p99_ms": best["plain"]["late_p99_ms"],
            }
        )
    )


if __name__ == "__main__":
    main()
