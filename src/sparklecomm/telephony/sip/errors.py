"""The one exception the SIP parser raises, and how the stack should answer it.

Whatever bytes arrive, parsing either returns a message or raises :class:`SipParseError`;
nothing else escapes (no ``IndexError``, ``UnicodeDecodeError``, ``ValueError`` ...). The
error says which status fits (400, 501, 505, 513), carries a short reason phrase for the
status line, and, where the request was readable enough (Via, From, To, Call-ID and CSeq
present), can build the error response itself.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sparklecomm.telephony.sip.headers import Headers
    from sparklecomm.telephony.sip.message import SipResponse


class ParseErrorKind(enum.Enum):
    """What went wrong, as the status code the stack answers a request with."""

    MALFORMED = 400
    """The message breaks the grammar or misses a mandatory header: ``400 Bad Request``."""

    NOT_IMPLEMENTED = 501
    """An unknown method whose CSeq names another method (RFC 4475 §3.1.2.18)."""

    VERSION_NOT_SUPPORTED = 505
    """The start line names a SIP version other than SIP/2.0."""

    MESSAGE_TOO_LARGE = 513
    """Over the size, header-count or header-length limit."""


_STANDARD_REASONS = {
    ParseErrorKind.NOT_IMPLEMENTED: "Not Implemented",
    ParseErrorKind.VERSION_NOT_SUPPORTED: "Version Not Supported",
    ParseErrorKind.MESSAGE_TOO_LARGE: "Message Too Large",
}


class SipParseError(Exception):
    """A SIP message could not be accepted.

    ``reason`` is short, ASCII and fit for the status line (``"Bad Request - Missing
    Call-ID"``); ``detail`` says more, for logs. A response (``is_request`` false) is never
    answered: the stack drops it. Over a stream, ``consumed`` is the length of the bad
    message when its framing was still clear (skip it and go on), or ``None`` when the
    connection has lost its framing and must be closed.
    """

    def __init__(
        self,
        reason: str,
        *,
        kind: ParseErrorKind = ParseErrorKind.MALFORMED,
        detail: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.detail = detail
        self.is_request: bool | None = None
        self.method: str | None = None
        self.consumed: int | None = None
        self._response_headers: Headers | None = None

    @property
    def status_code(self) -> int:
        """The status to answer a request with (400, 501, 505 or 513)."""
        return self.kind.value

    @property
    def can_respond(self) -> bool:
        """Whether the message was a request with enough headers to build a response."""
        return self._response_headers is not None

    def build_response(self, *, to_tag: str | None = None) -> SipResponse | None:
        """The error response for the bad request, or ``None`` if none can be built.

        Via, From, To, Call-ID and CSeq are copied as received (RFC 3261 §8.2.6); the
        status line is ``status_code`` and, for 400, ``reason``.
        """
        if self._response_headers is None:
            return None
        from sparklecomm.telephony.sip.message import response_for_headers

        reason = _STANDARD_REASONS.get(self.kind, self.reason)
        return response_for_headers(self._response_headers, self.status_code, reason, to_tag=to_tag)

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason

    def __repr__(self) -> str:
        return f"SipParseError({self.reason!r}, kind={self.kind.name}, detail={self.detail!r})"


def malformed(what: str, detail: str | None = None) -> SipParseError:
    """The 400 error for a header (or part) that breaks the grammar."""
    return SipParseError(f"Bad Request - Malformed {what}", detail=detail)
