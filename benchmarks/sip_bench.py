"""SIP call throughput: SIPp UAC → B2BUA → SIPp UAS, ours against sippy's B2BUA, one run.

    sudo .venv/bin/python benchmarks/sip_bench.py [--rates 25,50,100,200] [--seconds 10]
        [--rtp-calls 300] [--rtp-seconds 10] [--rtp-realtime PRIO]

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
B2BUA does with the addresses in the messages.

Then the RTP stage (ours only; ``--rtp-calls``, 300 by default, 0 skips it): a fresh B2BUA
(the same server, on uvloop as under ``sparklecomm serve``, ``--rtp-loop``; pinned to the
B2BUA core, its relay in the same process) and a fresh SIPp callee; SIPp's caller sets up
``--rtp-calls`` calls at ``--rtp-setup-rate`` cps and holds them. The relay ports are read
from the SDP the B2BUA sent (SIPp's ``-trace_msg`` logs: the 200 OK to the caller, the INVITE
to the callee), and rtp_bench's generator (imported; a child process pinned to the load
core) plays both phones of every call: G.711, 50 packets/s each way, ``--rtp-warmup`` s of
latching and then ``--rtp-seconds`` measured. ``rtp_late_ratio``: packets more than
``--rtp-late-ms`` from the send stamp to the kernel's arrival stamp at the receiving phone's
socket, over packets sent; ``rtp_lost_ratio``; ``concurrent_calls``: the calls set up and
relayed at once. ``--rtp-realtime PRIO`` runs the B2BUA and the generator SCHED_FIFO (on a
machine shared with other work, the nearest to a dedicated core; see rtp_bench).

Ends with one JSON line: ``cps``, ``failed_ratio``, ``sippy_cps``, ``sippy_failed_ratio``,
``concurrent_calls``, ``rtp_late_ratio``, ``rtp_stage`` (what the RTP stage is), and the
per-rate and RTP details.
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
def process(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            yield proc
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


def uac_command(cpus: list[int], rate: int, calls: int) -> list[str]:
    """SIPp's built-in caller (pinned to ``cpus``) placing ``calls`` calls to number 2000
    through the B2BUA at ``rate`` per second."""
    return [
        *pinned(cpus),
        *("sipp", "-sn", "uac", f"127.0.0.1:{B2BUA_PORT}", "-i", "127.0.0.1"),
        *("-p", str(UAC_PORT), "-s", "2000", "-r", str(rate), "-m", str(calls)),
    ]


def run_rate(
    work: Path, rate: int, seconds: float, call_ms: int, load_cpus: list[int]
) -> dict[str, Any]:
    """Place ``rate × seconds`` calls at ``rate`` cps through 127.0.0.1:B2BUA_PORT."""
    calls = max(1, int(rate * seconds))
    stat = work / f"uac-{rate}.csv"
    cmd = [
        *uac_command(load_cpus, rate, calls),
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
    exit (``python -m pstats`` reads them). ``BENCH_LOOP=uvloop`` runs it on uvloop (the
    RTP stage does, as ``sparklecomm serve`` does); otherwise asyncio's own loop.
    """
    from sparklecomm.runtime import tune_gc
    from sparklecomm.settings import Settings

    tune_gc(Settings().gc_threshold)  # as `sparklecomm serve` does
    profile_to = os.environ.get("BENCH_PROFILE")
    run: Any = asyncio.run
    if os.environ.get("BENCH_LOOP") == "uvloop":  # as under `sparklecomm serve` (uvicorn's)
        import uvloop

        run = uvloop.run
    if not profile_to:
        run(_serve(B2BUA_PORT, UAS_PORT))
        _write_cpu_time()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run(_serve(B2BUA_PORT, UAS_PORT))
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


# ---- RTP stage: concurrent bridged calls with media through the relay ------------------------

RTP_STAGE = (
    "bridged calls: SIPp UAC -> our B2BUA -> SIPp UAS, held up while RTP flows; the media is "
    "anchored by the B2BUA's own relay (sparklecomm.telephony.media, in the B2BUA process, "
    "pinned to one core); rtp_bench's generator (pinned to another core) plays both phones of "
    "every call, sending to the relay ports of the SDP the B2BUA sent (200 OK to the caller, "
    "INVITE to the callee); late/lost from the send stamp to the kernel's arrival stamp "
    "(SO_TIMESTAMPNS) at the receiving phone's socket"
)


def _sdp_ports(log_text: str, *, responses: bool) -> dict[str, tuple[str, int]]:
    """Per Call-ID, the (address, port) of the audio in the SDP of each received INVITE
    (``responses=False``) or 2xx answer to an INVITE (``responses=True``) in a SIPp
    ``-trace_msg`` log."""
    found: dict[str, tuple[str, int]] = {}
    for block in log_text.split("message received")[1:]:
        text = block.split("\n", 1)[1] if "\n" in block else ""
        lines = [line.rstrip("\r") for line in text.lstrip("\r\n").split("\n")]
        if not lines:
            continue
        start = lines[0]
        if responses and not start.startswith("SIP/2.0 2"):
            continue
        if not responses and not start.startswith("INVITE "):
            continue
        headers: dict[str, str] = {}
        address, port = "", 0
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() in ("call-id", "i", "cseq"):
                headers["call-id" if name.strip().lower() in ("call-id", "i") else "cseq"] = (
                    value.strip()
                )
            elif line.startswith("c=IN IP4 "):
                address = line.split()[2]
            elif line.startswith("m=audio "):
                port = int(line.split()[1])
                break
        if responses and not headers.get("cseq", "").upper().endswith("INVITE"):
            continue
        if "call-id" in headers and address and port:
            found[headers["call-id"]] = (address, port)
    return found


def _process_times(pid: int) -> tuple[float, float]:
    """(CPU seconds, seconds runnable but waiting for a CPU) of a process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/schedstat") as f:
            delay = int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0
    return cpu, delay


def _read_traces(directory: Path) -> str:
    return "".join(
        path.read_text(errors="replace") for path in sorted(directory.glob("*_messages.log"))
    )


def _drive_rtp(
    targets: list[tuple[tuple[str, int], tuple[str, int]]], args: argparse.Namespace, cpu: int
) -> dict[str, Any]:
    """rtp_bench's generator in a child process (it pins itself and runs its own loop)."""
    import multiprocessing

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import rtp_bench

    def child(conn: Any) -> None:
        try:
            conn.send(
                rtp_bench.run_rtp_load(
                    targets,
                    args.rtp_seconds,
                    warmup=args.rtp_warmup,
                    late_ms=args.rtp_late_ms,
                    loop=rtp_bench._default_loop(),
                    cpu=cpu,
                    realtime=args.rtp_realtime,
                )
            )
        except BaseException as error:  # report, do not hang the parent
            conn.send({"error": repr(error)})
        finally:
            conn.close()

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=child, args=(sender,))
    worker.start()
    sender.close()
    result = dict(receiver.recv())
    worker.join()
    if "error" in result:
        raise RuntimeError(f"RTP load generator failed: {result['error']}")
    return result


def rtp_stage(work: Path, args: argparse.Namespace, uas: Path) -> dict[str, Any]:
    """``--rtp-calls`` concurrent calls set up through our B2BUA, RTP relayed while they last."""
    calls = args.rtp_calls
    b2bua_cpus, load = cpus()
    sub = work / "rtp"
    sub.mkdir()
    setup_s = calls / args.rtp_setup_rate
    # Held long enough for the set-up, the generator's start, warm-up, measure and drain.
    hold_ms = int((setup_s * 2 + args.rtp_warmup + args.rtp_seconds + 15) * 1000)
    b2bua_cmd, env = ours_cmd(b2bua_cpus)
    if args.rtp_loop == "uvloop":
        env["BENCH_LOOP"] = "uvloop"
    if args.rtp_realtime:
        b2bua_cmd = ["chrt", "-f", str(args.rtp_realtime), *b2bua_cmd]
    uas_cmd = [
        *pinned(load),
        "sipp",
        "-sf",
        str(uas),
        "-i",
        "127.0.0.1",
        "-p",
        str(UAS_PORT),
        "-nostdin",
        "-trace_msg",
    ]
    uac_cmd = [
        *uac_command(load, args.rtp_setup_rate, calls),
        "-l",
        str(calls),
        "-d",
        str(hold_ms),
        "-nostdin",
        "-timeout",
        f"{int(hold_ms / 1000 + setup_s * 3 + 30)}s",
        "-timeout_error",
        "-trace_msg",
        "-trace_stat",
        "-stf",
        str(sub / "uac.csv"),
        "-fd",
        "1",
    ]
    result: dict[str, Any] = {"rtp_stage": RTP_STAGE, "rtp_calls_requested": calls}
    with (
        process(uas_cmd, sub / "uas.log", cwd=sub),
        process(b2bua_cmd, sub / "b2bua.log", env) as b2bua,
    ):
        wait_for_sip(B2BUA_PORT)
        uac_dir = sub / "uac"
        uac_dir.mkdir()
        with (sub / "uac.log").open("wb") as out:
            uac = subprocess.Popen(uac_cmd, stdout=out, stderr=subprocess.STDOUT, cwd=uac_dir)
            try:
                deadline = time.monotonic() + setup_s * 2 + 20
                legs_a: dict[str, tuple[str, int]] = {}
                legs_b: dict[str, tuple[str, int]] = {}
                while time.monotonic() < deadline and uac.poll() is None:
                    time.sleep(0.5)
                    legs_a = _sdp_ports(_read_traces(uac_dir), responses=True)
                    legs_b = _sdp_ports(_read_traces(sub), responses=False)
                    if len(legs_a) >= calls and len(legs_b) >= calls:
                        break
                set_up = min(len(legs_a), len(legs_b))
                result["rtp_calls_set_up"] = set_up
                # Each phone sends to one relay leg; which caller leg is paired with which
                # callee leg in this list does not matter (every packet carries its own send
                # stamp), only that each leg of each call has one phone.
                a_ports = sorted(set(legs_a.values()))[:set_up]
                b_ports = sorted(set(legs_b.values()))[:set_up]
                if set_up:
                    before = _process_times(b2bua.pid), time.monotonic()
                    try:
                        load_result = _drive_rtp(
                            list(zip(a_ports, b_ports, strict=True)), args, load[0]
                        )
                    except RuntimeError as error:  # reported in the JSON, the rest stands
                        result["rtp_error"] = str(error)
                    else:
                        after = _process_times(b2bua.pid), time.monotonic()
                        result["rtp"] = load_result
                        wall = after[1] - before[1]
                        # The B2BUA process (SIP + relay) over the RTP run (generator start,
                        # warm-up, measure, drain): share of its core, time waiting for it.
                        used = after[0][0] - before[0][0]
                        result["rtp_b2bua_cpu_util"] = round(used / wall, 3)
                        result["rtp_b2bua_run_delay_s"] = round(after[0][1] - before[0][1], 3)
                uac.wait(timeout=hold_ms / 1000 + setup_s * 3 + 60)
            finally:
                if uac.poll() is None:
                    uac.terminate()
                    uac.wait()
    with contextlib.suppress(OSError, IndexError):
        with (sub / "uac.csv").open() as f:
            last = list(csv.DictReader(f, delimiter=";"))[-1]
        result["rtp_calls_successful"] = int(last.get("SuccessfulCall(C)", 0) or 0)
        result["rtp_calls_failed"] = int(last.get("FailedCall(C)", 0) or 0)
    return result


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
    parser.add_argument(
        "--rtp-calls",
        type=int,
        default=300,
        help="concurrent bridged calls of the RTP stage (0 skips it)",
    )
    parser.add_argument("--rtp-seconds", type=float, default=10.0, help="measured RTP time")
    parser.add_argument("--rtp-warmup", type=float, default=1.0)
    parser.add_argument(
        "--rtp-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of the B2BUA in the RTP stage (uvloop: as `sparklecomm serve`)",
    )
    parser.add_argument("--rtp-late-ms", type=float, default=20.0)
    parser.add_argument(
        "--rtp-setup-rate", type=int, default=100, help="cps at which the RTP stage's calls start"
    )
    parser.add_argument(
        "--rtp-realtime",
        type=int,
        metavar="PRIO",
        help="SCHED_FIFO priority for the B2BUA and the RTP generator in the RTP stage",
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
        if args.skip_ours or args.no_relay or args.rtp_calls <= 0:
            result["rtp_stage"] = "skipped (--skip-ours, --no-relay or --rtp-calls 0)"
        else:
            stage = rtp_stage(work, args, uas)
            rtp = stage.get("rtp", {})
            result.update(
                concurrent_calls=stage.get("rtp_calls_set_up"),
                rtp_late_ratio=rtp.get("kernel", {}).get("late_ratio"),
                rtp_lost_ratio=rtp.get("lost_ratio"),
                rtp_p99_ms=rtp.get("kernel", {}).get("p99_ms"),
                rtp_userspace_late_ratio=rtp.get("late_ratio"),
                rtp_send_lag_p99_ms=rtp.get("send_lag_p99_ms"),
                rtp_realtime=args.rtp_realtime,
                rtp_loop=args.rtp_loop,
                **{k: v for k, v in stage.items() if k != "rtp"},
                rtp=rtp,
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
