"""Hanging up a call, or putting it through to a number, through another node: two ``serve``
processes in-process, each the whole application with its lifespan (SIP server, voice
bridge, call directory), on one database and the real Redis server. Node A holds the call:
it places it (its SIP server rings the agent's phone, then the extension dialled), or a
caller dials a DID that goes to a queue and node A rings the agent's phone. ``DELETE
/api/v1/telephony/calls/{id}`` or ``POST /api/v1/interactions/{id}/transfer-to-number``
goes to node B, which forwards it to A over Redis. Node B runs a SIP server of its own, or
none (a web-only node).

The phones are test_calls' small SIP phones on loopback UDP sockets, run on node A's event
loop; not in a loopback-only namespace, because the nodes must reach the Redis server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from tests.conftest import PASSWORD, REDIS_URL, World, redis_nodes
from tests.routing.test_routing_service import Api, setup_center
from tests.telephony.test_calls import PASSWORDS, OutgoingCall, Phone

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.container import Services
from sparklecomm.store.db import read_events
from sparklecomm.telephony.call_directory import CallDirectory

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="SPARKLECOMM_TEST_REDIS_URL is not set"),
    pytest.mark.timeout(90),
]
DID = "5550100"


@dataclass
class Nodes:
    world: World
    a: TestClient
    b: TestClient
    b_services: Services

    def on_a(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function`` (a coroutine function) on node A's event loop."""
        assert self.a.portal is not None
        return self.a.portal.call(function, *args)

    def calls_on_a(self) -> int:
        manager = self.world.services.extra["sip"].calls
        return int(manager.active_calls)

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self.world.services.db.read() as s:
            found = read_events(s, self.world.tenant_id, after=0, limit=10_000)
        return [e.payload for e in found if e.type == kind and isinstance(e.payload, dict)]

    def ended(self, call_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events("call.ended") if e.get("call_id") == call_id]

    def completed(self) -> list[str]:
        """The outbound interactions completed so far."""
        return [str(e["interaction_id"]) for e in self.events("interaction.completed")]

    def of_call(self, call_id: str) -> list[str]:
        """The kinds of the call events of ``call_id``, in order."""
        with self.world.services.db.read() as s:
            found = read_events(s, self.world.tenant_id, after=0, limit=10_000)
        return [
            e.type
            for e in found
            if e.type.startswith("call.")
            and isinstance(e.payload, dict)
            and e.payload.get("call_id") == call_id
        ]

    def start_phones(self, *phones: Phone) -> None:
        async def start() -> None:
            for phone in phones:
                await phone.start()
                await phone.register()

        self.on_a(start)

    def stop_phones(self, *phones: Phone) -> None:
        async def stop() -> None:
            for phone in phones:
                await phone.stop()

        self.on_a(stop)


def active(api: Api, interaction_id: str) -> bool:
    """Whether ``api``'s node sees the interaction connected (it may not know it yet)."""
    r = api.client.get(f"/api/v1/interactions/{interaction_id}", headers=api.headers)
    return r.status_code == 200 and r.json()["state"] == "active"


def wait_for(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(params=["b_with_sip", "b_web_only"])
def nodes(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Nodes]:
    world, b_services = redis_nodes(
        database_url,
        tmp_path,
        shared_clock=True,
        sip_enabled=True,
        sip_host="127.0.0.1",
        sip_port=0,  # a free port each
        sip_transports=["UDP"],
    )
    if request.param == "b_web_only":
        b_services.extra.pop("sip")
    extensions = world.services.extra["extensions"]
    t, actor = world.tenant_id, Actor.cli()
    extensions.do_create(
        t, actor, number="1001", password=PASSWORDS["1001"], user_id=world.agent_id
    )
    extensions.do_create(t, actor, number="1002", password=PASSWORDS["1002"])
    extensions.do_create(t, actor, number="1003", password=PASSWORDS["1003"])
    try:
        with TestClient(build_app(world.services)) as a, TestClient(build_app(b_services)) as b:
            assert "call_directory" in b_services.extra
            assert ("agent_phones" in b_services.extra) is (request.param == "b_with_sip")
            yield Nodes(world, a, b, b_services)
        # Both nodes stopped: the calls they held left no record behind.
        client = redis.Redis.from_url(REDIS_URL or "")
        assert client.keys(f"{world.services.bus.prefix}call:*") == []  # type: ignore[attr-defined]
        client.close()
    finally:
        world.services.db.dispose()
        b_services.db.dispose()


def test_a_call_placed_through_one_node_is_hung_up_through_another(nodes: Nodes) -> None:
    world = nodes.world
    port = nodes.world.services.extra["sip"].port
    agent_phone, callee = Phone("1001", port), Phone("1002", port)

    async def start_phones() -> None:
        for phone in (agent_phone, callee):
            await phone.start()
            await phone.register()

    nodes.on_a(start_phones)
    try:
        _, sup_a, ana_a = setup_center(nodes.a, world)
        ana_a.post(f"/agents/{world.agent_id}/login")
        ana_a.post(f"/agents/{world.agent_id}/state", {"state": "available"})
        ana_b, sup_b = Api(nodes.b, "ana"), Api(nodes.b, "sup")
        Api(nodes.a, "admin").post("/users", {"username": "bo", "password": PASSWORD}, status=201)
        bo_b = Api(nodes.b, "bo")

        placed = ana_a.post("/telephony/calls", {"to": "1002"}, status=202)
        call_id, interaction_id = placed["call_id"], placed["interaction_id"]
        assert interaction_id is not None
        directory: CallDirectory = world.services.extra["call_directory"]
        assert directory.held() == [call_id]  # recorded before the 202
        # Both phones answer: the agent talks to 1002 through node A.
        wait_for(lambda: callee.dialog is not None and agent_phone.dialog is not None)
        wait_for(lambda: bool(nodes.events("call.answered")))

        b_sip = nodes.b_services.extra.get("sip")
        assert b_sip is None or b_sip.calls.active_calls == 0  # node B does not hold it
        # Someone else's call (refused by node A), or an unknown one: 404.
        problem = bo_b.send("DELETE", f"/telephony/calls/{call_id}", status=404)
        assert problem["errors"][0]["field"] == "call_id"
        bo_b.send("DELETE", "/telephony/calls/nope", status=404)
        assert nodes.calls_on_a() == 1 and "BYE" not in callee.seen

        # The agent's own request through node B: node A hangs up both legs.
        assert ana_b.send("DELETE", f"/telephony/calls/{call_id}", status=204) is None
        wait_for(lambda: "BYE" in agent_phone.seen and "BYE" in callee.seen)
        wait_for(lambda: nodes.calls_on_a() == 0)
        wait_for(lambda: bool(nodes.ended(call_id)))
        assert [e["reason"] for e in nodes.ended(call_id)] == ["cancelled"]
        # Its outbound interaction completes, as for a hang-up on node A; the record goes.
        wait_for(lambda: ana_a.get(f"/agents/{world.agent_id}")["state"] == "wrap_up")
        assert nodes.completed() == [interaction_id]
        wait_for(lambda: directory.held() == [])
        ana_b.send("DELETE", f"/telephony/calls/{call_id}", status=404)  # over already

        # A supervisor hangs up an agent's call through node B (while the phone rings).
        ana_a.post(f"/interactions/{interaction_id}/wrapup-end")
        agent_phone.answer = "ring"
        second = ana_a.post("/telephony/calls", {"to": "1002"}, status=202)
        wait_for(lambda: len(agent_phone.invites) == 2)
        sup_b.send("DELETE", f"/telephony/calls/{second['call_id']}", status=204)
        wait_for(lambda: "CANCEL" in agent_phone.seen and nodes.calls_on_a() == 0)
        wait_for(lambda: nodes.completed() == [interaction_id, second["interaction_id"]])
        assert sup_a.get(f"/agents/{world.agent_id}")["state"] == "wrap_up"
    finally:

        async def stop_phones() -> None:
            for phone in (agent_phone, callee):
                await phone.stop()

        nodes.on_a(stop_phones)


def test_a_node_that_does_not_answer_is_503_and_a_stale_record_404(nodes: Nodes) -> None:
    """A record naming a node that is gone (it died: its records expire by themselves), and
    one naming node B itself without B holding the call."""
    world = nodes.world
    directory: CallDirectory = nodes.b_services.extra["call_directory"]
    directory.answer_timeout = 0.3
    bus = nodes.b_services.bus
    assert nodes.b.portal is not None
    for call_id, node in (("ghost", "a-node-that-died"), ("stale", directory.bus.node_id)):
        record = {"node": node, "tenant_id": world.tenant_id, "agent_id": world.agent_id}
        nodes.b.portal.call(bus.remember, {f"call:{call_id}": json.dumps(record)}, 5)  # type: ignore[attr-defined]
    ana_b = Api(nodes.b, "ana")
    problem = ana_b.send("DELETE", "/telephony/calls/ghost", status=503)
    assert problem["type"] == "/problems/unavailable"
    assert "did not answer" in problem["detail"]
    ana_b.send("DELETE", "/telephony/calls/stale", status=404)
    # Another organisation's supervisor is not even forwarded (404 at once, no wait).
    auth, actor = nodes.b_services.auth, Actor.cli()
    other = auth.do_create_tenant("globex", "Globex", actor)
    auth.do_create_user(
        other.tenant_id, actor, username="eve", password=PASSWORD, role="supervisor"
    )
    started = time.monotonic()
    Api(nodes.b, "eve").send("DELETE", "/telephony/calls/ghost", status=404)
    assert time.monotonic() - started < 0.3
    for call_id in ("ghost", "stale"):
        nodes.b.portal.call(bus.forget, f"call:{call_id}")  # type: ignore[attr-defined]


def test_a_placed_call_is_put_through_to_a_number_through_another_node(nodes: Nodes) -> None:
    """The agent talks to 1002 through node A; the desk's *Transfer to a number* (1003)
    reaches node B: node A dials 1003 with the agent's rights and, once it answers,
    releases the agent's phone; the outbound interaction is transferred out. (Before that,
    one to a number nobody has, asked of node A itself, fails and changes nothing.)"""
    world = nodes.world
    port = world.services.extra["sip"].port
    agent_phone, callee, desk = Phone("1001", port), Phone("1002", port), Phone("1003", port)
    desk.answer_delay = 1.0  # time for a second request while it rings
    nodes.start_phones(agent_phone, callee, desk)
    try:
        _, _, ana_a = setup_center(nodes.a, world)
        ana_a.post(f"/agents/{world.agent_id}/login")
        ana_a.post(f"/agents/{world.agent_id}/state", {"state": "available"})
        ana_b = Api(nodes.b, "ana")
        placed = ana_a.post("/telephony/calls", {"to": "1002"}, status=202)
        call_id, interaction_id = placed["call_id"], placed["interaction_id"]
        wait_for(lambda: callee.dialog is not None and agent_phone.dialog is not None)
        wait_for(lambda: "call.answered" in nodes.of_call(call_id))
        wait_for(lambda: active(ana_b, interaction_id))

        path = f"/interactions/{interaction_id}/transfer-to-number"
        # On node A itself (it holds the call): dialled at once; 1009 is nobody's number,
        # so the transfer fails and the call stays with the agent.
        ana_a.post(path, {"to_number": "1009"}, status=202)
        wait_for(lambda: "call.transfer_failed" in nodes.of_call(call_id))
        assert "BYE" not in agent_phone.seen
        answer = ana_b.post(path, {"to_number": "1003"}, status=202)
        assert answer == {"interaction_id": interaction_id, "call_id": call_id, "to": "1003"}
        # Node A refuses a second one while 1003 rings: 409, as on node A itself.
        problem = ana_b.post(path, {"to_number": "1003"}, status=409)
        assert "a transfer is already going on" in problem["detail"]
        assert problem["errors"][0]["field"] == "interaction_id"
        wait_for(lambda: len(desk.invites) == 1)  # dialled by node A
        wait_for(lambda: "BYE" in agent_phone.seen)  # 1003 answered: the agent is released
        wait_for(lambda: "call.transferred" in nodes.of_call(call_id))
        kinds = nodes.of_call(call_id)
        assert kinds.index("call.transferring") < kinds.index("call.transferred")
        assert "call.ended" not in kinds and "BYE" not in callee.seen  # 1002 and 1003 talk
        wait_for(lambda: bool(nodes.events("interaction.transferred")))
        (transferred,) = nodes.events("interaction.transferred")
        assert transferred["interaction_id"] == interaction_id
        assert (transferred["kind"], transferred["to_number"]) == ("external", "1003")
        wait_for(lambda: ana_a.get(f"/agents/{world.agent_id}")["state"] == "wrap_up")

        async def callee_hangs_up() -> None:
            await callee.hangup()

        nodes.on_a(callee_hangs_up)
        wait_for(lambda: "BYE" in desk.seen and nodes.calls_on_a() == 0)
        directory: CallDirectory = world.services.extra["call_directory"]
        wait_for(lambda: directory.held() == [])
    finally:
        nodes.stop_phones(agent_phone, callee, desk)


def test_a_queue_call_is_put_through_to_a_number_through_another_node(nodes: Nodes) -> None:
    """A caller dials a DID that goes to the support queue; node A rings the agent's phone,
    which answers. The transfer to 1003 reaches node B and goes to node A: once 1003
    answers, the agent's phone is released, routing hears a transfer out, and the call
    (caller and 1003) goes on outside routing, no longer in the directory."""
    world = nodes.world
    port = world.services.extra["sip"].port
    agent_phone, caller, desk = Phone("1001", port), Phone("1002", port), Phone("1003", port)
    nodes.start_phones(agent_phone, caller, desk)
    try:
        _, _, ana_a = setup_center(nodes.a, world)
        pbx = world.services.extra["pbx"]
        pbx.do_create_did(world.tenant_id, Actor.cli(), number=DID, destination="queue:support")
        ana_a.post(f"/agents/{world.agent_id}/login")
        ana_a.post(f"/agents/{world.agent_id}/state", {"state": "available"})
        ana_b = Api(nodes.b, "ana")
        directory: CallDirectory = world.services.extra["call_directory"]

        async def dial() -> OutgoingCall:
            return await caller.call(DID)

        incoming: OutgoingCall = nodes.on_a(dial)

        async def answered() -> int:
            return (await incoming.result()).status

        assert nodes.on_a(answered) == 200  # the agent's phone answered
        (accepted,) = nodes.events("interaction.accepted")
        interaction_id = accepted["interaction_id"]
        wait_for(lambda: active(ana_b, interaction_id))
        call_id = ana_b.get(f"/interactions/{interaction_id}")["attributes"]["call_id"]
        assert directory.held() == [call_id]  # recorded when it was handed to the queue
        b_sip = nodes.b_services.extra.get("sip")
        assert b_sip is None or b_sip.calls.active_calls == 0

        path = f"/interactions/{interaction_id}/transfer-to-number"
        ana_b.post(path, {"to_number": "1003"}, status=202)
        wait_for(lambda: "BYE" in agent_phone.seen)
        wait_for(lambda: bool(nodes.events("interaction.transferred")))
        (transferred,) = nodes.events("interaction.transferred")
        assert transferred["interaction_id"] == interaction_id
        assert (transferred["kind"], transferred["to_number"]) == ("external", "1003")
        # (the call's events are written by their own task: they may come a little later)
        wait_for(lambda: "call.transferred" in nodes.of_call(call_id))
        kinds = nodes.of_call(call_id)
        assert kinds.index("call.transferring") < kinds.index("call.transferred")
        assert "call.ended" not in kinds and len(desk.invites) == 1
        wait_for(lambda: ana_a.get(f"/agents/{world.agent_id}")["state"] == "wrap_up")
        # Outside routing now: no longer recorded (the interaction is over, too).
        wait_for(lambda: directory.held() == [])
        assert nodes.b.portal is not None
        bus = nodes.b_services.bus
        assert nodes.b.portal.call(bus.recall, f"call:{call_id}") is None  # type: ignore[attr-defined]
        ana_b.post(path, {"to_number": "1003"}, status=404)
        assert nodes.calls_on_a() == 1  # caller and 1003 talk on

        async def caller_hangs_up() -> None:
            await incoming.hangup()

        nodes.on_a(caller_hangs_up)
        wait_for(lambda: "BYE" in desk.seen and nodes.calls_on_a() == 0)
        wait_for(lambda: nodes.of_call(call_id)[-1] == "call.ended")
        assert [e["reason"] for e in nodes.ended(call_id)] == ["caller_hangup"]
    finally:
        nodes.stop_phones(agent_phone, caller, desk)


def test_a_transfer_to_a_node_that_does_not_answer_is_503(nodes: Nodes) -> None:
    """An agent's call whose record names a node that is gone: 503; one naming node B
    itself without B holding the call, or no record at all: 409 (not connected)."""
    world, t = nodes.world, nodes.world.tenant_id
    directory: CallDirectory = nodes.b_services.extra["call_directory"]
    directory.answer_timeout = 0.3
    bus = nodes.b_services.bus
    assert nodes.b.portal is not None
    _, _, ana_a = setup_center(nodes.a, world)
    ana_a.post(f"/agents/{world.agent_id}/login")
    ana_b = Api(nodes.b, "ana")
    acd = world.services.extra["acd"]
    for call_id, node in (("ghost", "a-node-that-died"), ("stale", directory.bus.node_id)):
        record = {"node": node, "tenant_id": t, "agent_id": None, "kind": "queue"}
        nodes.b.portal.call(bus.remember, {f"call:{call_id}": json.dumps(record)}, 5)  # type: ignore[attr-defined]
    try:
        for call_id, status in (("ghost", 503), ("stale", 409), ("nope", 409)):
            iid = f"out-{call_id}"
            acd.execute(
                t,
                "start_outbound",
                interaction_id=iid,
                agent_id=world.agent_id,
                attributes={"call_id": call_id},
            )
            wait_for(lambda: active(ana_b, iid))  # noqa: B023
            path = f"/interactions/{iid}/transfer-to-number"
            problem = ana_b.post(path, {"to_number": "1003"}, status=status)
            if status == 503:
                assert problem["type"] == "/problems/unavailable"
                assert "did not answer" in problem["detail"]
            else:
                assert "cannot be put through now" in problem["detail"]
            acd.execute(t, "complete", interaction_id=iid, agent_id=world.agent_id)
            acd.execute(t, "end_wrapup", interaction_id=iid, agent_id=world.agent_id)
    finally:
        for call_id in ("ghost", "stale"):
            nodes.b.portal.call(bus.forget, f"call:{call_id}")  # type: ignore[attr-defined]
