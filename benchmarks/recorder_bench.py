"""Benchmark: the cost of call recording per RTP packet (``CallRecorder.feed``), on one core.

N simulated calls, each two legs (caller ``a``, agent ``b``) sending 20 ms PCMU packets
(12-byte RTP header + 160-byte payload, 50 packets/s per leg), are fed through one
:class:`~sparklecomm.telephony.media.recorder.CallRecorder` per call, interleaved as the
relay's tap would deliver them: every 20 ms of a fake clock, one packet of each leg of each
call. The packets are built before the clock starts; what is timed is ``feed`` (the header
read, the G.711 decode, the copy into the window, and the periodic flush: a write to the
page cache and the header patch), then ``close`` (the final flush, ``fsync`` and rename) on
its own.

As references, in the same run over the same packets: the bare G.711 decode of each
payload (``audio.ulaw_decode``: the least any recorder of decoded audio must do), and
writing each raw payload to a per-call file (the least any recorder must do at all).
``--rounds`` repeats all three alternately and keeps the best of each (a shared machine).

Run:  .venv/bin/python benchmarks/recorder_bench.py [--calls 50] [--seconds 30] [--rounds 3]
          [--dir /tmp]
Ends with one JSON line: recorder_us_per_packet (wall), recorder_cpu_us_per_packet,
decode_us_per_packet, raw_write_us_per_packet, close_ms_per_call, packets, calls, seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sparklecomm.telephony.media.audio import ulaw_decode, ulaw_encode
from sparklecomm.telephony.media.recorder import CallRecorder
from sparklecomm.telephony.media.rtp import build_rtp_packet

FRAME = 160
TICK = 0.02


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def build_calls(calls: int, seconds: float) -> list[list[tuple[bytes, bytes]]]:
    """Per tick, per call: (packet of leg a, packet of leg b); speech-like noise payloads."""
    rng = np.random.default_rng(7)
    payloads = [ulaw_encode(rng.normal(0, 3000, FRAME).astype(np.int16)) for _ in range(64)]
    ticks = round(seconds / TICK)
    out: list[list[tuple[bytes, bytes]]] = []
    for k in range(ticks):
        row = []
        for call in range(calls):
            pair = tuple(
                build_rtp_packet(
                    payloads[(k + call + leg * 17) % len(payloads)],
                    sequence=k,
                    timestamp=5000 + k * FRAME,
                    ssrc=call * 2 + leg,
                )
                for leg in (0, 1)
            )
            row.append((pair[0], pair[1]))
        out.append(row)
    return out


def run_recorder(ticks: list[list[tuple[bytes, bytes]]], folder: Path) -> dict[str, float]:
    clock = FakeClock()
    recorders = [CallRecorder(folder / f"call-{i}.wav", clock=clock) for i in range(len(ticks[0]))]
    feeds = [r.feed for r in recorders]
    wall = time.perf_counter()
    cpu = time.process_time()
    for k, row in enumerate(ticks):
        clock.now = 1000.0 + k * TICK
        for feed, (a, b) in zip(feeds, row, strict=True):
            feed("a", a)
            feed("b", b)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    clock.now = 1000.0 + len(ticks) * TICK
    closing = time.perf_counter()
    results = [r.close() for r in recorders]
    closing = time.perf_counter() - closing
    packets = 2 * len(ticks) * len(recorders)
    assert sum(r.packets for r in results) == packets
    for result in results:
        result.path.unlink()
    return {
        "recorder_us_per_packet": wall / packets * 1e6,
        "recorder_cpu_us_per_packet": cpu / packets * 1e6,
        "close_ms_per_call": closing / len(recorders) * 1e3,
    }


def run_decode(ticks: list[list[tuple[bytes, bytes]]]) -> float:
    begin = time.perf_counter()
    for row in ticks:
        for a, b in row:
            ulaw_decode(a[12:])
            ulaw_decode(b[12:])
    return (time.perf_counter() - begin) / (2 * len(ticks) * len(ticks[0])) * 1e6


def run_raw_write(ticks: list[list[tuple[bytes, bytes]]], folder: Path) -> float:
    files = [open(folder / f"raw-{i}.bin", "wb") for i in range(len(ticks[0]))]  # noqa: SIM115
    writes = [f.write for f in files]
    begin = time.perf_counter()
    for row in ticks:
        for write, (a, b) in zip(writes, row, strict=True):
            write(a[12:])
            write(b[12:])
    for f in files:
        f.flush()
    elapsed = time.perf_counter() - begin
    for f in files:
        f.close()
        Path(f.name).unlink()
    return elapsed / (2 * len(ticks) * len(ticks[0])) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    args = parser.parse_args()
    # One "recording.closed" line per call per round would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    ticks = build_calls(args.calls, args.seconds)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        for round_ in range(args.rounds):
            figures = run_recorder(ticks, folder)
            figures["decode_us_per_packet"] = run_decode(ticks)
            figures["raw_write_us_per_packet"] = run_raw_write(ticks, folder)
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
            for key, value in figures.items():
                best[key] = min(best.get(key, value), value)
    print(
        json.dumps(
            {
                "calls": args.calls,
                "seconds": args.seconds,
                "packets": 2 * len(ticks) * args.calls,
                **{key: round(value, 2) for key, value in best.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
