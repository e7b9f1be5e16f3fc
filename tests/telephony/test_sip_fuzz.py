"""Property tests: no input makes the parser raise anything but SipParseError, and valid
messages survive serialization unchanged."""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sparklecomm.telephony.sip import (
    Address,
    Challenge,
    Credentials,
    CSeq,
    Headers,
    KeepAlive,
    MediaType,
    Params,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    parse_datagram,
    parse_stream,
    parse_uri,
    serialize,
)
from sparklecomm.telephony.sip.message import SipMessage

REPO_ROOT = Path(__file__).resolve().parents[2]
TORTURE = REPO_ROOT.parent / "shared" / "data" / "sip-torture"

SEED_MESSAGES = [
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;q=0.5, <sip:alice@[2001:db8::1]:5070>\r\n"
    b"Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n"
    b'Authorization: Digest username="alice", realm="atlanta", nonce="x,y", response="0a"\r\n'
    b"Supported: replaces, timer\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n",
    b"SIP/2.0 200 OK\r\n"
    b"v: SIP/2.0/TCP 192.0.2.1:5061;branch=z9hG4bKnashds8;received=192.0.2.9\r\n"
    b"f: <sip:alice@atlanta.example.com>;tag=88\r\n"
    b"t: <sip:bob@biloxi.example.com>;tag=99\r\n"
    b"i: 1234@host\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"m: *\r\n"
    b"l: 0\r\n\r\n",
]


def _seed_corpus() -> list[bytes]:
    corpus = list(SEED_MESSAGES)
    if TORTURE.is_dir():
        corpus += [path.read_bytes() for path in sorted(TORTURE.glob("**/*.dat"))]
    return corpus


CORPUS = _seed_corpus()


def _exercise(message: SipMessage) -> None:
    """What the stack does with an accepted message must not fail either."""
    message.check_headers()
    wire = serialize(message)
    again = parse_datagram(wire)
    assert again == message
    assert serialize(again, compact=True)


def _datagram(data: bytes) -> None:
    try:
        message = parse_datagram(data)
    except SipParseError as error:
        assert error.reason.isascii() and error.reason
        assert error.status_code in (400, 501, 505, 513)
        response = error.build_response(to_tag="fuzz")
        if response is not None:
            assert error.can_respond and error.is_request
            serialize(response)
        return
    _exercise(message)


def _stream(data: bytes) -> None:
    offset = 0
    for _ in range(20):
        try:
            framed = parse_stream(data[offset:])
        except SipParseError as error:
            assert error.consumed is None or error.consumed > 0
            return
        if framed is None:
            return
        item, consumed = framed
        assert 0 < consumed <= len(data) - offset
        if not isinstance(item, KeepAlive):
            _exercise(item)
        offset += consumed


FAST = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(st.binary(max_size=2048))
@example(b"\r\n\r\n")
@example(b"SIP/2.0 200\r\n\r\n")
@example(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n")
@example(b"A sip:[::1 SIP/2.0\r\n\r\n")
@example(b"\xff\xfe sip:x SIP/2.0\r\nVia: \xc3\r\n\r\n")
def test_random_bytes_only_raise_parse_errors(data: bytes) -> None:
    _datagram(data)
    _stream(data)


_HEADER_CHARS = st.sampled_from(
    list(b'\r\n \t:;,<>"\\=@[]%/?*0123456789abcXYZ.-_+~\x00\x7f\xc3\xa9\xff')
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with a few truncations, byte flips, insertions or duplicated lines."""
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = bytes([draw(_HEADER_CHARS) for _ in range(draw(st.integers(1, 6)))])
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        else:
            lines = bytes(data).split(b"\r\n")
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index])
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@FAST
@given(mutated())
def test_mutated_messages_only_raise_parse_errors(data: bytes) -> None:
    _datagram(data)
    _stream(data)


# ---- generated valid messages round-trip ------------------------------------------------

_token = st.text(string.ascii_letters + string.digits + "-.!%*_+`'~", min_size=1, max_size=12)
_label = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_lowercase),
    st.text(string.ascii_lowercase + string.digits, max_size=8),
)
_hostname = st.lists(_label, min_size=1, max_size=3).map(".".join)
_ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_ipv6 = st.ip_addresses(v=6).map(str)
_host = st.one_of(_hostname, _ipv4, _ipv6)
_port = st.none() | st.integers(1, 65535)
# Sampled alphabets generate much faster than st.characters() and still cover escaping:
# reserved and unreserved ASCII, controls, Latin-1, CJK, astral plane.
_TEXT_ALPHABET = st.sampled_from(list("aZ09 -_.!~*'()&=+$,;?/:@%<>\"\\\t\x00\x7féü€大😀"))
_user_text = st.text(_TEXT_ALPHABET, min_size=1, max_size=10)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    params = draw(
        st.lists(
            st.tuples(_token, st.none() | _token), max_size=3, unique_by=lambda p: p[0].lower()
        )
    )
    return SipUri.build(
        draw(_host),
        user=draw(st.none() | _user_text),
        port=draw(_port),
        params=params,
        secure=draw(st.booleans()),
    )


_display = st.none() | st.text(_TEXT_ALPHABET, max_size=12)


# Contact gives q and expires a grammar of their own; keep generated parameters generic.
_generic_name = _token.filter(lambda name: name.lower() not in ("q", "expires"))


@st.composite
def addresses(draw: st.DrawFn) -> Address:
    params = Params()
    for name, value in draw(st.lists(st.tuples(_generic_name, st.none() | _token), max_size=3)):
        params = params.with_param(name, value)
    return Address(draw(sip_uris()), draw(_display), params)


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params = Params((("branch", "z9hG4bK" + draw(_token)),))
    if draw(st.booleans()):
        params = params.with_param("rport")
    return Via(draw(st.sampled_from(["UDP", "TCP", "TLS", "WS"])), draw(_host), draw(_port), params)


@st.composite
def messages(draw: st.DrawFn) -> SipMessage:
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE", "FOO"]))
    headers = Headers()
    for via in draw(st.lists(vias(), min_size=1, max_size=3)):
        headers.add("Via", str(via))
    headers.add("From", str(draw(addresses())))
    headers.add("To", str(draw(addresses())))
    headers.add("Call-ID", draw(_token) + "@" + draw(_hostname))
    headers.add("CSeq", str(CSeq(draw(st.integers(0, 2**32 - 1)), method)))
    for contact in draw(st.lists(addresses(), max_size=2)):
        headers.add("Contact", str(contact))
    for name, value in draw(
        st.lists(
            st.tuples(st.sampled_from(["X-Custom", "Subject", "User-Agent"]), _token), max_size=3
        )
    ):
        headers.add(name, value)
    body = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        return SipRequest(method, draw(sip_uris()), headers, body)
    return SipResponse(draw(st.integers(100, 699)), draw(_token), headers, body)


@settings(FAST, max_examples=100)
@given(messages(), st.booleans())
def test_generated_messages_round_trip(message: SipMessage, compact: bool) -> None:
    wire = serialize(message, compact=compact)
    assert parse_datagram(wire) == message
    framed = parse_stream(wire + b"OPTIONS")
    assert framed is not None and framed == (message, len(wire))


@settings(FAST, max_examples=100)
@given(sip_uris())
def test_generated_uris_round_trip(uri: SipUri) -> None:
    parsed = parse_uri(str(uri))
    assert parsed == uri
    assert parsed.equivalent(uri)


@settings(FAST, max_examples=100)
@given(addresses())
def test_generated_addresses_round_trip(address: Address) -> None:
    assert Address.parse(str(address)) == address


@FAST
@given(vias())
def test_generated_vias_round_trip(via: Via) -> None:
    assert Via.parse(str(via)) == via


def test_truncated_corpus_messages_only_raise_parse_errors() -> None:
    """Every eleventh prefix of every torture message, deterministically."""
    for data in CORPUS:
        for end in range(0, len(data), 11):
            _datagram(data[:end])
            _stream(data[:end])


# ---- structured parsers on hostile text ------------------------------------------------------

_HOSTILE = st.text(
    st.sampled_from(list("sip:@[]<>\";,=?&%25 \t\\/.-_+*!~'()abcxyzSIPUDP0123456789é\x00\x7f")),
    max_size=60,
)
_VALUE_PARSERS: dict[str, Callable[[str], object]] = {
    "uri": parse_uri,
    "via": Via.parse,
    "address": Address.parse,
    "cseq": CSeq.parse,
    "media": MediaType.parse,
    "credentials": Credentials.parse,
    "challenge": Challenge.parse,
}


@FAST
@given(st.sampled_from(sorted(_VALUE_PARSERS)), _HOSTILE)
@example("address", '"a\\\\" <sip:x@y>')
@example("via", "SIP/2.0/UDP [::1]:5;received=[::2];rport")
@example("uri", "sip:a@[::1];x=[::2]?h=v")
def test_value_parsers_fail_cleanly_and_reparse(kind: str, text: str) -> None:
    parse = _VALUE_PARSERS[kind]
    prefixed = {"via": "SIP/2.0/UDP ", "cseq": "1 ", "uri": "sip:"}.get(kind, "")
    for candidate in (text, prefixed + text):
        try:
            value = parse(candidate)
        except SipParseError:
            continue
        assert parse(str(value)) == value
