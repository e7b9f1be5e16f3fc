"""The B2BUA on real sockets inside a loopback-only namespace, with small phones written on
our own transaction layer: basic call, BYE from either side, CANCEL, busy and no answer
with hunt steps, re-INVITE hold, REFER blind transfer, authentication, events, a relay."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from tests.telephony.sip_support import RtpSinks, loopback_namespace, udp_loopback_config

from sparklecomm.core.clock import SystemClock
from sparklecomm.telephony import (
    InMemoryCredentialStore,
    InMemoryLocationStore,
    SipServer,
    loopback_only,
)
from sparklecomm.telephony import sdp as sdplib
from sparklecomm.telephony.calls import ExtensionRouter, Trunk
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
from sparklecomm.telephony.sip import SipMessage, SipRequest, SipResponse, build_response
from sparklecomm.telephony.sip.dialog import Dialog
from sparklecomm.telephony.sip.digest import DigestAuthenticator, answer_challenge
from sparklecomm.telephony.sip.headers import Headers
from sparklecomm.telephony.sip.timers import LoopScheduler, TimerConfig
from sparklecomm.telephony.sip.transaction import (
    ServerTransaction,
    TransactionLayer,
    build_cancel,
)
from sparklecomm.telephony.sip.transport import Peer, UdpTransport, new_branch
from sparklecomm.telephony.sip.uri import SipUri, parse_uri

pytestmark = pytest.mark.timeout(60)
REALM = "sparklecomm"
TIMERS = TimerConfig(t1=0.1, t2=0.4, t4=0.4, trying_delay=0.05)
PASSWORDS = {
    "1001": "pw-1001-secret",
    "1002": "pw-1002-secret",
    "1003": "pw-1003-secret",
    "1004": "pw-1004-secret",
}


def offer_sdp(port: int, *, direction: str = "sendrecv", version: int = 1) -> bytes:
    return (
        "v=0\r\n"
        f"o=phone 42 {version} IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 18 101\r\n"
        "a=rtpmap:18 G729/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        f"a={direction}\r\n"
    ).encode()


class Phone:
    """A SIP phone on loopback: registers, calls, answers (or not), hangs up."""

    def __init__(self, user: str, server_port: int, *, rtp_port: int = 4000) -> None:
        self.user = user
        self.server = Peer("UDP", "127.0.0.1", server_port)
        self.rtp_port = rtp_port
        self.transport = UdpTransport(self._receive, allowed_target=loopback_only)
        self.layer: TransactionLayer | None = None
        self.requests: asyncio.Queue[ServerTransaction] = asyncio.Queue()
        self.acks: asyncio.Queue[SipRequest] = asyncio.Queue()
        self.answer: Literal["ring", "answer", "busy", "silent"] = "answer"
        self.answer_delay = 0.0
        self.dialog: Dialog | None = None
        self.incoming: ServerTransaction | None = None
        self.seen: list[str] = []
        self.nc = 0
        self.invites: list[SipRequest] = []
        self.challenger: DigestAuthenticator | None = None

    async def start(self) -> None:
        await self.transport.start("127.0.0.1", 0)
        self.layer = TransactionLayer(
            self.transport,
            LoopScheduler(),
            self._on_request,
            timers=TIMERS,
            on_stray_ack=lambda ack, _src: self.acks.put_nowait(ack),
        )

    async def stop(self) -> None:
        if self.layer is not None:
            self.layer.close()
        await self.transport.stop()

    @property
    def port(self) -> int:
        return int(self.transport.port)

    @property
    def via(self) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port}"

    def _receive(self, message: SipMessage, source: Peer) -> None:
        assert self.layer is not None
        self.layer.receive(message, source)

    # ---- as a client -----------------------------------------------------------------

    async def send(self, request: SipRequest, peer: Peer | None = None) -> list[SipResponse]:
        """Send a request; every response until the final one."""
        assert self.layer is not None
        responses: list[SipResponse] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_response(response: SipResponse) -> None:
            responses.append(response)
            if response.status >= 200 and not done.done():
                done.set_result(None)

        self.layer.send_request(request, peer or self.server, on_response)
        await asyncio.wait_for(done, 10)
        return responses

    def _request(
        self, method: str, uri: str, *, call_id: str, cseq: int, to: str, body: bytes = b""
    ) -> SipRequest:
        headers = Headers()
        headers.add("Via", f"{self.via};branch={new_branch()};rport")
        headers.add("Max-Forwards", "70")
        headers.add("From", f'"Phone {self.user}" <sip:{self.user}@127.0.0.1>;tag=t{self.user}')
        headers.add("To", to)
        headers.add("Call-ID", call_id)
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("Contact", f"<sip:{self.user}@127.0.0.1:{self.port}>")
        if body:
            headers.add("Content-Type", "application/sdp")
        return SipRequest(method, parse_uri(uri), headers, body)

    def _authorize(self, request: SipRequest, response: SipResponse) -> None:
        header = "Proxy-Authorization" if response.status == 407 else "Authorization"
        challenges = (
            response.proxy_authenticate if response.status == 407 else response.www_authenticate
        )
        self.nc += 1
        creds = answer_challenge(
            challenges[0],
            method=request.method,
            uri=str(request.uri),
            username=self.user,
            password=PASSWORDS[self.user],
        )
        request.headers.add(header, str(creds))

    async def register(self) -> None:
        call_id = secrets.token_hex(6)
        uri = f"sip:127.0.0.1:{self.server.port}"
        to = f"<sip:{self.user}@127.0.0.1>"
        first = self._request("REGISTER", uri, call_id=call_id, cseq=1, to=to)
        first.headers.add("Expires", "600")
        responses = await self.send(first)
        assert responses[-1].status == 401
        second = self._request("REGISTER", uri, call_id=call_id, cseq=2, to=to)
        second.headers.add("Expires", "600")
        self._authorize(second, responses[-1])
        responses = await self.send(second)
        assert responses[-1].status == 200

    async def call(
        self, number: str, *, auth: bool = True, body: bytes | None = None
    ) -> OutgoingCall:
        call = OutgoingCall(self, number, body=offer_sdp(self.rtp_port) if body is None else body)
        await call.start(auth=auth)
        return call

    # ---- as a server -----------------------------------------------------------------

    def _on_request(self, tx: ServerTransaction) -> None:
        request = tx.request
        self.seen.append(request.method)
        assert self.layer is not None
        if request.method == "CANCEL":
            invite = self.layer.find_invite(request)
            tx.respond(build_response(request, 200))
            if invite is not None:
                invite.respond(build_response(invite.request, 487))
            return
        if request.method == "INVITE" and request.to.tag is None:
            self.incoming = tx
            asyncio.get_running_loop().create_task(self._answer(tx))
            return
        if self.dialog is not None and request.to.tag == self.dialog.local_tag:
            self.dialog.accept(request)
        if request.method in ("BYE", "NOTIFY"):
            tx.respond(build_response(request, 200))
        elif request.method == "INVITE":  # a re-INVITE: accept it (recvonly for a hold)
            held = bool(request.body) and sdplib.is_hold(sdplib.parse(request.body))
            ok = build_response(request, 200)
            ok.headers.add("Contact", f"<sip:{self.user}@127.0.0.1:{self.port}>")
            ok.headers.add("Content-Type", "application/sdp")
            ok.body = offer_sdp(self.rtp_port, direction="recvonly" if held else "sendrecv")
            tx.respond(ok)
        self.requests.put_nowait(tx)

    async def _answer(self, tx: ServerTransaction) -> None:
        request = tx.request
        self.invites.append(request)
        if self.challenger is not None:
            result = await self.challenger.check(request, proxy=True)
            if not result.ok:
                challenge = build_response(request, 407)
                for value in result.challenges:
                    challenge.headers.add("Proxy-Authenticate", str(value))
                tx.respond(challenge)
                return
        if self.answer == "busy":
            tx.respond(build_response(request, 486))
            return
        tag = f"p{self.user}"
        contact = f"<sip:{self.user}@127.0.0.1:{self.port}>"
        ringing = build_response(request, 180, to_tag=tag)
        ringing.headers.add("Contact", contact)
        tx.respond(ringing)
        if self.answer in ("ring", "silent"):
            return
        await asyncio.sleep(self.answer_delay)
        if tx.last_response is not None and tx.last_response.status >= 300:
            return
        ok = build_response(request, 200, to_tag=tag)
        ok.headers.add("Contact", contact)
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = offer_sdp(self.rtp_port)
        self.dialog = Dialog.as_uas(request, local_tag=tag, local_contact=contact)
        tx.respond(ok)

    async def next_request(self, method: str, limit: float = 5) -> ServerTransaction:
        while True:
            tx = await asyncio.wait_for(self.requests.get(), limit)
            if tx.request.method == method:
                return tx

    async def hangup(self) -> list[SipResponse]:
        assert self.dialog is not None
        bye = self.dialog.request("BYE", self.via)
        return await self.send(bye)


class OutgoingCall:
    def __init__(self, phone: Phone, number: str, *, body: bytes) -> None:
        self.phone = phone
        self.number = number
        self.body = body
        self.call_id = secrets.token_hex(8)
        self.responses: list[SipResponse] = []
        self.final: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self.invite: SipRequest | None = None
        self.dialog: Dialog | None = None
        self.cseq = 1
        self.ack_body = b""

    async def start(self, *, auth: bool) -> None:
        phone = self.phone
        uri = f"sip:{self.number}@127.0.0.1:{phone.server.port}"
        to = f"<sip:{self.number}@127.0.0.1>"
        invite = phone._request(
            "INVITE", uri, call_id=self.call_id, cseq=self.cseq, to=to, body=self.body
        )
        if auth:
            responses = await phone.send(invite)
            challenge = responses[-1]
            assert challenge.status == 407, challenge.status
            assert challenge.headers.get("Proxy-Authenticate")
            self.cseq += 1
            invite = phone._request(
                "INVITE", uri, call_id=self.call_id, cseq=self.cseq, to=to, body=self.body
            )
            phone._authorize(invite, challenge)
        self.invite = invite
        assert phone.layer is not None
        phone.layer.send_request(invite, phone.server, self._on_response)

    def _on_response(self, response: SipResponse) -> None:
        self.responses.append(response)
        if response.status >= 200:
            assert self.invite is not None
            if response.status < 300:
                if self.dialog is None:
                    self.dialog = Dialog.as_uac(self.invite, response)
                ack = self.dialog.request(
                    "ACK", self.phone.via, cseq=self.invite.cseq.number, body=self.ack_body
                )
                self.phone.transport.send(ack, self.phone.server)
            if not self.final.done():
                self.final.set_result(response)

    async def result(self, limit: float = 10) -> SipResponse:
        return await asyncio.wait_for(asyncio.shield(self.final), limit)

    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]

    def cancel(self) -> None:
        assert self.invite is not None and self.phone.layer is not None
        self.phone.layer.send_request(build_cancel(self.invite), self.phone.server, lambda r: None)

    async def hangup(self) -> list[SipResponse]:
        assert self.dialog is not None
        return await self.phone.send(self.dialog.request("BYE", self.phone.via))


@dataclass
class FakeSession:
    call_id: str
    a: Any
    b: Any
    remotes: dict[str, tuple[str, int]] = field(default_factory=dict)
    rtcp: dict[str, int | None] = field(default_factory=dict)
    closed: bool = False

    def set_remote(self, leg: str, host: str, port: int, *, rtcp_port: int | None = None) -> None:
        self.remotes[leg] = (host, port)
        self.rtcp[leg] = rtcp_port

    def stats(self) -> dict[str, int]:
        return {"relayed": 0}

    async def close(self) -> None:
        self.closed = True


@dataclass
class Endpoint:
    host: str
    port: int

    @property
    def rtcp_port(self) -> int:
        return self.port + 1


class FakeRelay:
    """Stands in for telephony.media.relay: hands out port pairs, records the remotes."""

    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []

    async def open(self, call_id: str) -> FakeSession:
        base = 30000 + 4 * len(self.sessions)
        session = FakeSession(call_id, Endpoint("127.0.0.1", base), Endpoint("127.0.0.1", base + 2))
        self.sessions.append(session)
        return session


class Switch:
    """The server under test, its phones and what it emitted."""

    def __init__(self, server: SipServer) -> None:
        self.server = server
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.phones: list[Phone] = []

    async def phone(self, user: str, *, register: bool = True, rtp_port: int = 4000) -> Phone:
        phone = Phone(user, self.server.port, rtp_port=rtp_port)
        await phone.start()
        self.phones.append(phone)
        if register:
            await phone.register()
        return phone

    def types(self) -> list[str]:
        return [kind for _, kind, _ in self.events]

    async def wait_event(self, kind: str, limit: float = 5) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + limit
        while True:
            for _, found, data in self.events:
                if found == kind:
                    return data
            assert asyncio.get_running_loop().time() < deadline, (kind, self.types())
            await asyncio.sleep(0.02)


RouterFactory = Callable[[], Any]


@pytest.fixture
def router_holder(request: pytest.FixtureRequest) -> dict[str, Any]:
    param = getattr(request, "param", None)
    if param is not None:
        return dict(param)
    return {"router": ExtensionRouter(PASSWORDS.keys(), tenant_id="t1"), "relay": None}


@pytest.fixture
async def switch(router_holder: dict[str, Any]) -> AsyncIterator[Switch]:
    with loopback_namespace():
        credentials = InMemoryCredentialStore()
        for user, password in PASSWORDS.items():
            credentials.add_user(user, password, REALM)
        events: list[tuple[str, str, dict[str, Any]]] = []

        async def emit(tenant: str, kind: str, data: dict[str, Any]) -> None:
            events.append((tenant, kind, data))

        async def tenant_of(extension: str) -> str | None:
            return "t1" if extension in PASSWORDS else None

        server = SipServer(
            udp_loopback_config(TIMERS),
            clock=SystemClock(),
            credentials=credentials,
            locations=InMemoryLocationStore(),
            router=router_holder["router"],
            relay=router_holder["relay"],
            emit=emit,
            tenant_of=tenant_of,
            queue_handler=router_holder.get("queue"),
            guard=router_holder.get("guard"),
            trusted_source=router_holder.get("trusted"),
            trunks=router_holder.get("trunks"),
        )
        await server.start()
        sw = Switch(server)
        sw.events = events
        try:
            yield sw
        finally:
            for phone in sw.phones:
                await phone.stop()
            await server.stop()


async def test_a_basic_call_between_two_extensions_and_bye_from_the_caller(
    switch: Switch,
) -> None:
    alice = await switch.phone("1001", rtp_port=4000)
    bob = await switch.phone("1002", rtp_port=5000)
    call = await alice.call("1002")
    final = await call.result()
    assert final.status == 200
    assert 100 in call.statuses() and 180 in call.statuses()
    # Two dialogs: the callee saw our Call-ID, not the caller's.
    assert bob.incoming is not None
    callee_invite = bob.incoming.request
    assert callee_invite.call_id != call.call_id
    caller_uri = callee_invite.from_.uri
    assert isinstance(caller_uri, SipUri) and caller_uri.user == "1001"
    assert f":{switch.server.port}" in str(callee_invite.contacts[0].uri)
    # SDP reaches each side filtered (no G.729) and otherwise unchanged without a relay.
    offer = sdplib.parse(callee_invite.body)
    audio = offer.audio()
    assert audio is not None and audio.formats == ["0", "8", "101"]
    answer = sdplib.parse(final.body)
    assert sdplib.media_target(answer) == ("127.0.0.1", 5000)
    assert final.to.tag and final.contacts
    ack = await asyncio.wait_for(bob.acks.get(), 5)
    assert ack.cseq.number == 1
    await switch.wait_event("call.answered")
    await asyncio.sleep(0.3)  # no retransmitted 2xx after the ACK
    assert call.statuses().count(200) == 1
    responses = await call.hangup()
    assert responses[-1].status == 200
    bye = await bob.next_request("BYE")
    assert bye.request.call_id == callee_invite.call_id
    ended = await switch.wait_event("call.ended")
    assert ended["reason"] == "caller_hangup"
    assert switch.types()[:3] == ["call.started", "call.ringing", "call.answered"]
    assert switch.server.calls.active_calls == 0


async def test_bye_from_the_callee_ends_the_caller_leg(switch: Switch) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    call = await alice.call("1002")
    assert (await call.result()).status == 200
    await asyncio.wait_for(bob.acks.get(), 5)
    responses = await bob.hangup()
    assert responses[-1].status == 200
    bye = await alice.next_request("BYE")
    assert bye.request.call_id == call.call_id
    assert bye.request.to.tag == "t1001"
    ended = await switch.wait_event("call.ended")
    assert ended["reason"] == "callee_hangup" and ended["duration"] >= 0


async def test_an_unauthenticated_invite_is_challenged_and_a_wrong_one_refused(
    switch: Switch,
) -> None:
    alice = await switch.phone("1001")
    await switch.phone("1002")
    call = await alice.call("1002", auth=False)
    final = await call.result()
    assert final.status == 407
    assert "Digest" in (final.headers.get("Proxy-Authenticate") or "")
    assert switch.events == []


async def test_cancel_while_ringing_cancels_the_callee(switch: Switch) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    bob.answer = "ring"
    call = await alice.call("1002")
    for _ in range(250):
        if 180 in call.statuses():
            break
        await asyncio.sleep(0.02)
    call.cancel()
    final = await call.result()
    assert final.status == 487
    for _ in range(100):
        if "CANCEL" in bob.seen:
            break
        await asyncio.sleep(0.02)
    assert "CANCEL" in bob.seen
    ended = await switch.wait_event("call.ended")
    assert ended["reason"] == "cancelled"


async def test_busy_callee_gets_the_final_rejection(switch: Switch) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    bob.answer = "busy"
    final = await (await alice.call("1002")).result()
    # The hunt's final answer (480) becomes 486 when its last step ended busy: the caller
    # hears a busy tone.
    assert (final.status, final.reason) == (486, "Busy Here")
    ended = await switch.wait_event("call.ended")
    assert ended["reason"] == "busy"


async def test_an_unregistered_or_unknown_number(switch: Switch) -> None:
    alice = await switch.phone("1001")
    assert (await (await alice.call("1003")).result()).status == 480  # nobody registered
    assert (await (await alice.call("4711")).result()).status == 404


async def test_bad_sdp_gets_488_naming_the_problem(switch: Switch) -> None:
    alice = await switch.phone("1001")
    await switch.phone("1002")
    call = await alice.call("1002", body=b"v=0\r\nthis is not sdp\r\n")
    final = await call.result()
    assert final.status == 488
    assert "line 2" in final.reason


async def test_only_unsupported_codecs_get_488(switch: Switch) -> None:
    alice = await switch.phone("1001")
    await switch.phone("1002")
    body = offer_sdp(4000).replace(b"RTP/AVP 0 8 18 101", b"RTP/AVP 18")
    final = await (await alice.call("1002", body=body)).result()
    assert final.status == 488 and "codec" in final.reason


class HuntRouter:
    def __init__(self, route: Route) -> None:
        self.route_value = route
        self.requests: list[CallRequest] = []

    async def route(self, request: CallRequest) -> Route:
        self.requests.append(request)
        return self.route_value


@pytest.mark.parametrize(
    "router_holder",
    [
        {
            "router": HuntRouter(
                Hunt(
                    "t1",
                    (
                        HuntStep((Target(extension="1002"),), ring_seconds=0.6),
                        HuntStep((Target(extension="1003"),), ring_seconds=5),
                    ),
                )
            ),
            "relay": None,
        }
    ],
    indirect=True,
)
async def test_no_answer_moves_to_the_next_hunt_step(switch: Switch) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    carol = await switch.phone("1003", rtp_port=6000)
    bob.answer = "ring"
    call = await alice.call("1002")
    final = await call.result()
    assert final.status == 200
    assert "CANCEL" in bob.seen  # the first step timed out and was cancelled
    assert carol.incoming is not None
    assert sdplib.media_target(sdplib.parse(final.body)) == ("127.0.0.1", 6000)
    await call.hangup()
    await carol.next_request("BYE")


@pytest.mark.parametrize(
    "router_holder",
    [
        {
            "router": HuntRouter(
                Hunt("t1", (HuntStep((Target(extension="1002"), Target(extension="1003"))),))
            ),
            "relay": None,
        }
    ],
    indirect=True,
)
async def test_parallel_ring_first_answer_wins_and_the_other_is_cancelled(
    switch: Switch,
) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    carol = await switch.phone("1003")
    bob.answer = "ring"
    carol.answer_delay = 0.2
    call = await alice.call("1002")
    assert (await call.result()).status == 200
    for _ in range(100):
        if "CANCEL" in bob.seen:
            break
        await asyncio.sleep(0.02)
    assert "CANCEL" in bob.seen
    assert carol.dialog is not None


@pytest.mark.parametrize(
    "router_holder",
    [{"router": ExtensionRouter(PASSWORDS.keys(), "t1"), "relay": FakeRelay()}],
    indirect=True,
)
async def test_media_is_anchored_at_the_relay_and_hold_passes_through(
    switch: Switch, router_holder: dict[str, Any]
) -> None:
    relay: FakeRelay = router_holder["relay"]
    alice = await switch.phone("1001", rtp_port=4000)
    bob = await switch.phone("1002", rtp_port=5000)
    call = await alice.call("1002")
    final = await call.result()
    assert final.status == 200
    session = relay.sessions[0]
    assert bob.incoming is not None
    assert sdplib.media_target(sdplib.parse(bob.incoming.request.body)) == (
        "127.0.0.1",
        session.b.port,
    )
    assert sdplib.media_target(sdplib.parse(final.body)) == ("127.0.0.1", session.a.port)
    assert session.remotes == {"a": ("127.0.0.1", 4000), "b": ("127.0.0.1", 5000)}
    await asyncio.wait_for(bob.acks.get(), 5)
    # The caller puts the call on hold: re-INVITE with sendonly.
    assert call.dialog is not None and call.invite is not None
    reinvite = call.dialog.request(
        "INVITE", alice.via, body=offer_sdp(4000, direction="sendonly", version=2)
    )
    responses = await alice.send(reinvite)
    assert responses[-1].status == 200
    ack = call.dialog.request("ACK", alice.via, cseq=reinvite.cseq.number)
    alice.transport.send(ack, alice.server)
    tx = await bob.next_request("INVITE")
    held = sdplib.parse(tx.request.body)
    assert sdplib.is_hold(held)
    assert sdplib.media_target(held) == ("127.0.0.1", session.b.port)
    # and the 200 we relayed back points at the relay again
    assert sdplib.media_target(sdplib.parse(responses[-1].body)) == ("127.0.0.1", session.a.port)
    await call.hangup()
    await bob.next_request("BYE")
    await switch.wait_event("call.ended")
    for _ in range(50):
        if session.closed:
            break
        await asyncio.sleep(0.02)
    assert session.closed


@pytest.mark.parametrize(
    "router_holder",
    [{"router": ExtensionRouter(PASSWORDS.keys(), "t1"), "relay": FakeRelay()}],
    indirect=True,
)
async def test_an_rtcp_port_of_its_own_is_used_and_hidden_behind_the_relay(
    switch: Switch, router_holder: dict[str, Any]
) -> None:
    """RFC 3605: the caller's RTCP is on 4100, not 4001. The relay sends it there, and
    the callee is told the relay's RTCP port instead of the caller's."""
    relay: FakeRelay = router_holder["relay"]
    alice = await switch.phone("1001", rtp_port=4000)
    bob = await switch.phone("1002", rtp_port=5000)
    body = offer_sdp(4000) + b"a=rtcp:4100 IN IP4 127.0.0.1\r\n"
    call = await alice.call("1002", body=body)
    assert (await call.result()).status == 200
    session = relay.sessions[0]
    assert session.rtcp == {"a": 4100, "b": None}  # bob's answer has no a=rtcp: port + 1
    assert bob.incoming is not None
    audio = sdplib.parse(bob.incoming.request.body).audio()
    assert audio is not None
    assert audio.attributes("rtcp") == [f"{session.b.port + 1} IN IP4 127.0.0.1"]
    await call.hangup()
    await bob.next_request("BYE")


async def test_in_dialog_options_and_unknown_dialogs(switch: Switch) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    call = await alice.call("1002")
    assert (await call.result()).status == 200
    await asyncio.wait_for(bob.acks.get(), 5)
    assert call.dialog is not None
    options = call.dialog.request("OPTIONS", alice.via)
    assert (await alice.send(options))[-1].status == 200
    stray = alice._request(
        "BYE",
        f"sip:127.0.0.1:{switch.server.port}",
        call_id="nope",
        cseq=1,
        to="<sip:x@127.0.0.1>;tag=unknown",
    )
    assert (await alice.send(stray))[-1].status == 481
    await call.hangup()


async def test_refer_blind_transfer_replaces_the_transferor(switch: Switch) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    carol = await switch.phone("1003", rtp_port=6000)
    call = await alice.call("1002")
    assert (await call.result()).status == 200
    await asyncio.wait_for(bob.acks.get(), 5)
    assert bob.dialog is not None
    headers = Headers()
    headers.add("Refer-To", "<sip:1003@127.0.0.1>")
    headers.add("Referred-By", "<sip:1002@127.0.0.1>")
    refer = bob.dialog.request("REFER", bob.via, headers=headers)
    responses = await bob.send(refer)
    assert responses[-1].status == 202
    first = await bob.next_request("NOTIFY")
    assert b"100 Trying" in first.request.body
    done = await bob.next_request("NOTIFY")
    assert b"200 OK" in done.request.body
    assert "terminated" in (done.request.headers.get("Subscription-State") or "")
    await bob.next_request("BYE")  # the transferor's leg is released
    assert carol.dialog is not None
    # Alice now talks to Carol: her BYE reaches Carol.
    await call.hangup()
    bye = await carol.next_request("BYE")
    assert bye.request.call_id == carol.dialog.call_id
    await switch.wait_event("call.transferred")


async def queue_nobody(call: Any, route: ToQueue) -> None:
    call.manager._reject(call, 486, "Busy Here", "queue_full")


@pytest.mark.parametrize(
    "router_holder",
    [
        {"router": HuntRouter(ToQueue("t1", "q1")), "relay": None},
        {"router": HuntRouter(ToQueue("t1", "q1")), "relay": None, "queue": queue_nobody},
        {"router": HuntRouter(Reject(403, "Forbidden - Toll Fraud")), "relay": None},
    ],
    indirect=True,
    ids=["no-handler", "handler", "reject"],
)
async def test_queue_and_reject_routes(switch: Switch, router_holder: dict[str, Any]) -> None:
    alice = await switch.phone("1001")
    final = await (await alice.call("5000")).result()
    expected = {"no-handler": 480, "handler": 486, "reject": 403}
    assert final.status in expected.values()
    if "queue" in router_holder:
        assert final.status == 486
    elif isinstance(router_holder["router"].route_value, Reject):
        assert final.status == 403 and final.reason == "Forbidden - Toll Fraud"
    else:
        assert final.status == 480
    request = router_holder["router"].requests[0]
    assert request.extension == "1001" and request.tenant_id == "t1" and request.dialled == "5000"


@pytest.mark.parametrize(
    "router_holder",
    [
        {
            "router": ExtensionRouter(PASSWORDS.keys(), "t1"),
            "relay": MediaRelay(
                RelayConfig(
                    host="127.0.0.1", port_min=31000, port_max=31099, allowed_target=loopback_only
                )
            ),
        }
    ],
    indirect=True,
)
async def test_rtp_flows_through_the_real_relay(
    switch: Switch, router_holder: dict[str, Any]
) -> None:
    relay: MediaRelay = router_holder["relay"]
    rtp = await RtpSinks().open("alice", "bob")
    try:
        alice = await switch.phone("1001", rtp_port=rtp.port("alice"))
        bob = await switch.phone("1002", rtp_port=rtp.port("bob"))
        call = await alice.call("1002")
        final = await call.result()
        assert final.status == 200
        assert bob.incoming is not None
        to_bob = sdplib.media_target(sdplib.parse(bob.incoming.request.body))
        to_alice = sdplib.media_target(sdplib.parse(final.body))
        assert to_bob is not None and to_alice is not None
        assert to_bob[1] != to_alice[1] and 31000 <= to_bob[1] < 31100
        await rtp.send("alice", to_alice, b"\xff")
        await rtp.send("bob", to_bob, b"\x7f")
        assert (await rtp.received("bob")).endswith(b"\xff" * 160)
        assert (await rtp.received("alice")).endswith(b"\x7f" * 160)
        await call.hangup()
        await switch.wait_event("call.ended")
        for _ in range(50):
            if not relay.sessions:
                break
            await asyncio.sleep(0.02)
        assert not relay.sessions  # closed with the call
    finally:
        rtp.close()


class CountingGuard:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failures: dict[str, int] = {}

    def allow(self, source: str) -> bool:
        return self.failures.get(source, 0) < self.limit

    def failed(self, source: str) -> None:
        self.failures[source] = self.failures.get(source, 0) + 1


@pytest.mark.parametrize(
    "router_holder",
    [{"router": ExtensionRouter(PASSWORDS.keys(), "t1"), "relay": None, "guard": CountingGuard(2)}],
    indirect=True,
)
async def test_wrong_passwords_are_reported_to_the_guard_which_then_blocks(
    switch: Switch, router_holder: dict[str, Any]
) -> None:
    guard: CountingGuard = router_holder["guard"]
    alice = await switch.phone("1001")
    await switch.phone("1002")
    PASSWORDS["1001"], good = "wrong-password", PASSWORDS["1001"]
    try:
        for _ in range(2):
            final = await (await alice.call("1002")).result()
            assert final.status == 407  # a wrong answer is challenged again ...
    finally:
        PASSWORDS["1001"] = good
    assert guard.failures == {"127.0.0.1": 2}  # ... and counted against the source
    blocked = await (await alice.call("1002", auth=False)).result()
    assert blocked.status == 403  # now refused before any challenge
    assert switch.events == []


def trunk_lookup(port_holder: dict[str, int]) -> Any:
    def lookup(trunk_id: str) -> Trunk | None:
        if trunk_id != "carrier":
            return None
        return Trunk("127.0.0.1", port_holder["port"], username="acct", password="trunk-secret-1")

    return lookup


TRUNK_PORT: dict[str, int] = {}


@pytest.mark.parametrize(
    "router_holder",
    [
        {
            "router": HuntRouter(
                Hunt("t1", (HuntStep((Target(external="+15550100", trunk_id="carrier"),)),))
            ),
            "relay": None,
            "trusted": lambda host: "carrier-in" if host == "127.0.0.1" else None,
            "trunks": trunk_lookup(TRUNK_PORT),
        }
    ],
    indirect=True,
)
async def test_trusted_trunk_source_and_outbound_trunk_with_digest(
    switch: Switch, router_holder: dict[str, Any]
) -> None:
    carrier = await switch.phone("1003", register=False, rtp_port=7000)
    TRUNK_PORT["port"] = carrier.port
    credentials = InMemoryCredentialStore()
    credentials.add_user("acct", "trunk-secret-1", "carrier.example")
    carrier.challenger = DigestAuthenticator(
        "carrier.example", credentials, SystemClock(), algorithms=("MD5",)
    )
    caller = await switch.phone("1001", register=False)
    call = await caller.call("+15550100", auth=False)  # a trusted source: no challenge
    final = await call.result()
    assert final.status == 200, final
    first, second = carrier.invites
    assert str(first.uri) == f"sip:+15550100@127.0.0.1:{carrier.port}"
    assert first.headers.get("Proxy-Authorization") is None
    assert 'username="acct"' in (second.headers.get("Proxy-Authorization") or "")
    assert second.cseq.number == first.cseq.number + 1 and second.call_id == first.call_id
    request = router_holder["router"].requests[-1]
    assert request.trunk_id == "carrier-in" and request.extension is None
    await call.hangup()
    await carrier.next_request("BYE")


async def test_late_offer_the_answer_travels_in_the_acks(switch: Switch) -> None:
    alice = await switch.phone("1001", rtp_port=4000)
    bob = await switch.phone("1002", rtp_port=5000)
    call = OutgoingCall(alice, "1002", body=b"")
    call.ack_body = offer_sdp(4000)
    await call.start(auth=True)
    final = await call.result()
    assert final.status == 200
    assert bob.incoming is not None and bob.incoming.request.body == b""
    assert sdplib.media_target(sdplib.parse(final.body)) == ("127.0.0.1", 5000)  # the offer
    ack = await asyncio.wait_for(bob.acks.get(), 5)
    answer = sdplib.parse(ack.body)  # the caller's answer, filtered, reaches the callee
    assert sdplib.media_target(answer) == ("127.0.0.1", 4000)
    assert answer.audio() is not None
    await call.hangup()
    await bob.next_request("BYE")


@pytest.mark.parametrize(
    "router_holder",
    [
        {
            "router": HuntRouter(
                Hunt(
                    "t1",
                    (
                        HuntStep(
                            (Target(extension="1002"), Target(extension="1003")), ring_seconds=10
                        ),
                        HuntStep((Target(extension="9999"),), ring_seconds=10),  # unregistered
                        HuntStep((Target(extension="1004"),), ring_seconds=10),
                    ),
                )
            ),
            "relay": None,
        }
    ],
    indirect=True,
)
async def test_a_step_whose_phones_all_refuse_moves_on_at_once(switch: Switch) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    carol = await switch.phone("1003")
    dave = await switch.phone("1004", rtp_port=7000)
    bob.answer = carol.answer = "busy"
    started = asyncio.get_running_loop().time()
    call = await alice.call("1002")
    final = await call.result()
    assert final.status == 200
    assert asyncio.get_running_loop().time() - started < 5  # not the 10 s ring time
    assert bob.incoming is not None and carol.incoming is not None and dave.dialog is not None
    await call.hangup()
    await dave.next_request("BYE")


class SlowRouter(ExtensionRouter):
    async def route(self, request: CallRequest) -> Route:
        await asyncio.sleep(0.4)
        return await super().route(request)


@pytest.mark.parametrize(
    "router_holder",
    [{"router": SlowRouter(PASSWORDS.keys(), "t1"), "relay": None}],
    indirect=True,
)
async def test_cancel_while_the_dial_plan_is_still_deciding(switch: Switch) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    call = await alice.call("1002")
    for _ in range(100):
        if 100 in call.statuses():
            break
        await asyncio.sleep(0.01)
    call.cancel()
    assert (await call.result()).status == 487
    ended = await switch.wait_event("call.ended")
    assert ended["reason"] == "cancelled"
    await asyncio.sleep(0.5)
    assert bob.incoming is None  # the callee never rang
    assert switch.server.calls.active_calls == 0


# ---- forwarding on busy vs no answer, extensions in a call, trunk channels, long waits ----

FORWARDS = Hunt(
    "t1",
    (
        HuntStep((Target(extension="1002"),), ring_seconds=0.5),
        HuntStep((Target(extension="1003"),), ring_seconds=5, when="no_answer"),
        HuntStep((Target(extension="1004"),), ring_seconds=5, when="busy"),
    ),
)


@pytest.mark.parametrize(
    "router_holder", [{"router": HuntRouter(FORWARDS), "relay": None}], indirect=True
)
@pytest.mark.parametrize(
    ("bob_does", "answered_by"),
    [("busy", "1004"), ("ring", "1003"), ("unregistered", "1003")],
)
async def test_forward_on_busy_and_on_no_answer_are_told_apart(
    switch: Switch, bob_does: str, answered_by: str
) -> None:
    alice = await switch.phone("1001")
    bob = await switch.phone("1002", register=bob_does != "unregistered")
    if bob_does != "unregistered":
        bob.answer = "busy" if bob_does == "busy" else "ring"
    carol = await switch.phone("1003", rtp_port=6000)
    dave = await switch.phone("1004", rtp_port=7000)
    call = await alice.call("1002")
    final = await call.result()
    assert final.status == 200
    port = {"1003": 6000, "1004": 7000}[answered_by]
    assert sdplib.media_target(sdplib.parse(final.body)) == ("127.0.0.1", port)
    # Only the matching forward rang: the other one never saw an INVITE.
    skipped = dave if answered_by == "1003" else carol
    assert skipped.invites == []
    assert len(bob.invites) == (0 if bob_does == "unregistered" else 1)
    await call.hangup()


@pytest.mark.parametrize(
    "router_holder", [{"router": HuntRouter(FORWARDS), "relay": None}], indirect=True
)
async def test_every_forward_fails_busy_so_the_caller_hears_busy(switch: Switch) -> None:
    alice = await switch.phone("1001")
    for user in ("1002", "1004"):
        (await switch.phone(user)).answer = "busy"
    carol = await switch.phone("1003")
    final = await (await alice.call("1002")).result()
    assert (final.status, final.reason) == (486, "Busy Here")
    assert carol.invites == []  # a busy extension does not take the no-answer forward


CALL_WAITING = Hunt(
    "t1",
    (
        HuntStep((Target(extension="1002"),), ring_seconds=5),
        HuntStep((Target(extension="1004"),), ring_seconds=5, when="busy"),
    ),
)


@pytest.mark.parametrize(
    "router_holder", [{"router": HuntRouter(CALL_WAITING), "relay": None}], indirect=True
)
async def test_an_extension_in_a_call_through_us_counts_as_busy(switch: Switch) -> None:
    """Bob's phone has call waiting (it would ring again): we forward on busy ourselves."""
    alice = await switch.phone("1001")
    bob = await switch.phone("1002", rtp_port=5000)
    carol = await switch.phone("1003", rtp_port=6000)
    dave = await switch.phone("1004", rtp_port=7000)
    first = await alice.call("1002")
    assert (await first.result()).status == 200
    second = await carol.call("1002")
    final = await second.result()
    assert final.status == 200
    assert sdplib.media_target(sdplib.parse(final.body)) == ("127.0.0.1", 7000)  # Dave
    assert len(bob.invites) == 1  # Bob's phone did not ring a second time
    await second.hangup()
    await first.hangup()
    await bob.next_request("BYE")
    # Bob is free again: the next call rings him.
    bob.answer = "busy"
    third = await carol.call("1002")
    assert (await third.result()).status == 200
    assert len(bob.invites) == 2 and len(dave.invites) == 2


def limited_trunk(port_holder: dict[str, int]) -> Any:
    def lookup(trunk_id: str) -> Trunk | None:
        if trunk_id != "carrier":
            return None
        return Trunk("127.0.0.1", port_holder["port"], id="carrier", max_channels=1)

    return lookup


LIMITED_PORT: dict[str, int] = {}


@pytest.mark.parametrize(
    "router_holder",
    [
        {
            "router": HuntRouter(
                Hunt("t1", (HuntStep((Target(external="+15550100", trunk_id="carrier"),)),))
            ),
            "relay": None,
            "trunks": limited_trunk(LIMITED_PORT),
        }
    ],
    indirect=True,
)
async def test_outbound_calls_beyond_the_trunks_max_channels_get_503(switch: Switch) -> None:
    carrier = await switch.phone("1003", register=False, rtp_port=7000)
    LIMITED_PORT["port"] = carrier.port
    alice = await switch.phone("1001")
    bob = await switch.phone("1002")
    first = await alice.call("+15550100")
    assert (await first.result()).status == 200
    refused = await (await bob.call("+15550100")).result()
    assert refused.status == 503
    assert refused.reason == "Service Unavailable - Trunk Channels Full"
    assert len(carrier.invites) == 1  # the second call never reached the carrier
    ended = await switch.wait_event("call.ended")
    assert ended["status"] == 503
    await first.hangup()
    await carrier.next_request("BYE")
    again = await (await bob.call("+15550100")).result()
    assert again.status == 200  # the channel is free again
    assert len(carrier.invites) == 2


@pytest.mark.parametrize(
    "router_holder",
    [
        {
            "router": ExtensionRouter(PASSWORDS.keys(), tenant_id="t1"),
            "relay": None,
            "trusted": lambda host: "carrier" if host == "127.0.0.1" else None,
            "trunks": limited_trunk(LIMITED_PORT),
        }
    ],
    indirect=True,
)
async def test_inbound_calls_beyond_the_trunks_max_channels_get_503(switch: Switch) -> None:
    carrier = await switch.phone("1003", register=False)
    LIMITED_PORT["port"] = carrier.port
    await switch.phone("1002", rtp_port=5000)
    await switch.phone("1004", rtp_port=6000)
    first = await carrier.call("1002", auth=False)
    assert (await first.result()).status == 200
    refused = await (await carrier.call("1004", auth=False)).result()
    assert refused.status == 503
    assert refused.reason == "Service Unavailable - Trunk Channels Full"
    await first.hangup()
    again = await (await carrier.call("1004", auth=False)).result()
    assert again.status == 200


async def queue_waits(call: Any, route: ToQueue) -> None:
    call.manager.ringback(call)  # and nobody answers: the caller waits


@pytest.mark.parametrize(
    "router_holder",
    [{"router": HuntRouter(ToQueue("t1", "q1")), "relay": None, "queue": queue_waits}],
    indirect=True,
)
async def test_a_long_wait_in_a_queue_repeats_the_180(switch: Switch) -> None:
    switch.server.calls.ringback_interval = 0.2
    alice = await switch.phone("1001")
    call = await alice.call("5000")
    await asyncio.sleep(1.0)
    rang = call.statuses().count(180)
    assert 4 <= rang <= 7, call.statuses()  # one at once, then one every 0.2 s
    call.cancel()
    assert (await call.result()).status == 487
    await asyncio.sleep(0.6)
    assert call.statuses().count(180) == rang  # stopped when the call ended
