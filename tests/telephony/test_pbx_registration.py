"""Trunk registration to a carrier: REGISTER with digest, refreshed before expiry.

A unit test drives :class:`TrunkRegistration` with a recording transaction layer and a
manual scheduler (our own digest verifier checks its answer); a real-peer test has a SIPp
carrier registrar challenge, verify (SIPp's own ``verifyauth``) and grant 2 s, in a
loopback-only namespace."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import World
from tests.telephony.sip_support import loopback_namespace

from sparklecomm.core.clock import FakeClock, SystemClock
from sparklecomm.telephony import (
    InMemoryCredentialStore,
    InMemoryLocationStore,
    SipServer,
    SipServerConfig,
    loopback_only,
)
from sparklecomm.telephony.pbx.registration import TrunkRegistration, refresh_delay, retry_delay
from sparklecomm.telephony.sip.digest import DigestAuthenticator
from sparklecomm.telephony.sip.message import SipRequest, SipResponse, build_response
from sparklecomm.telephony.sip.timers import TimerConfig
from sparklecomm.telephony.sip.transport import Peer

SIPP = Path(__file__).parent / "sipp"


@dataclass
class Timer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeLayer:
    sent: list[tuple[SipRequest, Callable[[SipResponse], None]]] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)

    @property
    def scheduler(self) -> FakeLayer:
        return self

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(delay, callback)
        self.timers.append(timer)
        return timer

    def send_request(
        self, request: SipRequest, peer: Peer, on_response: Callable[[SipResponse], None]
    ) -> None:
        self.sent.append((request, on_response))


@dataclass
class FakeHost:
    transactions: FakeLayer = field(default_factory=FakeLayer)

    def local_address(self, peer: Peer) -> tuple[str, int]:
        return "127.0.0.1", 5060


def test_refresh_and_retry_delays() -> None:
    assert refresh_delay(3600) == 3540
    assert refresh_delay(60) == 48
    assert refresh_delay(1) == 1.0
    assert [retry_delay(n) for n in (1, 2, 3, 10)] == [30, 60, 120, 900]


async def test_register_answers_the_challenge_and_refreshes() -> None:
    clock = FakeClock()
    credentials = InMemoryCredentialStore()
    credentials.add_user("acme", "trunk-pass-123", "carrier.test")
    carrier = DigestAuthenticator("carrier.test", credentials, clock, secret=b"k" * 32)
    host = FakeHost()
    changes: list[str] = []
    reg = TrunkRegistration(
        host,  # type: ignore[arg-type]
        name="carrier",
        registrar="127.0.0.9",
        username="acme",
        password="trunk-pass-123",
        expires=600,
        on_change=lambda r: changes.append(r.state),
    )
    reg.start()
    layer = host.transactions

    async def answer() -> None:
        request, respond = layer.sent[-1]
        result = await carrier.check(request)
        if result.ok:
            response = build_response(request, 200)
            response.headers.add("Contact", f"{request.headers.get('Contact')};expires=120")
        else:
            response = build_response(request, 401)
            for challenge in result.challenges:
                response.headers.add("WWW-Authenticate", str(challenge))
        respond(response)

    await answer()  # 401
    await answer()  # 200
    first, second = layer.sent[0][0], layer.sent[1][0]
    assert first.method == "REGISTER" and first.headers.get("Expires") == "600"
    assert second.headers.get("Authorization") is not None
    assert second.call_id == first.call_id and second.cseq.number == first.cseq.number + 1
    assert str(second.to.uri) == "sip:acme@127.0.0.9"
    assert reg.state == "registered" and reg.granted == 120 and changes == ["registered"]
    assert layer.timers[-1].delay == refresh_delay(120)
    layer.timers[-1].callback()  # the refresh
    await answer()
    await answer()
    assert reg.registrations == 2 and len(layer.sent) == 4
    reg.stop()
    unregister = layer.sent[-1][0]
    assert unregister.headers.get("Expires") == "0" and reg.state == "stopped"
    assert layer.timers[-1].cancelled


async def test_refused_registration_is_retried_with_backoff() -> None:
    host = FakeHost()
    reg = TrunkRegistration(
        host,  # type: ignore[arg-type]
        name="carrier",
        registrar="127.0.0.9",
        username="acme",
        password="wrong",
    )
    reg.start()
    layer = host.transactions
    for attempt in (1, 2):
        request, respond = layer.sent[-1]
        respond(build_response(request, 403))
        assert reg.state == "failed" and layer.timers[-1].delay == retry_delay(attempt)
        layer.timers[-1].callback()
    # a 401 after an authenticated attempt is a failure, not a loop
    request, respond = layer.sent[-1]
    respond(build_response(request, 100))
    assert reg.state == "failed"


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_sipp_carrier_registrar_grants_and_we_refresh() -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    with loopback_namespace():
        server = SipServer(
            SipServerConfig(
                host="127.0.0.1",
                port=0,
                transports=("UDP",),
                timers=TimerConfig(t1=0.2, t2=1.0, t4=1.0),
                allowed_target=loopback_only,
            ),
            clock=SystemClock(),
            credentials=InMemoryCredentialStore(),
            locations=InMemoryLocationStore(),
        )
        await server.start()
        carrier = await asyncio.create_subprocess_exec(
            "sipp",
            "-sf", str(SIPP / "pbx_carrier_registrar.xml"),
            "-i", "127.0.0.1", "-p", "5099", "-m", "1",
            "-nostdin", "-timeout", "20s", "-timeout_error",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            await asyncio.sleep(0.3)
            reg = TrunkRegistration(
                server,
                name="carrier",
                registrar="127.0.0.1",
                port=5099,
                username="acme",
                password="trunk-pass-123",
                expires=60,
            )
            reg.start()
            for _ in range(100):
                if reg.registrations >= 2 or reg.state == "failed":
                    break
                await asyncio.sleep(0.1)
            assert reg.state == "registered" and reg.registrations == 2, (
                reg.state,
                reg.last_status,
            )
            assert reg.granted == 2
            reg.stop()
            out, _ = await asyncio.wait_for(carrier.communicate(), 20)
            assert carrier.returncode == 0, out.decode(errors="replace")[-3000:]
        finally:
            if carrier.returncode is None:
                carrier.kill()
                await carrier.wait()
            await server.stop()


def test_trunks_with_register_set_are_started(sqlite_world: World) -> None:
    from sparklecomm.audit.store import Actor
    from sparklecomm.telephony.pbx.registration import start_trunk_registrations

    pbx = sqlite_world.services.extra["pbx"]
    tenant, actor = sqlite_world.tenant_id, Actor.cli()
    values = {"host": "127.0.0.9", "port": 5099, "username": "acme", "password": "pw-123456"}
    pbx.do_create_trunk(tenant, actor, {"name": "registered", "register": True, **values})
    pbx.do_create_trunk(tenant, actor, {"name": "static", "host": "127.0.0.8"})
    host = FakeHost()
    (reg,) = start_trunk_registrations(host, pbx)  # type: ignore[arg-type]
    assert reg.name == "registered" and reg.password == "pw-123456"
    ((request, _),) = host.transactions.sent
    assert request.method == "REGISTER" and str(request.uri) == "sip:127.0.0.9:5099"


def _register_ok(host: FakeHost, index: int = -1) -> None:
    request, respond = host.transactions.sent[index]
    ok = build_response(request, 200)
    ok.headers.add("Contact", f"{request.headers.get('Contact')};expires=600")
    respond(ok)


def _expires(request: SipRequest) -> str:
    return str(request.headers.get("Expires"))


async def test_trunk_registrations_follow_trunks_added_changed_and_removed(
    sqlite_world: World,
) -> None:
    """No restart needed: the API's changes reach the carrier at once (``changed``)."""
    from sparklecomm.audit.store import Actor
    from sparklecomm.telephony.pbx.registration import TrunkRegistrations

    pbx = sqlite_world.services.extra["pbx"]
    tenant, actor = sqlite_world.tenant_id, Actor.cli()
    host = FakeHost()
    sent = host.transactions.sent
    manager = TrunkRegistrations(host, pbx, interval=3600)  # type: ignore[arg-type]
    pbx.trunk_listeners.append(manager.changed)
    await manager.start()
    assert manager.running == {} and sent == []

    async def settle(count: int) -> None:
        for _ in range(200):
            if len(sent) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{count} requests expected, {len(sent)} sent")

    values = {"host": "127.0.0.9", "port": 5099, "username": "acme", "password": "pw-123456"}
    await asyncio.to_thread(
        pbx.do_create_trunk, tenant, actor, {"name": "carrier", "register": True, **values}
    )
    await settle(1)
    assert sent[0][0].method == "REGISTER" and str(sent[0][0].uri) == "sip:127.0.0.9:5099"
    _register_ok(host)
    ((_, first),) = manager.running.values()
    assert first.state == "registered"

    # A new password: the old registration is withdrawn (Expires: 0), the new one registers.
    await asyncio.to_thread(
        pbx.do_update_trunk, tenant, actor, "carrier", {"password": "pw-654321"}
    )
    await settle(3)
    assert _expires(sent[1][0]) == "0" and first.state == "stopped"
    ((_, second),) = manager.running.values()
    assert second.password == "pw-654321" and _expires(sent[2][0]) != "0"
    _register_ok(host)

    # Turning registration off, then deleting the trunk: unregistered once, then nothing.
    await asyncio.to_thread(pbx.do_update_trunk, tenant, actor, "carrier", {"register": False})
    await settle(4)
    assert _expires(sent[3][0]) == "0" and manager.running == {}
    await asyncio.to_thread(pbx.do_delete_trunk, tenant, actor, "carrier")
    await asyncio.sleep(0.1)
    assert len(sent) == 4

    # A trunk added behind our back (the CLI, another node) is found by the periodic re-read.
    manager.interval = 0.05
    manager.changed()  # wakes the loop so that the shorter interval takes effect
    pbx.trunk_listeners.remove(manager.changed)
    await asyncio.to_thread(
        pbx.do_create_trunk, tenant, actor, {"name": "other", "register": True, **values}
    )
    await settle(5)
    assert manager.running and _expires(sent[4][0]) != "0"
    _register_ok(host)
    await manager.stop()
    assert _expires(sent[5][0]) == "0" and manager.running == {}
