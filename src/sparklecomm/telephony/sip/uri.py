"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25; RFC 3966; IPv6 references per RFC 5118).

A parsed :class:`SipUri` keeps every component *as written* (``user_raw``,
``password_raw``, raw parameters and headers, percent-escapes untouched) so a proxy can
forward it byte for byte, and offers the decoded forms through properties (``user``,
``param()``). :meth:`SipUri.equivalent` implements the §19.1.4 comparison rules, under
which escaped and unescaped forms of an unreserved character are the same URI; ``==`` stays
plain structural equality so that URIs remain hashable and transitive.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sparklecomm.telephony.sip.errors import malformed
from sparklecomm.telephony.sip.grammar import RESERVED, parse_uint

_ESC = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESC})+")
_PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESC})*")
_PARAMCHARS_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESC})+")
_HNAME_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})+")
_HVALUE_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})*")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE_RE = re.compile(rf"(?:[{_UNRESERVED};/?:@&=+$,\[\]]|{_ESC})+")
_LABEL_RE = re.compile(r"[A-Za-z0-9_\-]+")
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]+")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_TTL_RE = re.compile(r"[0-9]{1,3}")
_ESCAPE_RE = re.compile(rb"%([0-9A-Fa-f]{2})")

# Checked as "allowed characters" plus "at least one digit" rather than with one regex,
# which would backtrack quadratically on long non-matching input.
_GLOBAL_NUMBER_RE = re.compile(r"\+[0-9\-.()]+")
_LOCAL_NUMBER_RE = re.compile(r"[0-9A-Fa-f*#\-.()]+")
_TEL_DIGIT_RE = re.compile(r"[0-9A-Fa-f*#]")
_TEL_PNAME_RE = re.compile(r"[A-Za-z0-9\-]+")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")

# Characters left unescaped when building URI parts from decoded text.
_USER_SAFE = frozenset(string.ascii_letters + string.digits + "-_.!~*'()&=+$,;?/")
_PASSWORD_SAFE = _USER_SAFE - frozenset(";?/")
_PARAM_SAFE = (_USER_SAFE - frozenset("=,;?")) | frozenset("[]:")
_HEADER_SAFE = (_USER_SAFE - frozenset("&=,;")) | frozenset("[]:")

ParamPairs = tuple[tuple[str, str | None], ...]

# Parameters that make two SIP URIs differ when only one of them has it (§19.1.4).
_SIGNIFICANT_PARAMS = (b"user", b"ttl", b"method", b"maddr", b"transport")


def unescape(raw: str) -> str:
    """Decode ``%HH`` escapes once (never recursively); octets that are not UTF-8 survive
    as surrogate escapes so nothing is lost."""
    if "%" not in raw:
        return raw
    octets = _ESCAPE_RE.sub(
        lambda m: bytes([int(m.group(1), 16)]), raw.encode("utf-8", "surrogateescape")
    )
    return octets.decode("utf-8", "surrogateescape")


def escape(text: str, safe: frozenset[str] = _USER_SAFE) -> str:
    """Percent-encode every octet of ``text`` outside ``safe``."""
    out: list[str] = []
    for char in text:
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{octet:02X}" for octet in char.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _comparable(raw: str, *, fold_case: bool) -> bytes:
    """``raw`` with escapes of non-reserved octets decoded and the rest upper-cased, so that
    equivalent spellings give equal bytes (§19.1.4)."""

    def decode(match: re.Match[bytes]) -> bytes:
        octet = int(match.group(1), 16)
        if chr(octet) in RESERVED:
            return b"%" + match.group(1).upper()
        return bytes([octet])

    value = _ESCAPE_RE.sub(decode, raw.encode("utf-8", "surrogateescape"))
    return value.lower() if fold_case else value


def ipv6_address(text: str) -> ipaddress.IPv6Address | None:
    """The IPv6 address in ``text`` (no brackets), tolerating the three-colon form that
    RFC 3261's ABNF admitted before embedded IPv4 (RFC 5118 §4.10)."""
    if _IPV6_CHARS_RE.fullmatch(text) is None or ":" not in text:
        return None
    for candidate in (text, text.replace(":::", "::", 1)):
        try:
            return ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
    return None


def check_host(host: str, what: str) -> str:
    """Validate a host (hostname, IPv4, or IPv6 reference in brackets); return it without
    the brackets."""
    if host.startswith("["):
        inner = host[1:-1]
        if not host.endswith("]") or ipv6_address(inner) is None:
            raise malformed(what, f"bad IPv6 reference {host[:60]!r}")
        return inner
    if not _is_hostname(host):
        raise malformed(what, f"bad host {host[:60]!r}")
    return host


@functools.lru_cache(maxsize=1024)
def _is_hostname(host: str) -> bool:
    """RFC 3261 hostname or IPv4address (labels may also carry "_", seen in the wild)."""
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    for label in labels:
        if _LABEL_RE.fullmatch(label) is None or label[0] == "-" or label[-1] == "-":
            return False
    # A toplabel starts with a letter; all-numeric names must be IPv4 addresses.
    return not labels[-1][0].isdigit() or is_ipv4(host)


def is_ipv4(text: str) -> bool:
    return _IPV4_RE.fullmatch(text) is not None and all(
        int(part) <= 255 for part in text.split(".")
    )


def normalize_host(host: str) -> str:
    """A host in the form used to compare it: IPv6 canonical, everything else lower case."""
    if ":" in host:
        address = ipv6_address(host.strip("[]"))
        if address is not None:
            return str(address)
    return host.lower()


def format_host(host: str) -> str:
    """``host`` as written in a URI or Via: IPv6 addresses go in brackets."""
    return f"[{host}]" if ":" in host else host


def _parse_port(text: str, what: str) -> int:
    if _PORT_RE.fullmatch(text) is None:
        raise malformed(what, f"bad port {text[:20]!r}")
    return parse_uint(text, what, maximum=65535)


def split_hostport(text: str, what: str) -> tuple[str, int | None]:
    """``host [":" port]`` → (host without brackets, port or ``None``)."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise malformed(what, "unterminated IPv6 reference")
        host_part, rest = text[: close + 1], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise malformed(what, f"junk after IPv6 reference {rest[:20]!r}")
        port_text = rest[1:] if rest else None
    else:
        host_part, colon, port_text_found = text.partition(":")
        port_text = port_text_found if colon else None
    host = check_host(host_part, what)
    return host, None if port_text is None else _parse_port(port_text, what)


def _lookup(params: ParamPairs, name: str) -> tuple[bool, str | None]:
    wanted = name.lower()
    for key, value in params:
        if unescape(key).lower() == wanted:
            return True, None if value is None else unescape(value)
    return False, None


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI with every component kept as written.

    ``host`` carries no brackets (an IPv6 address is recognisable by its colons);
    ``user_raw``, ``password_raw``, ``params`` and ``headers`` keep their escapes. Use
    :meth:`build` to make one from decoded values.
    """

    host: str
    user_raw: str | None = None
    password_raw: str | None = None
    port: int | None = None
    params: ParamPairs = ()
    headers: tuple[tuple[str, str], ...] = ()
    secure: bool = False
    _text: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    """The written form, once :meth:`__str__` has made it (the same URI objects come back
    from the parse cache in every message of a dialog)."""

    @classmethod
    def build(
        cls,
        host: str,
        *,
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        params: Iterable[tuple[str, str | None]] = (),
        headers: Iterable[tuple[str, str]] = (),
        secure: bool = False,
    ) -> SipUri:
        """A URI from decoded values, escaping what needs it."""
        return cls(
            host=host.strip("[]"),
            user_raw=None if user is None else escape(user, _USER_SAFE),
            password_raw=None if password is None else escape(password, _PASSWORD_SAFE),
            port=port,
            params=tuple(
                (escape(k, _PARAM_SAFE), None if v is None else escape(v, _PARAM_SAFE))
                for k, v in params
            ),
            headers=tuple((escape(k, _HEADER_SAFE), escape(v, _HEADER_SAFE)) for k, v in headers),
            secure=secure,
        )

    @classmethod
    def parse(cls, text: str, what: str = "URI") -> SipUri:
        """Parse a SIP or SIPS URI; anything else is a :class:`SipParseError`."""
        uri = parse_uri(text, what)
        if not isinstance(uri, SipUri):
            raise malformed(what, f"not a SIP URI: {text[:60]!r}")
        return uri

    @property
    def scheme(self) -> str:
        return "sips" if self.secure else "sip"

    @property
    def user(self) -> str | None:
        """The user part with escapes decoded (``%00`` stays a NUL, never truncates)."""
        return None if self.user_raw is None else unescape(self.user_raw)

    @property
    def password(self) -> str | None:
        return None if self.password_raw is None else unescape(self.password_raw)

    def has_param(self, name: str) -> bool:
        """Whether the URI parameter is present (names compare case-insensitively)."""
        return _lookup(self.params, name)[0]

    def param(self, name: str) -> str | None:
        """The decoded value of a URI parameter; ``None`` when absent or valueless."""
        return _lookup(self.params, name)[1]

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return None if value is None else value.lower()

    @property
    def user_param(self) -> str | None:
        """The ``user=`` parameter (``phone``, ``ip``, ...)."""
        return self.param("user")

    @property
    def method(self) -> str | None:
        return self.param("method")

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.param("ttl")
        if value is None or _TTL_RE.fullmatch(value) is None:
            return None
        return int(value)

    @property
    def lr(self) -> bool:
        """Loose routing flag (RFC 3261 §19.1.1)."""
        return self.has_param("lr")

    @property
    def header_fields(self) -> list[tuple[str, str]]:
        """The ``?name=value`` headers, decoded."""
        return [(unescape(k), unescape(v)) for k, v in self.headers]

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        """A copy with the parameter set (replacing one of the same name), from decoded text."""
        raw_name = escape(name, _PARAM_SAFE)
        raw_value = None if value is None else escape(value, _PARAM_SAFE)
        kept = tuple((k, v) for k, v in self.params if unescape(k).lower() != name.lower())
        return replace(self, params=(*kept, (raw_name, raw_value)))

    def without_param(self, name: str) -> SipUri:
        kept = tuple((k, v) for k, v in self.params if unescape(k).lower() != name.lower())
        return replace(self, params=kept)

    def equivalent(self, other: object) -> bool:
        """RFC 3261 §19.1.4 equality (not transitive; hence not ``==``)."""
        if not isinstance(other, SipUri) or self.secure != other.secure:
            return False
        if (self.user_raw is None) != (other.user_raw is None):
            return False
        if (self.password_raw is None) != (other.password_raw is None):
            return False
        if _comparable(self.user_raw or "", fold_case=False) != _comparable(
            other.user_raw or "", fold_case=False
        ):
            return False
        if _comparable(self.password_raw or "", fold_case=False) != _comparable(
            other.password_raw or "", fold_case=False
        ):
            return False
        if normalize_host(self.host) != normalize_host(other.host) or self.port != other.port:
            return False
        mine, theirs = _param_map(self.params), _param_map(other.params)
        for name in _SIGNIFICANT_PARAMS:
            if (name in mine) != (name in theirs):
                return False
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        return _header_multiset(self.headers) == _header_multiset(other.headers)

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._write()
            object.__setattr__(self, "_text", text)
        return text

    def _write(self) -> str:
        parts = [self.scheme, ":"]
        if self.user_raw is not None:
            parts.append(self.user_raw)
            if self.password_raw is not None:
                parts += [":", self.password_raw]
            parts.append("@")
        parts.append(format_host(self.host))
        if self.port is not None:
            parts += [":", str(self.port)]
        for name, value in self.params:
            parts += [";", name] if value is None else [";", name, "=", value]
        for index, (name, value) in enumerate(self.headers):
            parts += ["?" if index == 0 else "&", name, "=", value]
        return "".join(parts)


def _param_map(params: ParamPairs) -> dict[bytes, bytes | None]:
    result: dict[bytes, bytes | None] = {}
    for name, value in params:
        key = _comparable(name, fold_case=True)
        result.setdefault(key, None if value is None else _comparable(value, fold_case=True))
    return result


def _header_multiset(headers: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    return sorted(
        (_comparable(name, fold_case=True), _comparable(value, fold_case=True))
        for name, value in headers
    )


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966), minimal: the number as written and its parameters."""

    number: str
    params: ParamPairs = ()

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (``-``, ``.``, ``(``, ``)``)."""
        return self.number.translate(_VISUAL_SEPARATORS)

    def param(self, name: str) -> str | None:
        return _lookup(self.params, name)[1]

    @property
    def phone_context(self) -> str | None:
        return self.param("phone-context")

    def equivalent(self, other: object) -> bool:
        """RFC 3966 §4: separators ignored, case-insensitive, parameters in any order."""
        if not isinstance(other, TelUri) or self.is_global != other.is_global:
            return False
        if self.digits.lower() != other.digits.lower():
            return False
        return _param_map(self.params) == _param_map(other.params)

    def __str__(self) -> str:
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"tel:{self.number}{params}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other URI scheme (``http:``, ``urn:``, ``isbn:`` ...), kept opaque."""

    scheme: str
    rest: str

    def equivalent(self, other: object) -> bool:
        return (
            isinstance(other, AbsoluteUri)
            and self.scheme.lower() == other.scheme.lower()
            and self.rest == other.rest
        )

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


@functools.lru_cache(maxsize=4096)
def parse_uri(text: str, what: str = "URI") -> Uri:
    """Parse a SIP, SIPS, tel or other absolute URI (no surrounding angle brackets).

    ``what`` names the place in error reasons (``"Bad Request - Malformed <what>"``).
    """
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME_RE.fullmatch(scheme) is None:
        raise malformed(what, f"no URI scheme in {text[:60]!r}")
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return _parse_sip(rest, secure=lowered == "sips", what=what)
    if lowered == "tel":
        return _parse_tel(rest, what)
    if _OPAQUE_RE.fullmatch(rest) is None:
        raise malformed(what, f"bad {scheme!r} URI {text[:60]!r}")
    return AbsoluteUri(scheme, rest)


def _parse_sip(rest: str, *, secure: bool, what: str) -> SipUri:
    user_raw: str | None = None
    password_raw: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user_raw, colon, password = userinfo.partition(":")
        if _USER_RE.fullmatch(user_raw) is None:
            raise malformed(what, f"bad user part {userinfo[:60]!r}")
        if colon:
            if _PASSWORD_RE.fullmatch(password) is None:
                raise malformed(what, "bad password")
            password_raw = password
    rest, question, header_text = rest.partition("?")
    hostport, _, param_text = rest.partition(";")
    if hostport.startswith("[") and "]" not in hostport:
        raise malformed(what, "unterminated IPv6 reference")
    host, port = split_hostport(hostport, what)
    params: list[tuple[str, str | None]] = []
    if param_text or rest.endswith(";"):
        for item in param_text.split(";"):
            name, equals, value = item.partition("=")
            if _PARAMCHARS_RE.fullmatch(name) is None:
                raise malformed(what, f"bad URI parameter {item[:40]!r}")
            if equals and _PARAMCHARS_RE.fullmatch(value) is None:
                raise malformed(what, f"bad URI parameter value {item[:40]!r}")
            params.append((name, value if equals else None))
    headers: list[tuple[str, str]] = []
    if question:
        for item in header_text.split("&"):
            name, equals, value = item.partition("=")
            if (
                not equals
                or _HNAME_RE.fullmatch(name) is None
                or _HVALUE_RE.fullmatch(value) is None
            ):
                raise malformed(what, f"bad URI header {item[:40]!r}")
            headers.append((name, value))
    return SipUri(
        host=host,
        user_raw=user_raw,
        password_raw=password_raw,
        port=port,
        params=tuple(params),
        headers=tuple(headers),
        secure=secure,
    )


def _parse_tel(rest: str, what: str) -> TelUri:
    number, _, param_text = rest.partition(";")
    is_global = number.startswith("+")
    pattern = _GLOBAL_NUMBER_RE if is_global else _LOCAL_NUMBER_RE
    if pattern.fullmatch(number) is None or _TEL_DIGIT_RE.search(number.lstrip("+")) is None:
        raise malformed(what, f"bad telephone number {number[:40]!r}")
    params: list[tuple[str, str | None]] = []
    if param_text or rest.endswith(";"):
        for item in param_text.split(";"):
            name, equals, value = item.partition("=")
            if _TEL_PNAME_RE.fullmatch(name) is None or (
                equals and _PARAMCHARS_RE.fullmatch(value) is None
            ):
                raise malformed(what, f"bad tel parameter {item[:40]!r}")
            params.append((name, value if equals else None))
    uri = TelUri(number, tuple(params))
    if not is_global and uri.phone_context is None:
        raise malformed(what, "local tel number without phone-context")
    return uri


__all__ = [
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "check_host",
    "escape",
    "format_host",
    "ipv6_address",
    "normalize_host",
    "parse_uri",
    "split_hostport",
    "unescape",
]
