"""Framing SIP on a byte stream (TCP/TLS): partial data, several messages, keep-alives."""

from __future__ import annotations

import pytest

from sparklecomm.telephony.sip import (
    KeepAlive,
    ParseErrorKind,
    ParseLimits,
    SipMessage,
    SipParseError,
    SipRequest,
    parse_datagram,
    parse_stream,
)

OPTIONS = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP pc.example.com;branch=z9hG4bK1\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: abc@pc.example.com\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"hello"
)


def drain(
    buffer: bytes, *, expect_pong: bool = False
) -> tuple[list[SipMessage | KeepAlive], bytes]:
    """Feed a buffer through parse_stream until it wants more data."""
    items: list[SipMessage | KeepAlive] = []
    while True:
        framed = parse_stream(buffer, expect_pong=expect_pong)
        if framed is None:
            return items, buffer
        item, consumed = framed
        items.append(item)
        buffer = buffer[consumed:]


def test_one_message() -> None:
    framed = parse_stream(OPTIONS)
    assert framed is not None
    message, consumed = framed
    assert consumed == len(OPTIONS)
    assert isinstance(message, SipRequest) and message.body == b"hello"


def test_every_prefix_needs_more_data() -> None:
    for end in range(len(OPTIONS)):
        assert parse_stream(OPTIONS[:end]) is None, end


def test_byte_by_byte_arrival() -> None:
    buffer = b""
    seen: list[SipMessage | KeepAlive] = []
    for octet in OPTIONS + OPTIONS:
        buffer += bytes([octet])
        items, buffer = drain(buffer)
        seen += items
    assert seen == [parse_datagram(OPTIONS)] * 2
    assert buffer == b""


def test_several_messages_and_a_partial_one() -> None:
    items, rest = drain(OPTIONS + OPTIONS + OPTIONS[:30])
    assert len(items) == 2 and rest == OPTIONS[:30]


def test_accepts_bytearray_and_memoryview() -> None:
    assert parse_stream(bytearray(OPTIONS)) == parse_stream(memoryview(OPTIONS))


def test_keepalive_ping_and_pong() -> None:
    assert parse_stream(b"\r\n\r\n") == (KeepAlive(ping=True), 4)
    assert parse_stream(b"\r\n\r\n" + OPTIONS) == (KeepAlive(ping=True), 4)
    # A single CRLF before data is a pong (or filler before a message, RFC 3261 §7.5).
    assert parse_stream(b"\r\n" + OPTIONS) == (KeepAlive(ping=False), 2)
    items, rest = drain(b"\r\n\r\n\r\n\r\n" + OPTIONS)
    assert items[:2] == [KeepAlive(ping=True)] * 2 and len(items) == 3 and rest == b""


def test_lone_crlf_waits_unless_a_pong_is_expected() -> None:
    assert parse_stream(b"\r\n") is None  # maybe the first half of a ping
    assert parse_stream(b"\r\n\r") is None
    assert parse_stream(b"\r") is None
    assert parse_stream(b"") is None
    assert parse_stream(b"\r\n", expect_pong=True) == (KeepAlive(ping=False), 2)


def test_content_length_is_mandatory_on_streams() -> None:
    data = OPTIONS.replace(b"Content-Length: 5\r\n", b"")
    with pytest.raises(SipParseError) as caught:
        parse_stream(data)
    error = caught.value
    assert error.reason == "Bad Request - Missing Content-Length"
    assert error.consumed is None  # framing lost: close the connection
    assert error.can_respond  # ... after answering 400
    response = error.build_response(to_tag="x")
    assert response is not None and response.status == 400


@pytest.mark.parametrize("value", [b"-1", b"five", b"1" * 40, b""])
def test_bad_content_length_loses_framing(value: bytes) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_stream(OPTIONS.replace(b"Content-Length: 5", b"Content-Length: " + value))
    assert caught.value.consumed is None


def test_conflicting_content_lengths_lose_framing() -> None:
    data = OPTIONS.replace(b"Content-Length: 5\r\n", b"Content-Length: 5\r\nl: 6\r\n")
    with pytest.raises(SipParseError) as caught:
        parse_stream(data)
    assert caught.value.consumed is None
    assert caught.value.reason == "Bad Request - Duplicate Content-Length"


def test_bad_message_with_clear_framing_can_be_skipped() -> None:
    bad = OPTIONS.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    with pytest.raises(SipParseError) as caught:
        parse_stream(bad + OPTIONS)
    assert caught.value.consumed == len(bad)
    assert caught.value.reason == "Bad Request - CSeq method mismatch"
    framed = parse_stream((bad + OPTIONS)[len(bad) :])
    assert framed is not None and framed[1] == len(OPTIONS)


def test_size_limit() -> None:
    limits = ParseLimits(max_message_size=200)
    with pytest.raises(SipParseError) as caught:
        parse_stream(OPTIONS, limits=limits)
    assert caught.value.kind is ParseErrorKind.MESSAGE_TOO_LARGE and caught.value.consumed is None
    endless = b"OPTIONS sip:x SIP/2.0\r\nX-Junk: " + b"a" * 300
    assert parse_stream(endless[:150], limits=limits) is None
    with pytest.raises(SipParseError) as caught:
        parse_stream(endless, limits=limits)
    assert caught.value.status_code == 513
    huge_body = OPTIONS.replace(b"Content-Length: 5", b"Content-Length: 999999")
    with pytest.raises(SipParseError) as caught:
        parse_stream(huge_body)
    assert caught.value.kind is ParseErrorKind.MESSAGE_TOO_LARGE


def test_stream_and_datagram_agree() -> None:
    framed = parse_stream(OPTIONS)
    assert framed is not None and framed[0] == parse_datagram(OPTIONS)
