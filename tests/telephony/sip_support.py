"""Helpers for the SIP stack tests: request builders, a recording sender, a loopback-only
network namespace to run real sockets in."""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sparklecomm.telephony import SipServerConfig, loopback_only
from sparklecomm.telephony.sip import SipMessage, SipRequest, parse_datagram
from sparklecomm.telephony.sip.timers import TimerConfig
from sparklecomm.telephony.sip.transport import Peer

CLIENT = Peer("UDP", "127.0.0.1", 5099)
CLIENT_TCP = Peer("TCP", "127.0.0.1", 40001)


def request(
    method: str = "OPTIONS",
    *,
    branch: str | None = "z9hG4bKabc123",
    uri: str = "sip:127.0.0.1",
    transport: str = "UDP",
    sent_by: str = "127.0.0.1:5099",
    cseq: int = 1,
    call_id: str = "call-1@test",
    to_tag: str | None = None,
    extra: str = "",
) -> SipRequest:
    """A parsed request with the mandatory headers."""
    via_branch = "" if branch is None else f";branch={branch}"
    to = "<sip:bob@127.0.0.1>" + ("" if to_tag is None else f";tag={to_tag}")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by}{via_branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_datagram(text.encode())
    assert isinstance(message, SipRequest)
    return message


class RecordingSender:
    """A transport that keeps what it is asked to send."""

    name = "UDP"

    def __init__(self) -> None:
        self.sent: list[tuple[SipMessage, Peer]] = []

    def send(self, message: SipMessage, peer: Peer) -> None:
        self.sent.append((message, peer))

    def statuses(self) -> list[int]:
        return [getattr(m, "status", 0) for m, _ in self.sent]

    def methods(self) -> list[str]:
        return [getattr(m, "method", "") for m, _ in self.sent]


_CLONE_NEWNET = 0x40000000


def udp_loopback_config(timers: TimerConfig) -> SipServerConfig:
    """A test SIP server: UDP on a free port of 127.0.0.1, sending only to loopback, MD5
    digest (SIPp 3.6 knows no other)."""
    return SipServerConfig(
        host="127.0.0.1",
        port=0,
        transports=("UDP",),
        digest_algorithms=("MD5",),
        timers=timers,
        allowed_target=loopback_only,
    )


@contextmanager
def loopback_namespace() -> Iterator[str]:
    """Run the calling thread (and the processes it starts) in a new network namespace
    that has only a loopback interface, so nothing a test sends can leave the machine.
    Skips the test when namespaces cannot be made here."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (ip netns)")
    name = f"sctel{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"ip netns add is not permitted here: {made.stderr.strip()}")
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        if libc.setns(target, _CLONE_NEWNET) != 0:
            pytest.skip(f"setns failed: {os.strerror(ctypes.get_errno())}")
        try:
            interfaces = [nic for _, nic in socket.if_nameindex()]
            assert interfaces == ["lo"], f"namespace is not loopback-only: {interfaces}"
            yield name
        finally:
            if libc.setns(original, _CLONE_NEWNET) != 0:  # pragma: no cover
                raise OSError(ctypes.get_errno(), "could not leave the test namespace")
    finally:
        os.close(original)
        os.close(target)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


async def run_sipp(*args: str, limit: float = 30.0) -> tuple[int, str]:
    """Run ``sipp ARGS`` to its end (killed after ``limit`` seconds: exit code -1); the exit
    code and the output, stdout and stderr together."""
    import asyncio

    process = await asyncio.create_subprocess_exec(
        "sipp", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        return -1, out.decode(errors="replace")
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


def free_port(kind: int) -> int:
    """A port that was free on 127.0.0.1 a moment ago (``socket.SOCK_STREAM`` or ``_DGRAM``)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeApi:
    """A JSON client of a running ``sparklecomm serve`` that logs in like the browser does
    (session cookie + CSRF header)."""

    def __init__(self, http_port: int) -> None:
        import urllib.request

        self.base = f"http://127.0.0.1:{http_port}/api/v1"
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        self._csrf: str | None = None

    def login(self, username: str, password: str) -> dict[str, object]:
        out = self.call("POST", "/auth/login", {"username": username, "password": password})
        assert isinstance(out, dict)
        self._csrf = str(out["csrf_token"])
        return out

    def call(self, method: str, path: str, body: object | None = None) -> object:
        import json
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self._csrf is not None:
            headers["X-CSRF-Token"] = self._csrf
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with self._opener.open(request, timeout=15) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise AssertionError(f"{method} {path}: {error.code} {detail}") from None
        return json.loads(raw) if raw else None


@contextmanager
def running_serve(
    data_dir: str | os.PathLike[str], admin_password: str, **env_extra: str
) -> Iterator[tuple[int, int]]:
    """``sparklecomm serve`` (the real command) on free HTTP and SIP ports of 127.0.0.1;
    yields ``(http_port, sip_port)`` once it answers /health. Its output is in
    ``data_dir/serve.log``. Call it inside :func:`loopback_namespace`."""
    import sys
    import time
    import urllib.request
    from pathlib import Path

    log_path = Path(data_dir) / "serve.log"
    exe = Path(sys.executable).with_name("sparklecomm")
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKLECOMM_")}
    env.update(env_extra)
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                str(exe),
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(http_port),
                "--sip-port",
                str(sip_port),
                "--admin-password",
                admin_password,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60  # `serve` takes 5-20 s to start on a busy box
            while True:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{http_port}/api/v1/health", timeout=1
                    ):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(log_path.read_text()[-3000:]) from None
                    time.sleep(0.2)
            yield http_port, sip_port
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)


def make_tls_certificate(
    directory: str | os.PathLike[str], name: str = "server", ip: str = "127.0.0.1"
) -> tuple[str, str]:
    """A self-signed certificate for ``ip`` (CN and subjectAltName) and its unencrypted key,
    made with the ``openssl`` CLI in ``directory``: ``(certificate path, key path)``.
    Skips the test when openssl is not installed."""
    from pathlib import Path

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    certificate = Path(directory) / f"{name}-cert.pem"
    key = Path(directory) / f"{name}-key.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
            "-days",
            "2",
            "-subj",
            f"/CN={ip}",
            "-addext",
            f"subjectAltName=IP:{ip}",
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    return str(certificate), str(key)


class StreamPeer:
    """A SIP client (or phone) on one TCP or TLS connection: writes raw messages, reads
    framed ones (keep-alives skipped)."""

    def __init__(self, reader: object, writer: object) -> None:
        import asyncio

        assert isinstance(reader, asyncio.StreamReader)
        assert isinstance(writer, asyncio.StreamWriter)
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()

    @classmethod
    async def connect(
        cls, port: int, *, cafile: str | None = None, host: str = "127.0.0.1"
    ) -> StreamPeer:
        """To ``host:port``: over TLS, trusting ``cafile``, when it is given; else TCP."""
        import asyncio
        import ssl

        context = ssl.create_default_context(cafile=cafile) if cafile else None
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        return cls(reader, writer)

    @property
    def local_port(self) -> int:
        return int(self.writer.get_extra_info("sockname")[1])

    def send(self, text: str | bytes) -> None:
        self.writer.write(text.encode() if isinstance(text, str) else text)

    async def receive(self, limit: float = 5.0) -> SipMessage:
        """The next message on the connection (AssertionError if none comes in time)."""
        import asyncio

        from sparklecomm.telephony.sip.parser import KeepAlive, parse_stream

        while True:
            framed = parse_stream(self.buffer)
            if framed is not None:
                item, consumed = framed
                del self.buffer[:consumed]
                if isinstance(item, KeepAlive):
                    continue
                return item
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), limit)
            except TimeoutError:
                raise AssertionError("no SIP message arrived in time") from None
            if not chunk:
                raise AssertionError("the connection was closed")
            self.buffer += chunk

    async def close(self) -> None:
        import contextlib

        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def wait_until(check: Callable[[], object], limit: float = 5.0) -> None:
    """Poll ``check`` (every 20 ms) until it is true; fail after ``limit`` seconds."""
    for _ in range(int(limit / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


RTP_HEADER = bytes([0x80, 0x00]) + (1).to_bytes(2, "big") + (160).to_bytes(4, "big") + b"SSRC"


class RtpSinks:
    """Plain UDP sockets on 127.0.0.1 playing phones' RTP ends: ``port(name)`` for the SDP,
    ``send(name, target, fill)`` sends three G.711 packets, ``received(name)`` waits for one."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[bytes]] = {}
        self._transports: dict[str, asyncio.DatagramTransport] = {}

    async def open(self, *names: str) -> RtpSinks:
        loop = asyncio.get_running_loop()
        for name in names:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            self._queues[name] = queue

            class Sink(asyncio.DatagramProtocol):
                def datagram_received(
                    self, data: bytes, addr: tuple[str | int, ...], queue: Any = queue
                ) -> None:
                    queue.put_nowait(data)

            transport, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
            self._transports[name] = transport
        return self

    def port(self, name: str) -> int:
        return int(self._transports[name].get_extra_info("sockname")[1])

    async def send(self, name: str, target: tuple[str, int], fill: bytes) -> None:
        for _ in range(3):
            self._transports[name].sendto(RTP_HEADER + fill * 160, target)
            await asyncio.sleep(0.02)

    async def received(self, name: str, limit: float = 5.0) -> bytes:
        return await asyncio.wait_for(self._queues[name].get(), limit)

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
