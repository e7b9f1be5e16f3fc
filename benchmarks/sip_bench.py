"""SIP call throughput: SIPp UAC → B2BUA → SIPp UAS, ours against sippy's B2BUA, one run.

    sudo .venv/bin/python benchmarks/sip_bench.py [--rates 25,50,100,200] [--seconds 10]

Each B2BUA runs pinned to CPU 0 (one core), the SIPp caller and callee on the other CPUs.
For each call rate (calls per second) SIPp places ``rate × seconds`` short calls (INVITE,
180, 200, ACK, ``--call-ms`` of talk, BYE); the ramp stops at the first rate whose failed
calls exceed 0.1 % or the B2BUA falls behind (the run lasts more than 1.2 × its length
plus a second). ``cps`` is the highest rate that did neither. Our side runs the real
SIP server and B2BUA with media anchored by the relay, the caller being a trusted trunk (no
digest challenge, like sippy's ``b2bua_simple`` which authenticates nobody) and every call
going out to the callee as an external number of a second trunk.

sippy is the reference (PyPI ``sippy``; installed outside the repo, at run time, into
``--sippy-site``: ``uv pip install --target /tmp/sippy_site sippy==2.5.0``). SIPp's stock
``uas`` scenario sends ``;transport=UDP`` in its Contact, which sippy 2.5 rejects
(``newTransaction() to unsupported transport: UDP``) on in-dialog requests, so the callee
scenario is the stock one with a lower-case ``transport=udp`` for both.

Everything runs inside a fresh network namespace with only loopback (the script re-executes
itself under ``ip netns exec``; root needed), so no packet can leave the machine whatever a
B2BUA does with the addresses in the messages. Ends with one JSON line: ``cps``,
``failed_ratio``, ``sippy_cps``, ``sippy_failed_ratio``, ``concurrent_calls``,
``rtp_late_ratio`` and the per-rate details.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
B2BUA_PORT = 5060
UAS_PORT = 5070
UAC_PORT = 5080
INSIDE = "SPARKLECOMM_SIP_BENCH_INSIDE"
KEPT_UP_FACTOR = 1.2


# ---- namespace ------------------------------------------------------------------------------


def reexec_in_namespace() -> int:
    if os.geteuid() != 0:
        sys.exit("sip_bench needs root to create a loopback-only network namespace")
    name = f"sipbench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        env = dict(os.environ, **{INSIDE: "1"})
        cmd = ["ip", "netns", "exec", name, sys.executable, *sys.argv]
        return subprocess.run(cmd, env=env, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


# ---- processes ------------------------------------------------------------------------------


def cpus() -> tuple[list[int], list[int]]:
    """(B2BUA CPU, load-generator CPUs)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return available, available
    return available[:1], available[1:]


def pinned(cpu_list: list[int]) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, cpu_list))]


@contextlib.contextmanager
def process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_sip(port: int, timeout: float = 15.0) -> None:
    """Wait until something answers OPTIONS on 127.0.0.1:port (UDP)."""
    import socket

    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.bind(("127.0.0.1", 0))
        via_port = sock.getsockname()[1]
        while time.monotonic() < deadline:
            branch = uuid.uuid4().hex
            msg = (
                f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bK{branch}\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=1\r\n"
                f"To: <sip:ping@127.0.0.1>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                sock.sendto(msg.encode(), ("127.0.0.1", port))
                sock.recvfrom(65535)
                return
            time.sleep(0.2)
    raise RuntimeError(f"nothing answers SIP on 127.0.0.1:{port}")


def uas_scenario(work: Path) -> Path:
    # sipp -sd prints the scenario and exits with status 99.
    text = subprocess.run(["sipp", "-sd", "uas"], capture_output=True, text=True, check=False)
    if "<scenario" not in text.stdout:
        raise RuntimeError(f"sipp -sd uas failed: {text.stderr}")
    path = work / "uas.xml"
    path.write_text(text.stdout.replace("transport=[transport]", "transport=udp"))
    return path


def run_rate(
    work: Path, rate: int, seconds: float, call_ms: int, load_cpus: list[int]
) -> dict[str, Any]:
    """Place ``rate × seconds`` calls at ``rate`` cps through 127.0.0.1:B2BUA_PORT."""
    calls = max(1, int(rate * seconds))
    stat = work / f"uac-{rate}.csv"
    cmd = [
        *pinned(load_cpus),
        "sipp",
        "-sn",
        "uac",
        f"127.0.0.1:{B2BUA_PORT}",
        "-i",
        "127.0.0.1",
        "-p",
        str(UAC_PORT),
        "-s",
        "2000",
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-d",
        str(call_ms),
        "-l",
        str(max(100, rate * 10)),
        "-nostdin",
        "-timeout",
        f"{int(seconds * 3 + 20)}s",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        str(stat),
        "-fd",
        "1",
    ]
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=work)
    wall = time.monotonic() - started
    with stat.open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    last = rows[-1] if rows else {}
    ok = int(last.get("SuccessfulCall(C)", 0) or 0)
    failed = int(last.get("FailedCall(C)", 0) or 0)
    failed += max(0, calls - ok - failed)  # calls never finished count as failed
    return {
        "rate": rate,
        "calls": calls,
        "successful": ok,
        "failed": failed,
        "failed_ratio": failed / calls,
        "wall_s": round(wall, 2),
        "sipp_rc": out.returncode,
    }


def ramp(
    name: str, work: Path, rates: list[int], seconds: float, call_ms: int, load: list[int]
) -> tuple[int, float, list[dict[str, Any]]]:
    best, best_failed = 0, 0.0
    results = []
    for rate in rates:
        r = run_rate(work, rate, seconds, call_ms, load)
        results.append(r)
        # Kept up: the calls finished about when the last one was placed. A B2BUA that
        # falls behind makes SIPp's run last longer (a backlog), even with no failure.
        r["kept_up"] = r["wall_s"] <= seconds * KEPT_UP_FACTOR + 1.0
        print(
            f"{name:>6} {rate:>5} cps: {r['successful']}/{r['calls']} ok, "
            f"failed {r['failed_ratio']:.2%}, {r['wall_s']} s for {seconds:g} s of calls",
            flush=True,
        )
        if r["failed_ratio"] > 0.001 or not r["kept_up"]:
            break
        best, best_failed = rate, r["failed_ratio"]
        time.sleep(1.0)  # let the B2BUA drain its transactions (timer K, J)
    return best, best_failed, results


# ---- B2BUAs ---------------------------------------------------------------------------------


def sippy_cmd(site: Path, b2bua_cpus: list[int]) -> tuple[list[str], dict[str, str]]:
    code = (
        "import sys; sys.argv = ['b2bua_simple', '-f', '-l', '127.0.0.1', '-p', "
        f"'{B2BUA_PORT}', '-n', '127.0.0.1:{UAS_PORT}']; "
        "from sippy.b2bua_simple import main_func; main_func()"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    return [*pinned(b2bua_cpus), sys.executable, "-c", code], env


def ours_cmd(b2bua_cpus: list[int]) -> tuple[list[str], dict[str, str]]:
    return [*pinned(b2bua_cpus), sys.executable, __file__, "--serve-ours"], dict(os.environ)


def serve_ours() -> None:
    """Our SIP server and B2BUA for the benchmark (runs in its own process).

    ``BENCH_PROFILE=/path/file.prof`` runs it under cProfile and writes the stats there on
    exit (``python -m pstats`` reads them).
    """
    profile_to = os.environ.get("BENCH_PROFILE")
    if not profile_to:
        asyncio.run(_serve(B2BUA_PORT, UAS_PORT))
        _write_cpu_time()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(_serve(B2BUA_PORT, UAS_PORT))
    finally:
        profiler.disable()
        profiler.dump_stats(profile_to)


def _write_cpu_time() -> None:
    """``BENCH_CPU=/path/file``: append the server's CPU seconds (user + system) there, a
    measure of the work per call that other load on the machine disturbs less than cps."""
    path = os.environ.get("BENCH_CPU")
    if path:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open(path, "a") as out:
            out.write(f"{usage.ru_utime + usage.ru_stime:.3f}\n")


async def _serve(port: int, uas_port: int) -> None:
    import logging

    import structlog

    from sparklecomm.core.clock import SystemClock
    from sparklecomm.telephony import (
        InMemoryCredentialStore,
        InMemoryLocationStore,
        SipServer,
        SipServerConfig,
        loopback_only,
    )
    from sparklecomm.telephony.calls import Trunk
    from sparklecomm.telephony.media.relay import MediaRelay, RelayConfig
    from sparklecomm.telephony.pbx.routes import CallRequest, Hunt, HuntStep, Route, Target

    # Per-call info logs would be most of the work: warnings only, as in production tuning.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, os.environ.get("BENCH_LOG", "WARNING"))
        )
    )

    class ToUas:
        """Every dialled number goes out through the "uas" trunk (SIPp's callee)."""

        async def route(self, request: CallRequest) -> Route:
            target = Target(external=request.dialled, trunk_id="uas")
            return Hunt("bench", (HuntStep((target,)),))

    server = SipServer(
        SipServerConfig(
            host="127.0.0.1", port=port, transports=("UDP",), allowed_target=loopback_only
        ),
        clock=SystemClock(),
        credentials=InMemoryCredentialStore(),
        locations=InMemoryLocationStore(),
        router=ToUas(),
        relay=None
        if os.environ.get("SIP_BENCH_NO_RELAY")
        else MediaRelay(RelayConfig(host="127.0.0.1", allowed_target=loopback_only)),
        trusted_source=lambda host: "caller",  # SIPp's caller is a trusted trunk
        trunks=lambda trunk_id: Trunk("127.0.0.1", uas_port) if trunk_id == "uas" else None,
    )
    await server.start()
    if os.environ.get("BENCH_LAG"):
        asyncio.get_running_loop().create_task(_report_lag(server))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


async def _report_lag(server: Any) -> None:
    """Diagnostics: the event loop's worst lag each second, and the calls in progress."""
    worst = 0.0
    last = time.monotonic()
    while True:
        before = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - before - 0.01)
        if before - last >= 1.0:
            print(f"lag_ms={worst * 1000:.0f} calls={server.calls.active_calls}", flush=True)
            worst, last = 0.0, before


def measure(
    name: str,
    cmd: tuple[list[str], dict[str, str]],
    work: Path,
    args: argparse.Namespace,
    uas: Path,
) -> tuple[int, float, list[dict[str, Any]]]:
    load = cpus()[1]
    sub = work / name
    sub.mkdir()
    uas_cmd = [
        *pinned(load),
        "sipp",
        "-sf",
        str(uas),
        "-i",
        "127.0.0.1",
        "-p",
        str(UAS_PORT),
        "-nostdin",  # in the foreground: with -bg it would outlive the benchmark
    ]
    with process(uas_cmd, sub / "uas.log"), process(cmd[0], sub / "b2bua.log", cmd[1]):
        wait_for_sip(B2BUA_PORT)
        return ramp(name, sub, args.rates, args.seconds, args.call_ms, load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="25,50,100,150,200,300,400,600,800")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--call-ms", type=int, default=100)
    parser.add_argument("--sippy-site", default="/tmp/sippy_site")
    parser.add_argument("--skip-sippy", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument(
        "--no-relay", action="store_true", help="our B2BUA without media anchoring (as sippy)"
    )
    parser.add_argument("--serve-ours", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ours:
        serve_ours()
        return
    if args.no_relay:
        os.environ["SIP_BENCH_NO_RELAY"] = "1"  # inherited by the B2BUA child
    if os.environ.get(INSIDE) != "1":
        sys.exit(reexec_in_namespace())
    if shutil.which("sipp") is None:
        sys.exit("sipp is missing: apt-get install sip-tester")
    args.rates = [int(r) for r in args.rates.split(",")]
    result: dict[str, Any] = {
        "cps": None,
        "failed_ratio": None,
        "sippy_cps": None,
        "sippy_failed_ratio": None,
        "concurrent_calls": None,
        "rtp_late_ratio": None,
    }
    with tempfile.TemporaryDirectory(prefix="sip-bench-") as tmp:
        work = Path(tmp)
        uas = uas_scenario(work)
        if not args.skip_ours:
            cps, failed, details = measure("ours", ours_cmd(cpus()[0]), work, args, uas)
            result.update(cps=cps, failed_ratio=failed, ours=details)
        if not args.skip_sippy:
            site = Path(args.sippy_site)
            if not (site / "sippy").is_dir():
                print(f"sippy not found in {site}: skipped (see the module docstring)")
            else:
                cps, failed, details = measure("sippy", sippy_cmd(site, cpus()[0]), work, args, uas)
                result.update(sippy_cps=cps, sippy_failed_ratio=failed, sippy=details)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
