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
from tests.conftest import PASSWORD, World
from tests.routing.test_routing_service import Api, setup_center
from tests.telephony.test_calls import FakeRelay

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.core.clock import SystemClock
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.calls import Call, CallManager
from sparklecomm.telephony.outbound import OutboundCalls
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
        return await super().place_call(tenant_id, agent_id, target, **{**kw, "ring_seconds": 0.3})


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
        phones = QuickPhones(manager, extensions.numbers_of_user)
        svc.extra["agent_phones"] = phones
        svc.extra["outbound_calls"] = OutboundCalls(svc.extra["acd"], phones)
        yield client, host, manager
        svc.extra.pop("agent_phones")
        svc.extra.pop("outbound_calls").close()


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


def wait_for(check: Any, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def ready_agent(client: TestClient, world: World) -> tuple[Api, Api]:
    """Queue ``support`` with ana as its agent, logged in and available: (sup, ana)."""
    _, sup, ana = setup_center(client, world)
    ana.post(f"/agents/{world.agent_id}/login")
    ana.post(f"/agents/{world.agent_id}/state", {"state": "available"})
    return sup, ana


def test_an_agents_call_is_an_outbound_interaction_busy_until_it_ends(
    setup: tuple[TestClient, StubHost, CallManager], sqlite_world: World
) -> None:
    client, host, manager = setup
    world = sqlite_world
    register(host, "1001", 5080)
    sup, ana = ready_agent(client, world)
    result = ana.post("/telephony/calls", {"to": "1002", "customer_id": "c-9"}, status=202)
    iid = result["interaction_id"]
    assert iid is not None
    view = ana.get(f"/interactions/{iid}")
    assert (view["direction"], view["state"], view["queue_id"]) == ("outbound", "active", "support")
    assert view["attributes"] == {"to": "1002", "call_id": result["call_id"]}
    assert view["customer_id"] == "c-9"
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "busy"
    # A customer calling in meanwhile is not offered to the agent on their own call.
    waiting = sup.post("/interactions", {"queue_id": "support"}, status=201)
    assert "interaction.offered" not in [e["type"] for e in waiting["events"]]
    # The desk may not move the placed call; a second call while on it is refused (409).
    ana.post(f"/interactions/{iid}/transfer", {"to_queue_id": "support"}, status=409)
    # Nor put it through to a number before anyone answered (the phones still ring).
    ringing = ana.post(f"/interactions/{iid}/transfer-to-number", {"to_number": "1003"}, status=409)
    assert "cannot be put through now" in ringing["detail"]
    bad = ana.post(f"/interactions/{iid}/transfer-to-number", {"to_number": "10 03"}, status=422)
    assert bad["errors"][0]["field"] == "to_number"
    problem = ana.post("/telephony/calls", {"to": "1002"}, status=409)
    assert "busy" in problem["detail"]
    # Nobody answers: the phones ring 0.3 s, the call ends, the interaction completes and
    # the agent wraps up (the queue's 30 s), then gets the waiting customer.
    wait_for(lambda: ana.get(f"/agents/{world.agent_id}")["state"] == "wrap_up")
    assert manager.active_calls == 0  # the second click was refused before anything rang
    with world.services.db.read() as s:
        from sparklecomm.store.db import read_events

        kinds = [
            e.type
            for e in read_events(s, world.tenant_id, 0, 1000)
            if e.payload.get("interaction_id") == iid
        ]
    assert kinds == [
        "interaction.created",
        "interaction.accepted",
        "interaction.completed",
    ]


def test_the_desk_completing_a_placed_call_hangs_it_up(
    setup: tuple[TestClient, StubHost, CallManager], sqlite_world: World
) -> None:
    client, host, manager = setup
    world = sqlite_world
    register(host, "1001", 5080)
    _, ana = ready_agent(client, world)
    result = ana.post("/telephony/calls", {"to": "1002"}, status=202)
    assert manager.active_calls == 1
    ana.post(f"/interactions/{result['interaction_id']}/complete", {})
    wait_for(lambda: manager.active_calls == 0)
    assert ana.get(f"/agents/{world.agent_id}")["state"] == "wrap_up"


def test_an_offer_ringing_refuses_the_call_before_any_phone_rings(
    setup: tuple[TestClient, StubHost, CallManager], sqlite_world: World
) -> None:
    client, host, manager = setup
    world = sqlite_world
    register(host, "1001", 5080)
    sup, ana = ready_agent(client, world)
    sup.post("/interactions", {"queue_id": "support", "channel": "chat"}, status=201)
    problem = ana.post("/telephony/calls", {"to": "1002"}, status=409)
    assert "offer ringing" in problem["detail"] and problem["errors"][0]["field"] == "to"
    assert host.transactions.sent == [] and manager.active_calls == 0


def test_a_user_not_logged_in_to_routing_places_a_plain_call(
    setup: tuple[TestClient, StubHost, CallManager], sqlite_world: World
) -> None:
    client, host, _ = setup
    register(host, "1001", 5080)
    setup_center(client, sqlite_world)  # ana is an agent, but logged out
    result = Api(client, "ana").post("/telephony/calls", {"to": "1002"}, status=202)
    assert result["interaction_id"] is None


def test_a_placed_call_is_cancelled_by_its_agent_and_the_interaction_completes(
    setup: tuple[TestClient, StubHost, CallManager], sqlite_world: World
) -> None:
    client, host, manager = setup
    world = sqlite_world
    register(host, "1001", 5080)
    _, ana = ready_agent(client, world)
    admin = Api(client, "admin")
    admin.post("/users", {"username": "bo", "password": PASSWORD}, status=201)
    bo = Api(client, "bo")
    result = ana.post("/telephony/calls", {"to": "1002"}, status=202)
    call_id = result["call_id"]
    # Another agent cannot see it; an unknown id is not there either.
    problem = bo.send("DELETE", f"/telephony/calls/{call_id}", status=404)
    assert problem["errors"][0]["field"] == "call_id"
    ana.send("DELETE", "/telephony/calls/nope", status=404)
    assert manager.active_calls == 1
    ana.send("DELETE", f"/telephony/calls/{call_id}", status=204)
    wait_for(lambda: manager.active_calls == 0)
    wait_for(lambda: ana.get(f"/agents/{world.agent_id}")["state"] == "wrap_up")
    ana.send("DELETE", f"/telephony/calls/{call_id}", status=404)  # over already
    # A supervisor may hang up an agent's placed call.
    ana.post(f"/interactions/{result['interaction_id']}/wrapup-end")
    second = ana.post("/telephony/calls", {"to": "1002"}, status=202)
    admin.send("DELETE", f"/telephony/calls/{second['call_id']}", status=204)
    wait_for(lambda: manager.active_calls == 0)


def test_only_a_call_is_put_through_to_a_number(
    setup: tuple[TestClient, StubHost, CallManager], sqlite_world: World
) -> None:
    client, _, _ = setup
    sup, ana = ready_agent(client, sqlite_world)
    chat = sup.post("/interactions", {"queue_id": "support", "channel": "chat"}, status=201)
    iid = chat["interaction"]["interaction_id"]
    ana.post(f"/interactions/{iid}/accept")
    problem = ana.post(f"/interactions/{iid}/transfer-to-number", {"to_number": "1003"}, status=409)
    assert "Only a phone call" in problem["detail"]
