"""Header names, the Headers collection, folding, list splitting and structured values."""

from __future__ import annotations

import pytest

from sparklecomm.telephony.sip import (
    Address,
    Challenge,
    Credentials,
    CSeq,
    Headers,
    MediaType,
    Params,
    SipParseError,
    SipUri,
    Via,
    canonical_name,
    compact_name,
    parse_datagram,
    quote,
    unquote,
)

BASE = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc.example.com;branch=z9hG4bK1\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: abc@pc.example.com\r\n"
    b"CSeq: 1 OPTIONS\r\n"
)


def parse_with(*lines: bytes, body: bytes = b"") -> Headers:
    data = BASE + b"".join(line + b"\r\n" for line in lines)
    data += b"Content-Length: %d\r\n\r\n" % len(body) + body
    return parse_datagram(data).headers


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("e", "Content-Encoding"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("f", "From"),
        ("s", "Subject"),
        ("k", "Supported"),
        ("t", "To"),
        ("v", "Via"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
        ("y", "Identity"),
        ("a", "Accept-Contact"),
        ("d", "Request-Disposition"),
        ("j", "Reject-Contact"),
        ("n", "Identity-Info"),
    ],
)
def test_compact_forms(compact: str, full: str) -> None:
    assert canonical_name(compact) == full
    assert canonical_name(compact.upper()) == full
    assert compact_name(full) == compact
    assert compact_name(full.upper()) == compact


def test_names_are_case_insensitive_and_canonical() -> None:
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("X-Unknown") == "X-Unknown"
    assert compact_name("Max-Forwards") is None


def test_compact_and_odd_case_headers_parse_to_the_same_message() -> None:
    long = parse_datagram(
        b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        b"Call-ID: x@h\r\nCSeq: 1 OPTIONS\r\nSupported: timer\r\nContent-Length: 0\r\n\r\n"
    )
    short = parse_datagram(
        b"OPTIONS sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"F: <sip:a@example.com>;tag=1\r\nt: <sip:b@example.com>\r\n"
        b"I: x@h\r\ncSEQ: 1 OPTIONS\r\nk: timer\r\nL: 0\r\n\r\n"
    )
    assert long == short
    assert short.headers.get("call-id") == "x@h"
    assert [name for name, _ in short.headers][:3] == ["Via", "From", "To"]


def test_folding_joins_continuation_lines() -> None:
    headers = parse_with(b"Subject: I know you're there,\r\n   pick up the phone\r\n\tand talk")
    assert headers.get("Subject") == "I know you're there, pick up the phone and talk"


def test_folded_value_starting_on_the_next_line() -> None:
    headers = parse_with(b"X-Folded:\r\n value")
    assert headers.get("X-Folded") == "value"


def test_space_before_colon_and_empty_values() -> None:
    headers = parse_with(b"Subject   :", b"X-Empty:")
    assert headers.get("Subject") == ""
    assert headers.get("X-Empty") == ""


def test_list_headers_split_on_commas_outside_quotes_and_brackets() -> None:
    headers = parse_with(
        b'Contact: "Doe, John" <sip:john@example.com>;q=0.5, <sip:j2@example.com>',
        b"Call-Info: <http://www.example.com/a,b.png>;purpose=icon, <http://x.example/>",
        b"Allow: INVITE,ACK , BYE",
        b"Allow: OPTIONS",
        b"Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>",
        b'Warning: 399 host "text, with comma", 301 other "x"',
        b"Subject: not, a, list",
    )
    assert headers.get_all("Contact") == [
        '"Doe, John" <sip:john@example.com>;q=0.5',
        "<sip:j2@example.com>",
    ]
    assert headers.get_all("Call-Info") == [
        "<http://www.example.com/a,b.png>;purpose=icon",
        "<http://x.example/>",
    ]
    assert headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "OPTIONS"]
    assert len(headers.get_all("Route")) == 2
    assert headers.get_all("Warning") == ['399 host "text, with comma"', '301 other "x"']
    assert headers.get_all("Subject") == ["not, a, list"]


def test_repeated_headers_keep_their_order_across_names() -> None:
    headers = parse_with(b"X-A: 1", b"Via: SIP/2.0/TCP second;branch=z9hG4bK2", b"X-A: 2")
    assert [name for name, _ in headers] == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "X-A",
        "Via",
        "X-A",
    ]
    assert headers.get_all("x-a") == ["1", "2"]
    assert headers.get_all("Via")[1] == "SIP/2.0/TCP second;branch=z9hG4bK2"


def test_unsplittable_list_values_are_kept_whole() -> None:
    headers = Headers([("Accept-Language", 'en, "fr'), ("Allow", "INVITE,,BYE")])
    assert headers.get_all("Accept-Language") == ['en, "fr']
    assert headers.get_all("Allow") == ["INVITE,,BYE"]


def test_headers_api() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")])
    headers.add("Subject", "hi")
    headers.prepend("v", "SIP/2.0/UDP top;branch=z9hG4bK0")
    assert [v.host for v in _vias(headers)] == ["top", "a", "b"]
    assert headers.remove_first("Via") == "SIP/2.0/UDP top;branch=z9hG4bK0"
    assert [v.host for v in _vias(headers)] == ["a", "b"]
    headers.set("Subject", "bye")
    assert headers.get_all("subject") == ["bye"]
    assert headers.count("VIA") == 2
    assert "s" in headers and "X-None" not in headers
    assert headers.remove("Via") == 2
    assert headers.remove_first("Via") is None
    assert headers.get("Via", "none") == "none"
    assert len(headers) == 1
    clone = headers.copy()
    clone.add("X-New", "1")
    assert clone != headers
    headers.add("x-new", "1")
    assert clone == headers


def _vias(headers: Headers) -> tuple[Via, ...]:
    from sparklecomm.telephony.sip.fields import parse_vias

    return headers.parsed("Via", parse_vias)


def test_parsed_cache_follows_changes() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1")])
    assert _vias(headers)[0].host == "a"
    headers.set("Via", "SIP/2.0/UDP b;branch=z9hG4bK1")
    assert _vias(headers)[0].host == "b"


def test_headers_refuse_injection_and_content_length() -> None:
    headers = Headers()
    with pytest.raises(ValueError, match="CR or LF"):
        headers.add("Subject", "a\r\nVia: evil")
    with pytest.raises(ValueError, match="header name"):
        headers.add("Bad Name", "x")
    with pytest.raises(ValueError, match="Content-Length"):
        headers.add("l", "0")


# ---- structured values -----------------------------------------------------------------


def test_via() -> None:
    via = Via.parse(
        "SIP / 2.0 / udp  [2001:db8::1] : 5070 ; branch = z9hG4bK776 ;rport;received=[2001:db8::2]"
    )
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "UDP",
        "2001:db8::1",
        5070,
    )
    assert via.branch == "z9hG4bK776"
    assert via.has_rport and via.rport is None
    assert via.received == "2001:db8::2"
    assert via.sent_by == "[2001:db8::1]:5070"
    stamped = via.with_received("192.0.2.1").with_rport(5071)
    assert stamped.received == "192.0.2.1" and stamped.rport == 5071
    assert str(stamped) == (
        "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK776;rport=5071;received=192.0.2.1"
    )
    assert Via.parse(str(stamped)) == stamped
    ttl = Via.parse("SIP/2.0/UDP 224.2.0.1;ttl=16;maddr=224.2.0.1;branch=z9hG4bKa")
    assert ttl.ttl == 16 and ttl.maddr == "224.2.0.1"


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/2.0 UDP host",
        "SIP/2.0/UDPhost",
        "SIP/2.0/UDP host:",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host;;branch=x",
        "SIP/2.0/UDP host;branch",
        "SIP/2.0/UDP host;branch=",
        "SIP/2.0/UDP host;rport=abc",
        "SIP/2.0/UDP host;ttl=256",
        "SIP/2.0/UDP host junk",
        "SIP/2.0/UDP [::1",
    ],
)
def test_bad_vias(text: str) -> None:
    with pytest.raises(SipParseError, match="Malformed Via"):
        Via.parse(text)


def test_address_forms() -> None:
    quoted = Address.parse('"A \\"B\\" C" <sip:abc@example.com;lr>;tag=12;x')
    assert quoted.display_name == 'A "B" C'
    assert isinstance(quoted.uri, SipUri) and quoted.uri.lr
    assert quoted.tag == "12" and "x" in quoted.params
    tokens = Address.parse("Alice  Smith <sip:alice@example.com>")
    assert tokens.display_name == "Alice Smith"
    bare = Address.parse("sip:alice@example.com;tag=9")
    assert bare.display_name is None
    assert isinstance(bare.uri, SipUri) and bare.uri.params == ()
    assert bare.tag == "9"
    assert str(bare) == "<sip:alice@example.com>;tag=9"
    assert str(quoted) == '"A \\"B\\" C" <sip:abc@example.com;lr>;tag=12;x'
    assert Address.parse(str(quoted)) == quoted
    assert str(bare.with_tag("10")) == "<sip:alice@example.com>;tag=10"
    contact = Address.parse("<sip:a@b.com>;q=0.7;expires=3600")
    assert (contact.q, contact.expires) == (0.7, 3600)
    huge = Address.parse("<sip:a@b.com>;expires=99999999999999999999")
    assert huge.expires == 2**32 - 1


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b.com>',
        "Bell, Alexander <sip:a@b.com>",
        "< sip:a@b.com >",
        "<sip:a@b.com",
        "sip:a@b.com?x=y",
        '"name" sip:a@b.com',
        "<sip:a@b.com>;;",
        "<sip:a@b.com> junk",
        "",
    ],
)
def test_bad_addresses(text: str) -> None:
    with pytest.raises(SipParseError, match="Malformed From"):
        Address.parse(text, "From")


def test_address_refuses_cr_lf_in_display_name() -> None:
    with pytest.raises(ValueError):
        Address(SipUri("example.com"), "a\r\nb")


def test_quote_and_unquote() -> None:
    text = 'he said "hi" \\ \x07'
    assert unquote(quote(text)) == text
    assert quote("plain") == '"plain"'
    assert unquote("token") == "token"
    with pytest.raises(ValueError):
        quote("a\nb")


def test_cseq() -> None:
    assert CSeq.parse("0009 INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(4294967295, "BYE")) == "4294967295 BYE"
    for bad in ("4294967296 INVITE", "INVITE", "1", "1INVITE", "-1 INVITE", "1 INVITE x"):
        with pytest.raises(SipParseError, match="Malformed CSeq"):
            CSeq.parse(bad)


def test_media_type() -> None:
    media = MediaType.parse('Multipart/Mixed ; boundary="a b"')
    assert media.mime_type == "multipart/mixed"
    assert media.params.get("boundary") == "a b"
    assert MediaType.parse(str(media)) == media
    with pytest.raises(SipParseError):
        MediaType.parse("application")


def test_digest_challenge_and_credentials() -> None:
    challenge = Challenge.parse(
        'Digest realm="atlanta.example.com", qop="auth,auth-int", '
        'nonce="ea9c8e88df84f1cec4341ae6cbe5a359", opaque="", stale=FALSE, algorithm=MD5'
    )
    assert challenge.is_digest
    assert challenge.realm == "atlanta.example.com"
    assert challenge.qop_options == ["auth", "auth-int"]
    assert challenge.opaque == ""
    assert not challenge.stale and challenge.algorithm == "MD5"
    assert Challenge.parse(str(challenge)) == challenge

    credentials = Credentials.build(
        "Digest",
        [
            ("username", "bob"),
            ("realm", "biloxi.com"),
            ("nonce", "dcd98b7102dd2f0e8b11d0f600bfb0c093"),
            ("uri", "sip:bob@biloxi.com"),
            ("qop", "auth"),
            ("nc", "00000001"),
            ("cnonce", "0a4f113b"),
            ("response", "6629fae49393a05397450978507c4ef1"),
            ("algorithm", "MD5"),
        ],
    )
    text = str(credentials)
    assert 'username="bob"' in text and "nc=00000001" in text and "qop=auth" in text
    parsed = Credentials.parse(text)
    assert parsed == credentials
    assert (parsed.username, parsed.uri, parsed.nc, parsed.qop) == (
        "bob",
        "sip:bob@biloxi.com",
        "00000001",
        "auth",
    )
    assert parsed.cnonce == "0a4f113b"
    assert parsed.response == "6629fae49393a05397450978507c4ef1"


def test_other_auth_schemes() -> None:
    opaque = Credentials.parse("NoOneKnowsThisScheme opaque-data=here")
    assert not opaque.is_digest and opaque.get("opaque-data") == "here"
    bearer = Credentials.parse("Bearer mF_9.B5f-4.1JqM")
    assert bearer.token68 == "mF_9.B5f-4.1JqM"
    assert str(bearer) == "Bearer mF_9.B5f-4.1JqM"
    with pytest.raises(SipParseError, match="Malformed Authorization"):
        Credentials.parse('Digest username="unterminated')


def test_params() -> None:
    params = Params((("tag", "1"), ("lr", None)))
    assert params.get("TAG") == "1" and "LR" in params and params.get("lr") is None
    assert str(params.with_param("tag", "2")) == ";tag=2;lr"
    assert str(params.with_param("x", quote("a b"))) == ';tag=1;lr;x="a b"'
    assert str(params.without("tag")) == ";lr"
    with pytest.raises(ValueError):
        params.with_param("x", "a b")
    with pytest.raises(ValueError):
        params.with_param("bad name")
