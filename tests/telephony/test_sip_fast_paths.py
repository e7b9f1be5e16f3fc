"""The hot-path shortcuts of the SIP stack give the same results as the general code.

Each shortcut (a one-regex parse of the usual name-addr, a one-pass Via parameter check,
responses copying the request's header entries, long timers in coarse slots) is checked
against the general path it stands in for, on mutated inputs, errors included.
"""

from __future__ import annotations

import asyncio
import random
import re
import string

import pytest

from sparklecomm.telephony import sdp as sdplib
from sparklecomm.telephony.sip import fields as fields_module
from sparklecomm.telephony.sip import parser as parser_module
from sparklecomm.telephony.sip.errors import SipParseError
from sparklecomm.telephony.sip.fields import Address, Params, Via
from sparklecomm.telephony.sip.headers import Headers
from sparklecomm.telephony.sip.message import SipResponse, build_response
from sparklecomm.telephony.sip.parser import parse_datagram
from sparklecomm.telephony.sip.timers import LoopScheduler

_NEVER = re.compile(r"(?!)")

ADDRESS_SEEDS = [
    "sipp <sip:sipp@127.0.0.1:5080>;tag=1234SIPpTag001",
    "<sip:bob@biloxi.example.com>",
    "Bob Smith <sip:bob@biloxi.example.com;transport=udp>;tag=a;lr",
    '"Bob" <sip:bob@[2001:db8::1]:5070>;tag=x',
    "sip:alice@atlanta.example.com;tag=88",
    "<sips:+1-555@example.com;user=phone>;expires=60;q=0.5",
    "<tel:+15551234>;tag=z",
]
_MUTATION_CHARS = ' \t;=<>"@:,[]x%~*' + string.ascii_letters[:6] + string.digits[:4] + "\x00é"


def _mutations(seeds: list[str], count: int, rng: random.Random) -> list[str]:
    out = list(seeds)
    while len(out) < count:
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            action = rng.randrange(3)
            position = rng.randrange(len(text) + 1)
            if action == 0 and text:
                del text[min(position, len(text) - 1)]
            elif action == 1:
                text.insert(position, rng.choice(_MUTATION_CHARS))
            elif text:
                text[min(position, len(text) - 1)] = rng.choice(_MUTATION_CHARS)
        out.append("".join(text))
    return out


def _outcome(parse: object, text: str) -> object:
    try:
        return ("ok", parse(text))  # type: ignore[operator]
    except SipParseError as error:
        return ("error", error.reason, error.detail)


def test_address_fast_path_matches_the_scanner(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _mutations(ADDRESS_SEEDS, 20_000, random.Random(5))
    fast = [_outcome(lambda t: Address.parse(t, "From"), text) for text in texts]
    taken = sum(1 for text in texts if fields_module._ADDRESS_FAST_RE.fullmatch(text))
    assert taken > 2_000  # the shortcut is exercised, not only the scanner
    monkeypatch.setattr(fields_module, "_ADDRESS_FAST_RE", _NEVER)
    slow = [_outcome(lambda t: Address.parse(t, "From"), text) for text in texts]
    for text, a, b in zip(texts, fast, slow, strict=True):
        assert a == b, text


VIA_SEEDS = [
    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds;rport",
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport=5070;received=192.0.2.9",
    "SIP/2.0/TCP host.example.com;ttl=16;maddr=224.2.0.1;branch=z9hG4bKy",
    "SIP/2.0/UDP h:5060;BRANCH=z9hG4bKa;RPort;TTL=1;MADDR=h2",
    "SIP/2.0/UDP h;branch;rport=x;ttl=300;maddr",
]


def _validate_by_lookups(via: Via) -> None:
    """The checks of ``Via._validate`` written with ``Params`` look-ups (the reference)."""
    params = via.params
    ttl = params.raw("ttl")
    if "ttl" in params and (ttl is None or not ttl.isdigit() or not ttl.isascii()):
        raise SipParseError("ttl")
    if ttl is not None and int(ttl) > 255:
        raise SipParseError("ttl")
    rport = params.raw("rport")
    if rport is not None and (not rport.isdigit() or not rport.isascii() or int(rport) > 65535):
        raise SipParseError("rport")
    if "maddr" in params and params.raw("maddr") is None:
        raise SipParseError("maddr")
    if "branch" in params and params.raw("branch") is None:
        raise SipParseError("branch")


def test_via_parameter_checks_match_lookups() -> None:
    texts = _mutations(VIA_SEEDS, 20_000, random.Random(7))
    checked = 0
    for text in texts:
        try:
            via = Via.parse(text)
        except SipParseError:
            via = None
        # Every Via the parser accepts passes the reference checks; every parameter list
        # the reference refuses was refused by the parser.
        if via is not None:
            _validate_by_lookups(via)
            checked += 1
    assert checked > 2_000
    for text in VIA_SEEDS[3:4]:
        assert Via.parse(text).branch == "z9hG4bKa"
    for bad in (
        "SIP/2.0/UDP h;branch",
        "SIP/2.0/UDP h;branch=z9hG4bKa;rport=x",
        "SIP/2.0/UDP h;ttl=300",
        "SIP/2.0/UDP h;maddr",
        "SIP/2.0/UDP h;RPORT=99999",
    ):
        with pytest.raises(SipParseError):
            Via.parse(bad)
    # The first of a repeated name is the one checked, as Params.raw finds it.
    assert Via.parse("SIP/2.0/UDP h;rport=1;rport=x").rport == 1
    with pytest.raises(SipParseError):
        Via.parse("SIP/2.0/UDP h;rport=x;rport=1")


INVITE = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKq\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5080>;tag=77\r\n"
    b"To: <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: abc@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Timestamp: 54\r\n"
    b"Contact: <sip:sipp@127.0.0.1:5080>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _response_by_adding(
    request: Headers, status: int, to_tag: str, *, copy_record_route: bool
) -> Headers:
    """The response headers built with ``Headers.add`` (the reference)."""
    headers = Headers()
    for value in request.get_all("Via"):
        headers.add("Via", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.get(name)
        assert value is not None
        if name == "To" and status != 100 and ";tag=" not in value:
            value = f"{value};tag={to_tag}"
        headers.add(name, value)
    if status == 100:
        headers.add("Timestamp", request.get("Timestamp") or "")
    if copy_record_route:
        for value in request.get_all("Record-Route"):
            headers.add("Record-Route", value)
    return headers


@pytest.mark.parametrize("status", [100, 180, 200, 486])
@pytest.mark.parametrize("copy_record_route", [False, True])
def test_responses_copy_the_request_entries(status: int, copy_record_route: bool) -> None:
    request = parse_datagram(INVITE)
    response = build_response(
        request,  # type: ignore[arg-type]
        status,
        to_tag="t1",
        copy_record_route=copy_record_route,
    )
    expected = _response_by_adding(
        request.headers, status, "t1", copy_record_route=copy_record_route
    )
    assert list(response.headers) == list(expected)
    # What goes on the wire parses back to the same message.
    wire = response.to_bytes()
    again = parse_datagram(wire)
    assert isinstance(again, SipResponse) and again == response
    assert len(response.via) == 3
    # The response's own headers are independent of the request's.
    response.headers.add("Via", "SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKnew")
    assert len(request.via) == 3


def test_response_keeps_a_to_tag_already_there() -> None:
    request = parse_datagram(INVITE.replace(b"To: <sip:bob@127.0.0.1>", b"t: <sip:b@h>;tag=9"))
    response = build_response(request, 200, to_tag="t1")  # type: ignore[arg-type]
    assert response.headers.get("To") == "<sip:b@h>;tag=9"


def test_params_get_finds_names_in_any_case() -> None:
    params = Params((("Tag", '"a\\"b"'), ("tag", "second"), ("lr", None)))
    assert params.get("TAG") == 'a"b'
    assert params.get("lr") is None and "LR" in params
    assert params.get("missing") is None


async def test_coarse_timers_fire_late_by_at_most_the_resolution() -> None:
    loop = asyncio.get_running_loop()
    scheduler = LoopScheduler(coarse_from=0.05, resolution=0.02)
    fired: dict[str, float] = {}
    start = loop.time()

    def record(name: str) -> None:
        fired[name] = loop.time() - start

    def boom() -> None:
        raise RuntimeError("a failing timer")

    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        scheduler.call_later(0.06, lambda: record("a"))
        scheduler.call_later(0.06, boom)
        scheduler.call_later(0.061, lambda: record("b"))
        cancelled = scheduler.call_later(0.07, lambda: record("cancelled"))
        scheduler.call_later(0.01, lambda: record("short"))  # a plain loop timer
        cancelled.cancel()
        await asyncio.sleep(0.2)
    finally:
        loop.set_exception_handler(None)
    assert set(fired) == {"a", "b", "short"}
    assert 0.06 <= fired["a"] <= 0.06 + 0.02 + 0.05  # never early; late by the slot
    assert fired["b"] >= 0.061
    assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)


def test_header_end_and_line_split_match_the_regexes() -> None:
    rng = random.Random(11)
    pieces = [b"\r", b"\n", b"\r\n", b"a", b"b: c", b" "]
    for _ in range(30_000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        start = rng.randint(0, len(data))
        match = parser_module._HEADER_END_RE.search(data, start)
        expected = None if match is None else (match.start(), match.end())
        assert parser_module._header_end(data, start) == expected, (data, start)
        text = data.decode()
        assert parser_module._split_lines(text) == parser_module._LINE_END_RE.split(text), text


def _anchor_by_copy(
    sdp: sdplib.SessionDescription, host: str, port: int, origin: tuple[str, int] | None
) -> sdplib.SessionDescription:
    """``sdp.anchor`` written as a copy edited step by step (the reference)."""
    result = sdp.copy()
    family = "IP6" if ":" in host else "IP4"
    connection = f"IN {family} {host}"
    held = sdp.connection(sdp.audio()) == "0.0.0.0"
    if not held:
        result.session = [(k, connection if k == "c" else v) for k, v in result.session]
    audio = result.audio()
    for media in result.media:
        if media is audio:
            media.port = port
            if not held:
                media.lines = [(k, connection if k == "c" else v) for k, v in media.lines]
    if origin is not None:
        fields = result.origin.split()
        fields[1], fields[2] = origin[0], str(origin[1])
        fields[4], fields[5] = family, host
        result.session = [(k, " ".join(fields) if k == "o" else v) for k, v in result.session]
    return result


SDP_VARIANTS = [
    "v=0\r\no=a 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    "v=0\r\no=a 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 8\r\na=sendonly\r\n",
    "v=0\r\no=a 1 2 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 31\r\n"
    "m=audio 4002 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4004 RTP/AVP 8\r\n"
    "c=IN IP4 10.0.0.3\r\n",
    "v=0\r\no=a 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 0 RTP/AVP 0\r\n",
]


@pytest.mark.parametrize("text", SDP_VARIANTS)
@pytest.mark.parametrize("host", ["192.0.2.5", "2001:db8::5"])
@pytest.mark.parametrize("origin", [None, ("77", 3)])
def test_anchor_matches_an_edited_copy(
    text: str, host: str, origin: tuple[str, int] | None
) -> None:
    description = sdplib.parse(text)
    before = description.to_bytes()
    anchored = sdplib.anchor(description, host, 30000, origin=origin)
    assert anchored == _anchor_by_copy(description, host, 30000, origin)
    assert description.to_bytes() == before  # the input is left as it was
