"""The SIP message layer: parsing, typed headers, URIs and serialization (RFC 3261).

Pure code, no sockets: transports hand octets to :func:`parse_datagram` or
:func:`parse_stream` and write what :func:`serialize` returns. Every malformed input ends in
one exception, :class:`SipParseError`, which tells the stack how to answer (400, 501, 505,
513, or drop a bad response) and can build that answer.
"""

from sparklecomm.telephony.sip.errors import ParseErrorKind, SipParseError
from sparklecomm.telephony.sip.fields import (
    Address,
    Challenge,
    Credentials,
    CSeq,
    MediaType,
    Params,
    Via,
)
from sparklecomm.telephony.sip.grammar import quote, unquote
from sparklecomm.telephony.sip.headers import (
    COMPACT_FORMS,
    LIST_HEADERS,
    Headers,
    canonical_name,
    compact_name,
)
from sparklecomm.telephony.sip.message import (
    KNOWN_METHODS,
    REASON_PHRASES,
    SipMessage,
    SipRequest,
    SipResponse,
    build_response,
    serialize,
)
from sparklecomm.telephony.sip.parser import (
    DEFAULT_LIMITS,
    KeepAlive,
    ParseLimits,
    is_keepalive,
    parse_datagram,
    parse_stream,
)
from sparklecomm.telephony.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
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
