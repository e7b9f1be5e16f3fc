"""Helpers for the SIP stack tests: request builders, a recording sender, a loopback-only
network namespace to run real sockets in."""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sparklecomm.telephony.sip import SipMessage, SipRequest, parse_datagram
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
