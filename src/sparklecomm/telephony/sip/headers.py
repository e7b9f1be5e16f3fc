"""Header names and the ordered, case-insensitive header collection of a SIP message.

Names are stored in their canonical long form (``v`` and ``VIA`` both become ``Via``);
unknown names keep their spelling and compare case-insensitively. Headers whose grammar is
a comma-separated list (Via, Contact, Route, Allow, ...) are stored one element per entry,
so ``Via: a, b`` and two ``Via`` lines are the same thing (RFC 3261 §7.3.1) and a message
round-trips through serialization unchanged. Order is kept across all names.

Content-Length is not a header here: it frames the body, so the parser consumes it and the
serializer writes it from ``len(body)``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from sparklecomm.telephony.sip.grammar import split_list

T = TypeVar("T")

_KNOWN_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Resource-Priority",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Resource-Priority",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}

COMPACT_FORMS = {
    "a": "Accept-Contact",  # RFC 3841
    "b": "Referred-By",  # RFC 3892
    "c": "Content-Type",
    "d": "Request-Disposition",  # RFC 3841
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",  # RFC 3841
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",  # RFC 4474
    "o": "Event",  # RFC 6665
    "r": "Refer-To",  # RFC 3515
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",  # RFC 6665
    "v": "Via",
    "x": "Session-Expires",  # RFC 4028
    "y": "Identity",  # RFC 8224
}
"""Single-letter header names (RFC 3261 §7.3.3 and the extensions that define more)."""

_COMPACT_OF = {long: short for short, long in COMPACT_FORMS.items()}

LIST_HEADERS = frozenset(
    {
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Accept-Resource-Priority",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Require",
        "Resource-Priority",
        "Route",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    }
)
"""Headers whose grammar is ``1#element`` (or ``#element``): values are split on commas."""

_MISSING = object()

_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


@functools.lru_cache(maxsize=1024)
def canonical_name(name: str) -> str:
    """The canonical long form of a header name (``"v"`` → ``"Via"``, ``"cseq"`` →
    ``"CSeq"``); unknown names are returned as given."""
    lowered = name.lower()
    if len(lowered) == 1:
        compact = COMPACT_FORMS.get(lowered)
        if compact is not None:
            return compact
    return _CANONICAL.get(lowered, name)


@functools.lru_cache(maxsize=1024)
def _key(name: str) -> str:
    """The lookup key of a header name: its canonical form, lower-cased."""
    return canonical_name(name).lower()


def compact_name(name: str) -> str | None:
    """The single-letter form of a header name, if it has one."""
    return _COMPACT_OF.get(canonical_name(name))


def split_values(name: str, value: str) -> list[str]:
    """The elements one header line contributes: split on commas for list headers (kept
    whole when that cannot be done safely), otherwise the stripped value."""
    if name in LIST_HEADERS:
        parts = split_list(value)
        if parts is not None:
            return parts
    return [value.strip()]


@functools.lru_cache(maxsize=1024)
def _split_cached(name: str, value: str) -> tuple[str, ...]:
    """:func:`split_values`, memoised: the same lists come back in every message (our own
    Allow, a phone's Supported, a Contact set)."""
    return tuple(split_values(name, value))


@functools.lru_cache(maxsize=8192)
def _parse_values(parser: Callable[[list[str]], Any], values: tuple[str, ...]) -> Any:
    """``parser(list(values))``, memoised across messages.

    The parsers are pure and return immutable values (frozen dataclasses, tuples, str,
    int), and the same raw values recur in every message of a dialog (From, To, Call-ID,
    Contact, CSeq of retransmissions ...), so a parse is shared rather than repeated. A
    value that fails to parse raises every time (exceptions are not cached).
    """
    return parser(list(values))


@functools.lru_cache(maxsize=1024)
def _checked_name(name: str) -> str:
    """The canonical form of a header name a caller may set (``ValueError`` otherwise)."""
    if _NAME_RE.fullmatch(name) is None:
        raise ValueError(f"invalid header name {name!r}")
    canonical = canonical_name(name)
    if canonical == "Content-Length":
        raise ValueError("Content-Length is computed from the body; set .body instead")
    return canonical


class Headers:
    """The header fields of a message, in order, one list element per entry."""

    __slots__ = ("_cache", "_fields")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        # (lower-case name, canonical name, value): the lower-case key saves re-folding
        # names on every lookup.
        self._fields: list[tuple[str, str, str]] = []
        self._cache: dict[tuple[str, Any], object] = {}
        for name, value in fields:
            self.add(name, value)

    @staticmethod
    def _check(name: str, value: str) -> str:
        canonical = _checked_name(name)
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} value contains CR or LF")
        return canonical

    def _invalidate(self, lowered: str) -> None:
        if self._cache:
            for key in [key for key in self._cache if key[0] == lowered]:
                del self._cache[key]

    def _entries(self, canonical: str, value: str) -> list[tuple[str, str, str]]:
        lowered = _key(canonical)
        if canonical not in LIST_HEADERS or "," not in value:
            return [(lowered, canonical, value.strip())]
        return [(lowered, canonical, element) for element in _split_cached(canonical, value)]

    def _append_parsed(self, canonical: str, value: str) -> None:
        """Append without checks: for the parser, which has validated name and value."""
        if canonical in LIST_HEADERS and "," in value:
            self._fields.extend(self._entries(canonical, value))
        else:
            self._fields.append((_key(canonical), canonical, value.strip()))

    def _index(self, lowered: str, default: int) -> int:
        return next((i for i, entry in enumerate(self._fields) if entry[0] == lowered), default)

    def add(self, name: str, value: str) -> None:
        """Append a header (list headers are split into their elements)."""
        canonical = _checked_name(name)
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} value contains CR or LF")
        key = _key(canonical)
        if self._cache:
            self._invalidate(key)
        if "," in value and canonical in LIST_HEADERS:
            self._fields += [(key, canonical, item) for item in _split_cached(canonical, value)]
        else:
            self._fields.append((key, canonical, value.strip()))

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first header of that name, or at the top (a proxy's new Via)."""
        canonical = self._check(name, value)
        lowered = _key(canonical)
        self._invalidate(lowered)
        index = self._index(lowered, 0)
        self._fields[index:index] = self._entries(canonical, value)

    def set(self, name: str, value: str) -> None:
        """Replace every header of that name by ``value`` (where the first one was)."""
        canonical = self._check(name, value)
        lowered = _key(canonical)
        index = self._index(lowered, len(self._fields))
        self.remove(canonical)
        self._fields[index:index] = self._entries(canonical, value)

    def remove(self, name: str) -> int:
        """Remove every header of that name; return how many entries went."""
        lowered = _key(name)
        self._invalidate(lowered)
        before = len(self._fields)
        self._fields = [entry for entry in self._fields if entry[0] != lowered]
        return before - len(self._fields)

    def remove_first(self, name: str) -> str | None:
        """Remove and return the first entry of that name (a proxy popping its Via)."""
        lowered = _key(name)
        index = self._index(lowered, -1)
        if index < 0:
            return None
        self._invalidate(lowered)
        return self._fields.pop(index)[2]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of that name."""
        lowered = _key(name)
        for key, _, value in self._fields:
            if key == lowered:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of that name, in order."""
        lowered = _key(name)
        return [value for key, _, value in self._fields if key == lowered]

    def count(self, name: str) -> int:
        lowered = _key(name)
        return sum(1 for entry in self._fields if entry[0] == lowered)

    def parsed(self, name: str, parser: Callable[[list[str]], T]) -> T:
        """``parser(get_all(name))``, cached until a header of that name changes."""
        return self.parsed_key((_key(name), parser))

    def parsed_key(self, key: tuple[str, Callable[[list[str]], T]]) -> T:
        """:meth:`parsed` with the lookup key ready: ``(lower-case canonical name,
        parser)``; for the typed accessors, which keep theirs in constants."""
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cast(T, cached)
        lowered = key[0]
        values = tuple([value for k, _, value in self._fields if k == lowered])
        result: T = _parse_values(key[1], values)
        self._cache[key] = result
        return result

    def copy(self) -> Headers:
        clone = Headers()
        clone._fields = list(self._fields)
        return clone

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter([(name, value) for _, name, value in self._fields])

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._fields] == [(k, v) for k, _, v in other._fields]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({[(name, value) for _, name, value in self._fields]!r})"
