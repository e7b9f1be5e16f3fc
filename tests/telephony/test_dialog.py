"""Dialog state (RFC 3261 §12): creation on both sides, in-dialog requests, CSeq checks,
target refresh, route sets with loose and strict routers."""

from __future__ import annotations

from tests.telephony.sip_support import request

from sparklecomm.telephony.sip import SipRequest, build_response
from sparklecomm.telephony.sip.dialog import Dialog, DialogState
from sparklecomm.telephony.sip.uri import SipUri

VIA = "SIP/2.0/UDP 127.0.0.1:5060"


def invite(extra: str = "") -> SipRequest:
    return request(
        "INVITE",
        uri="sip:bob@127.0.0.1",
        extra="Contact: <sip:alice@127.0.0.1:5099>\r\n" + extra,
    )


def test_uas_dialog_from_an_invite() -> None:
    rr = "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    dialog = Dialog.as_uas(invite(rr), local_tag="ours", local_contact="<sip:127.0.0.1>")
    assert dialog.id == ("call-1@test", "ours", "ft1")
    assert str(dialog.remote_target) == "sip:alice@127.0.0.1:5099"
    assert dialog.remote_seq == 1
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    bye = dialog.request("BYE", VIA)
    assert bye.method == "BYE" and str(bye.uri) == "sip:alice@127.0.0.1:5099"
    assert bye.to.tag == "ft1" and bye.from_.tag == "ours"
    assert bye.cseq.number == 1 and bye.cseq.method == "BYE"
    assert [str(r.uri) for r in bye.routes] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert bye.top_via.branch and bye.top_via.branch.startswith("z9hG4bK")
    assert dialog.request("INFO", VIA).cseq.number == 2  # our CSeq grows by one


def test_uac_dialog_from_a_2xx_reverses_the_route_set_and_confirms() -> None:
    sent = invite()
    ok = build_response(sent, 200, to_tag="callee")
    ok.headers.add("Contact", "<sip:bob@127.0.0.1:6000>")
    ok.headers.add("Record-Route", "<sip:p2.example.com;lr>")
    ok.headers.add("Record-Route", "<sip:p1.example.com;lr>")
    dialog = Dialog.as_uac(sent, ok)
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.id == ("call-1@test", "ft1", "callee")
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    ack = dialog.request("ACK", VIA, cseq=1)
    assert ack.cseq.number == 1 and ack.cseq.method == "ACK"
    assert "Contact" not in ack.headers
    assert str(ack.uri) == "sip:bob@127.0.0.1:6000"
    hop = dialog.next_hop()
    assert isinstance(hop, SipUri) and hop.host == "p1.example.com"


def test_early_dialog_confirms_with_the_2xx_target() -> None:
    sent = invite()
    ringing = build_response(sent, 180, to_tag="callee")
    ringing.headers.add("Contact", "<sip:bob@127.0.0.1:6000>")
    dialog = Dialog.as_uac(sent, ringing)
    assert dialog.state is DialogState.EARLY
    ok = build_response(sent, 200, to_tag="callee")
    ok.headers.add("Contact", "<sip:bob@127.0.0.1:7000>")
    dialog.confirm(ok)
    assert dialog.state.value == "confirmed"
    assert str(dialog.remote_target) == "sip:bob@127.0.0.1:7000"


def test_strict_router_becomes_the_request_uri() -> None:
    sent = invite()
    ok = build_response(sent, 200, to_tag="callee")
    ok.headers.add("Contact", "<sip:bob@127.0.0.1:6000>")
    ok.headers.add("Record-Route", "<sip:strict.example.com>")
    dialog = Dialog.as_uac(sent, ok)
    bye = dialog.request("BYE", VIA)
    assert str(bye.uri) == "sip:strict.example.com"
    assert [str(r.uri) for r in bye.routes] == ["sip:bob@127.0.0.1:6000"]


def test_incoming_cseq_must_grow_and_reinvite_refreshes_the_target() -> None:
    dialog = Dialog.as_uas(invite(), local_tag="ours", local_contact="<sip:127.0.0.1>")
    reinvite = request(
        "INVITE",
        cseq=2,
        to_tag="ours",
        extra="Contact: <sip:alice@127.0.0.1:7777>\r\n",
    )
    assert dialog.matches(reinvite)
    assert dialog.accept(reinvite)
    assert str(dialog.remote_target) == "sip:alice@127.0.0.1:7777"
    old = request("BYE", cseq=2, to_tag="ours")
    assert not dialog.accept(old)  # §12.2.2: lower or equal CSeq gets 500
    assert dialog.accept(request("BYE", cseq=3, to_tag="ours"))
    assert not dialog.matches(request("BYE", cseq=4, to_tag="other"))


def test_in_dialog_request_carries_body_and_extra_headers() -> None:
    dialog = Dialog.as_uas(invite(), local_tag="ours", local_contact="<sip:127.0.0.1:5060>")
    from sparklecomm.telephony.sip.headers import Headers

    headers = Headers()
    headers.add("Event", "refer")
    notify = dialog.request(
        "NOTIFY", VIA, body=b"SIP/2.0 200 OK\r\n", content_type="message/sipfrag", headers=headers
    )
    assert notify.headers.get("Event") == "refer"
    assert notify.headers.get("Content-Type") == "message/sipfrag"
    assert notify.headers.get("Contact") == "<sip:127.0.0.1:5060>"
    assert notify.to_bytes().endswith(b"\r\n\r\nSIP/2.0 200 OK\r\n")
