"""A real softphone against the real ``sparklecomm serve``: baresip (Debian 1.0) registers as
extension 1002 and answers automatically when SIPp, authenticated as 1001, calls it; then
baresip dials 1001 (a SIPp UAS registered as 1001) through its ``ctrl_tcp`` control socket
and hangs up. Everything runs inside a loopback-only network namespace."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.telephony.sip_support import loopback_namespace

SIPP = Path(__file__).parent / "sipp"
TEMPLATES = Path(__file__).parent / "baresip"
EXE = Path(sys.executable).with_name("sparklecomm")
BARESIP = shutil.which("baresip")
PASSWORDS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
ADMIN_PASSWORD = "serve-test-pass"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(BARESIP is None, reason="baresip is not installed (Debian package)"),
    pytest.mark.skipif(
        shutil.which("sipp") is None, reason="sipp is not installed (Debian package sip-tester)"
    ),
]


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    what: str, check: Callable[[], bool], limit: float, detail: Callable[[], str]
) -> None:
    """Poll ``check`` every 50 ms until it holds; fail naming ``what`` after ``limit`` s."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {limit} s\n{detail()}")
        time.sleep(0.05)


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return _squeeze(path.read_text(errors="replace"), chars)
    except FileNotFoundError:
        return f"({path.name} missing)"


def _squeeze(text: str, chars: int = 3000) -> str:
    """The end of ``text`` without its blank lines (SIPp's screens are mostly blank)."""
    return "\n".join(line for line in text.splitlines() if line.strip())[-chars:] + "\n"


@dataclass
class Serve:
    """A running ``sparklecomm serve`` with extensions 1001 and 1002."""

    data_dir: Path
    http_port: int
    sip_port: int
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.data_dir / "serve.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The ``kind`` events on the event stream, read from the SQLite database."""
        found: list[dict[str, Any]] = []
        for db in self.data_dir.glob("*.db"):
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                try:
                    rows = conn.execute(
                        "SELECT payload FROM events WHERE type = ? ORDER BY id", (kind,)
                    ).fetchall()
                except sqlite3.OperationalError:
                    continue
            found.extend(json.loads(row[0]) for row in rows)
        return found


@dataclass
class Control:
    """A client of baresip's ``ctrl_tcp`` module: JSON in netstrings, both ways."""

    sock: socket.socket
    buffer: bytes = b""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            raise AssertionError("baresip closed its control socket")
        self.buffer += chunk
        while b":" in self.buffer:
            length, _, rest = self.buffer.partition(b":")
            size = int(length)
            if len(rest) < size + 1:
                return
            self.seen.append(json.loads(rest[:size]))
            self.buffer = rest[size + 1 :]

    def command(self, command: str, params: str = "") -> dict[str, Any]:
        token = f"t{len(self.seen)}-{command}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        return self.wait(lambda m: m.get("response") is True and m.get("token") == token, 10)

    def event(self, kind: str, limit: float = 15) -> dict[str, Any]:
        return self.wait(lambda m: m.get("event") is True and m.get("type") == kind, limit)

    def wait(self, match: Callable[[dict[str, Any]], bool], limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            for message in self.seen:
                if match(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"baresip control: nothing matched; saw {self.seen}")
            self._read(min(left, 0.2))


def _spawn_serve(tmp: Path, env: dict[str, str]) -> Serve:
    http_port, sip_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    with (tmp / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(EXE),
                "serve",
                "--data-dir",
                str(tmp),
                "--port",
                str(http_port),
                "--sip-port",
                str(sip_port),
                "--admin-password",
                ADMIN_PASSWORD,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return Serve(tmp, http_port, sip_port, process)


def _healthy(serve: Serve) -> bool:
    assert serve.process.poll() is None, "serve exited:\n" + _tail(serve.log)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{serve.http_port}/api/v1/health", timeout=1):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """``sparklecomm serve`` in a loopback-only namespace, extensions made with the CLI."""
    tmp = tmp_path_factory.mktemp("serve")
    with loopback_namespace():
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKLECOMM_")}
        # baresip 1.0 (libre 1.x) knows only MD5 digest, and gives up ("Function not
        # implemented") on a 401/407 that also offers SHA-256, whatever the order.
        env["SPARKLECOMM_SIP_DIGEST_ALGORITHMS"] = '["MD5"]'
        server = _spawn_serve(tmp, env)
        try:
            wait_until("serve's health endpoint", lambda: _healthy(server), 60, server.log_text)
            # Both CLI runs at once: each costs seconds of interpreter start-up.
            adds = [
                subprocess.Popen(
                    [
                        str(EXE),
                        "--data-dir",
                        str(tmp),
                        "extension",
                        "add",
                        number,
                        "--display-name",
                        f"Phone {number}",
                        "--password",
                        password,
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=env,
                    text=True,
                )
                for number, password in PASSWORDS.items()
            ]
            for add in adds:
                out, _ = add.communicate(timeout=60)
                assert add.returncode == 0, out
            yield server
        finally:
            _stop(server.process)


@dataclass
class Baresip:
    process: subprocess.Popen[bytes]
    output: Path
    sip_port: int
    control: Control


@contextlib.contextmanager
def baresip(serve: Serve, tmp: Path) -> Iterator[Baresip]:
    """baresip registered as 1002 (auto-answer), with its own config directory."""
    assert BARESIP is not None
    sip_port, ctrl_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    rtp = _free_port(socket.SOCK_DGRAM) & ~1
    config_dir = tmp / "baresip"
    config_dir.mkdir()
    values = {
        "SIP_LISTEN": f"127.0.0.1:{sip_port}",
        "CTRL_LISTEN": f"127.0.0.1:{ctrl_port}",
        "RTP_PORTS": f"{rtp}-{rtp + 20}",
        "SERVER": f"127.0.0.1:{serve.sip_port}",
        "USER": "1002",
        "PASSWORD": PASSWORDS["1002"],
    }
    for name in ("config", "accounts"):
        text = (TEMPLATES / name).read_text()
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        (config_dir / name).write_text(text)
    (config_dir / "contacts").write_text("")
    output = tmp / "baresip.log"
    with run_baresip(config_dir, output, sip_port, ctrl_port, "baresip") as phone:
        yield phone


@contextlib.contextmanager
def run_baresip(
    config_dir: Path, output: Path, sip_port: int, ctrl_port: int, name: str = "baresip"
) -> Iterator[Baresip]:
    """Start baresip on a prepared ``config_dir`` (its output to ``output``) and connect to
    its control socket; stopped on exit."""
    assert BARESIP is not None
    with output.open("wb") as out:
        # -n 127.0.0.1: baresip ignores loopback when it looks for a local address, and
        # the namespace has nothing else; -s traces SIP to its output.
        process = subprocess.Popen(
            [BARESIP, "-f", str(config_dir), "-4", "-n", "127.0.0.1", "-s"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sock: socket.socket | None = None
    try:

        def connected() -> bool:
            nonlocal sock
            assert process.poll() is None, "baresip exited:\n" + _tail(output)
            try:
                sock = socket.create_connection(("127.0.0.1", ctrl_port), timeout=1)
            except OSError:
                return False
            return True

        wait_until(f"{name}'s control socket", connected, 15, lambda: _tail(output))
        assert sock is not None
        yield Baresip(process, output, sip_port, Control(sock))
    finally:
        if sock is not None:
            sock.close()
        _stop(process)


def registered(serve: Serve, user: str) -> Callable[[], bool]:
    """A check: the registrar has logged a new ``sip.registered`` for ``user`` since now."""

    def count() -> int:
        return sum(
            "sip.registered" in line
            and f"aor=sip:{user}@127.0.0.1" in line
            and "contacts=0" not in line  # an unregistration
            for line in serve.log_text().splitlines()
        )

    before = count()
    return lambda: count() > before


def sipp(*args: str, limit: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sipp", *args, "-i", "127.0.0.1", "-nostdin", "-timeout_error", "-m", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=limit,
    )


def register_sipp_1001(target: str, uas_port: int) -> None:
    """SIPp registers as extension 1001, its Contact on ``uas_port`` (where a SIPp UAS
    answers for it)."""
    registration = sipp(
        target,
        "-sf",
        str(SIPP / "call_register.xml"),
        "-s",
        "1001",
        "-au",
        "1001",
        "-ap",
        PASSWORDS["1001"],
        "-key",
        "contact_port",
        str(uas_port),
        "-p",
        str(_free_port(socket.SOCK_DGRAM)),
        "-timeout",
        "10s",
    )
    assert registration.returncode == 0, _squeeze(registration.stdout)


def test_baresip_registers_and_answers_a_call_from_sipp(serve: Serve, tmp_path: Path) -> None:
    started = time.monotonic()
    registration = registered(serve, "1002")
    with baresip(serve, tmp_path) as phone:
        wait_until(
            "baresip's registration as 1002",
            registration,
            20,
            lambda: _tail(phone.output) + _tail(serve.log),
        )
        target = f"127.0.0.1:{serve.sip_port}"
        caller = sipp(
            target,
            "-sf",
            str(SIPP / "call_uac.xml"),
            "-s",
            "1002",
            "-au",
            "1001",
            "-ap",
            PASSWORDS["1001"],
            "-auth_uri",
            f"1002@{target}",
            "-key",
            "caller",
            "1001",
            "-p",
            str(_free_port(socket.SOCK_DGRAM)),
            "-mp",
            str(_free_port(socket.SOCK_DGRAM) & ~1),
            "-timeout",
            "20s",
        )
        assert caller.returncode == 0, (
            _squeeze(caller.stdout) + _tail(phone.output) + _tail(serve.log)
        )
        phone.control.event("CALL_ESTABLISHED")
        phone.control.event("CALL_CLOSED")
        wait_until("call.ended", lambda: bool(serve.events("call.ended")), 10, serve.log_text)
    answered = [e for e in serve.events("call.answered") if e["dialled"] == "1002"]
    ended = [e for e in serve.events("call.ended") if e["dialled"] == "1002"]
    assert len(answered) == 1 and answered[0]["caller"] == "1001"
    assert len(ended) == 1 and ended[0]["reason"] == "caller_hangup"
    assert ended[0]["duration"] > 0
    media = ended[0].get("media", {})
    # baresip's sine tone reached the relay on the callee's leg.
    assert media.get("b_packets_in", 0) > 0, ended[0]
    assert "sip.call_ended" in serve.log_text()
    assert time.monotonic() - started < 60


def test_baresip_dials_a_sipp_phone_and_hangs_up(serve: Serve, tmp_path: Path) -> None:
    started = time.monotonic()
    target = f"127.0.0.1:{serve.sip_port}"
    uas_port = _free_port(socket.SOCK_DGRAM)
    common = ["-i", "127.0.0.1", "-nostdin", "-timeout_error", "-m", "1", "-timeout", "25s"]
    media_port = str(_free_port(socket.SOCK_DGRAM) & ~1)
    callee = subprocess.Popen(
        [
            "sipp",
            "-sf",
            str(SIPP / "call_uas.xml"),
            "-p",
            str(uas_port),
            "-mp",
            media_port,
            *common,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        register_sipp_1001(target, uas_port)
        before = len(serve.events("call.ended"))
        phone_registration = registered(serve, "1002")
        with baresip(serve, tmp_path) as phone:
            wait_until(
                "baresip's registration as 1002",
                phone_registration,
                20,
                lambda: _tail(phone.output) + _tail(serve.log),
            )
            reply = phone.control.command("dial", "1001")
            assert reply.get("ok") is True, reply
            phone.control.event("CALL_ESTABLISHED")
            time.sleep(1.0)  # the call's length: baresip sends 50 RTP packets a second
            reply = phone.control.command("hangup")
            assert reply.get("ok") is True, reply
            phone.control.event("CALL_CLOSED")
        out, _ = callee.communicate(timeout=30)
        assert callee.returncode == 0, _squeeze(out)
    finally:
        _stop(callee)
    wait_until("call.ended", lambda: len(serve.events("call.ended")) > before, 10, serve.log_text)
    ended = [e for e in serve.events("call.ended") if e["dialled"] == "1001"]
    assert len(ended) == 1 and ended[0]["caller"] == "1002"
    assert ended[0]["reason"] == "caller_hangup" and ended[0]["duration"] > 0
    # baresip, the caller this time, sent its tone to the relay on leg a.
    assert ended[0].get("media", {}).get("a_packets_in", 0) > 0, ended[0]
    assert [e["caller"] for e in serve.events("call.answered") if e["dialled"] == "1001"] == [
        "1002"
    ]
    assert time.monotonic() - started < 60
