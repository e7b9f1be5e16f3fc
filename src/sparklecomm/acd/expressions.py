"""Skill expressions: which agents may take an interaction, or belong to a queue.

A small, safe language (it is parsed here, never handed to ``eval``)::

    billing and spanish >= 3
    language == "zh" and product in ["billing", "sales"] and level >= 2
    not trainee and (vip_desk or tier > 1)

Grammar (keywords are lower case)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand]
    operand    := NUMBER | STRING | "true" | "false" | list | IDENT | "(" expr ")"
    list       := "[" [literal ("," literal)* [","]] "]"

An identifier names one of the agent's skills (its proficiency, an int 1–5) or, if the agent
has no skill of that name, one of the agent's attributes; an unknown name is *missing*.
A name alone means "has it" (a skill, or a truthy attribute). Comparisons never raise: a
comparison with a missing value or between a number and a string is false (and ``!=`` true).

Relaxation: a routing rule may *lower required levels* by ``relax`` steps while an interaction
waits. Only skill thresholds written as ``skill >= N`` / ``skill > N`` (or ``N <= skill`` /
``N < skill``) are lowered, never below "has the skill at all".

An expression is compiled once into nested closures; evaluating it is a handful of Python
calls. Syntax errors raise :class:`~sparklecomm.core.errors.InvalidInput` naming the position
(1-based, in characters) where the parser gave up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sparklecomm.core.errors import InvalidInput

MAX_LENGTH = 4096
MAX_DEPTH = 64

Skills = Mapping[str, int]
Attributes = Mapping[str, Any]
# (skills, attributes, relax) -> value
_Fn = Callable[[Skills, Attributes, int], Any]

_MISSING: Any = None
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # num, str, ident, kw, op, punct, end
    value: Any
    pos: int  # 0-based offset


@dataclass(frozen=True, eq=False, slots=True)
class SkillExpression:
    """A compiled skill expression; immutable and shareable."""

    source: str
    identifiers: frozenset[str]
    _fn: _Fn | None  # None: the empty expression, which every agent satisfies

    def matches(self, skills: Skills, attributes: Attributes, relax: int = 0) -> bool:
        """Does an agent with these skills and attributes satisfy the expression?"""
        fn = self._fn
        if fn is None:
            return True
        return bool(fn(skills, attributes, relax))

    @property
    def is_empty(self) -> bool:
        return self._fn is None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SkillExpression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"SkillExpression({self.source!r})"


def compile_expression(source: str, *, field: str = "expression") -> SkillExpression:
    """Parse and compile ``source``; ``InvalidInput`` (with ``field``) on a syntax error."""
    if not isinstance(source, str):
        raise InvalidInput("A skill expression must be a string.", field=field)
    if len(source) > MAX_LENGTH:
        raise InvalidInput(
            f"The skill expression is too long ({len(source)} characters, at most {MAX_LENGTH}).",
            field=field,
        )
    tokens = _tokenize(source, field)
    if tokens[0].kind == "end":
        return SkillExpression(source, frozenset(), None)
    parser = _Parser(source, tokens, field)
    fn = parser.parse()
    return SkillExpression(source, frozenset(parser.identifiers), fn)


def _error(source: str, pos: int, message: str, field: str) -> InvalidInput:
    return InvalidInput(
        f"Syntax error in skill expression at position {pos + 1}: {message} (in {source!r}).",
        field=field,
    )


def _tokenize(source: str, field: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch in "([]),":
            tokens.append(_Token("punct", ch, start))
            i += 1
            continue
        if ch in "=!<>":
            two = source[i : i + 2]
            if two in ("==", "!=", "<=", ">="):
                tokens.append(_Token("op", two, start))
                i += 2
                continue
            if ch in "<>":
                tokens.append(_Token("op", ch, start))
                i += 1
                continue
            hint = ' (use "==" to compare)' if ch == "=" else ""
            raise _error(source, start, f"unexpected {ch!r}{hint}", field)
        if ch in "\"'":
            quote = ch
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise _error(source, start, "unterminated string", field)
                c = source[i]
                if c == "\\" and i + 1 < n:
                    chars.append(source[i + 1])
                    i += 2
                    continue
                if c == quote:
                    i += 1
                    break
                chars.append(c)
                i += 1
            tokens.append(_Token("str", "".join(chars), start))
            continue
        if ch.isdigit() or (ch == "-" and i + 1 < n and (source[i + 1].isdigit())):
            i += 1
            while i < n and (source[i].isdigit() or source[i] in "._"):
                i += 1
            text = source[start:i].replace("_", "")
            try:
                value: int | float = float(text) if "." in text else int(text)
            except ValueError:
                raise _error(source, start, f"bad number {source[start:i]!r}", field) from None
            tokens.append(_Token("num", value, start))
            continue
        if ch.isalpha() or ch == "_":
            i += 1
            while i < n and (source[i].isalnum() or source[i] in "_.-"):
                i += 1
            word = source[start:i]
            if word in _KEYWORDS:
                tokens.append(_Token("kw", word, start))
            else:
                tokens.append(_Token("ident", word, start))
            continue
        raise _error(source, start, f"unexpected character {ch!r}", field)
    tokens.append(_Token("end", None, n))
    return tokens


def _lookup(name: str) -> _Fn:
    def value(skills: Skills, attributes: Attributes, relax: int) -> Any:
        level = skills.get(name)
        if level is not None:
            return level
        return attributes.get(name, _MISSING)

    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return _same_kind(left, right) and bool(left == right)
    if op == "!=":
        return not (_same_kind(left, right) and bool(left == right))
    if not (
        (_is_number(left) and _is_number(right))
        or (isinstance(left, str) and isinstance(right, str))
    ):
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _same_kind(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    if _is_number(left) and _is_number(right):
        return True
    return type(left) is type(right)


def _contains(left: Any, right: Any) -> bool:
    if isinstance(right, str):
        return isinstance(left, str) and left in right
    if isinstance(right, (list, tuple, set, frozenset)):
        if isinstance(left, (list, tuple)):
            return any(_member(item, right) for item in left)
        return _member(left, right)
    return False


def _member(item: Any, collection: Any) -> bool:
    return item is not None and any(_same_kind(item, x) and item == x for x in collection)


class _Parser:
    def __init__(self, source: str, tokens: list[_Token], field: str) -> None:
        self.source = source
        self.tokens = tokens
        self.field = field
        self.i = 0
        self.depth = 0
        self.identifiers: set[str] = set()

    # -- helpers -----------------------------------------------------------------------------
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: _Token, expected: str) -> InvalidInput:
        found = "the end" if tok.kind == "end" else repr(self.source[tok.pos :].split()[0])
        return _error(self.source, tok.pos, f"expected {expected}, found {found}", self.field)

    def is_kw(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "kw" and tok.value == word

    def is_punct(self, ch: str) -> bool:
        tok = self.peek()
        return tok.kind == "punct" and tok.value == ch

    # -- grammar -----------------------------------------------------------------------------
    def parse(self) -> _Fn:
        fn = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(tok, '"and", "or" or the end of the expression')
        return fn

    def expr(self) -> _Fn:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(
                self.source, self.peek().pos, "the expression is nested too deeply", self.field
            )
        parts = [self.and_expr()]
        while self.is_kw("or"):
            self.take()
            parts.append(self.and_expr())
        self.depth -= 1
        if len(parts) == 1:
            return parts[0]
        items = tuple(parts)

        def any_of(s: Skills, a: Attributes, r: int) -> bool:
            return any(p(s, a, r) for p in items)

        return any_of

    def and_expr(self) -> _Fn:
        parts = [self.not_expr()]
        while self.is_kw("and"):
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        items = tuple(parts)

        def all_of(s: Skills, a: Attributes, r: int) -> bool:
            return all(p(s, a, r) for p in items)

        return all_of

    def not_expr(self) -> _Fn:
        if self.is_kw("not"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _error(
                    self.source, self.peek().pos, "the expression is nested too deeply", self.field
                )
            inner = self.not_expr()
            self.depth -= 1

            def negate(s: Skills, a: Attributes, r: int) -> bool:
                return not inner(s, a, r)

            return negate
        return self.comparison()

    def comparison(self) -> _Fn:
        left, left_tok = self.operand()
        tok = self.peek()
        op: str | None = None
        if tok.kind == "op" and tok.value in _COMPARE:
            op = str(tok.value)
            self.take()
        elif tok.kind == "kw" and tok.value == "in":
            op = "in"
            self.take()
        elif tok.kind == "kw" and tok.value == "not" and self._next_is_in():
            self.take()
            self.take()
            op = "not in"
        if op is None:
            return left
        right, right_tok = self.operand()
        return self._build_comparison(op, left, left_tok, right, right_tok)

    def _next_is_in(self) -> bool:
        nxt = self.tokens[self.i + 1]
        return nxt.kind == "kw" and nxt.value == "in"

    def _build_comparison(
        self, op: str, left: _Fn, left_tok: _Token, right: _Fn, right_tok: _Token
    ) -> _Fn:
        if op == "in":

            def contains(s: Skills, a: Attributes, r: int) -> bool:
                return _contains(left(s, a, r), right(s, a, r))

            return contains
        if op == "not in":

            def not_contains(s: Skills, a: Attributes, r: int) -> bool:
                return not _contains(left(s, a, r), right(s, a, r))

            return not_contains
        # A skill threshold ("spanish >= 3", or "3 <= spanish") may be relaxed while waiting.
        name: str | None = None
        threshold: float = 0
        if left_tok.kind == "ident" and right_tok.kind == "num" and op in (">=", ">"):
            name, threshold, norm = str(left_tok.value), right_tok.value, op
        elif left_tok.kind == "num" and right_tok.kind == "ident" and op in ("<=", "<"):
            name, threshold = str(right_tok.value), left_tok.value
            norm = ">=" if op == "<=" else ">"
        if name is not None:
            return _threshold(name, norm, threshold)

        def compare(s: Skills, a: Attributes, r: int) -> bool:
            return _compare(op, left(s, a, r), right(s, a, r))

        return compare

    def operand(self) -> tuple[_Fn, _Token]:
        tok = self.take()
        if tok.kind in ("num", "str"):
            const = tok.value
            return (lambda s, a, r: const), tok
        if tok.kind == "kw" and tok.value in ("true", "false"):
            flag = tok.value == "true"
            return (lambda s, a, r: flag), _Token("bool", flag, tok.pos)
        if tok.kind == "ident":
            self.identifiers.add(str(tok.value))
            return _lookup(str(tok.value)), tok
        if tok.kind == "punct" and tok.value == "(":
            inner = self.expr()
            close = self.take()
            if not (close.kind == "punct" and close.value == ")"):
                raise self.fail(close, '")"')
            return inner, tok
        if tok.kind == "punct" and tok.value == "[":
            items: list[Any] = []
            while not self.is_punct("]"):
                item = self.take()
                if item.kind not in ("num", "str"):
                    raise self.fail(item, "a number or a string in the list")
                items.append(item.value)
                if self.is_punct(","):
                    self.take()
                elif not self.is_punct("]"):
                    raise self.fail(self.peek(), '"," or "]"')
            self.take()
            frozen = tuple(items)
            return (lambda s, a, r: frozen), tok
        raise self.fail(tok, "a skill, an attribute, a value or (")


def _threshold(name: str, op: str, threshold: float) -> _Fn:
    floor = 1 if op == ">=" else 0

    def check(skills: Skills, attributes: Attributes, relax: int) -> bool:
        level = skills.get(name)
        if level is not None:
            limit = threshold
            if relax:
                limit = max(floor, threshold - relax) if threshold > floor else threshold
            return level >= limit if op == ">=" else level > limit
        value = attributes.get(name, _MISSING)
        if not _is_number(value):
            return False
        return bool(value >= threshold) if op == ">=" else bool(value > threshold)

    return check
