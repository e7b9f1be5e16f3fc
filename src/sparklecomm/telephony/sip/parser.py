"""Turning octets into SIP messages: datagrams, stream framing and CRLF keep-alives.

:func:`parse_datagram` reads one UDP datagram (RFC 3261 §18.3: without Content-Length the
body is the rest of the datagram; octets past Content-Length are noise and dropped).
:func:`parse_stream` frames messages on a TCP/TLS byte stream by Content-Length (which is
then mandatory) and reports RFC 5626 CRLF keep-alives. Both accept every octet sequence:
they return a message or raise :class:`~sparklecomm.telephony.sip.errors.SipParseError`.

What "accepted" means: the start line and every header that has a typed accessor (see
``SipRequest.check_headers``) follow the RFC 3261 grammar, Via/From/To/Call-ID/CSeq are
present, From/To/Call-ID/CSeq/Max-Forwards/Content-Type/Expires/Content-Length appear once,
and a request's CSeq names its method. Liberal where the RFCs ask for it (RFC 4475,
RFC 5118): folding, odd case and spacing, bare LF line ends, ``received`` with IPv6
brackets, the three-colon IPv6 form, a datagram whose header section is not closed.
Unknown headers are kept as opaque text. Header text is decoded as UTF-8 with
``surrogateescape``, so octets that are not UTF-8 survive unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparklecomm.telephony.sip.errors import ParseErrorKind, SipParseError, malformed
from sparklecomm.telephony.sip.fields import Via
from sparklecomm.telephony.sip.grammar import TOKEN_RE, UINT32_MAX, parse_uint
from sparklecomm.telephony.sip.headers import LIST_HEADERS, Headers, canonical_name
from sparklecomm.telephony.sip.message import (
    KNOWN_METHODS,
    REASON_PHRASES,
    SipMessage,
    SipRequest,
    SipResponse,
)
from sparklecomm.telephony.sip.uri import SipUri, Uri, parse_uri


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on what the parser will read; beyond them it raises a 513-class error."""

    max_message_size: int = 64 * 1024
    """Whole message (start line, headers and body), in octets."""
    max_headers: int = 256
    """Header lines (after unfolding), Content-Length included."""
    max_header_length: int = 8 * 1024
    """One start line or unfolded header line, in characters."""


DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """CRLF keep-alive octets read from a stream (RFC 5626 §3.5.1, §4.4.1).

    ``ping`` is a double CRLF, which a server answers with a single CRLF; otherwise it is
    a single CRLF: the pong a client waits for (or, before a message, octets RFC 3261 §7.5
    says to ignore).
    """

    ping: bool


_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_LINE_END_RE = re.compile(r"\r?\n")
_VERSION_RE = re.compile(r"SIP/([0-9]+)\.([0-9]+)", re.IGNORECASE)
_STATUS_CODE_RE = re.compile(r"[1-6][0-9][0-9]")
_REASON_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_KEEPALIVE_OCTETS = frozenset(b"\r\n \t\x00")
_WSP = " \t"

_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
_SINGLE = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type", "Expires")
_STANDARD_REASONS = frozenset(REASON_PHRASES.values())
_MANDATORY_KEYS = tuple((name, name.lower()) for name in _MANDATORY)
_SINGLE_KEYS = tuple((name, name.lower()) for name in _SINGLE)


def is_keepalive(datagram: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram is only keep-alive filler (CRLFs, spaces, NULs) to be ignored."""
    octets = bytes(datagram)
    if not octets or octets[0] not in _KEEPALIVE_OCTETS:
        return False  # a message: it starts with a letter
    return all(octet in _KEEPALIVE_OCTETS for octet in octets)


def parse_datagram(
    data: bytes | bytearray | memoryview, *, limits: ParseLimits = DEFAULT_LIMITS
) -> SipMessage:
    """Parse one datagram into a message.

    Without Content-Length the body is the rest of the datagram; with it, the body is that
    many octets and anything after is ignored (RFC 3261 §18.3), while fewer octets than
    announced is ``400 Bad Request - Content-Length mismatch``.
    """
    data = bytes(data)
    if len(data) > limits.max_message_size:
        raise _too_large(f"datagram of {len(data)} octets")
    start = 0 if data[:1] not in (b"\r", b"\n") else len(data) - len(data.lstrip(b"\r\n"))
    if start == len(data):
        raise SipParseError("Bad Request - Empty message")
    bounds = _header_end(data, start)
    if bounds is None:
        # An unclosed header section: the end of the datagram ends it (RFC 4475 baddn).
        head, rest = data[start:].rstrip(b"\r\n"), b""
    else:
        head, rest = data[start : bounds[0]], data[bounds[1] :]
    parts = _split_head(head, limits)
    lengths = parts.content_lengths
    body = rest
    framing_error: SipParseError | None = None
    if len(lengths) == 1:
        try:
            length = parse_uint(lengths[0], "Content-Length")
        except SipParseError as error:
            framing_error = error
        else:
            if length > len(rest):
                framing_error = SipParseError(
                    "Bad Request - Content-Length mismatch",
                    detail=f"Content-Length {length}, {len(rest)} octets of body",
                )
            else:
                body = rest[:length]
    return _build(parts, body, framing_error)


def _header_end(data: bytes, start: int) -> tuple[int, int] | None:
    """Where the first empty line (``\\r?\\n\\r?\\n``) at or after ``start`` begins and
    ends, as ``_HEADER_END_RE.search`` finds it; ``None`` when there is none.

    The usual case, CRLF line ends throughout, is found with plain substring searches (no
    LF without its CR before the first CRLFCRLF); anything else takes the regex.
    """
    found = data.find(b"\r\n\r\n", start)
    if (
        found >= 0
        and data.find(b"\n\n", start, found + 1) < 0
        and data.find(b"\n\r\n", start, found + 2) < 0
    ):
        return found, found + 4
    match = _HEADER_END_RE.search(data, start)
    return None if match is None else (match.start(), match.end())


def _split_lines(text: str) -> list[str]:
    """``_LINE_END_RE.split(text)``: with CRLF line ends only, a plain split."""
    if text.count("\n") == text.count("\r\n"):
        return text.split("\r\n")
    return _LINE_END_RE.split(text)


def parse_stream(
    buffer: bytes | bytearray | memoryview,
    *,
    limits: ParseLimits = DEFAULT_LIMITS,
    expect_pong: bool = False,
) -> tuple[SipMessage | KeepAlive, int] | None:
    """Frame the next message (or keep-alive) at the start of a stream buffer.

    Returns ``(message or KeepAlive, octets consumed)``, or ``None`` when more data is
    needed. Content-Length is mandatory on streams. A lone CRLF at the very end of the
    buffer could be the first half of a ping: it waits for more data unless
    ``expect_pong`` (set it on connections we opened and pinged, where the peer answers
    with a single CRLF).

    A :class:`SipParseError` carries ``consumed``: the message length when its framing was
    clear (drop those octets and go on), or ``None`` when the connection must be closed.
    """
    data = bytes(buffer)
    if data.startswith(b"\r\n\r\n"):
        return KeepAlive(ping=True), 4
    if data.startswith(b"\r\n"):
        if len(data) == 2:
            return (KeepAlive(ping=False), 2) if expect_pong else None
        if data == b"\r\n\r":
            return None
        return KeepAlive(ping=False), 2
    if data in (b"", b"\r"):
        return None
    # Search no further than a maximal header section could reach.
    end = _HEADER_END_RE.search(data, 0, limits.max_message_size + 4)
    if end is None:
        if len(data) > limits.max_message_size:
            raise _too_large("no end of headers within the size limit")
        return None
    parts = _split_head(data[: end.start()], limits)
    lengths = parts.content_lengths
    if not lengths:
        raise _annotated(SipParseError("Bad Request - Missing Content-Length"), parts)
    if len(set(lengths)) > 1:
        raise _annotated(SipParseError("Bad Request - Duplicate Content-Length"), parts)
    try:
        length = parse_uint(lengths[0], "Content-Length", maximum=UINT32_MAX)
    except SipParseError as error:
        raise _annotated(error, parts) from None
    total = end.end() + length
    if total > limits.max_message_size:
        raise _annotated(_too_large(f"message of {total} octets"), parts)
    if len(data) < total:
        return None
    try:
        message = _build(parts, data[end.end() : total], None)
    except SipParseError as error:
        error.consumed = total
        raise
    return message, total


def _too_large(detail: str) -> SipParseError:
    return SipParseError("Message Too Large", kind=ParseErrorKind.MESSAGE_TOO_LARGE, detail=detail)


@dataclass(slots=True)
class _Head:
    """A header section cut into its start line and unfolded header lines."""

    start_line: str
    fields: list[tuple[str, str]]
    content_lengths: list[str]
    problems: list[SipParseError]
    infos: list[tuple[str, str, bool]]
    """For each of ``fields``: its name's (canonical name, lower-case key, list header)."""


_FIELD_NAMES: dict[str, tuple[str, tuple[str, str, bool]]] = {}
"""Header names as they appear before the colon (``"Via"``, ``"v "``) → the name without
trailing whitespace and its (canonical name, lower-case key, list header), for names
already seen to be tokens; bounded (see :data:`_FIELD_NAMES_MAX`). Saves a regex match and
the name folding per header line."""
_FIELD_NAMES_MAX = 1024


def _field_name(raw: str) -> tuple[str, tuple[str, str, bool]] | None:
    """``raw`` (the text before a header line's colon) without trailing whitespace, and
    its :func:`_info`; ``None`` when that is not a token."""
    found = _FIELD_NAMES.get(raw)
    if found is not None:
        return found
    name = raw.rstrip(" \t")
    if TOKEN_RE.fullmatch(name) is None:
        return None
    found = (name, _info(name))
    if len(_FIELD_NAMES) < _FIELD_NAMES_MAX:
        _FIELD_NAMES[raw] = found
    return found


def _info(name: str) -> tuple[str, str, bool]:
    """(canonical name, lower-case key, whether a list header) of a header name."""
    canonical = canonical_name(name)
    return (canonical, canonical.lower(), canonical in LIST_HEADERS)


def _split_head(head: bytes, limits: ParseLimits) -> _Head:
    text = head.decode("utf-8", "surrogateescape")
    lines = _split_lines(text)
    start_line = lines[0]
    problems: list[SipParseError] = []
    if len(start_line) > limits.max_header_length:
        raise _too_large("start line too long")
    fields: list[tuple[str, str]] = []
    infos: list[tuple[str, str, bool]] = []
    lengths_at: list[int] = []
    max_headers = limits.max_headers
    max_length = limits.max_header_length
    for line in lines[1:]:
        if not line:
            continue
        if "\r" in line:
            problems.append(malformed("header line", "bare CR"))
            continue
        first = line[0]
        if first == " " or first == "\t":
            if not fields:
                problems.append(malformed("header line", "continuation without a header"))
                continue
            name, value = fields[-1]
            value = value.rstrip(_WSP) + " " + line.strip(_WSP)
            fields[-1] = (name, value)
        else:
            raw, colon, value = line.partition(":")
            found = _field_name(raw) if colon else None
            if found is None:
                problems.append(malformed("header line", f"{line[:40]!r}"))
                continue
            name, info = found
            if info[0] == "Content-Length":
                lengths_at.append(len(fields))
            fields.append((name, value))
            infos.append(info)
            if len(fields) > max_headers:
                raise _too_large(f"more than {max_headers} header lines")
        if len(value) > max_length:
            raise _too_large(f"header {name} too long")
    content_lengths = [fields[index][1].strip() for index in lengths_at]
    return _Head(start_line, fields, content_lengths, problems, infos)


def _build(parts: _Head, body: bytes, framing_error: SipParseError | None) -> SipMessage:
    headers = Headers()
    entries = headers._fields
    for (_, value), (canonical, key, is_list) in zip(parts.fields, parts.infos, strict=True):
        if is_list and "," in value:
            headers._append_parsed(canonical, value)
        elif canonical != "Content-Length":
            entries.append((key, canonical, value.strip()))
    problems = list(parts.problems)
    message: SipMessage | None = None
    method: str | None = None
    bad_version: SipParseError | None = None
    start = parts.start_line
    is_request = start[:4].upper() != "SIP/"
    try:
        if is_request:
            method, uri, version = _request_line(start)
            message = SipRequest(method, uri, headers, body)
        else:
            version, status, reason = _status_line(start)
            message = SipResponse(status, reason, headers, body)
        if version != (2, 0):
            bad_version = SipParseError(
                "Version Not Supported",
                kind=ParseErrorKind.VERSION_NOT_SUPPORTED,
                detail=f"SIP/{version[0]}.{version[1]}",
            )
    except SipParseError as start_line_error:
        problems.insert(0, start_line_error)
        if is_request:
            method = _method_of(start)

    problems.extend(_check_headers(headers, parts.content_lengths, message))
    if framing_error is not None:
        problems.append(framing_error)
    if bad_version is None and not problems and message is not None:
        return message
    failure = bad_version or problems[0]
    failure.is_request = is_request
    failure.method = method
    if is_request and method is not None and _respondable(headers):
        failure._response_headers = headers
    raise failure


def _request_line(line: str) -> tuple[str, Uri, tuple[int, int]]:
    parts = line.split(" ")
    if len(parts) != 3 or (parts[0] not in KNOWN_METHODS and TOKEN_RE.fullmatch(parts[0]) is None):
        raise malformed("Request-Line", f"{line[:80]!r}")
    method, target, version_text = parts
    version = _version(version_text, "Request-Line")
    uri = parse_uri(target, "Request-URI")
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 3261 §19.1.5: headers are not allowed in a Request-URI (RFC 4475 escruri).
        raise malformed("Request-URI", "URI headers in a Request-URI")
    return method, uri, version


def _status_line(line: str) -> tuple[tuple[int, int], int, str]:
    parts = line.split(" ", 2)
    version = _version(parts[0], "Status-Line")
    if len(parts) < 2 or _STATUS_CODE_RE.fullmatch(parts[1]) is None:
        raise malformed("Status-Line", f"{line[:80]!r}")
    reason = parts[2] if len(parts) == 3 else ""
    if reason not in _STANDARD_REASONS and _REASON_BAD_RE.search(reason):
        raise malformed("Status-Line", "control character in reason phrase")
    return version, int(parts[1]), reason


def _version(text: str, what: str) -> tuple[int, int]:
    if text == "SIP/2.0":
        return (2, 0)
    match = _VERSION_RE.fullmatch(text)
    if match is None:
        raise malformed(what, f"bad SIP version {text[:20]!r}")
    major, minor = (match.group(i).lstrip("0") or "0" for i in (1, 2))
    # A version that big is only "not 2.0"; do not convert a thousand digits.
    if len(major) > 3 or len(minor) > 3:
        return (999, 999)
    return int(major), int(minor)


def _method_of(line: str) -> str | None:
    method = line.split(" ", 1)[0]
    return method if TOKEN_RE.fullmatch(method) else None


def _check_headers(
    headers: Headers, content_lengths: list[str], message: SipMessage | None
) -> list[SipParseError]:
    problems: list[SipParseError] = []
    grouped: dict[str, list[str]] = {}
    for key, _, value in headers._fields:
        values = grouped.get(key)
        if values is None:
            grouped[key] = [value]
        else:
            values.append(value)
    for name, key in _MANDATORY_KEYS:
        if key not in grouped:
            problems.append(SipParseError(f"Bad Request - Missing {name}"))
    for name, key in _SINGLE_KEYS:
        values = grouped.get(key)
        if values is not None and len(values) > 1:
            problems.append(SipParseError(f"Bad Request - Duplicate {name}"))
    if len(content_lengths) > 1:
        problems.append(SipParseError("Bad Request - Duplicate Content-Length"))
    if problems or message is None:
        return problems
    try:
        message._check_grouped(grouped)
    except SipParseError as error:
        return [error]
    if isinstance(message, SipRequest) and message.cseq.method != message.method:
        detail = f"CSeq method {message.cseq.method!r}, request method {message.method!r}"
        if message.method not in KNOWN_METHODS:
            # RFC 4475 §3.1.2.18: for an unknown method 501 is the better answer.
            return [
                SipParseError("Not Implemented", kind=ParseErrorKind.NOT_IMPLEMENTED, detail=detail)
            ]
        return [SipParseError("Bad Request - CSeq method mismatch", detail=detail)]
    return []


def _respondable(headers: Headers) -> bool:
    """Enough to answer: every mandatory header present and a readable top Via."""
    if any(name not in headers for name in _MANDATORY):
        return False
    top = headers.get("Via")
    if top is None:
        return False
    try:
        Via.parse(top)
    except SipParseError:
        return False
    return True


def _annotated(error: SipParseError, parts: _Head) -> SipParseError:
    """Complete a stream framing error: the connection cannot go on (nothing consumed),
    but a request may still get its 400 before the stack closes it."""
    error.consumed = None
    error.is_request = parts.start_line[:4].upper() != "SIP/"
    if error.is_request:
        error.method = _method_of(parts.start_line)
        headers = Headers()
        for name, value in parts.fields:
            canonical = canonical_name(name)
            if canonical != "Content-Length":
                headers._append_parsed(canonical, value)
        if error.method is not None and _respondable(headers):
            error._response_headers = headers
    return error
