"""Structured values of the headers the SIP stack reads: Via, name-addr (From, To, Contact,
Route, Record-Route), CSeq, media types, digest challenges and credentials, parameters.

Each type is an immutable value with a ``parse`` classmethod (raising only
:class:`~sparklecomm.telephony.sip.errors.SipParseError`) and a ``__str__`` that writes it
back in a form that parses to an equal value. Parameter values are kept as written
(quoted-strings keep their quotes) and read back decoded through ``get``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Self

from sparklecomm.telephony.sip.errors import SipParseError, malformed
from sparklecomm.telephony.sip.grammar import (
    QUOTED_RE,
    TOKEN_RE,
    Scanner,
    is_token,
    parse_uint,
    quote,
    unquote,
)
from sparklecomm.telephony.sip.uri import (
    Uri,
    check_host,
    format_host,
    parse_uri,
)

# gen-value = token / host / quoted-string; a host may be an IPv6 reference (brackets) and
# Via's received= may carry a bare IPv6 address, hence ":[]" on top of token characters.
_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+")
_DIGITS_RE = re.compile(r"[0-9]+")
_SENT_BY_HOST_RE = re.compile(r"\[[^\]]*\]|[A-Za-z0-9_\-.]+")
_TOKEN_CLASS = r"[A-Za-z0-9\-.!%*_+`'~]+"  # noqa: S105 (a regex, not a secret)
_VIA_FAST_RE = re.compile(
    rf"({_TOKEN_CLASS})/({_TOKEN_CLASS})/({_TOKEN_CLASS}) ([A-Za-z0-9_\-.]+)(?::([0-9]+))?"
    rf"((?:;{_TOKEN_CLASS}(?:={_TOKEN_CLASS})?)*)"
)
"""The usual Via (one space, a host name or IPv4 address, token parameters): parsed in one
match; anything else (IPv6, quoted or bracketed values, extra whitespace) takes the
scanner, which gives the same result for this subset."""
_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*")
_ADDRESS_FAST_RE = re.compile(
    rf'(?:"([^"\\\x00-\x1f\x7f]*)" ?|({_TOKEN_CLASS}(?: {_TOKEN_CLASS})*) )?<([^<>"\s]+)>'
    rf"((?:;{_TOKEN_CLASS}(?:={_TOKEN_CLASS})?)*)"
)
"""The usual name-addr (an optional display name, quoted without escapes or of tokens
separated by single spaces, a URI in angle brackets, token parameters): parsed in one
match; anything else takes the scanner."""
_BARE_URI_RE = re.compile(r"[^ \t;]+")
_QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_AUTH_VALUE_RE = re.compile(r'[^\s,"]+')
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ABSENT: str | None = "\x00absent"  # a sentinel no parameter value can equal
_VIA_LOWER_NAMES = frozenset({"branch", "rport", "received", "ttl", "maddr"})


@dataclass(frozen=True, slots=True)
class Params:
    """``;name=value`` header parameters, in order; names compare case-insensitively.

    Values are stored as written: a quoted-string keeps its quotes, and ``None`` means a
    parameter without ``=value`` (``;lr``). :meth:`get` returns values unquoted.
    """

    items: tuple[tuple[str, str | None], ...] = ()

    def _find(self, name: str) -> int:
        wanted = name.lower()
        for index, (key, _) in enumerate(self.items):
            if key == wanted or key.lower() == wanted:
                return index
        return -1

    def get(self, name: str) -> str | None:
        """The unquoted value; ``None`` if absent or valueless (use ``in`` for presence)."""
        wanted = name.lower()
        for key, value in self.items:
            if key == wanted or key.lower() == wanted:
                return None if value is None else unquote(value)
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) >= 0

    def raw(self, name: str) -> str | None:
        """The value as written (quotes included)."""
        index = self._find(name)
        return None if index < 0 else self.items[index][1]

    def with_param(self, name: str, value: str | None = None) -> Params:
        """A copy with ``name`` set to the raw ``value`` (in place of an existing one).

        ``value`` is written verbatim: pass ``grammar.quote(text)`` for a quoted-string.
        """
        if not is_token(name):
            raise ValueError(f"invalid parameter name {name!r}")
        if (
            value is not None
            and _PARAM_VALUE_RE.fullmatch(value) is None
            and QUOTED_RE.fullmatch(value) is None
        ):
            raise ValueError(f"invalid parameter value {value!r}")
        index = self._find(name)
        if index < 0:
            return Params((*self.items, (name, value)))
        items = list(self.items)
        items[index] = (items[index][0], value)
        return Params(tuple(items))

    def without(self, name: str) -> Params:
        wanted = name.lower()
        return Params(tuple(item for item in self.items if item[0].lower() != wanted))

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __str__(self) -> str:
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.items)


NO_PARAMS = Params()
"""The empty parameter list, shared (a ``Params`` is immutable)."""


def read_params(scanner: Scanner) -> Params:
    """``*( SEMI generic-param )`` up to the end of the scanner's text."""
    items: list[tuple[str, str | None]] = []
    while True:
        scanner.skip_ws()
        if scanner.at_end():
            return Params(tuple(items)) if items else NO_PARAMS
        scanner.expect(";")
        scanner.skip_ws()
        name = scanner.token()
        scanner.skip_ws()
        value: str | None = None
        if scanner.accept("="):
            scanner.skip_ws()
            if scanner.peek() == '"':
                value = scanner.quoted()
            else:
                value = scanner.match(_PARAM_VALUE_RE)
                if value is None:
                    scanner.fail(f"parameter {name!r} has no value")
        items.append((name, value))


def _strip_brackets(value: str | None) -> str | None:
    if value is not None and value.startswith("[") and value.endswith("]"):
        return value[1:-1]
    return value


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...`` (RFC 3261 §20.42, RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = NO_PARAMS
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        fast = _VIA_FAST_RE.fullmatch(text)
        if fast is not None:
            name, version, transport, host_text, digits, param_text = fast.groups()
            host = check_host(host_text, "Via")
            fast_port: int | None = None
            if digits is not None:
                fast_port = int(digits) if len(digits) <= 5 else 65536
                if fast_port > 65535:
                    fast_port = parse_uint(digits, "Via", maximum=65535)  # its error
            items: list[tuple[str, str | None]] = []
            if param_text:
                for part in param_text[1:].split(";"):
                    key, equals, value = part.partition("=")
                    items.append((key, value if equals else None))
            via = cls(
                transport.upper(),
                host,
                fast_port,
                Params(tuple(items)) if items else NO_PARAMS,
                f"{name.upper()}/{version}",
            )
            via._validate()
            return via
        scanner = Scanner(text, "Via")
        scanner.skip_ws()
        name = scanner.token()
        scanner.skip_ws()
        scanner.expect("/")
        scanner.skip_ws()
        version = scanner.token()
        scanner.skip_ws()
        scanner.expect("/")
        scanner.skip_ws()
        transport = scanner.token()
        before_host = scanner.pos
        scanner.skip_ws()
        if scanner.pos == before_host:
            scanner.fail("expected whitespace before sent-by")
        host_text = scanner.match(_SENT_BY_HOST_RE)
        if host_text is None:
            scanner.fail("expected sent-by host")
        host = check_host(host_text, "Via")
        scanner.skip_ws()
        port: int | None = None
        if scanner.accept(":"):
            scanner.skip_ws()
            digits = scanner.match(_DIGITS_RE)
            if digits is None:
                scanner.fail("expected port")
            port = parse_uint(digits, "Via", maximum=65535)
        params = read_params(scanner)
        via = cls(transport.upper(), host, port, params, f"{name.upper()}/{version}")
        via._validate()
        return via

    def _validate(self) -> None:
        # One pass for the first value of each checked name (what ``Params.raw`` would
        # find), then the checks in a fixed order, so the error reported does not depend
        # on the order of the parameters.
        ttl = rport = maddr = branch = _ABSENT
        for key, value in self.params.items:
            name = key if key in _VIA_LOWER_NAMES else key.lower()
            if name == "branch":
                if branch is _ABSENT:
                    branch = value
            elif name == "rport":
                if rport is _ABSENT:
                    rport = value
            elif name == "ttl":
                if ttl is _ABSENT:
                    ttl = value
            elif name == "maddr" and maddr is _ABSENT:
                maddr = value
        if ttl is not _ABSENT:
            if ttl is None or _DIGITS_RE.fullmatch(ttl) is None:
                raise malformed("Via", f"bad ttl {ttl!r}")
            parse_uint(ttl, "Via", maximum=255)
        if rport is not _ABSENT and rport is not None:
            if _DIGITS_RE.fullmatch(rport) is None:
                raise malformed("Via", f"bad rport {rport!r}")
            parse_uint(rport, "Via", maximum=65535)
        if maddr is not _ABSENT:
            if maddr is None:
                raise malformed("Via", "maddr without a value")
            check_host(maddr, "Via")
        if branch is None:
            raise malformed("Via", "branch without a value")

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` address, without IPv6 brackets (accepted either way, RFC 5118)."""
        return _strip_brackets(self.params.get("received"))

    @property
    def has_rport(self) -> bool:
        """Whether ``rport`` is present at all (a request for symmetric response routing)."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The ``rport`` value filled in by a server, or ``None`` (absent or empty)."""
        raw = self.params.raw("rport")
        return None if raw is None else parse_uint(raw, "Via", maximum=65535)

    @property
    def maddr(self) -> str | None:
        return _strip_brackets(self.params.get("maddr"))

    @property
    def ttl(self) -> int | None:
        raw = self.params.raw("ttl")
        return None if raw is None else parse_uint(raw, "Via", maximum=255)

    @property
    def sent_by(self) -> str:
        """``host[:port]`` as written in the Via."""
        host = format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"

    def with_received(self, address: str) -> Via:
        """A copy with ``received`` set (written without brackets, RFC 3261 grammar)."""
        params = self.params.with_param("received", address)
        return Via(self.transport, self.host, self.port, params, self.protocol)

    def with_rport(self, port: int) -> Via:
        params = self.params.with_param("rport", str(port))
        return Via(self.transport, self.host, self.port, params, self.protocol)

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{self.params}"


@dataclass(frozen=True, slots=True)
class Address:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, ...

    ``display_name`` is unescaped text (``None`` when absent). A URI written without angle
    brackets takes no parameters of its own: what follows ``;`` belongs to the header
    (RFC 3261 §20.10). ``__str__`` always writes the brackets.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = NO_PARAMS

    def __post_init__(self) -> None:
        if self.display_name is not None and (
            "\r" in self.display_name or "\n" in self.display_name
        ):
            raise ValueError("a display name cannot contain CR or LF")

    @classmethod
    def parse(cls, text: str, what: str = "Address") -> Address:
        fast = _ADDRESS_FAST_RE.fullmatch(text)
        if fast is not None:
            # ``[token ...] <uri>;token=token...``: the scanner below gives the same value.
            quoted, tokens, uri_text, param_text = fast.groups()
            shown = tokens if quoted is None else quoted
            items: list[tuple[str, str | None]] = []
            if param_text:
                for part in param_text[1:].split(";"):
                    key, equals, value = part.partition("=")
                    items.append((key, value if equals else None))
            params = Params(tuple(items)) if items else NO_PARAMS
            return cls(parse_uri(uri_text, what), shown, params)
        scanner = Scanner(text, what)
        scanner.skip_ws()
        display_name: str | None = None
        if scanner.peek() == '"':
            display_name = unquote(scanner.quoted())
            scanner.skip_ws()
            if scanner.peek() != "<":
                scanner.fail("expected '<' after display name")
        elif scanner.peek() != "<":
            start = scanner.pos
            tokens = scanner.match(_DISPLAY_TOKENS_RE)
            scanner.skip_ws()
            if tokens is not None and scanner.peek() == "<":
                display_name = " ".join(tokens.split())
            else:
                scanner.pos = start
        if scanner.accept("<"):
            end = text.find(">", scanner.pos)
            if end < 0:
                scanner.fail("unterminated '<'")
            uri = parse_uri(text[scanner.pos : end], what)
            scanner.pos = end + 1
        else:
            uri_text = scanner.match(_BARE_URI_RE)
            if uri_text is None:
                scanner.fail("expected a URI")
            if "?" in uri_text or "," in uri_text:
                # RFC 3261 §20.10: such a URI MUST be enclosed in angle brackets.
                scanner.fail("URI with '?' or ',' outside angle brackets")
            uri = parse_uri(uri_text, what)
        return cls(uri, display_name, read_params(scanner))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> Address:
        return Address(self.uri, self.display_name, self.params.with_param("tag", tag))

    @property
    def q(self) -> float | None:
        """Contact preference ``q`` (0 to 1), if given."""
        raw = self.params.get("q")
        return None if raw is None or _QVALUE_RE.fullmatch(raw) is None else float(raw)

    @property
    def expires(self) -> int | None:
        """Contact ``expires`` in seconds (at most 2**32-1), if given."""
        raw = self.params.get("expires")
        if raw is None or _DIGITS_RE.fullmatch(raw) is None:
            return None
        return parse_uint(raw, "Contact", clamp=True)

    def __str__(self) -> str:
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{self.params}"


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: <number> <method>`` (number up to 2**32-1)."""

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        scanner = Scanner(text, "CSeq")
        scanner.skip_ws()
        digits = scanner.match(_DIGITS_RE)
        if digits is None:
            scanner.fail("expected a sequence number")
        number = parse_uint(digits, "CSeq")
        before = scanner.pos
        scanner.skip_ws()
        if scanner.pos == before:
            scanner.fail("expected whitespace after the number")
        method = scanner.token()
        scanner.skip_ws()
        if not scanner.at_end():
            scanner.fail("junk after the method")
        return cls(number, method)

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass(frozen=True, slots=True)
class MediaType:
    """``type/subtype;params`` of Content-Type and Accept (``*`` allowed for Accept)."""

    type: str
    subtype: str
    params: Params = NO_PARAMS

    @classmethod
    def parse(cls, text: str, what: str = "Content-Type") -> MediaType:
        scanner = Scanner(text, what)
        scanner.skip_ws()
        main = scanner.token()
        scanner.skip_ws()
        scanner.expect("/")
        scanner.skip_ws()
        sub = scanner.token()
        return cls(main, sub, read_params(scanner))

    @property
    def mime_type(self) -> str:
        """``type/subtype`` in lower case, for comparisons."""
        return f"{self.type}/{self.subtype}".lower()

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{self.params}"


@dataclass(frozen=True, slots=True)
class _AuthValue:
    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str | None = None

    _unquoted: ClassVar[frozenset[str]] = frozenset({"algorithm"})
    _what: ClassVar[str] = "Authorization"

    @classmethod
    def parse(cls, text: str, what: str | None = None) -> Self:
        scanner = Scanner(text, what or cls._what)
        scanner.skip_ws()
        scheme = scanner.token()
        scanner.skip_ws()
        rest = scanner.text[scanner.pos :].rstrip()
        if _TOKEN68_RE.fullmatch(rest) and "=" not in rest.rstrip("="):
            return cls(scheme, (), rest)
        params: list[tuple[str, str]] = []
        while not scanner.at_end():
            if scanner.accept(","):
                scanner.skip_ws()
                continue
            name = scanner.token()
            scanner.skip_ws()
            scanner.expect("=")
            scanner.skip_ws()
            if scanner.peek() == '"':
                value = scanner.quoted()
            else:
                found = scanner.match(_AUTH_VALUE_RE)
                if found is None:
                    scanner.fail(f"{name!r} has no value")
                value = found
            params.append((name, value))
            scanner.skip_ws()
            if not scanner.at_end() and not scanner.accept(","):
                scanner.fail("expected ',' between parameters")
            scanner.skip_ws()
        return cls(scheme, tuple(params))

    @classmethod
    def build(cls, scheme: str, params: Iterable[tuple[str, str | int]]) -> Self:
        """A value from plain parameters, quoting those RFC 2617 writes as quoted-strings."""
        items = tuple(
            (name, str(value) if name.lower() in cls._unquoted else quote(str(value)))
            for name, value in params
        )
        return cls(scheme, items)

    def get(self, name: str) -> str | None:
        """An auth-param, unquoted (names compare case-insensitively)."""
        wanted = name.lower()
        for key, value in self.params:
            if key.lower() == wanted:
                return unquote(value)
        return None

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    @property
    def realm(self) -> str | None:
        return self.get("realm")

    @property
    def nonce(self) -> str | None:
        return self.get("nonce")

    @property
    def opaque(self) -> str | None:
        return self.get("opaque")

    @property
    def algorithm(self) -> str | None:
        return self.get("algorithm")

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        if not self.params:
            return self.scheme
        return self.scheme + " " + ", ".join(f"{k}={v}" for k, v in self.params)


@dataclass(frozen=True, slots=True)
class Challenge(_AuthValue):
    """A WWW-Authenticate or Proxy-Authenticate value (RFC 3261 §20.44, RFC 2617)."""

    _unquoted: ClassVar[frozenset[str]] = frozenset({"algorithm", "stale"})
    _what: ClassVar[str] = "WWW-Authenticate"

    @property
    def stale(self) -> bool:
        return (self.get("stale") or "").lower() == "true"

    @property
    def qop_options(self) -> list[str]:
        """The offered ``qop`` values (``"auth,auth-int"`` → ``["auth", "auth-int"]``)."""
        raw = self.get("qop")
        return [] if raw is None else [item.strip() for item in raw.split(",") if item.strip()]

    @property
    def domain(self) -> str | None:
        return self.get("domain")


@dataclass(frozen=True, slots=True)
class Credentials(_AuthValue):
    """An Authorization or Proxy-Authorization value (RFC 3261 §20.7, RFC 2617)."""

    _unquoted: ClassVar[frozenset[str]] = frozenset({"algorithm", "nc", "qop"})
    _what: ClassVar[str] = "Authorization"

    @property
    def username(self) -> str | None:
        return self.get("username")

    @property
    def uri(self) -> str | None:
        return self.get("uri")

    @property
    def response(self) -> str | None:
        return self.get("response")

    @property
    def cnonce(self) -> str | None:
        return self.get("cnonce")

    @property
    def nc(self) -> str | None:
        return self.get("nc")

    @property
    def qop(self) -> str | None:
        return self.get("qop")


# ---- whole-header parsers, as Headers.parsed() takes them (one list of values in) ------


def parse_vias(values: list[str]) -> tuple[Via, ...]:
    return tuple(Via.parse(value) for value in values)


def parse_addresses(values: list[str], what: str) -> tuple[Address, ...]:
    return tuple(Address.parse(value, what) for value in values)


def parse_routes(values: list[str]) -> tuple[Address, ...]:
    return parse_addresses(values, "Route")


def parse_record_routes(values: list[str]) -> tuple[Address, ...]:
    return parse_addresses(values, "Record-Route")


def parse_contacts(values: list[str]) -> tuple[tuple[Address, ...], bool]:
    """Contact values → (addresses, wildcard). ``*`` must stand alone (RFC 3261 §20.10)."""
    if any(value == "*" for value in values):
        if len(values) != 1:
            raise malformed("Contact", "'*' mixed with other contacts")
        return (), True
    contacts = parse_addresses(values, "Contact")
    for contact in contacts:
        q = contact.params.raw("q")
        if "q" in contact.params and (q is None or _QVALUE_RE.fullmatch(q) is None):
            raise malformed("Contact", f"bad q value {q!r}")
        expires = contact.params.raw("expires")
        if "expires" in contact.params and (
            expires is None or _DIGITS_RE.fullmatch(expires) is None
        ):
            raise malformed("Contact", f"bad expires value {expires!r}")
    return contacts, False


def _tokens(values: list[str], what: str) -> tuple[str, ...]:
    result: list[str] = []
    for value in values:
        if value == "":
            continue
        if TOKEN_RE.fullmatch(value) is None:
            raise malformed(what, f"not a token: {value[:40]!r}")
        result.append(value)
    return tuple(result)


def parse_allow(values: list[str]) -> tuple[str, ...]:
    return _tokens(values, "Allow")


def parse_supported(values: list[str]) -> tuple[str, ...]:
    return _tokens(values, "Supported")


def parse_require(values: list[str]) -> tuple[str, ...]:
    return _tokens(values, "Require")


def parse_proxy_require(values: list[str]) -> tuple[str, ...]:
    return _tokens(values, "Proxy-Require")


def parse_unsupported(values: list[str]) -> tuple[str, ...]:
    return _tokens(values, "Unsupported")


def parse_accept(values: list[str]) -> tuple[MediaType, ...]:
    return tuple(MediaType.parse(value, "Accept") for value in values if value != "")


def parse_content_type(values: list[str]) -> MediaType | None:
    return MediaType.parse(values[0]) if values else None


def parse_expires(values: list[str]) -> int | None:
    """Expires as delta-seconds; values past 2**32-1 read as 2**32-1."""
    if not values:
        return None
    return parse_uint(values[0].strip(), "Expires", clamp=True)


def parse_max_forwards(values: list[str]) -> int | None:
    if not values:
        return None
    return parse_uint(values[0].strip(), "Max-Forwards", maximum=255)


def parse_cseq(values: list[str]) -> CSeq:
    if not values:
        raise SipParseError("Bad Request - Missing CSeq")
    return CSeq.parse(values[0])


_CALL_ID_RE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?"
)


def parse_call_id(values: list[str]) -> str:
    if not values:
        raise SipParseError("Bad Request - Missing Call-ID")
    if _CALL_ID_RE.fullmatch(values[0]) is None:
        raise malformed("Call-ID", f"{values[0][:60]!r}")
    return values[0]


def parse_from(values: list[str]) -> Address:
    if not values:
        raise SipParseError("Bad Request - Missing From")
    return Address.parse(values[0], "From")


def parse_to(values: list[str]) -> Address:
    if not values:
        raise SipParseError("Bad Request - Missing To")
    return Address.parse(values[0], "To")


def parse_authorizations(values: list[str]) -> tuple[Credentials, ...]:
    return tuple(Credentials.parse(value, "Authorization") for value in values)


def parse_proxy_authorizations(values: list[str]) -> tuple[Credentials, ...]:
    return tuple(Credentials.parse(value, "Proxy-Authorization") for value in values)


def parse_www_authenticates(values: list[str]) -> tuple[Challenge, ...]:
    return tuple(Challenge.parse(value, "WWW-Authenticate") for value in values)


def parse_proxy_authenticates(values: list[str]) -> tuple[Challenge, ...]:
    return tuple(Challenge.parse(value, "Proxy-Authenticate") for value in values)
