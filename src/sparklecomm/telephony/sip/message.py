"""SIP requests and responses, their typed header accessors, serialization, and building a
response from a request (RFC 3261 §7, §8.2.6).

A message is its start line, a :class:`~sparklecomm.telephony.sip.headers.Headers`
collection of raw values, and the body as bytes. The accessors (``via``, ``from_``,
``cseq``, ``contacts`` ...) parse on first use and cache until that header changes; on a
parsed message they were all checked already, so they cannot fail. On a message you built
or edited yourself they raise :class:`~sparklecomm.telephony.sip.errors.SipParseError` for
a value that breaks the grammar, and the mandatory ones (``top_via``, ``from_``, ``to``,
``call_id``, ``cseq``) raise it when the header is missing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sparklecomm.telephony.sip.errors import SipParseError
from sparklecomm.telephony.sip.fields import (
    Address,
    Challenge,
    Credentials,
    CSeq,
    MediaType,
    Via,
    parse_accept,
    parse_allow,
    parse_authorizations,
    parse_call_id,
    parse_contacts,
    parse_content_type,
    parse_cseq,
    parse_expires,
    parse_from,
    parse_max_forwards,
    parse_proxy_authenticates,
    parse_proxy_authorizations,
    parse_proxy_require,
    parse_record_routes,
    parse_require,
    parse_routes,
    parse_supported,
    parse_to,
    parse_unsupported,
    parse_vias,
    parse_www_authenticates,
)
from sparklecomm.telephony.sip.grammar import is_token
from sparklecomm.telephony.sip.headers import Headers, _parse_values, compact_name
from sparklecomm.telephony.sip.uri import Uri

SIP_VERSION = "SIP/2.0"

KNOWN_METHODS = frozenset(
    {
        "ACK",
        "BYE",
        "CANCEL",
        "INFO",
        "INVITE",
        "MESSAGE",
        "NOTIFY",
        "OPTIONS",
        "PRACK",
        "PUBLISH",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "UPDATE",
    }
)
"""Methods defined by RFC 3261 and its common extensions (names are case-sensitive)."""

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    439: "First Hop Lacks Outbound Support",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}
"""Standard reason phrases, by status code."""
_STANDARD_REASONS = frozenset(REASON_PHRASES.values())

_BAD_START_LINE_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# (lower-case header name, parser): the keys of the typed accessors' parse cache
_K_VIA = ("via", parse_vias)
_K_FROM = ("from", parse_from)
_K_TO = ("to", parse_to)
_K_CALL_ID = ("call-id", parse_call_id)
_K_CSEQ = ("cseq", parse_cseq)
_K_MAX_FORWARDS = ("max-forwards", parse_max_forwards)
_K_CONTACT = ("contact", parse_contacts)
_K_EXPIRES = ("expires", parse_expires)
_K_CONTENT_TYPE = ("content-type", parse_content_type)
_K_ACCEPT = ("accept", parse_accept)
_K_ROUTE = ("route", parse_routes)
_K_RECORD_ROUTE = ("record-route", parse_record_routes)
_K_ALLOW = ("allow", parse_allow)
_K_SUPPORTED = ("supported", parse_supported)
_K_REQUIRE = ("require", parse_require)
_K_PROXY_REQUIRE = ("proxy-require", parse_proxy_require)
_K_UNSUPPORTED = ("unsupported", parse_unsupported)
_K_AUTHORIZATION = ("authorization", parse_authorizations)
_K_PROXY_AUTHORIZATION = ("proxy-authorization", parse_proxy_authorizations)
_K_WWW_AUTHENTICATE = ("www-authenticate", parse_www_authenticates)
_K_PROXY_AUTHENTICATE = ("proxy-authenticate", parse_proxy_authenticates)


class _MessageBase:
    """Typed access to the headers the stack needs; shared by requests and responses."""

    __slots__ = ()

    headers: Headers
    body: bytes

    @property
    def via(self) -> tuple[Via, ...]:
        """Every Via value, top first."""
        return self.headers.parsed_key(_K_VIA)

    @property
    def top_via(self) -> Via:
        vias = self.via
        if not vias:
            raise SipParseError("Bad Request - Missing Via")
        return vias[0]

    @property
    def from_(self) -> Address:
        return self.headers.parsed_key(_K_FROM)

    @property
    def to(self) -> Address:
        return self.headers.parsed_key(_K_TO)

    @property
    def call_id(self) -> str:
        return self.headers.parsed_key(_K_CALL_ID)

    @property
    def cseq(self) -> CSeq:
        return self.headers.parsed_key(_K_CSEQ)

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0 to 255), ``None`` when absent (RFC 2543 peers)."""
        return self.headers.parsed_key(_K_MAX_FORWARDS)

    @property
    def contacts(self) -> tuple[Address, ...]:
        """Contact values; empty for ``Contact: *`` (see :attr:`contact_is_wildcard`)."""
        return self.headers.parsed_key(_K_CONTACT)[0]

    @property
    def contact_is_wildcard(self) -> bool:
        """Whether the Contact is ``*`` (remove all bindings, RFC 3261 §10.2.2)."""
        return self.headers.parsed_key(_K_CONTACT)[1]

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds (at most 2**32-1)."""
        return self.headers.parsed_key(_K_EXPIRES)

    @property
    def content_type(self) -> MediaType | None:
        return self.headers.parsed_key(_K_CONTENT_TYPE)

    @property
    def accept(self) -> tuple[MediaType, ...]:
        return self.headers.parsed_key(_K_ACCEPT)

    @property
    def routes(self) -> tuple[Address, ...]:
        return self.headers.parsed_key(_K_ROUTE)

    @property
    def record_routes(self) -> tuple[Address, ...]:
        return self.headers.parsed_key(_K_RECORD_ROUTE)

    @property
    def allow(self) -> tuple[str, ...]:
        return self.headers.parsed_key(_K_ALLOW)

    @property
    def supported(self) -> tuple[str, ...]:
        return self.headers.parsed_key(_K_SUPPORTED)

    @property
    def require(self) -> tuple[str, ...]:
        return self.headers.parsed_key(_K_REQUIRE)

    @property
    def proxy_require(self) -> tuple[str, ...]:
        return self.headers.parsed_key(_K_PROXY_REQUIRE)

    @property
    def unsupported(self) -> tuple[str, ...]:
        return self.headers.parsed_key(_K_UNSUPPORTED)

    @property
    def authorization(self) -> tuple[Credentials, ...]:
        return self.headers.parsed_key(_K_AUTHORIZATION)

    @property
    def proxy_authorization(self) -> tuple[Credentials, ...]:
        return self.headers.parsed_key(_K_PROXY_AUTHORIZATION)

    @property
    def www_authenticate(self) -> tuple[Challenge, ...]:
        return self.headers.parsed_key(_K_WWW_AUTHENTICATE)

    @property
    def proxy_authenticate(self) -> tuple[Challenge, ...]:
        return self.headers.parsed_key(_K_PROXY_AUTHENTICATE)

    def check_headers(self) -> None:
        """Parse every present header that has an accessor; raise the first error found."""
        headers = self.headers
        present = {key for key, _, _ in headers._fields}
        for key in _CHECKED_KEYS:
            if key[0] in present:
                headers.parsed_key(key)

    def _check_grouped(self, grouped: dict[str, list[str]]) -> None:
        """:meth:`check_headers` given the values by lower-case name (the parser has them)."""
        cache = self.headers._cache
        for key in _CHECKED_KEYS:
            values = grouped.get(key[0])
            if values is not None and key not in cache:
                cache[key] = _parse_values(key[1], tuple(values))

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self, *, compact: bool = False) -> bytes:
        """The message on the wire; see :func:`serialize`."""
        start = self.start_line()
        fields = self.headers._fields  # (key, name, value): no copy on this hot path
        if compact:
            lines = [start, *[f"{compact_name(n) or n}: {v}" for _, n, v in fields]]
            lines.append(f"l: {len(self.body)}")
        else:
            lines = [start, *[f"{n}: {v}" for _, n, v in fields]]
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body


_CHECKED_KEYS: tuple[tuple[str, Callable[[list[str]], object]], ...] = (
    _K_VIA,
    _K_FROM,
    _K_TO,
    _K_CALL_ID,
    _K_CSEQ,
    _K_MAX_FORWARDS,
    _K_CONTACT,
    _K_EXPIRES,
    _K_CONTENT_TYPE,
    _K_ACCEPT,
    _K_ROUTE,
    _K_RECORD_ROUTE,
    _K_ALLOW,
    _K_SUPPORTED,
    _K_REQUIRE,
    _K_PROXY_REQUIRE,
    _K_UNSUPPORTED,
    _K_AUTHORIZATION,
    _K_PROXY_AUTHORIZATION,
    _K_WWW_AUTHENTICATE,
    _K_PROXY_AUTHENTICATE,
)
"""The parse-cache keys of the headers that parsing checks (every typed accessor's), in
the order they are checked."""


@dataclass(eq=True, slots=True)
class SipRequest(_MessageBase):
    """A SIP request. ``method`` is case-sensitive and may be one we do not implement
    (the stack answers 501 for it, see :data:`KNOWN_METHODS`)."""

    method: str
    uri: Uri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def is_known_method(self) -> bool:
        return self.method in KNOWN_METHODS

    def start_line(self) -> str:
        target = str(self.uri)
        method = self.method
        if (
            (method not in KNOWN_METHODS and not is_token(method))
            or not target
            or " " in target
            or "\t" in target
            or "\r" in target
            or "\n" in target
        ):
            raise ValueError(f"cannot write request line {self.method!r} {target!r}")
        return f"{self.method} {target} {SIP_VERSION}"


@dataclass(eq=True, slots=True)
class SipResponse(_MessageBase):
    """A SIP response."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def is_provisional(self) -> bool:
        return 100 <= self.status < 200

    @property
    def is_final(self) -> bool:
        return self.status >= 200

    def start_line(self) -> str:
        reason = self.reason
        if not 100 <= self.status <= 699 or (
            reason not in _STANDARD_REASONS and _BAD_START_LINE_TEXT.search(reason)
        ):
            raise ValueError(f"cannot write status line {self.status} {self.reason!r}")
        return f"{SIP_VERSION} {self.status} {self.reason}"


SipMessage = SipRequest | SipResponse


def serialize(message: SipMessage, *, compact: bool = False) -> bytes:
    """Write a message: CRLF line ends, one line per header value, full names (single
    letters where defined when ``compact``), and Content-Length from ``len(body)``.

    Raises ``ValueError`` if the start line cannot be written (a method that is not a
    token, a status outside 100-699, a reason with control characters).
    """
    return message.to_bytes(compact=compact)


def response_for_headers(
    request_headers: Headers,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    copy_record_route: bool = False,
) -> SipResponse:
    """A response carrying the Via, From, To, Call-ID and CSeq of a request (§8.2.6.2).

    Values are copied as received. A To without a tag gets ``to_tag`` (a random one when
    not given), except in a 100 Trying; a 100 also copies Timestamp (§8.2.6.1).
    """
    # The request's entries are copied as they are: they were checked and split when they
    # were parsed or added, so adding them again would give the same entries.
    fields = request_headers._fields
    out = [entry for entry in fields if entry[0] == "via"]
    firsts: dict[str, tuple[str, str, str]] = {}
    for entry in fields:
        if entry[0] in _RESPONSE_COPIED and entry[0] not in firsts:
            firsts[entry[0]] = entry
    for key in ("from", "to", "call-id", "cseq"):
        found = firsts.get(key)
        if found is None:
            continue
        if key == "to" and status != 100:
            value = _with_to_tag(found[2], to_tag, request_headers)
            if value is not found[2]:
                found = (key, found[1], value)
        out.append(found)
    if status == 100:
        timestamp = firsts.get("timestamp")
        if timestamp is not None:
            out.append(timestamp)
    if copy_record_route:
        out += [entry for entry in fields if entry[0] == "record-route"]
    headers = Headers()
    headers._fields = out
    phrase = REASON_PHRASES.get(status, "Unknown") if reason is None else reason
    return SipResponse(status, phrase, headers)


_RESPONSE_COPIED = frozenset({"from", "to", "call-id", "cseq", "timestamp"})


def _with_to_tag(raw_to: str, to_tag: str | None, request_headers: Headers) -> str:
    try:
        # The request's own parse of its To (cached), which is of this same first value.
        has_tag = "tag" in request_headers.parsed_key(_K_TO).params
    except SipParseError:
        return raw_to  # answering a malformed request: echo what it sent
    if has_tag:
        return raw_to
    tag = to_tag if to_tag is not None else secrets.token_hex(8)
    if not is_token(tag):
        raise ValueError(f"a To tag must be a token, not {tag!r}")
    return f"{raw_to};tag={tag}"


def build_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    copy_record_route: bool = False,
) -> SipResponse:
    """A response to ``request`` as RFC 3261 §8.2.6 says: Via (all, in order), From,
    Call-ID, CSeq copied; To copied with ``to_tag`` added when it has none (a random tag if
    ``to_tag`` is not given; no tag is added to a 100 Trying). ``reason`` defaults to the
    standard phrase. Set ``copy_record_route`` for dialog-creating responses (§12.1.1).
    """
    return response_for_headers(
        request.headers, status, reason, to_tag=to_tag, copy_record_route=copy_record_route
    )
