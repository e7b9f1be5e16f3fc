"""SIP over TLS (RFC 3261 §26, RFC 5630) on real sockets in a loopback-only namespace, with
Python's ``ssl`` as the phones: REGISTER challenged and answered on the phone's own
connection, calls to a phone registered over TLS sent over that connection (or over a new,
verified one when it is gone), ``sips:`` never downgraded to UDP/TCP, and certificate or
key files that cannot be used reported by name."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.telephony.sip_support import (
    StreamPeer,
    free_port,
    loopback_namespace,
    make_tls_certificate,
)

from sparklecomm.core.clock import SystemClock
from sparklecomm.telephony import (
    InMemoryCredentialStore,
    InMemoryLocationStore,
    SipServer,
    SipServerConfig,
    loopback_only,
)
from sparklecomm.telephony.calls import ExtensionRouter, _binding_peer, _contact
from sparklecomm.telephony.server import tls_options
from sparklecomm.telephony.sip import SipRequest, SipResponse, parse_datagram
from sparklecomm.telephony.sip.digest import answer_challenge
from sparklecomm.telephony.sip.location import Binding
from sparklecomm.telephony.sip.message import build_response
from sparklecomm.telephony.sip.timers import TimerConfig
from sparklecomm.telephony.sip.transport import (
    Peer,
    TlsConfigError,
    client_tls_context,
    server_tls_context,
)
from sparklecomm.telephony.sip.uri import parse_uri

pytestmark = pytest.mark.timeout(60)

REALM = "sparklecomm"
PASSWORDS = {"1001": "alice-secret", "1002": "bob-secret"}
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


@dataclass
class Tls:
    server: SipServer
    locations: InMemoryLocationStore
    certificate: str
    key: str
    directory: Path
    peers: list[StreamPeer] = field(default_factory=list)

    @property
    def tls_port(self) -> int:
        assert self.server.tls is not None
        return self.server.tls.port

    async def phone(self) -> StreamPeer:
        """A TLS connection to the server, trusting its self-signed certificate."""
        peer = await StreamPeer.connect(self.tls_port, cafile=self.certificate)
        self.peers.append(peer)
        return peer


@pytest.fixture
async def tls(tmp_path: Path) -> AsyncIterator[Tls]:
    certificate, key = make_tls_certificate(tmp_path)
    with loopback_namespace():
        credentials = InMemoryCredentialStore()
        for user, password in PASSWORDS.items():
            credentials.add_user(user, password, REALM)
        locations = InMemoryLocationStore()
        server = SipServer(
            SipServerConfig(
                host="127.0.0.1",
                port=0,
                transports=("UDP", "TCP", "TLS"),
                tls_port=0,
                tls_certificate=certificate,
                tls_private_key=key,
                tls_ca_file=certificate,  # the phones' listeners use the same certificate
                digest_algorithms=("MD5",),
                timers=TimerConfig(t1=0.1, t2=0.4, t4=0.5),
                allowed_target=loopback_only,
            ),
            clock=SystemClock(),
            credentials=credentials,
            locations=locations,
            trusted_source=lambda host: "carrier",  # INVITEs need no digest here
            # Every number is an extension; 480 (486 when busy) when none answers.
            router=ExtensionRouter(lambda number: number.isdigit()),
        )
        await server.start()
        running = Tls(server, locations, certificate, key, tmp_path)
        try:
            yield running
        finally:
            for peer in running.peers:
                await peer.close()
            await server.stop()


def register_text(
    *,
    transport: str,
    local_port: int,
    contact: str,
    cseq: int,
    call_id: str,
    user: str = "1002",
    authorization: str = "",
) -> str:
    return (
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch=z9hG4bK{secrets.token_hex(6)}"
        ";rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@127.0.0.1>;tag=reg{cseq}\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: {contact}\r\n"
        "Expires: 300\r\n"
        f"{authorization}"
        "Content-Length: 0\r\n\r\n"
    )


def authorization_for(challenge: SipResponse, user: str) -> str:
    assert challenge.status == 401, challenge.status
    credentials = answer_challenge(
        challenge.www_authenticate[0],
        method="REGISTER",
        uri="sip:127.0.0.1",
        username=user,
        password=PASSWORDS[user],
    )
    return f"Authorization: {credentials}\r\n"


async def register_stream(
    phone: StreamPeer, contact: str, *, transport: str = "TLS", user: str = "1002"
) -> tuple[SipResponse, SipResponse]:
    """REGISTER on ``phone``'s connection: the 401 and the 200, both read from it."""
    call_id = f"reg-{secrets.token_hex(4)}"
    common = {"transport": transport, "local_port": phone.local_port, "contact": contact}
    phone.send(register_text(cseq=1, call_id=call_id, user=user, **common))
    challenge = await phone.receive()
    assert isinstance(challenge, SipResponse)
    auth = authorization_for(challenge, user)
    phone.send(register_text(cseq=2, call_id=call_id, user=user, authorization=auth, **common))
    ok = await phone.receive()
    assert isinstance(ok, SipResponse)
    return challenge, ok


class UdpPhone(asyncio.DatagramProtocol):
    """A UDP endpoint on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, text: str, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(text.encode(), ("127.0.0.1", port))

    async def receive(self, limit: float = 5.0) -> SipResponse | SipRequest:
        data = await asyncio.wait_for(self.received.get(), limit)
        message = parse_datagram(data)
        assert isinstance(message, SipResponse | SipRequest)
        return message


async def udp_phone() -> UdpPhone:
    loop = asyncio.get_running_loop()
    phone = UdpPhone()
    transport, _ = await loop.create_datagram_endpoint(lambda: phone, local_addr=("127.0.0.1", 0))
    phone.transport = transport
    return phone


def invite_text(uri: str, *, transport: str, local_port: int, call_id: str, body: str = "") -> str:
    content = f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    return (
        f"INVITE {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch=z9hG4bK{secrets.token_hex(6)}"
        ";rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:carol@127.0.0.1>;tag=caller1\r\n"
        "To: <sip:1002@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:carol@127.0.0.1:{local_port};transport={transport.lower()}>\r\n"
        f"{content}"
    )


async def final_response(receive: object, limit: float = 10.0) -> SipResponse:
    """The first final response (provisional ones skipped)."""
    assert callable(receive)
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        left = deadline - asyncio.get_running_loop().time()
        message = await receive(max(left, 0.01))
        if isinstance(message, SipResponse) and message.status >= 200:
            return message


# ---- REGISTER over TLS -----------------------------------------------------------------


async def test_register_over_tls_is_challenged_and_bound_on_the_same_connection(
    tls: Tls,
) -> None:
    phone = await tls.phone()
    contact = f"<sip:1002@127.0.0.1:{phone.local_port};transport=tls>"
    challenge, ok = await register_stream(phone, contact)
    assert challenge.status == 401 and challenge.www_authenticate
    assert challenge.top_via.transport == "TLS"
    assert ok.status == 200, ok.reason
    assert ok.headers.get("Contact") is not None and "transport=tls" in ok.headers.get(
        "Contact", ""
    )
    # Both answers came back over the phone's connection: the server opened none.
    assert tls.server.tls is not None and tls.server.tls.connection_count == 1
    (binding,) = await tls.locations.bindings("sip:1002@127.0.0.1")
    assert binding.source == f"TLS:127.0.0.1:{phone.local_port}"
    assert binding.transport == "TLS"
    # OPTIONS on the same connection: 200 with Allow.
    phone.send(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:{phone.local_port};branch=z9hG4bKopt1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:1002@127.0.0.1>;tag=o1\r\nTo: <sip:127.0.0.1>\r\n"
        "Call-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    answer = await phone.receive()
    assert isinstance(answer, SipResponse) and answer.status == 200
    assert "INVITE" in answer.headers.get_all("Allow")


async def test_sips_register_is_the_same_address_of_record(tls: Tls) -> None:
    phone = await tls.phone()
    call_id = "reg-sips"
    text = register_text(
        transport="TLS",
        local_port=phone.local_port,
        contact=f"<sips:1002@127.0.0.1:{phone.local_port}>",
        cseq=1,
        call_id=call_id,
    ).replace("To: <sip:1002@", "To: <sips:1002@")
    phone.send(text.replace("REGISTER sip:", "REGISTER sips:"))
    challenge = await phone.receive()
    assert isinstance(challenge, SipResponse) and challenge.status == 401
    auth = answer_challenge(
        challenge.www_authenticate[0],
        method="REGISTER",
        uri="sips:127.0.0.1",
        username="1002",
        password=PASSWORDS["1002"],
    )
    text = register_text(
        transport="TLS",
        local_port=phone.local_port,
        contact=f"<sips:1002@127.0.0.1:{phone.local_port}>",
        cseq=2,
        call_id=call_id,
        authorization=f"Authorization: {auth}\r\n",
    ).replace("To: <sip:1002@", "To: <sips:1002@")
    phone.send(text.replace("REGISTER sip:", "REGISTER sips:"))
    ok = await phone.receive()
    assert isinstance(ok, SipResponse) and ok.status == 200, ok.reason
    (binding,) = await tls.server.locate("1002", "127.0.0.1")
    assert binding.aor == "sip:1002@127.0.0.1"
    assert binding.contact.startswith("sips:")


# ---- calls to a phone registered over TLS ------------------------------------------------


async def test_a_call_reaches_a_tls_phone_over_its_own_connection(tls: Tls) -> None:
    bob = await tls.phone()
    unused = 9  # the Contact's port: nothing listens there, the connection is used
    await register_stream(bob, f"<sip:1002@127.0.0.1:{unused};transport=tls>")
    caller = await udp_phone()
    try:
        caller.send(
            invite_text(
                "sip:1002@127.0.0.1", transport="UDP", local_port=caller.port, call_id="c-tls-1"
            ),
            tls.server.port,
        )
        invite = await bob.receive()
        assert isinstance(invite, SipRequest) and invite.method == "INVITE"
        assert str(invite.uri) == f"sip:1002@127.0.0.1:{unused};transport=tls"
        via = invite.top_via
        assert (via.transport, via.port) == ("TLS", tls.tls_port)
        contact = invite.headers.get("Contact", "")
        assert f"127.0.0.1:{tls.tls_port};transport=tls" in contact, contact
        bob.send(build_response(invite, 486).to_bytes())
        ack = await bob.receive()  # the ACK of the 486, over the same connection
        assert isinstance(ack, SipRequest) and ack.method == "ACK"
        final = await final_response(caller.receive)
        assert final.status == 486
        assert tls.server.tls is not None and tls.server.tls.connection_count == 1
    finally:
        assert caller.transport is not None
        caller.transport.close()


async def test_a_sips_call_gets_a_sips_contact_and_stays_on_tls(tls: Tls) -> None:
    bob = await tls.phone()
    await register_stream(bob, f"<sip:1002@127.0.0.1:{bob.local_port};transport=tls>")
    carol = await tls.phone()
    carol.send(
        invite_text(
            "sips:1002@127.0.0.1",
            transport="TLS",
            local_port=carol.local_port,
            call_id="c-sips-1",
            body=SDP,
        )
    )
    invite = await bob.receive()
    assert isinstance(invite, SipRequest) and invite.method == "INVITE"
    assert invite.top_via.transport == "TLS"
    ok = build_response(invite, 200, to_tag="bobtag")
    ok.headers.add("Contact", f"<sip:1002@127.0.0.1:{bob.local_port};transport=tls>")
    ok.headers.add("Content-Type", "application/sdp")
    ok.body = SDP.encode()
    bob.send(ok.to_bytes())
    answer = await final_response(carol.receive)
    assert answer.status == 200
    # §8.1.1.8: the dialog of a sips: request gets our sips: Contact (the TLS port).
    assert answer.headers.get("Contact") == f"<sips:127.0.0.1:{tls.tls_port}>"


@pytest.mark.parametrize("bob_transport", ["UDP", "TCP"])
async def test_a_sips_call_is_never_sent_over_udp_or_tcp(tls: Tls, bob_transport: str) -> None:
    caller_udp: UdpPhone | None = None
    bob_udp = await udp_phone()
    try:
        if bob_transport == "UDP":
            call_id = "reg-udp"
            contact = f"<sip:1002@127.0.0.1:{bob_udp.port}>"
            common = {"transport": "UDP", "local_port": bob_udp.port, "contact": contact}
            bob_udp.send(register_text(cseq=1, call_id=call_id, **common), tls.server.port)
            challenge = await bob_udp.receive()
            assert isinstance(challenge, SipResponse)
            auth = authorization_for(challenge, "1002")
            bob_udp.send(
                register_text(cseq=2, call_id=call_id, authorization=auth, **common),
                tls.server.port,
            )
            ok = await bob_udp.receive()
        else:
            assert tls.server.tcp is not None
            bob_tcp = await StreamPeer.connect(tls.server.tcp.port)
            tls.peers.append(bob_tcp)
            _, ok = await register_stream(
                bob_tcp, f"<sip:1002@127.0.0.1:{bob_udp.port};transport=tcp>", transport="TCP"
            )
        assert isinstance(ok, SipResponse) and ok.status == 200
        carol = await tls.phone()
        carol.send(
            invite_text(
                "sips:1002@127.0.0.1", transport="TLS", local_port=carol.local_port, call_id="c-2"
            )
        )
        final = await final_response(carol.receive)
        assert (final.status, final.reason) == (
            480,
            "Temporarily Unavailable - No TLS Path (SIPS)",
        )
        # Nothing reached bob's UDP socket, and the TCP phone got no INVITE either.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bob_udp.received.get(), 0.5)
        if bob_transport == "TCP":
            with pytest.raises(AssertionError, match="no SIP message"):
                await tls.peers[0].receive(0.3)
        # The same call as sip: is connected over the phone's transport (control).
        caller_udp = await udp_phone()
        caller_udp.send(
            invite_text(
                "sip:1002@127.0.0.1", transport="UDP", local_port=caller_udp.port, call_id="c-3"
            ),
            tls.server.port,
        )
        if bob_transport == "UDP":
            invite = await bob_udp.receive()
        else:
            invite = await tls.peers[0].receive()
        assert isinstance(invite, SipRequest) and invite.method == "INVITE"
    finally:
        for phone in (bob_udp, caller_udp):
            if phone is not None and phone.transport is not None:
                phone.transport.close()


async def test_a_sips_request_that_did_not_come_over_tls_gets_416(tls: Tls) -> None:
    caller = await udp_phone()
    try:
        caller.send(
            invite_text(
                "sips:1002@127.0.0.1", transport="UDP", local_port=caller.port, call_id="c-416"
            ),
            tls.server.port,
        )
        final = await final_response(caller.receive)
        assert final.status == 416
        assert final.reason == "Unsupported URI Scheme - SIPS Needs TLS"
    finally:
        assert caller.transport is not None
        caller.transport.close()


async def test_when_the_phones_connection_is_gone_a_verified_one_is_opened(tls: Tls) -> None:
    """The phone listens for TLS at its Contact; its registration's connection closed."""
    accepted: asyncio.Queue[StreamPeer] = asyncio.Queue()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(StreamPeer(reader, writer))

    phone_context = server_tls_context(tls.certificate, tls.key)
    listener = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=phone_context)
    listen_port = listener.sockets[0].getsockname()[1]
    caller = await udp_phone()
    try:
        bob = await tls.phone()
        await register_stream(bob, f"<sip:1002@127.0.0.1:{listen_port};transport=tls>")
        await bob.close()
        tls.peers.remove(bob)
        assert tls.server.tls is not None
        for _ in range(100):
            if tls.server.tls.connection_count == 0:
                break
            await asyncio.sleep(0.02)
        assert tls.server.tls.connection_count == 0
        caller.send(
            invite_text(
                "sip:1002@127.0.0.1", transport="UDP", local_port=caller.port, call_id="c-re"
            ),
            tls.server.port,
        )
        fresh = await asyncio.wait_for(accepted.get(), 5)
        tls.peers.append(fresh)
        invite = await fresh.receive()
        assert isinstance(invite, SipRequest) and invite.method == "INVITE"
        assert invite.top_via.transport == "TLS"
    finally:
        assert caller.transport is not None
        caller.transport.close()
        listener.close()
        await listener.wait_closed()


async def test_a_phone_certificate_that_is_not_trusted_gets_no_request(tls: Tls) -> None:
    other_cert, other_key = make_tls_certificate(tls.directory, name="stranger")
    accepted: asyncio.Queue[StreamPeer] = asyncio.Queue()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(StreamPeer(reader, writer))

    listener = await asyncio.start_server(
        on_connection, "127.0.0.1", 0, ssl=server_tls_context(other_cert, other_key)
    )
    listen_port = listener.sockets[0].getsockname()[1]
    caller = await udp_phone()
    try:
        bob = await tls.phone()
        await register_stream(bob, f"<sips:1002@127.0.0.1:{listen_port}>")
        await bob.close()
        tls.peers.remove(bob)
        await asyncio.sleep(0.2)
        caller.send(
            invite_text(
                "sip:1002@127.0.0.1", transport="UDP", local_port=caller.port, call_id="c-bad"
            ),
            tls.server.port,
        )
        # The server refuses the handshake (unknown CA): no connection, no INVITE.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(accepted.get(), 1.5)
    finally:
        assert caller.transport is not None
        caller.transport.close()
        listener.close()
        await listener.wait_closed()


# ---- configuration errors ------------------------------------------------------------------


def test_certificate_and_key_problems_name_the_file(tmp_path: Path) -> None:
    certificate, key = make_tls_certificate(tmp_path)
    other_cert, other_key = make_tls_certificate(tmp_path, name="other")
    encrypted = tmp_path / "encrypted-key.pem"
    subprocess.run(
        ["openssl", "pkey", "-in", key, "-aes256", "-passout", "pass:x", "-out", str(encrypted)],
        check=True,
        capture_output=True,
    )
    missing = tmp_path / "missing.pem"
    cases = [
        (str(missing), key, f"cannot read the SIP TLS certificate {missing}"),
        (key, key, f"the SIP TLS certificate {key} holds no PEM certificate"),
        (certificate, certificate, f"the SIP TLS private key {certificate} holds no PEM"),
        (certificate, other_key, f"the SIP TLS private key {other_key} does not belong"),
        (certificate, str(encrypted), f"the SIP TLS private key {encrypted} is encrypted"),
    ]
    for cert_path, key_path, message in cases:
        with pytest.raises(TlsConfigError) as caught:
            server_tls_context(cert_path, key_path)
        assert message in str(caught.value)
    with pytest.raises(TlsConfigError, match="cannot read the SIP TLS CA file"):
        client_tls_context(ca_file=missing)
    with pytest.raises(TlsConfigError, match="unsupported minimum TLS version"):
        server_tls_context(certificate, key, min_version="SSLv3")
    context = server_tls_context(other_cert, other_key, min_version="TLSv1.3")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


async def test_the_server_refuses_to_start_tls_without_usable_files(tmp_path: Path) -> None:
    certificate, _ = make_tls_certificate(tmp_path)
    missing = tmp_path / "nope.pem"
    for extra, message in [
        ({}, "sip_tls_certificate is not set"),
        ({"tls_certificate": certificate}, "sip_tls_private_key is not set"),
        (
            {"tls_certificate": certificate, "tls_private_key": missing},
            f"cannot read the SIP TLS private key {missing}",
        ),
    ]:
        server = SipServer(
            SipServerConfig(host="127.0.0.1", port=0, transports=("UDP", "TLS"), **extra),
            clock=SystemClock(),
            credentials=InMemoryCredentialStore(),
            locations=InMemoryLocationStore(),
        )
        with pytest.raises(TlsConfigError, match=message):
            await server.start()
        assert server.udp is None and server.tls is None  # nothing was bound


@pytest.mark.slow  # `serve` takes seconds to start its interpreter
def test_serve_names_the_unreadable_certificate_without_a_traceback(tmp_path: Path) -> None:
    _, key = make_tls_certificate(tmp_path)
    exe = Path(sys.executable).with_name("sparklecomm")
    missing = tmp_path / "missing-cert.pem"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKLECOMM_")}
    with loopback_namespace():
        done = subprocess.run(
            [
                str(exe),
                "serve",
                "--data-dir",
                str(tmp_path / "data"),
                "--port",
                str(free_port(socket.SOCK_STREAM)),
                "--sip-port",
                "0",
                "--sip-tls-certificate",
                str(missing),
                "--sip-tls-private-key",
                key,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: SIP over TLS: cannot read the SIP TLS certificate {missing}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


# ---- pure pieces ------------------------------------------------------------------------


def _binding(contact: str, source: str | None) -> Binding:
    from datetime import UTC, datetime

    return Binding(
        aor="sip:1002@example.com",
        contact=contact,
        expires_at=datetime(2100, 1, 1, tzinfo=UTC),
        call_id="x",
        cseq=1,
        source=source,
    )


def test_binding_peer_keeps_tls_and_prefers_the_phones_connection() -> None:
    flow = "TLS:203.0.113.5:40000"
    tls_contact = "sip:1002@192.168.1.20:5071;transport=tls"

    def peer(contact: str, source: str | None, alive: bool | None = None) -> Peer | None:
        connected = None if alive is None else (lambda _peer: alive)
        return _binding_peer(_binding(contact, source), parse_uri(contact), connected)

    assert peer(tls_contact, flow) == Peer("TLS", "203.0.113.5", 40000)
    assert peer(tls_contact, flow, alive=True) == Peer("TLS", "203.0.113.5", 40000)
    # The flow is gone: the Contact, still over TLS.
    assert peer(tls_contact, flow, alive=False) == Peer("TLS", "192.168.1.20", 5071)
    assert peer("sips:1002@192.168.1.20", flow, alive=False) == Peer("TLS", "192.168.1.20", 5061)
    # A Contact that names UDP, registered over TLS: TLS at 5061, never the UDP port.
    assert peer("sip:1002@192.168.1.20:5070", flow, alive=False) == Peer(
        "TLS", "192.168.1.20", 5061
    )
    # A sips: Contact is reached over TLS whatever the REGISTER came over.
    assert peer("sips:1002@192.0.2.7:5071", "TCP:192.0.2.7:41000") == Peer("TLS", "192.0.2.7", 5071)
    assert peer("sips:1002@192.0.2.7", "UDP:192.0.2.7:5060") == Peer("TLS", "192.0.2.7", 5061)
    assert peer("sips:1002@10.0.0.7:5071", "UDP:198.51.100.1:6000") == Peer(
        "TLS", "198.51.100.1", 5071
    )
    # Unchanged: UDP behind NAT uses the source; TCP flows are reused.
    assert peer("sip:1002@10.0.0.7:5060", "UDP:198.51.100.1:6000") == Peer(
        "UDP", "198.51.100.1", 6000
    )
    assert peer("sip:1002@10.0.0.7;transport=tcp", "TCP:198.51.100.1:6001") == Peer(
        "TCP", "198.51.100.1", 6001
    )


def test_our_contact_names_tls_or_sips() -> None:
    peer = Peer("TLS", "192.0.2.1", 40000)
    assert _contact("192.0.2.9", 5061, peer) == "<sip:192.0.2.9:5061;transport=tls>"
    assert _contact("192.0.2.9", 5061, peer, secure=True) == "<sips:192.0.2.9:5061>"
    assert _contact("192.0.2.9", 5060, Peer("UDP", "192.0.2.1", 5060)) == "<sip:192.0.2.9:5060>"


def test_tls_options_add_tls_when_a_certificate_is_set() -> None:
    base = {
        "sip_transports": ["UDP", "TCP"],
        "sip_tls_port": 5061,
        "sip_tls_certificate": None,
        "sip_tls_private_key": None,
        "sip_tls_min_version": "TLSv1.2",
        "sip_tls_ca_file": None,
        "sip_tls_verify_peer": True,
    }
    assert tls_options(SimpleNamespace(**base))["transports"] == ("UDP", "TCP")
    with_files = {**base, "sip_tls_certificate": Path("c.pem"), "sip_tls_private_key": "k.pem"}
    options = tls_options(SimpleNamespace(**with_files))
    assert options["transports"] == ("UDP", "TCP", "TLS")
    assert options["tls_certificate"] == Path("c.pem") and options["tls_port"] == 5061


def test_settings_take_the_tls_fields() -> None:
    from sparklecomm.settings import Settings

    settings = Settings(
        sip_transports=["UDP", "TLS"],
        sip_tls_port=0,
        sip_tls_certificate=Path("/etc/sparklecomm/sip.pem"),
        sip_tls_private_key=Path("/etc/sparklecomm/sip.key"),
    )
    assert settings.sip_tls_min_version == "TLSv1.2" and settings.sip_tls_verify_peer
    assert tls_options(settings)["transports"] == ("UDP", "TLS")
