"""Calls the platform places (``CallManager.originate``): the agent's phones ring first, then
the target is dialled as the agent's extension would dial it, both legs anchored at the
relay. Real sockets in a loopback-only namespace, with the small phones of test_calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.telephony.sip_support import (
    RtpSinks,
    loopback_namespace,
    udp_loopback_config,
    wait_until,
)
from tests.telephony.test_calls import (
    PASSWORDS,
    REALM,
    TIMERS,
    FakeRelay,
    Phone,
    Switch,
    offer_sdp,
)

from sparklecomm.core.clock import SystemClock
from sparklecomm.telephony import (
    InMemoryCredentialStore,
    InMemoryLocationStore,
    SipServer,
    loopback_only,
)
from sparklecomm.telephony import sdp as sdplib
from sparklecomm.telephony.calls import Call, OriginateRefused, Trunk
from sparklecomm.telephony.media.relay import MediaRelay, RelayConfig
from sparklecomm.telephony.pbx.routes import (
    CallRequest,
    Hunt,
    HuntStep,
    Reject,
    Route,
    Target,
    ToQueue,
)
from sparklecomm.telephony.sip.headers import Headers
from sparklecomm.telephony.sip.uri import SipUri

pytestmark = pytest.mark.timeout(60)
CALLER_ID = "+4930100"


class PlanRouter:
    """Extensions 1001-1004; ``+49…`` goes out through the trunk ``carrier`` (a dial rule);
    ``5550`` is a DID to a queue; anything else has no dial rule (403)."""

    def __init__(self) -> None:
        self.requests: list[CallRequest] = []

    async def route(self, request: CallRequest) -> Route:
        self.requests.append(request)
        number = request.dialled
        if number in PASSWORDS:
            return Hunt(
                "t1",
                (HuntStep((Target(extension=number),), 5.0),),
                description=(f"extension {number}"),
            )
        if number.startswith("+49"):
            target = Target(
                external=number, trunk_id="carrier", caller_id=CALLER_ID, caller_name="Agent"
            )
            return Hunt(
                "t1", (HuntStep((target,), 120.0),), description=f"outbound {number} via trunk c"
            )
        if number == "5550":
            return ToQueue("t1", "support")
        return Reject(403, "Outbound calls to this number are not allowed")


class Placed(Switch):
    def __init__(self, server: SipServer, relay: Any) -> None:
        super().__init__(server)
        self.relay = relay
        self.router = PlanRouter()
        self.told: list[tuple[str, str]] = []
        self.carrier_port = 0

    async def originate(self, target: str, *extensions: str, **kw: Any) -> Call:
        def on_event(call: Call, what: str) -> None:
            assert call.placed is not None
            self.told.append((what, call.placed.outcome))

        return await self.server.calls.originate(
            "t1", list(extensions or ("1001",)), target, agent_id="ag-1", on_event=on_event, **kw
        )

    def ended(self) -> dict[str, Any]:
        return next(d for _, k, d in self.events if k == "call.ended")


async def make(relay: Any) -> AsyncIterator[Placed]:
    with loopback_namespace():
        credentials = InMemoryCredentialStore()
        for user, password in PASSWORDS.items():
            credentials.add_user(user, password, REALM)
        events: list[tuple[str, str, dict[str, Any]]] = []

        async def emit(tenant: str, kind: str, data: dict[str, Any]) -> None:
            events.append((tenant, kind, data))

        async def tenant_of(extension: str) -> str | None:
            return "t1" if extension in PASSWORDS else None

        holder: dict[str, Placed] = {}

        def trunks(trunk_id: str) -> Trunk | None:
            if trunk_id != "carrier":
                return None
            return Trunk(host="127.0.0.1", port=holder["sw"].carrier_port, id="carrier")

        router = PlanRouter()
        server = SipServer(
            udp_loopback_config(TIMERS),
            clock=SystemClock(),
            credentials=credentials,
            locations=InMemoryLocationStore(),
            router=router,
            relay=relay,
            emit=emit,
            tenant_of=tenant_of,
            trunks=trunks,
        )
        await server.start()
        sw = Placed(server, relay)
        sw.router = router
        sw.events = events
        holder["sw"] = sw
        try:
            yield sw
        finally:
            for phone in sw.phones:
                await phone.stop()
            await server.stop()


@pytest.fixture
async def placed() -> AsyncIterator[Placed]:
    async for sw in make(FakeRelay()):
        yield sw


@pytest.fixture
async def placed_real_relay() -> AsyncIterator[Placed]:
    relay = MediaRelay(
        RelayConfig(host="127.0.0.1", port_min=31200, port_max=31299, allowed_target=loopback_only)
    )
    async for sw in make(relay):
        yield sw


def offered(phone: Phone) -> tuple[str, int]:
    assert phone.incoming is not None
    target = sdplib.media_target(sdplib.parse(phone.incoming.request.body))
    assert target is not None
    return target


async def test_agent_answers_then_the_extension_answers_and_both_are_bridged(
    placed: Placed,
) -> None:
    agent = await placed.phone("1001", rtp_port=4000)
    customer = await placed.phone("1002", rtp_port=5000)
    call = await placed.originate("1002")
    await placed.wait_event("call.answered")
    # The agent's phone got our own G.711 offer at the relay's leg a, shown as the target.
    assert agent.incoming is not None and customer.incoming is not None
    first = agent.incoming.request
    assert isinstance(first.from_.uri, SipUri) and first.from_.uri.user == "1002"
    offer = sdplib.parse(first.body)
    audio = offer.audio()
    assert audio is not None and audio.formats == ["0", "8", "101"]
    session = placed.relay.sessions[0]
    assert offered(agent) == ("127.0.0.1", session.a.port)
    # The target was dialled as 1001 would dial it, offered at the relay's leg b.
    second = customer.incoming.request
    assert isinstance(second.from_.uri, SipUri) and second.from_.uri.user == "1001"
    assert offered(customer) == ("127.0.0.1", session.b.port)
    assert session.remotes == {"a": ("127.0.0.1", 4000), "b": ("127.0.0.1", 5000)}
    request = placed.router.requests[0]
    assert request.extension == "1001" and request.dialled == "1002"
    assert request.tenant_id == "t1"
    # The events, each marked as originated.
    await asyncio.wait_for(customer.acks.get(), 5)
    kinds = placed.types()
    assert kinds[:2] == ["call.started", "call.agent_answered"] and "call.answered" in kinds
    started = placed.events[0][2]
    assert started["route"] == "extension 1002" and started["originated"] is True
    assert started["caller"] == "1001" and started["dialled"] == "1002"
    assert all(data.get("originated") is True for _, _, data in placed.events)
    assert placed.told == [("connected", "")]
    # The agent hangs up: the customer gets BYE, the call ends.
    await agent.hangup()
    bye = await customer.next_request("BYE")
    assert bye.request.call_id == second.call_id
    await placed.wait_event("call.ended")
    assert placed.ended()["reason"] == "agent_hangup"
    assert placed.told[-1] == ("ended", "agent_hangup")
    assert call.ended and placed.server.calls.active_calls == 0
    assert session.closed


async def test_the_customer_hanging_up_releases_the_agent(placed: Placed) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002", rtp_port=5000)
    await placed.originate("1002")
    await placed.wait_event("call.answered")
    await asyncio.wait_for(customer.acks.get(), 5)
    await customer.hangup()
    await agent.next_request("BYE")
    await placed.wait_event("call.ended")
    assert placed.ended()["reason"] == "callee_hangup"


async def test_a_busy_target_hangs_up_the_agent_with_a_reason(placed: Placed) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002")
    customer.answer = "busy"
    await placed.originate("1002")
    bye = await agent.next_request("BYE")
    reason = bye.request.headers.get("Reason") or ""
    assert "cause=486" in reason and reason.startswith("SIP ")
    await placed.wait_event("call.ended")
    ended = placed.ended()
    assert ended["reason"] == "busy" and ended["status"] == 486
    assert "call.answered" not in placed.types()
    assert placed.told == [("ended", "busy")]


async def test_the_target_not_answering_in_time_is_cancelled(placed: Placed) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002")
    customer.answer = "ring"
    await placed.originate("1002", answer_timeout=0.6)
    bye = await agent.next_request("BYE")
    assert "cause=408" in (bye.request.headers.get("Reason") or "")
    await placed.wait_event("call.ended")
    assert placed.ended()["reason"] == "no_answer" and placed.ended()["status"] == 408
    await wait_until(lambda: "CANCEL" in customer.seen)


async def test_the_agent_not_answering_is_cancelled_and_nothing_is_dialled(
    placed: Placed,
) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002")
    agent.answer = "ring"
    await placed.originate("1002", ring_seconds=0.5)
    await placed.wait_event("call.ended")
    ended = placed.ended()
    assert ended["reason"] == "agent_no_answer" and ended["status"] == 408
    await wait_until(lambda: "CANCEL" in agent.seen)
    assert customer.incoming is None and customer.seen == []
    assert placed.told == [("ended", "agent_no_answer")]
    assert placed.server.calls.active_calls == 0


async def test_a_busy_agent_phone_ends_the_call_before_dialling(placed: Placed) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002")
    agent.answer = "busy"
    await placed.originate("1002")
    await placed.wait_event("call.ended")
    ended = placed.ended()
    assert ended["reason"] == "agent_unavailable" and ended["status"] == 486
    assert customer.incoming is None


async def test_the_agent_hanging_up_while_the_target_rings_cancels_it(placed: Placed) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002")
    customer.answer = "ring"
    await placed.originate("1002")
    await placed.wait_event("call.agent_answered")
    await wait_until(lambda: customer.incoming is not None)
    await asyncio.wait_for(agent.acks.get(), 5)
    await agent.hangup()
    await placed.wait_event("call.ended")
    assert placed.ended()["reason"] == "agent_hangup"
    await wait_until(lambda: "CANCEL" in customer.seen)


async def test_first_of_the_agents_phones_wins_the_other_is_cancelled(placed: Placed) -> None:
    slow = await placed.phone("1001")
    fast = await placed.phone("1003")
    slow.answer = "ring"
    customer = await placed.phone("1002")
    await placed.originate("1002", "1001", "1003")
    await placed.wait_event("call.answered")
    await wait_until(lambda: "CANCEL" in slow.seen)
    assert fast.dialog is not None and customer.incoming is not None
    second = customer.incoming.request
    # Dialled as the agent's first extension.
    assert isinstance(second.from_.uri, SipUri) and second.from_.uri.user == "1001"


async def test_an_external_number_goes_through_the_trunk_with_its_caller_id(
    placed: Placed,
) -> None:
    agent = await placed.phone("1001")
    carrier = await placed.phone("1004", register=False, rtp_port=7000)
    placed.carrier_port = carrier.port
    await placed.originate("+4930555")
    await placed.wait_event("call.answered")
    assert carrier.incoming is not None and agent.dialog is not None
    invite = carrier.incoming.request
    assert str(invite.uri) == f"sip:+4930555@127.0.0.1:{carrier.port}"
    assert isinstance(invite.from_.uri, SipUri) and invite.from_.uri.user == CALLER_ID
    started = placed.events[0][2]
    assert started["route"].startswith("outbound +4930555")


async def test_no_dial_rule_is_refused_and_nothing_rings(placed: Placed) -> None:
    agent = await placed.phone("1001")
    with pytest.raises(OriginateRefused) as refused:
        await placed.originate("+1900555")
    assert refused.value.kind == "dial_plan" and refused.value.status == 403
    assert "not allowed" in refused.value.reason
    with pytest.raises(OriginateRefused) as queue:
        await placed.originate("5550")
    assert queue.value.kind == "dial_plan"
    await asyncio.sleep(0.2)
    assert agent.seen == [] and placed.events == []
    assert placed.relay.sessions == [] and placed.server.calls.active_calls == 0


async def test_no_registered_phone_is_refused(placed: Placed) -> None:
    await placed.phone("1002")
    with pytest.raises(OriginateRefused) as refused:
        await placed.originate("1002", "1001")
    assert refused.value.kind == "no_phone"
    with pytest.raises(OriginateRefused) as none:
        await placed.server.calls.originate("t1", [], "1002")  # an agent without extension
    assert none.value.kind == "no_phone"
    assert placed.events == [] and placed.server.calls.active_calls == 0
    assert all(session.closed for session in placed.relay.sessions)


async def test_a_refused_confirmation_hangs_up_the_agent_and_dials_nothing(
    placed: Placed,
) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002")

    async def confirm(call: Call) -> bool:
        return False

    await placed.originate("1002", confirm=confirm)
    bye = await agent.next_request("BYE")
    assert "cause=403" in (bye.request.headers.get("Reason") or "")
    await placed.wait_event("call.ended")
    assert placed.ended()["reason"] == "refused"
    assert customer.incoming is None


async def test_rtp_crosses_the_relay_between_agent_and_target(
    placed_real_relay: Placed,
) -> None:
    sw = placed_real_relay
    rtp = await RtpSinks().open("agent", "customer")
    try:
        agent = await sw.phone("1001", rtp_port=rtp.port("agent"))
        customer = await sw.phone("1002", rtp_port=rtp.port("customer"))
        await sw.originate("1002")
        await sw.wait_event("call.answered")
        to_agent_side, to_customer_side = offered(agent), offered(customer)
        assert to_agent_side != to_customer_side
        assert 31200 <= to_agent_side[1] < 31300 and 31200 <= to_customer_side[1] < 31300
        await rtp.send("agent", to_agent_side, b"\xff")
        await rtp.send("customer", to_customer_side, b"\x7f")
        assert (await rtp.received("customer")).endswith(b"\xff" * 160)
        assert (await rtp.received("agent")).endswith(b"\x7f" * 160)
        await customer.hangup()
        ended = await sw.wait_event("call.ended")
        assert ended["media"]["a_packets_in"] >= 1 and ended["media"]["b_packets_in"] >= 1
    finally:
        rtp.close()


async def test_the_agent_can_blind_transfer_the_customer(placed: Placed) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002")
    colleague = await placed.phone("1003", rtp_port=6000)
    await placed.originate("1002")
    await placed.wait_event("call.answered")
    await asyncio.wait_for(customer.acks.get(), 5)
    assert agent.dialog is not None
    headers = Headers()
    headers.add("Refer-To", "<sip:1003@127.0.0.1>")
    refer = agent.dialog.request("REFER", agent.via, headers=headers)
    assert (await agent.send(refer))[-1].status == 202
    done = await agent.next_request("NOTIFY")
    if b"100 Trying" in done.request.body:
        done = await agent.next_request("NOTIFY")
    assert b"200 OK" in done.request.body
    await agent.next_request("BYE")  # the agent's leg is released
    assert colleague.dialog is not None
    await placed.wait_event("call.transferred")
    # The customer now talks to the colleague: its BYE reaches the colleague.
    await customer.hangup()
    bye = await colleague.next_request("BYE")
    assert bye.request.call_id == colleague.dialog.call_id
    await placed.wait_event("call.ended")


async def test_hold_from_the_agent_reaches_the_customer(placed: Placed) -> None:
    agent = await placed.phone("1001")
    customer = await placed.phone("1002", rtp_port=5000)
    await placed.originate("1002")
    await placed.wait_event("call.answered")
    await asyncio.wait_for(customer.acks.get(), 5)
    assert agent.dialog is not None
    reinvite = agent.dialog.request("INVITE", agent.via, body=offer_sdp(4000, direction="sendonly"))
    responses = await agent.send(reinvite)
    assert responses[-1].status == 200
    forwarded = await customer.next_request("INVITE")
    assert sdplib.is_hold(sdplib.parse(forwarded.request.body))


async def test_a_failing_target_is_unavailable(placed: Placed) -> None:
    agent = await placed.phone("1001")
    await placed.phone("1003")  # registered, not the target
    await placed.originate("1002")  # 1002 has no registered phone
    bye = await agent.next_request("BYE")
    assert "cause=480" in (bye.request.headers.get("Reason") or "")
    await placed.wait_event("call.ended")
    assert placed.ended()["status"] == 480
