"""Building blocks of the RFC 3261 §25 grammar shared by the URI and header parsers.

Header values reach these helpers already unfolded (folding turned into a single SP) and
decoded from UTF-8 with ``surrogateescape``, so any octet sequence survives a round trip.
Every failure is a :class:`~sparklecomm.telephony.sip.errors.SipParseError`; the scanner
never indexes past the end of its text.
"""

from __future__ import annotations

import re
from typing import NoReturn

from sparklecomm.telephony.sip.errors import malformed

TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
"""RFC 3261 ``token``."""

WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+")
"""RFC 3261 ``word`` (Call-ID)."""

QUOTED_RE = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\r\n])*)"')
"""RFC 3261 ``quoted-string``: qdtext or quoted-pair between DQUOTEs (group 1: the inside)."""

_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
_NEEDS_ESCAPE_RE = re.compile(r'(["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f])')
_DIGITS_RE = re.compile(r"[0-9]+")

RESERVED = frozenset(";/?:@&=+$,")
"""RFC 3261 ``reserved``: escaped and unescaped forms of these are NOT equivalent in URIs."""

UINT32_MAX = 2**32 - 1


def is_token(text: str) -> bool:
    """Whether ``text`` is one RFC 3261 token."""
    return TOKEN_RE.fullmatch(text) is not None


def unquote(raw: str) -> str:
    """The content of a quoted-string with quoted-pairs resolved; other text unchanged."""
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        return _QUOTED_PAIR_RE.sub(r"\1", raw[1:-1])
    return raw


def quote(text: str) -> str:
    """``text`` as a quoted-string (escaping DQUOTE, backslash and control characters).

    Raises ``ValueError`` for CR or LF, which a quoted-string cannot carry.
    """
    if "\r" in text or "\n" in text:
        raise ValueError("a quoted-string cannot contain CR or LF")
    return '"' + _NEEDS_ESCAPE_RE.sub(r"\\\1", text) + '"'


def parse_uint(text: str, what: str, *, maximum: int = UINT32_MAX, clamp: bool = False) -> int:
    """A decimal number of ``1*DIGIT`` without overflow or giant-integer conversion.

    Above ``maximum`` the value is an error, or ``maximum`` itself when ``clamp`` is set
    (RFC 3261 delta-seconds are read as at most 2**32-1).
    """
    if len(text) < 10 and text.isascii() and text.isdigit():
        value = int(text)  # at most 9 digits: no giant integer
        if value <= maximum:
            return value
    if _DIGITS_RE.fullmatch(text) is None:
        raise malformed(what, f"not a number: {text[:40]!r}")
    significant = text.lstrip("0") or "0"
    # Decide "too big" on the digit count before int() so a 5,000-digit value costs nothing
    # and never trips Python's int-from-str limit.
    if len(significant) > len(str(maximum)) or int(significant) > maximum:
        if clamp:
            return maximum
        raise malformed(what, f"number out of range: {text[:40]!r}")
    return int(significant)


class Scanner:
    """A cursor over one header value (or URI) that raises the 400 error of ``what``."""

    __slots__ = ("pos", "text", "what")

    def __init__(self, text: str, what: str, pos: int = 0) -> None:
        self.text = text
        self.what = what
        self.pos = pos

    def fail(self, detail: str) -> NoReturn:
        raise malformed(self.what, f"{detail} at offset {self.pos} of {self.text[:80]!r}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        """The next character, or ``""`` at the end."""
        return self.text[self.pos : self.pos + 1]

    def skip_ws(self) -> None:
        # Usually zero or one space: a loop beats a regex call here.
        text, pos, end = self.text, self.pos, len(self.text)
        while pos < end and text[pos] in " \t":
            pos += 1
        self.pos = pos

    def accept(self, char: str) -> bool:
        """Consume ``char`` if it comes next."""
        if self.text.startswith(char, self.pos):
            self.pos += len(char)
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.accept(char):
            self.fail(f"expected {char!r}")

    def match(self, pattern: re.Pattern[str]) -> str | None:
        """Consume and return what ``pattern`` matches here, if anything."""
        found = pattern.match(self.text, self.pos)
        if found is None or found.end() == self.pos:
            return None
        self.pos = found.end()
        return found.group(0)

    def token(self) -> str:
        value = self.match(TOKEN_RE)
        if value is None:
            self.fail("expected a token")
        return value

    def quoted(self) -> str:
        """A quoted-string, returned raw (with its quotes and backslashes)."""
        value = self.match(QUOTED_RE)
        if value is None:
            self.fail("unterminated or invalid quoted-string")
        return value

    def rest(self) -> str:
        value = self.text[self.pos :]
        self.pos = len(self.text)
        return value


def split_list(value: str) -> list[str] | None:
    """Split a header value on commas outside quoted-strings and angle brackets.

    Returns the stripped elements (``[""]`` for an empty value), or ``None`` when the value
    cannot be split safely: an unterminated quote, unbalanced ``<``/``>`` or an empty
    element between commas. The caller then keeps the value whole.
    """
    if '"' not in value and "<" not in value and ">" not in value:
        parts = [part.strip() for part in value.split(",")]
    else:
        scanned = _split_outside_quotes(value)
        if scanned is None:
            return None
        parts = scanned
    if len(parts) > 1 and any(not part for part in parts):
        return None
    return parts


def _split_outside_quotes(value: str) -> list[str] | None:
    parts: list[str] = []
    start = 0
    in_quote = False
    escaped = False
    depth = 0
    for index, char in enumerate(value):
        if in_quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_quote = False
        elif char == '"':
            in_quote = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth -= 1
            if depth < 0:
                return None
        elif char == "," and depth == 0:
            parts.append(value[start:index].strip())
            start = index + 1
    if in_quote or depth != 0:
        return None
    parts.append(value[start:].strip())
    return parts
