"""SIPp phones calling through the B2BUA, inside a loopback-only network namespace: a SIPp
UAS registers as 1002 and answers; a SIPp UAC authenticates as 1001 (407 challenge) and
calls 1002, then hangs up; a caller that cancels while the call is being set up; and a
caller losing 10 % of its packets."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.telephony.sip_support import ServeApi, loopback_namespace, run_sipp, running_serve

from sparklecomm.core.clock import SystemClock
from sparklecomm.telephony import (
    InMemoryCredentialStore,
    InMemoryLocationStore,
    SipServer,
    SipServerConfig,
    loopback_only,
)
from sparklecomm.telephony.sip.timers import TimerConfig

SIPP = Path(__file__).parent / "sipp"
PASSWORDS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


class Pbx:
    def __init__(self, server: SipServer, events: list[tuple[str, str, dict[str, Any]]]):
        self.server = server
        self.events = events

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def types(self) -> list[str]:
        return [kind for _, kind, _ in self.events]


@pytest.fixture
async def pbx() -> AsyncIterator[Pbx]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    with loopback_namespace():
        credentials = InMemoryCredentialStore()
        for user, password in PASSWORDS.items():
            credentials.add_user(user, password, "sparklecomm")
        events: list[tuple[str, str, dict[str, Any]]] = []

        async def emit(tenant: str, kind: str, data: dict[str, Any]) -> None:
            events.append((tenant, kind, data))

        async def tenant_of(extension: str) -> str | None:
            return "t1"

        server = SipServer(
            SipServerConfig(
                host="127.0.0.1",
                port=0,
                transports=("UDP",),
                # SIPp 3.6 answers only the first challenge, and knows only MD5.
                digest_algorithms=("MD5", "SHA-256"),
                timers=TimerConfig(t1=0.2, t2=1.0, t4=1.0),
                allowed_target=loopback_only,
            ),
            clock=SystemClock(),
            credentials=credentials,
            locations=InMemoryLocationStore(),
            emit=emit,
            tenant_of=tenant_of,
        )
        await server.start()
        try:
            yield Pbx(server, events)
        finally:
            await server.stop()


async def sipp(*args: str, limit: float = 25) -> tuple[int, str]:
    return await run_sipp(*args, "-i", "127.0.0.1", "-nostdin", "-timeout_error", limit=limit)


def uas(scenario: str, port: int, calls: int = 1) -> asyncio.Task[tuple[int, str]]:
    return asyncio.get_running_loop().create_task(
        sipp(
            "-sf",
            str(SIPP / scenario),
            "-p",
            str(port),
            "-mp",
            "16000",
            "-m",
            str(calls),
            "-timeout",
            "20s",
        )
    )


async def register_1002(pbx: Pbx, contact_port: int) -> None:
    rc, out = await sipp(
        pbx.target,
        "-sf",
        str(SIPP / "call_register.xml"),
        "-s",
        "1002",
        "-au",
        "1002",
        "-ap",
        PASSWORDS["1002"],
        "-key",
        "contact_port",
        str(contact_port),
        "-p",
        "5070",
        "-m",
        "1",
        "-timeout",
        "10s",
    )
    assert rc == 0, out[-2000:]


async def call_1002(pbx: Pbx, scenario: str, *extra: str, calls: int = 1) -> tuple[int, str]:
    return await sipp(
        pbx.target,
        "-sf",
        str(SIPP / scenario),
        "-s",
        "1002",
        "-au",
        "1001",
        "-ap",
        PASSWORDS["1001"],
        # SIPp's digest uri is remote_ip:remote_port unless told; ours must be the R-URI.
        "-auth_uri",
        f"1002@{pbx.target}",
        "-key",
        "caller",
        "1001",
        "-p",
        "5071",
        "-mp",
        "17000",
        "-m",
        str(calls),
        "-timeout",
        "20s",
        *extra,
    )


async def wait_for_events(pbx: Pbx, kind: str, count: int) -> None:
    for _ in range(100):
        if pbx.types().count(kind) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} x {kind} not seen: {pbx.types()}")


async def test_sipp_calls_sipp_through_the_b2bua(pbx: Pbx) -> None:
    callee = uas("call_uas.xml", 5080)
    await asyncio.sleep(0.3)
    await register_1002(pbx, 5080)
    rc, out = await call_1002(pbx, "call_uac.xml")
    assert rc == 0, out[-3000:]
    rc_uas, out_uas = await callee
    assert rc_uas == 0, out_uas[-3000:]
    await wait_for_events(pbx, "call.ended", 1)
    assert pbx.types() == ["call.started", "call.ringing", "call.answered", "call.ended"]
    ended = pbx.events[-1][2]
    assert ended["reason"] == "caller_hangup" and ended["caller"] == "1001"
    assert pbx.server.calls.active_calls == 0


async def test_sipp_caller_cancels_while_the_callee_rings(pbx: Pbx) -> None:
    callee = uas("call_uas_cancel.xml", 5080)
    await asyncio.sleep(0.3)
    await register_1002(pbx, 5080)
    rc, out = await call_1002(pbx, "call_uac_cancel.xml")
    assert rc == 0, out[-3000:]
    rc_uas, out_uas = await callee
    assert rc_uas == 0, out_uas[-3000:]
    await wait_for_events(pbx, "call.ended", 1)
    assert pbx.events[-1][2]["reason"] == "cancelled"
    assert "call.answered" not in pbx.types()


async def test_sipp_caller_with_packet_loss_completes(pbx: Pbx) -> None:
    calls = 3
    callee = uas("call_uas.xml", 5080, calls=calls)
    await asyncio.sleep(0.3)
    await register_1002(pbx, 5080)
    rc, out = await call_1002(pbx, "call_uac.xml", "-lost", "10", "-l", "1", calls=calls)
    assert rc == 0, out[-3000:]
    rc_uas, out_uas = await callee
    assert rc_uas == 0, out_uas[-3000:]
    await wait_for_events(pbx, "call.ended", calls)
    reasons = [data["reason"] for _, kind, data in pbx.events if kind == "call.ended"]
    assert reasons == ["caller_hangup"] * calls


def create_extensions(http_port: int) -> None:
    api = ServeApi(http_port)
    api.login("admin", "serve-test-pass")
    for number, password in PASSWORDS.items():
        api.call("POST", "/telephony/extensions", {"number": number, "password": password})


@pytest.mark.timeout(120)  # `serve` itself takes 5-20 s to start on a busy box
def test_two_sipp_phones_call_through_sparklecomm_serve(tmp_path: Path) -> None:
    """The real command: extensions from the CLI, the PBX dial plan, the media relay."""
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    with (
        loopback_namespace(),
        running_serve(
            tmp_path,
            "serve-test-pass",
            # SIPp 3.6 answers only the first challenge, and knows only MD5.
            SPARKLECOMM_SIP_DIGEST_ALGORITHMS='["MD5", "SHA-256"]',
        ) as (http_port, sip_port),
    ):
        # Through the REST API: the CLI costs 10-20 s of start-up per call on a busy CI box.
        create_extensions(http_port)
        target = f"127.0.0.1:{sip_port}"
        common = ["-i", "127.0.0.1", "-nostdin", "-timeout_error", "-m", "1", "-timeout", "15s"]
        callee = subprocess.Popen(
            ["sipp", "-sf", str(SIPP / "call_uas.xml"), "-p", "5080", "-mp", "16000", *common],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(0.3)
        registered = subprocess.run(
            [
                "sipp",
                target,
                "-sf",
                str(SIPP / "call_register.xml"),
                "-s",
                "1002",
                "-au",
                "1002",
                "-ap",
                PASSWORDS["1002"],
                "-key",
                "contact_port",
                "5080",
                "-p",
                "5070",
                *common,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert registered.returncode == 0, registered.stdout[-2000:]
        caller = subprocess.run(
            [
                "sipp",
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
                "5071",
                "-mp",
                "17000",
                *common,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert caller.returncode == 0, (
            caller.stdout[-3000:] + (tmp_path / "serve.log").read_text()[-3000:]
        )
        out, _ = callee.communicate(timeout=20)
        assert callee.returncode == 0, out[-3000:]
    output = (tmp_path / "serve.log").read_text()
    assert "sip.call_ended" in output and "caller_hangup" in output
