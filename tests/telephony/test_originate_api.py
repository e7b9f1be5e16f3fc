"""Click-to-dial over HTTP: ``POST /api/v1/telephony/calls``. The B2BUA is the real one with
the real PBX dial plan (SQL) and extensions; its SIP host is a stub that records what would
be sent, so no packet leaves the process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import World
from tests.routing.test_routing_service import Api
from tests.telephony.test_calls import FakeRelay

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.core.clock import SystemClock
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.calls import Call, CallManager
from sparklecomm.telephony.sip.location import Binding
from sparklecomm.telephony.sip.message import SipRequest
from sparklecomm.telephony.sip.timers import LoopScheduler, TimerConfig
from sparklecomm.telephony.sip.transport import Peer

SIP_PASSWORD = "phone-secret-123"


class StubLayer:
    """Records the requests the B2BUA sends (nothing goes on the wire)."""

    def __init__(self) -> None:
        self.sent: list[tuple[SipRequest, Peer]] = []
        self.scheduler = LoopScheduler()
        self.timers = TimerConfig()
        self.sender = self

    def send_request(self, request: SipRequest, peer: Peer, callback: Any) -> None:
        self.sent.append((request, peer))

    def send(self, message: SipRequest, peer: Peer) -> None:
        self.sent.append((message, peer))


class StubHost:
    def __init__(self) -> None:
        self.transactions = StubLayer()
        self.authenticator: Any = None
        self.bindings: dict[str, list[Binding]] = {}

    def respond(self, transaction: Any, response: Any) -> None:
        raise AssertionError("no server transaction here")

    def local_address(self, peer: Peer) -> tuple[str, int]:
        return ("127.0.0.1", 5060)

    async def locate(self, user: str, domain_hint: str | None) -> list[Binding]:
        return self.bindings.get(user, [])


class QuickPhones(SipAgentPhones):
    """The agent's phones ring 0.3 s (nobody answers a stub)."""

    async def place_call(self, tenant_id: str, agent_id: str, target: str, **kw: Any) -> Call:
        return await super().place_call(tenant_id, agent_id, target, ring_seconds=0.3)


@pytest.fixture
def setup(sqlite_world: World) -> Iterator[tuple[TestClient, StubHost, CallManager]]:
    world = sqlite_world
    svc = world.services
    actor, t = Actor.cli(), world.tenant_id
    extensions = svc.extra["extensions"]
    pbx = svc.extra["pbx"]
    extensions.do_create(t, actor, number="1001", password=SIP_PASSWORD, user_id=world.agent_id)
    extensions.do_create(t, actor, number="1002", password=SIP_PASSWORD)
    pbx.do_create_trunk(t, actor, {"name": "carrier", "host": "127.0.0.2", "caller_id": "+4930100"})
    pbx.do_create_dial_rule(t, actor, name="germany", prefix="+49", trunk="carrier")
    host = StubHost()
    manager = CallManager(host, clock=SystemClock(), relay=FakeRelay())  # type: ignore[arg-type]
    manager.use_pbx(pbx)
    with TestClient(build_app(svc)) as client:
        svc.extra["agent_phones"] = QuickPhones(manager, extensions.numbers_of_user)
        yield client, host, manager
        svc.extra.pop("agent_phones")


def register(host: StubHost, number: str, port: int) -> None:
    host.bindings[number] = [
        Binding(
            aor=f"sip:{number}@127.0.0.1",
            contact=f"sip:{number}@127.0.0.1:{port}",
            expires_at=datetime.now(UTC) + timedelta(minutes=10),
            call_id="reg",
            cseq=1,
        )
    ]


def test_click_to_dial_rings_the_users_phone_and_answers_202(
    setup: tuple[TestClient, StubHost, CallManager],
) -> None:
    client, host, manager = setup
    register(host, "1001", 5080)
    ana = Api(client, "ana")
    result = ana.post("/telephony/calls", {"to": "+49 30 555-1234"}, status=202)
    assert result["to"] == "+49305551234" and result["state"] == "ringing_agent"
    invites = [m for m, _ in host.transactions.sent if m.method == "INVITE"]
    assert len(invites) == 1
    invite = invites[0]
    assert str(invite.uri) == "sip:1001@127.0.0.1:5080"
    assert b"m=audio" in invite.body and b"PCMU/8000" in invite.body
    # Nothing was dialled yet: the agent's phone has to answer first.
    assert all(peer.host != "127.0.0.2" for _, peer in host.transactions.sent)
    # An extension of the organisation is allowed as well.
    ana.post("/telephony/calls", {"to": "1002"}, status=202)
    assert manager.active_calls == 2
    for _ in range(100):  # nobody answers: the phones ring 0.3 s, then the calls end
        if manager.active_calls == 0:
            break
        time.sleep(0.02)
    assert manager.active_calls == 0


def test_a_number_without_dial_rule_is_422_naming_to(
    setup: tuple[TestClient, StubHost, CallManager],
) -> None:
    client, host, _ = setup
    register(host, "1001", 5080)
    ana = Api(client, "ana")
    problem = ana.post("/telephony/calls", {"to": "+1900555"}, status=422)
    assert problem["errors"][0]["field"] == "to"
    assert "not allowed" in problem["detail"] and "403" in problem["detail"]
    problem = ana.post("/telephony/calls", {"to": "hello"}, status=422)
    assert problem["errors"][0]["field"] == "to"
    assert host.transactions.sent == []  # nothing rang, nothing was dialled


def test_no_registered_phone_is_409(setup: tuple[TestClient, StubHost, CallManager]) -> None:
    client, host, manager = setup
    ana = Api(client, "ana")
    ana.post("/telephony/calls", {"to": "1002"}, status=409)
    sup = Api(client, "sup")  # no extension at all
    sup.post("/telephony/calls", {"to": "1002"}, status=409)
    assert host.transactions.sent == [] and manager.active_calls == 0


def test_without_sip_server_it_is_503(setup: tuple[TestClient, StubHost, CallManager]) -> None:
    client, _, _ = setup
    phones = client.app.state.services.extra.pop("agent_phones")  # type: ignore[attr-defined]
    try:
        Api(client, "ana").post("/telephony/calls", {"to": "1002"}, status=503)
    finally:
        client.app.state.services.extra["agent_phones"] = phones  # type: ignore[attr-defined]
