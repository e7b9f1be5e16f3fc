"""The RFC 4475 and RFC 5118 torture messages against what the RFCs expect of a parser.

The data lives outside the repository, in ``shared/data/sip-torture`` beside the checkout
(``/work/shared`` next to ``/work/main``); its README describes ``expected.json``. Each
file's ``parser`` field is the verdict to match:

* ``accept``: must parse;
* ``reject``: must raise SipParseError, with a status the RFC names (a bad *response* must
  not be answered at all);
* ``accept-then-reject``: well-formed, so it must parse; the element then refuses it, and
  the accessors must expose what that answer is based on;
* ``accept-or-reject``: the RFC leaves it to the element; when we reject, it is with 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sparklecomm.telephony.sip import (
    AbsoluteUri,
    ParseErrorKind,
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    TelUri,
    parse_datagram,
    parse_stream,
    serialize,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TORTURE = REPO_ROOT.parent / "shared" / "data" / "sip-torture"
MISSING = f"SIP torture data not found at {TORTURE} (expected shared/ beside the repository)"

# Rejected requests that lack what a response needs (Via, From, To, Call-ID, CSeq).
UNANSWERABLE = {
    "insuf.dat": "no From, To or Call-ID to copy into a response",
    "badinv01.dat": "the only Via is malformed, so there is nowhere to send a response",
    "test.dat": "no Via",
}


def _cases() -> list[Any]:
    if not TORTURE.is_dir():
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason=MISSING))]
    cases = []
    for suite, folder in (
        ("rfc4475", "rfc4475"),
        ("rfc5118", "rfc5118"),
        ("rfc5118-wire", "rfc5118/wire"),
    ):
        expected = json.loads((TORTURE / suite.split("-")[0] / "expected.json").read_text())
        for path in sorted((TORTURE / folder).glob("*.dat")):
            cases.append(pytest.param(suite, path, expected[path.name], id=f"{suite}/{path.stem}"))
    return cases


def _verdict(data: bytes) -> SipMessage | SipParseError:
    try:
        return parse_datagram(data)
    except SipParseError as error:
        return error


def _archive_body_short(suite: str, expected: dict[str, Any]) -> bool:
    """RFC 5118 archive files whose Content-Length exceeds the LF body they carry."""
    framing = expected.get("archive_framing")
    return (
        suite == "rfc5118"
        and framing is not None
        and framing["archive_content_length"] > framing["archive_body_octets_lf"]
    )


@pytest.mark.parametrize(("suite", "path", "expected"), _cases())
def test_parser_verdict(suite: str, path: Path, expected: dict[str, Any]) -> None:
    result = _verdict(path.read_bytes())
    verdict = expected["parser"]
    if _archive_body_short(suite, expected):
        # The archive copy with LF line ends announces more body than it carries; over UDP
        # that is a Content-Length mismatch (RFC 3261 §18.3). The wire/ copy is accepted.
        assert isinstance(result, SipParseError)
        assert result.reason == "Bad Request - Content-Length mismatch"
        return
    if verdict in ("accept", "accept-then-reject"):
        assert not isinstance(result, SipParseError), f"rejected: {result}"
        return
    if verdict == "reject":
        assert isinstance(result, SipParseError), "accepted a message the RFC rejects"
    if isinstance(result, SipParseError):
        _check_rejection(path.name, result, expected["responses"])


def _check_rejection(name: str, error: SipParseError, responses: list[int]) -> None:
    assert error.reason.isascii()
    if not error.is_request:
        # RFC 4475 bigcode, scalarlg: a broken response is dropped, never answered.
        assert responses == []
        assert not error.can_respond
        assert error.build_response() is None
        return
    assert error.status_code in responses or (not responses and error.status_code == 400)
    if name in UNANSWERABLE:
        assert not error.can_respond, UNANSWERABLE[name]
        return
    assert error.can_respond
    response = error.build_response(to_tag="t0rture")
    assert response is not None
    assert response.status == error.status_code
    wire = serialize(response)
    assert wire.startswith(f"SIP/2.0 {error.status_code} ".encode())
    for header in ("Via", "From", "To", "Call-ID", "CSeq"):
        assert header in response.headers


EXPECTED_REASONS = {
    "badvers.dat": ("Version Not Supported", ParseErrorKind.VERSION_NOT_SUPPORTED),
    "mismatch01.dat": ("Bad Request - CSeq method mismatch", ParseErrorKind.MALFORMED),
    "mismatch02.dat": ("Not Implemented", ParseErrorKind.NOT_IMPLEMENTED),
    "clerr.dat": ("Bad Request - Content-Length mismatch", ParseErrorKind.MALFORMED),
    "ncl.dat": ("Bad Request - Malformed Content-Length", ParseErrorKind.MALFORMED),
    "mcl01.dat": ("Bad Request - Duplicate Content-Length", ParseErrorKind.MALFORMED),
    "insuf.dat": ("Bad Request - Missing From", ParseErrorKind.MALFORMED),
    "scalar02.dat": ("Bad Request - Malformed CSeq", ParseErrorKind.MALFORMED),
    "badinv01.dat": ("Bad Request - Malformed Via", ParseErrorKind.MALFORMED),
}


@pytest.mark.skipif(not TORTURE.is_dir(), reason=MISSING)
@pytest.mark.parametrize("name", sorted(EXPECTED_REASONS))
def test_rejection_reasons(name: str) -> None:
    result = _verdict((TORTURE / "rfc4475" / name).read_bytes())
    assert isinstance(result, SipParseError)
    assert (result.reason, result.kind) == EXPECTED_REASONS[name]


@pytest.mark.skipif(not TORTURE.is_dir(), reason=MISSING)
def test_multi01_rejects_duplicate_single_headers() -> None:
    result = _verdict((TORTURE / "rfc4475" / "multi01.dat").read_bytes())
    assert isinstance(result, SipParseError)
    assert result.reason.startswith("Bad Request - Duplicate ")


@pytest.mark.skipif(not TORTURE.is_dir(), reason=MISSING)
def test_badvers_answer_is_505_with_copied_headers() -> None:
    result = _verdict((TORTURE / "rfc4475" / "badvers.dat").read_bytes())
    assert isinstance(result, SipParseError)
    response = result.build_response(to_tag="x")
    assert response is not None
    assert (response.status, response.reason) == (505, "Version Not Supported")
    assert response.to.tag == "x"


# ---- accept-then-reject: the status each element would send, from the accessors ----------


def _request(message: SipMessage) -> SipRequest:
    assert isinstance(message, SipRequest)
    return message


def _uas_status(message: SipMessage) -> int | None:
    """The answer of a plain user agent server that implements only RFC 3261 basics."""
    request = _request(message)
    if not request.is_known_method:
        return 501
    if not isinstance(request.uri, (SipUri, TelUri)):
        return 416
    if request.require:
        return 420
    content_type = request.content_type
    if request.body and content_type is not None and content_type.mime_type != "application/sdp":
        return 415
    accepted = {media.mime_type for media in request.accept}
    if request.method in ("INVITE", "OPTIONS") and accepted and "application/sdp" not in accepted:
        return 406
    return 200


def _registrar_status(message: SipMessage) -> int:
    request = _request(message)
    if not isinstance(request.to.uri, SipUri):
        return 400  # the To of a REGISTER must be a SIP or SIPS AOR
    if any(not credentials.is_digest for credentials in request.authorization):
        return 401  # challenge with a scheme we understand
    return 200


def _proxy_status(message: SipMessage) -> int | None:
    request = _request(message)
    if request.max_forwards == 0:
        return 483
    if request.proxy_require:
        return 420
    return None


def _transaction_status(message: SipMessage) -> int | None:
    branch = message.top_via.branch
    if branch is not None and branch.startswith("z9hG4bK") and len(branch) == len("z9hG4bK"):
        return 400  # the magic cookie with nothing after it cannot identify a transaction
    return None


def _response_action(message: SipMessage) -> int | None:
    assert isinstance(message, SipResponse)
    assert len(message.via) > 1  # a UAC receiving a response with 2 Vias drops it
    assert message.via[1].host == "255.255.255.255"
    return None


def _registered_contacts(message: SipMessage) -> int:
    assert _registrar_status(message) == 200
    return 200


APPLICATION_ANSWERS: dict[str, Callable[[SipMessage], int | None]] = {
    "badbranch.dat": _transaction_status,
    "unkscm.dat": _uas_status,
    "novelsc.dat": _uas_status,
    "unksm2.dat": _registrar_status,
    "bext01.dat": _uas_status,
    "invut.dat": _uas_status,
    "regaut01.dat": _registrar_status,
    "bcast.dat": _response_action,
    "zeromf.dat": _proxy_status,
    "cparam01.dat": _registered_contacts,
    "cparam02.dat": _registered_contacts,
    "regescrt.dat": _registered_contacts,
    "sdp01.dat": _uas_status,
    "intmeth.dat": _uas_status,
    "esc02.dat": _uas_status,
    "escnull.dat": _registered_contacts,
}


@pytest.mark.skipif(not TORTURE.is_dir(), reason=MISSING)
@pytest.mark.parametrize("name", sorted(APPLICATION_ANSWERS))
def test_application_answers(name: str) -> None:
    expected = json.loads((TORTURE / "rfc4475" / "expected.json").read_text())[name]
    message = parse_datagram((TORTURE / "rfc4475" / name).read_bytes())
    status = APPLICATION_ANSWERS[name](message)
    if expected["responses"]:
        assert status in expected["responses"]
    else:
        assert status is None


def test_every_accept_then_reject_case_has_an_answer() -> None:
    if not TORTURE.is_dir():
        pytest.skip(MISSING)
    expected = json.loads((TORTURE / "rfc4475" / "expected.json").read_text())
    names = {
        k
        for k, v in expected.items()
        if not k.startswith("_") and v["parser"] == "accept-then-reject"
    }
    assert names <= APPLICATION_ANSWERS.keys()


# ---- what the accepted messages contain ---------------------------------------------------


def _load(name: str, folder: str = "rfc4475") -> SipMessage:
    if not TORTURE.is_dir():
        pytest.skip(MISSING)
    return parse_datagram((TORTURE / folder / name).read_bytes())


def test_wsinv_short_tortuous_invite() -> None:
    message = _request(_load("wsinv.dat"))
    assert message.method == "INVITE"
    assert isinstance(message.uri, SipUri)
    assert message.uri.params == (("unknownparam", None),)
    assert str(message.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert message.to.tag == "1918181833n"
    assert message.from_.display_name == 'J Rosenberg \\"'
    assert message.from_.tag == "98asjd8"
    assert message.max_forwards == 68
    assert (message.cseq.number, message.cseq.method) == (9, "INVITE")
    assert message.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert [(v.transport, v.host, v.branch) for v in message.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.headers.get("Subject") == ""
    (contact,) = message.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params.get("newparam") == "newvalue"
    assert "secondparam" in contact.params
    assert contact.q == 0.33
    (route,) = message.routes
    assert isinstance(route.uri, SipUri)
    assert route.uri.params == (("lr", None), ("unknownwith", "value"), ("unknown-no-value", None))
    assert message.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert message.content_type is not None and message.content_type.mime_type == "application/sdp"
    assert len(message.body) == 150


def test_intmeth_wide_range_of_valid_characters() -> None:
    message = _request(_load("intmeth.dat"))
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert not message.is_known_method
    assert isinstance(message.uri, SipUri)
    assert message.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert message.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert message.uri.host == "example.com"
    assert message.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert message.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert message.from_.params.get("fromParam''~+*_!.-%") == "работающий"
    assert message.from_.tag == "_token~1'+`*%!-."
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.cseq.number == 139122385
    assert message.max_forwards == 255
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_percent_escapes() -> None:
    message = _request(_load("esc01.dat"))
    assert isinstance(message.uri, SipUri)
    assert (message.uri.user, message.uri.host) == ("sips:user@example.com", "example.net")
    assert isinstance(message.to.uri, SipUri) and message.to.uri.user == "user"
    assert isinstance(message.from_.uri, SipUri) and message.from_.uri.user == "I have spaces"
    (contact,) = message.contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.user == "caller"
    assert contact.uri.lr
    assert contact.uri.param("name") == "value%41"  # unescaped once, never twice
    assert contact.uri.user_raw == "cal%6Cer"  # the raw form is kept for forwarding


def test_escnull_keeps_nul_octets() -> None:
    message = _load("escnull.dat")
    assert isinstance(message.to.uri, SipUri)
    assert message.to.uri.user == "null-\x00-null"
    users = [c.uri.user for c in message.contacts if isinstance(c.uri, SipUri)]
    assert users == ["\x00", "\x00\x00"]
    first, second = message.contacts
    assert not first.uri.equivalent(second.uri)


def test_esc02_percent_that_is_not_an_escape() -> None:
    message = _request(_load("esc02.dat"))
    assert message.method == "RE%47IST%45R"
    assert message.cseq.method == "RE%47IST%45R"
    assert message.to.display_name == "%Z%45"
    assert message.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [str(c.uri) for c in message.contacts] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert message.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_token_display_name_without_space() -> None:
    message = _load("lwsdisp.dat")
    assert message.from_.display_name == "caller"
    assert str(message.from_.uri) == "sip:caller@example.com"


def test_longreq_long_values() -> None:
    message = _load("longreq.dat")
    assert len(message.via) == 34
    assert message.via[0].host == "sip33.example.com"
    assert message.via[-1].received == "192.0.2.5"
    assert message.via[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert message.to.display_name == "I have a user name of " + "extreme" * 10 + " proportion"
    assert isinstance(message.to.uri, SipUri) and message.to.uri.port == 6000
    assert message.from_.tag == "12" + "982" * 50 + "424"
    assert message.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert len(message.body) == 150


def test_dblreq_ignores_octets_past_content_length() -> None:
    message = _request(_load("dblreq.dat"))
    assert message.method == "REGISTER"
    assert message.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert message.body == b""


def test_semiuri_user_part_with_semicolons() -> None:
    message = _request(_load("semiuri.dat"))
    assert isinstance(message.uri, SipUri)
    assert message.uri.user == "user;par=u@example.net"
    assert message.uri.params == ()
    assert len(message.accept) == 6


def test_transports_unknown_transport_kept() -> None:
    message = _load("transports.dat")
    assert [v.transport for v in message.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert message.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_binary_body_framed_by_content_length() -> None:
    message = _load("mpart01.dat")
    assert len(message.body) == 553
    assert message.body.count(b"\x00") >= 2
    assert message.content_type is not None
    assert message.content_type.params.get("boundary") == "7a9cbec02ceef655"
    assert message.top_via.has_rport and message.top_via.rport is None


def test_reason_phrases() -> None:
    unreason = _load("unreason.dat")
    assert isinstance(unreason, SipResponse)
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = _load("noreason.dat")
    assert isinstance(noreason, SipResponse)
    assert (noreason.status, noreason.reason) == (100, "")


def test_inv2543_rfc2543_request_over_udp() -> None:
    message = _load("inv2543.dat")
    assert len(message.body) == 105
    assert message.max_forwards is None
    assert message.from_.tag is None
    assert message.top_via.branch is None


def test_absolute_uris() -> None:
    unkscm = _request(_load("unkscm.dat"))
    assert unkscm.uri == AbsoluteUri("nobodyKnowsThisScheme", "totallyopaquecontent")
    novelsc = _request(_load("novelsc.dat"))
    assert isinstance(novelsc.uri, AbsoluteUri) and novelsc.uri.scheme == "soap.beep"
    unksm2 = _load("unksm2.dat")
    assert str(unksm2.to.uri) == "isbn:2983792873"
    assert str(unksm2.from_.uri) == "http://www.example.com"
    assert str(unksm2.contacts[0].uri) == "name:John_Smith"


def test_contact_parameter_placement() -> None:
    (bare,) = _load("cparam01.dat").contacts
    assert isinstance(bare.uri, SipUri) and bare.uri.params == ()
    assert "unknownparam" in bare.params
    (bracketed,) = _load("cparam02.dat").contacts
    assert isinstance(bracketed.uri, SipUri) and bracketed.uri.has_param("unknownparam")
    assert len(bracketed.params) == 0


def test_regescrt_keeps_escaped_headers_in_contact() -> None:
    (contact,) = _load("regescrt.dat").contacts
    assert str(contact.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.header_fields == [("Route", "<sip:sip.example.com>")]


# ---- RFC 5118 --------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["rfc5118", "rfc5118/wire"])
def test_rfc5118_ipv6_references(folder: str) -> None:
    good = _request(_load("ipv6-good.dat", folder))
    assert isinstance(good.uri, SipUri)
    assert (good.uri.host, good.uri.port) == ("2001:db8::10", None)
    assert good.top_via.host == "2001:db8::9:1"
    assert good.top_via.sent_by == "[2001:db8::9:1]"
    assert good.contacts[0].uri == SipUri("2001:db8::1", user_raw="caller")

    ambiguous = _request(_load("port-ambiguous.dat", folder))
    assert isinstance(ambiguous.uri, SipUri)
    assert (ambiguous.uri.host, ambiguous.uri.port) == ("2001:db8::10:5070", None)
    unambiguous = _request(_load("port-unambiguous.dat", folder))
    assert isinstance(unambiguous.uri, SipUri)
    assert (unambiguous.uri.host, unambiguous.uri.port) == ("2001:db8::10", 5070)

    for name in ("via-received-param-with-delim.dat", "via-received-param-no-delim.dat"):
        via = _load(name, folder).top_via
        assert via.received == "2001:db8::9:255"
        assert via.branch is not None and via.branch.startswith("z9hG4bKas3")

    vias = _load("mult-ip-in-header.dat", folder).via
    assert [(v.host, v.port, v.transport) for v in vias] == [
        ("2001:db8::9:1", 6050, "UDP"),
        ("192.0.2.1", None, "UDP"),
        ("2001:db8::9:255", None, "TCP"),
    ]
    assert vias[2].received == "192.0.2.200"

    mapped = _load("ipv4-mapped-ipv6.dat", folder)
    assert [(v.host, v.port) for v in mapped.via] == [
        ("::ffff:192.0.2.10", 19823),
        ("::ffff:192.0.2.2", None),
    ]

    three = _request(_load("ipv6-bug-abnf-3-colons.dat", folder))
    two = _request(_load("ipv6-correct-abnf-2-colons.dat", folder))
    assert three.uri.equivalent(two.uri)


def test_rfc5118_wire_messages_frame_on_a_stream() -> None:
    if not TORTURE.is_dir():
        pytest.skip(MISSING)
    for path in sorted((TORTURE / "rfc5118" / "wire").glob("*.dat")):
        data = path.read_bytes()
        try:
            expected = parse_datagram(data)
        except SipParseError:
            with pytest.raises(SipParseError) as caught:
                parse_stream(data)
            assert caught.value.consumed == len(data)
            continue
        assert parse_stream(data) == (expected, len(data))
