"""Whole messages: parsing datagrams, errors and their answers, serialization, responses."""

from __future__ import annotations

import pytest

from sparklecomm.telephony.sip import (
    Headers,
    ParseErrorKind,
    ParseLimits,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    build_response,
    is_keepalive,
    parse_datagram,
    serialize,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def request(data: bytes = INVITE) -> SipRequest:
    message = parse_datagram(data)
    assert isinstance(message, SipRequest)
    return message


def error_of(data: bytes, limits: ParseLimits | None = None) -> SipParseError:
    with pytest.raises(SipParseError) as caught:
        if limits is None:
            parse_datagram(data)
        else:
            parse_datagram(data, limits=limits)
    return caught.value


def replace(old: bytes, new: bytes, data: bytes = INVITE) -> bytes:
    assert old in data
    return data.replace(old, new)


def test_parses_a_basic_invite() -> None:
    message = request()
    assert message.method == "INVITE"
    assert message.uri == SipUri("biloxi.example.com", user_raw="bob")
    assert message.top_via.branch == "z9hG4bK776asdhds"
    assert message.max_forwards == 70
    assert message.to.display_name == "Bob" and message.to.tag is None
    assert message.from_.tag == "1928301774"
    assert message.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (message.cseq.number, message.cseq.method) == (314159, "INVITE")
    assert message.body == b"v=0\n"
    assert "Content-Length" not in message.headers  # framing, not a header


def test_serialize_round_trips_and_recomputes_content_length() -> None:
    message = request()
    assert parse_datagram(serialize(message)) == message
    message.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    wire = serialize(message)
    assert b"\r\nContent-Length: 31\r\n\r\n" in wire
    assert parse_datagram(wire) == message


def test_serialize_uses_full_or_compact_names() -> None:
    message = request(replace(b"Via:", b"v:").replace(b"Call-ID:", b"i:"))
    wire = serialize(message)
    assert b"\r\nVia: " in wire and b"\r\nCall-ID: " in wire and b"\r\nContent-Length: 4" in wire
    short = serialize(message, compact=True)
    assert b"\r\nv: " in short and b"\r\ni: " in short and b"\r\nl: 4\r\n" in short
    assert b"\r\nMax-Forwards: 70" in short  # no compact form
    assert parse_datagram(short) == message
    assert wire.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n")
    assert wire.count(b"\r\n\r\n") == 1 and b"\n" not in wire.replace(b"\r\n", b"")[:-1]


def test_built_messages_serialize() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK74bf9"),
            ("From", "<sip:alice@example.com>;tag=9fxced76sl"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "3848276298220188511@example.com"),
            ("CSeq", "1 OPTIONS"),
            ("Max-Forwards", "70"),
        ]
    )
    message = SipRequest("OPTIONS", SipUri("example.com", user_raw="bob"), headers)
    assert parse_datagram(serialize(message)) == message
    response = SipResponse(200, "OK", headers.copy(), b"hello")
    assert parse_datagram(serialize(response)) == response
    with pytest.raises(ValueError):
        serialize(SipRequest("BAD METHOD", SipUri("example.com"), headers))
    with pytest.raises(ValueError):
        serialize(SipResponse(99, "Nope", headers))
    with pytest.raises(ValueError):
        serialize(SipResponse(200, "O\r\nK", headers))


def test_unknown_methods_are_not_errors() -> None:
    data = INVITE.replace(b"INVITE", b"FROBNICATE")
    message = request(data)
    assert message.method == "FROBNICATE"
    assert not message.is_known_method
    assert message.cseq.method == "FROBNICATE"
    lower = request(INVITE.replace(b"INVITE", b"invite"))
    assert lower.method == "invite" and not lower.is_known_method  # methods are case-sensitive


def test_bare_lf_line_ends_are_accepted() -> None:
    message = parse_datagram(INVITE.replace(b"\r\n", b"\n"))
    assert message.call_id == "a84b4c76e66710@pc33.atlanta.example.com"


def test_udp_without_content_length_takes_the_rest() -> None:
    data = replace(b"Content-Length: 4\r\n", b"")
    assert parse_datagram(data + b"more").body == b"v=0\nmore"


def test_udp_ignores_octets_after_the_body() -> None:
    assert parse_datagram(INVITE + b"garbage").body == b"v=0\n"


def test_datagram_without_blank_line() -> None:
    data = INVITE.split(b"\r\n\r\n")[0].replace(b"Content-Length: 4", b"Content-Length: 0")
    assert parse_datagram(data + b"\r\n").body == b""
    assert parse_datagram(data).body == b""


def test_leading_crlf_is_ignored() -> None:
    assert parse_datagram(b"\r\n\r\n" + INVITE) == parse_datagram(INVITE)


def test_responses() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    message = parse_datagram(data)
    assert isinstance(message, SipResponse)
    assert (message.status, message.reason) == (180, "Ringing")
    assert message.is_provisional and not message.is_final
    assert message.top_via.received == "192.0.2.1"
    assert serialize(message) == data


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b""), "Missing Call-ID"),
        (replace(b"CSeq: 314159 INVITE\r\n", b""), "Missing CSeq"),
        (
            replace(b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", b""),
            "Missing Via",
        ),
        (replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), "CSeq method mismatch"),
        (replace(b"Content-Length: 4", b"Content-Length: 5"), "Content-Length mismatch"),
        (replace(b"Content-Length: 4", b"Content-Length: four"), "Malformed Content-Length"),
        (
            replace(b"Content-Length: 4\r\n", b"Content-Length: 4\r\nl: 4\r\n"),
            "Duplicate Content-Length",
        ),
        (replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), "Malformed Max-Forwards"),
        (
            replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nMax-Forwards: 69\r\n"),
            "Duplicate Max-Forwards",
        ),
        (replace(b"Call-ID: a84b4c76e66710@", b"Call-ID: a b@"), "Malformed Call-ID"),
        (
            replace(b"Contact: <sip:alice@pc33.atlanta.example.com>", b"Contact: *, <sip:a@b.c>"),
            "Malformed Contact",
        ),
        (
            replace(b"Contact: <sip:alice@pc33.atlanta.example.com>", b"Contact: <sip:a@b.c>;q=2"),
            "Malformed Contact",
        ),
        (replace(b"Content-Type: application/sdp", b"Content-Type: sdp"), "Malformed Content-Type"),
        (
            replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nExpires: soon\r\n"),
            "Malformed Expires",
        ),
        (
            replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: a b\r\n"),
            "Malformed Require",
        ),
        (
            replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nno colon here\r\n"),
            "Malformed header line",
        ),
        (
            replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nBad Name: x\r\n"),
            "Malformed header line",
        ),
        (
            replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nX-A: a\rb\r\n"),
            "Malformed header line",
        ),
        (
            replace(
                b"INVITE sip:bob@biloxi.example.com SIP/2.0", b"INVITE sip:bob@biloxi.example.com"
            ),
            "Malformed Request-Line",
        ),
        (replace(b"sip:bob@biloxi.example.com SIP", b"sip:bob@biloxi.example.com;x SIP"), None),
        (
            replace(b"sip:bob@biloxi.example.com SIP", b"sip:bob@biloxi.example.com?a=b SIP"),
            "Malformed Request-URI",
        ),
        (replace(b"SIP/2.0\r\n", b"SIP/2.0x\r\n", INVITE), "Malformed Request-Line"),
    ],
)
def test_malformed_requests_get_400(data: bytes, reason: str | None) -> None:
    if reason is None:
        request(data)  # control case: valid
        return
    error = error_of(data)
    assert error.reason == f"Bad Request - {reason}"
    assert error.kind is ParseErrorKind.MALFORMED and error.status_code == 400
    assert error.is_request and error.method == "INVITE"


def test_error_answers_its_request() -> None:
    error = error_of(replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"))
    assert error.can_respond
    response = error.build_response(to_tag="abc")
    assert response is not None
    assert (response.status, response.reason) == (400, "Bad Request - CSeq method mismatch")
    assert response.to.tag == "abc"
    assert response.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert response.cseq.method == "BYE"
    assert str(response.top_via) == "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"
    assert "Contact" not in response.headers


def test_bad_version_is_505_and_answerable() -> None:
    error = error_of(INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    assert error.kind is ParseErrorKind.VERSION_NOT_SUPPORTED and error.status_code == 505
    response = error.build_response()
    assert response is not None and response.status == 505
    assert response.to.tag  # a random tag when none is given
    huge = error_of(INVITE.replace(b"SIP/2.0\r\n", b"SIP/" + b"9" * 5000 + b".0\r\n", 1))
    assert huge.status_code == 505


def test_bad_version_in_a_response_is_dropped() -> None:
    error = error_of(b"SIP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert error.status_code == 505
    assert error.is_request is False and not error.can_respond


def test_unknown_method_with_other_cseq_method_is_501() -> None:
    error = error_of(INVITE.replace(b"INVITE sip", b"NEWMETHOD sip"))
    assert error.kind is ParseErrorKind.NOT_IMPLEMENTED and error.status_code == 501
    response = error.build_response(to_tag="x")
    assert response is not None and (response.status, response.reason) == (501, "Not Implemented")


def test_unanswerable_errors() -> None:
    no_via = error_of(
        replace(b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", b"")
    )
    assert not no_via.can_respond and no_via.build_response() is None
    garbage = error_of(b"\x00\x01\x02")
    assert garbage.is_request and garbage.method is None and not garbage.can_respond
    empty = error_of(b"\r\n\r\n")
    assert empty.reason == "Bad Request - Empty message"


@pytest.mark.parametrize(
    "status_line",
    [
        b"SIP/2.0 4294967301 big",
        b"SIP/2.0 99 low",
        b"SIP/2.0 700 high",
        b"SIP/2.0 20 OK",
        b"SIP/2.0",
    ],
)
def test_bad_status_lines(status_line: bytes) -> None:
    data = status_line + b"\r\nContent-Length: 0\r\n\r\n"
    error = error_of(data)
    assert error.reason == "Bad Request - Malformed Status-Line"
    assert error.is_request is False and not error.can_respond


def test_limits() -> None:
    limits = ParseLimits(max_message_size=300, max_headers=8, max_header_length=100)
    assert error_of(INVITE + b"x" * 300, limits).kind is ParseErrorKind.MESSAGE_TOO_LARGE
    many = INVITE.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * 10)
    assert error_of(many, ParseLimits(max_headers=10)).status_code == 513
    long = INVITE.replace(b"Max-Forwards: 70", b"X-Long: " + b"a" * 200)
    assert error_of(long, ParseLimits(max_header_length=100)).reason == "Message Too Large"
    assert parse_datagram(INVITE.replace(b"Max-Forwards: 70", b"X-Long: " + b"a" * 5000))


def test_accessors_on_built_messages_raise_parse_errors() -> None:
    message = SipRequest("OPTIONS", SipUri("example.com"), Headers([("Via", "garbage")]))
    with pytest.raises(SipParseError, match="Malformed Via"):
        _ = message.top_via
    with pytest.raises(SipParseError, match="Missing Call-ID"):
        _ = message.call_id
    with pytest.raises(SipParseError, match="Missing From"):
        _ = message.from_
    assert message.max_forwards is None and message.contacts == () and message.expires is None


def test_keepalive_datagrams() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n") and is_keepalive(b"\x00\x00\x00\x00")
    assert not is_keepalive(b"") and not is_keepalive(INVITE)


# ---- building responses ---------------------------------------------------------------------


def test_build_response_copies_what_rfc3261_says() -> None:
    data = replace(
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n",
        b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1, "
        b"SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        b"Record-Route: <sip:proxy.example.com;lr>\r\nTimestamp: 54\r\n",
    )
    invite = request(data)
    ringing = build_response(invite, 180, to_tag="a6c85cf", copy_record_route=True)
    assert (ringing.status, ringing.reason) == (180, "Ringing")
    assert [v.host for v in ringing.via] == ["proxy.example.com", "pc33.atlanta.example.com"]
    assert ringing.from_ == invite.from_
    assert ringing.to.uri == invite.to.uri and ringing.to.tag == "a6c85cf"
    assert ringing.call_id == invite.call_id and ringing.cseq == invite.cseq
    assert ringing.record_routes == invite.record_routes
    assert "Timestamp" not in ringing.headers and "Contact" not in ringing.headers
    assert ringing.body == b""

    trying = build_response(invite, 100)
    assert trying.reason == "Trying" and trying.to.tag is None
    assert trying.headers.get("Timestamp") == "54"
    assert "Record-Route" not in trying.headers

    ok = build_response(invite, 200, "Fine", to_tag="x")
    assert ok.reason == "Fine"
    assert parse_datagram(serialize(ok)) == ok


def test_build_response_keeps_an_existing_to_tag() -> None:
    bye = request(
        replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: <sip:bob@biloxi.example.com>;tag=t1")
    )
    assert build_response(bye, 200, to_tag="other").to.tag == "t1"
    bare = request(
        replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: sip:bob@biloxi.example.com")
    )
    answered = build_response(bare, 486, to_tag="t2")
    assert answered.headers.get("To") == "sip:bob@biloxi.example.com;tag=t2"
    assert answered.to.tag == "t2" and answered.reason == "Busy Here"
    with pytest.raises(ValueError):
        build_response(bare, 486, to_tag="bad tag")


def test_contact_wildcard_and_expires() -> None:
    register = request(
        INVITE.replace(b"INVITE", b"REGISTER")
        .replace(b"Contact: <sip:alice@pc33.atlanta.example.com>", b"m: *\r\nExpires: 0")
        .replace(b"Content-Length: 4\r\n\r\nv=0\n", b"Content-Length: 0\r\n\r\n")
    )
    assert register.contact_is_wildcard and register.contacts == ()
    assert register.expires == 0
    normal = request()
    assert not normal.contact_is_wildcard and len(normal.contacts) == 1


def test_error_text() -> None:
    error = error_of(replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"))
    assert str(error).startswith("Bad Request - Malformed CSeq (")
    assert "MALFORMED" in repr(error)
    assert error.detail


def test_public_api_is_pinned() -> None:
    import sparklecomm.telephony.sip as sip

    assert sorted(sip.__all__) == sorted(
        [
            "COMPACT_FORMS",
            "DEFAULT_LIMITS",
            "KNOWN_METHODS",
            "LIST_HEADERS",
            "REASON_PHRASES",
            "AbsoluteUri",
            "Address",
            "CSeq",
            "Challenge",
            "Credentials",
            "Headers",
            "KeepAlive",
            "MediaType",
            "Params",
            "ParseErrorKind",
            "ParseLimits",
            "SipMessage",
            "SipParseError",
            "SipRequest",
            "SipResponse",
            "SipUri",
            "TelUri",
            "Uri",
            "Via",
            "build_response",
            "canonical_name",
            "compact_name",
            "is_keepalive",
            "parse_datagram",
            "parse_stream",
            "parse_uri",
            "quote",
            "serialize",
            "unquote",
        ]
    )
    for name in sip.__all__:
        assert getattr(sip, name) is not None
