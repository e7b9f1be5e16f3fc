"""The SIP server's request handling without sockets: OPTIONS, 501, 416, 483, 420, 405,
CANCEL, and REGISTER through the transaction layer."""

from __future__ import annotations

import asyncio

import pytest
from tests.telephony.sip_support import CLIENT, RecordingSender, request

from sparklecomm.core.clock import FakeClock
from sparklecomm.telephony import (
    ALLOWED_METHODS,
    InMemoryCredentialStore,
    InMemoryLocationStore,
    SipServer,
    SipServerConfig,
)
from sparklecomm.telephony.sip import SipResponse, parse_datagram
from sparklecomm.telephony.sip.timers import FakeScheduler

Wired = tuple[SipServer, RecordingSender, FakeScheduler]


@pytest.fixture
def wired() -> Wired:
    credentials = InMemoryCredentialStore()
    credentials.add_user("alice", "pw", "sparklecomm")
    scheduler = FakeScheduler()
    server = SipServer(
        SipServerConfig(),
        clock=FakeClock(),
        credentials=credentials,
        locations=InMemoryLocationStore(),
        scheduler=scheduler,
    )
    sender = RecordingSender()
    server.sender.add(sender)
    return server, sender, scheduler


def answer(wired: Wired, text: str) -> SipResponse:
    server, sender, _ = wired
    message = parse_datagram(text.encode())
    before = len(sender.sent)
    server._receive(message, CLIENT)
    response = sender.sent[before][0]
    assert isinstance(response, SipResponse)
    return response


def raw(method: str, uri: str = "sip:127.0.0.1", extra: str = "", max_forwards: int = 70) -> str:
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{method}{max_forwards}\r\n"
        f"Max-Forwards: {max_forwards}\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
        f"To: <sip:b@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    )


def test_options_lists_allow_accept_supported(wired: Wired) -> None:
    response = answer(wired, raw("OPTIONS"))
    assert response.status == 200
    assert set(response.allow) == set(ALLOWED_METHODS)
    assert {"ACK", "CANCEL", "OPTIONS", "REGISTER", "INVITE", "BYE"} <= set(response.allow)
    assert "Supported" in response.headers and response.headers.get("Server") == "SparkleComm"
    assert [m.mime_type for m in response.accept] == ["application/sdp"]
    assert response.to.tag  # a final response carries a To tag


def test_options_with_max_forwards_zero_is_still_answered(wired: Wired) -> None:
    assert answer(wired, raw("OPTIONS", max_forwards=0)).status == 200


def test_max_forwards_zero_is_483(wired: Wired) -> None:
    assert answer(wired, raw("REGISTER", max_forwards=0)).status == 483


def test_unknown_method_is_501_with_allow(wired: Wired) -> None:
    response = answer(wired, raw("FOOBAR"))
    assert response.status == 501 and "REGISTER" in response.allow


def test_known_but_unserved_method_is_405(wired: Wired) -> None:
    response = answer(wired, raw("SUBSCRIBE"))
    assert response.status == 405 and "OPTIONS" in response.allow


def test_unsupported_uri_scheme_is_416(wired: Wired) -> None:
    assert answer(wired, raw("OPTIONS", uri="tel:+15551234567")).status == 416
    assert answer(wired, raw("REGISTER", uri="http://example.com/")).status == 416


def test_unknown_require_is_420_with_unsupported(wired: Wired) -> None:
    response = answer(wired, raw("OPTIONS", extra="Require: 100rel, foo\r\n"))
    assert response.status == 420 and response.unsupported == ("100rel", "foo")


def test_cancel_without_invite_is_481(wired: Wired) -> None:
    assert answer(wired, raw("CANCEL")).status == 481


def test_cancel_of_pending_invite_gives_200_and_487(wired: Wired) -> None:
    server, sender, _ = wired
    invite = request("INVITE")
    # The server answers INVITE with 405 at once; hold one open by hand to cancel it.
    server.transactions.on_request = lambda t: None
    server._receive(invite, CLIENT)
    server.transactions.on_request = server._on_request
    server._receive(request("CANCEL"), CLIENT)
    assert sorted(sender.statuses()) == [200, 487]


async def test_register_runs_through_the_registrar(wired: Wired) -> None:
    server, sender, _ = wired
    server._receive(request("REGISTER", extra="Contact: <sip:alice@10.0.0.1>\r\n"), CLIENT)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sender.statuses() == [401]
    # A retransmission is answered from the transaction, not the registrar.
    server._receive(request("REGISTER", extra="Contact: <sip:alice@10.0.0.1>\r\n"), CLIENT)
    assert sender.statuses() == [401, 401]
    assert server.transactions.stats.retransmissions_absorbed == 1
    challenge_1 = sender.sent[0][0].www_authenticate[0].nonce
    challenge_2 = sender.sent[1][0].www_authenticate[0].nonce
    assert challenge_1 == challenge_2
