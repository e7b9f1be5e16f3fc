"""Compiled skill expressions (rust/acd_core/src/expr.rs) against expressions.py.

Differential: every source compiles in both or fails in both with the same InvalidInput
(message and field); every compiled expression gives the same ``matches`` for the same skills,
attributes and relaxation.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparklecomm.acd.expressions import MAX_DEPTH, MAX_LENGTH, compile_expression
from sparklecomm.core.errors import InvalidInput

_acd_core = pytest.importorskip("sparklecomm.acd._acd_core")
CompiledExpression = _acd_core.CompiledExpression

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- helpers --------------------------------------------------------------------------------


def outcome(make: Any, source: Any, field: str) -> tuple[str, Any, Any]:
    try:
        expr = make(source, field)
    except InvalidInput as exc:
        return ("error", str(exc), exc.field)
    return ("ok", frozenset(expr.identifiers), expr.is_empty)


def py_compile(source: Any, field: str) -> Any:
    return compile_expression(source, field=field)


def rs_compile(source: Any, field: str) -> Any:
    return CompiledExpression(source, field)


def same_compile(source: Any, field: str = "expression") -> tuple[str, Any, Any]:
    expected = outcome(py_compile, source, field)
    assert outcome(rs_compile, source, field) == expected, source
    return expected


def same_matches(source: str, skills: dict[str, int], attrs: dict[str, Any], relax: int) -> None:
    py = compile_expression(source)
    rs = CompiledExpression(source)
    assert rs.source == source
    want = py.matches(skills, attrs, relax)
    got = rs.matches(skills, attrs, relax)
    assert got is want, (source, skills, attrs, relax)


# --- strategies -----------------------------------------------------------------------------

NAMES = ["billing", "spanish", "level", "tier", "vip", "x.y", "lang", "tags", "_n", "a-b", "é"]

POOL_SCALARS = [None, True, False, 0, 1, 2, 1.0, 2.0, 0.5, 2**53 + 1, 2.0**53, "", "a", "1"]
big_ints = st.sampled_from(
    [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**20, 2**128, 2**200]
)
ints = st.one_of(st.integers(-6, 8), st.integers(), big_ints)
floats = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 2.5, 3.0, 1e20, 2.0**63, 2.0**128, 2.0**200, -(2.0**64)]),
    st.floats(allow_nan=False, allow_infinity=False),
)
texts = st.one_of(st.sampled_from(["", "zh", "fr", "billing", "x", "ab", "é", "中文"]), st.text())
scalars = st.one_of(st.sampled_from(POOL_SCALARS), st.none(), st.booleans(), ints, floats, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    ),
    max_leaves=8,
)
skill_maps = st.dictionaries(st.sampled_from(NAMES), st.integers(1, 5), max_size=5)
attribute_maps = st.dictionaries(st.sampled_from(NAMES), json_values, max_size=6)


def num_literal(value: int | float) -> str:
    return repr(value) if isinstance(value, int) else repr(float(value))


number_sources = st.one_of(
    st.integers(-10, 10).map(str),
    big_ints.map(str),
    st.sampled_from(
        ["2.0", "2.", "0.5", "-0.0", "1_000", "3.000_1", "1" * 400 + ".5", "٣", "１２"]
    ),
    floats.filter(lambda f: "e" not in repr(f) and "inf" not in repr(f)).map(repr),
)
string_sources = st.one_of(
    st.sampled_from(['"zh"', "'fr'", '"billing"', '""', r'"a\"b"', r"'it\'s'", '"x"']),
    st.text(max_size=5).map(lambda s: repr(s)),
)
literals = st.one_of(
    number_sources,
    string_sources,
    st.sampled_from(["true", "false"]),
    st.lists(st.one_of(number_sources, string_sources), max_size=4).map(
        lambda items: "[" + ", ".join(items) + "]"
    ),
)
operands = st.one_of(st.sampled_from(NAMES), literals)
ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"])


def _comparison(draw_left: str, op: str, right: str) -> str:
    return f"{draw_left} {op} {right}"


comparisons = st.one_of(
    operands,
    st.builds(_comparison, operands, ops, operands),
    # Skill thresholds, both ways round.
    st.builds(
        lambda name, op, n: f"{name} {op} {n}",
        st.sampled_from(NAMES),
        st.sampled_from([">=", ">"]),
        number_sources,
    ),
    st.builds(
        lambda name, op, n: f"{n} {op} {name}",
        st.sampled_from(NAMES),
        st.sampled_from(["<=", "<"]),
        number_sources,
    ),
)


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        inner.map(lambda a: f"not {a}"),
        inner.map(lambda a: f"({a})"),
        st.builds(lambda a, op, b: f"({a}) {op} {b}", inner, ops, operands),
        st.builds(lambda a, op, b: f"{a} {op} ({b})", operands, ops, inner),
    )


valid_sources = st.recursive(comparisons, _extend, max_leaves=8)

TOKENS = [
    *NAMES, "and", "or", "not", "in", "true", "false", "==", "!=", "<", "<=", ">", ">=", "=",
    "!", "(", ")", "[", "]", ",", "-", "-1", "1", "2.5", "1.2.3", "1_", "²", "٣", "1²", "'a'",
    '"b', "'", '"', "\\", "\t", "\n", "\x1c", "\u3000", "\u00a0", "@", "é", "中", "ǅ", "a.b-c",
    "#", "\x00", "\x7f", "\u200b", "\U0001f600", "notin", "in-", "_", "1e5", ".5", "[1,]",
]  # fmt: skip
token_sources = st.lists(
    st.tuples(st.sampled_from(TOKENS), st.sampled_from(["", " ", "  "])), max_size=12
).map(lambda parts: "".join(tok + sep for tok, sep in parts))


# --- tests ----------------------------------------------------------------------------------


def test_char_classes_match_python() -> None:
    """The tokenizer's Unicode tables agree with this Python's str methods everywhere."""
    classes = CompiledExpression._char_classes
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        want = (
            ch.isspace()
            | ch.isdigit() << 1
            | ch.isdecimal() << 2
            | ch.isalpha() << 3
            | ch.isalnum() << 4
            | ch.isprintable() << 5
        )
        if classes(ch) != want:
            name = unicodedata.name(ch, "?")
            pytest.fail(f"U+{cp:04X} {name}: {classes(ch)} != {want} (Unicode tables out of date)")


DOC_EXAMPLES = [
    "billing and spanish >= 3",
    'language == "zh" and product in ["billing", "sales"] and level >= 2',
    "not trainee and (vip_desk or tier > 1)",
    "",
    "   ",
    "billing",
    "sales or billing and spanish",
    "(level > 4 or billing) and not (spanish < 2)",
    '"fr" in langs',
    '"de" not in langs',
    "[1, 2, 3,]",
    "level >= 4.0",
    "3 <= spanish",
    "2 < spanish",
    'level == "4"',
    "true and not false",
    "x.y >= 2",
]
DOC_SKILLS = [
    {},
    {"billing": 3, "spanish": 2, "level": 4},
    {"spanish": 5, "tier": 2},
    {"billing": 1},
]
DOC_ATTRS = [
    {},
    {"language": "zh", "product": "billing", "site": "lyon", "langs": ["fr", "en"]},
    {"trainee": False, "vip_desk": True, "tier": 2, "level": 2.0, "langs": ("de",)},
    {"trainee": 1, "x.y": 2, "language": "fr", "product": ["billing"], "langs": "fr,de"},
]


@pytest.mark.parametrize("source", DOC_EXAMPLES)
def test_documented_examples(source: str) -> None:
    same_compile(source)
    for skills in DOC_SKILLS:
        for attrs in DOC_ATTRS:
            for relax in range(4):
                same_matches(source, skills, attrs, relax)


ERROR_EXAMPLES = [
    "billing and",
    "billing = 3",
    "(billing",
    '"open',
    "level >= ",
    "[1, x]",
    "billing ; 1",
    "__import__('os').system('x')",
    "a or " * 2000 + "a",
    "a = 1",
    "a ! b",
    "a and",
    "(a",
    "a b",
    "[a]",
    "[1 2]",
    "'abc",
    "1.2.3",
    "²",
    "-",
    "a @ b",
    "not in x",
    "a in in",
    "billing >= ",
    "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH,
    "(" * (MAX_DEPTH - 1) + "a" + ")" * (MAX_DEPTH - 1),
    "not " * MAX_DEPTH + "a",
    "not " * (MAX_DEPTH - 1) + "a",
    "(" * 40 + "not " * 30 + "a" + ")" * 40,
    "a" * MAX_LENGTH,
    "a" * (MAX_LENGTH + 1),
    "é" * (MAX_LENGTH + 1),
    "1" * MAX_LENGTH,
    "x == 'it''s'",
    'x == "\\""',
    "x == '\x00\n\t\\'",
    "a\u3000and\x1cb",
    "a == '\U0001f600' and \u200b",
]


@pytest.mark.parametrize("source", ERROR_EXAMPLES)
def test_edge_cases(source: str) -> None:
    same_compile(source)
    same_compile(source, field="required_skills")


@pytest.mark.parametrize("source", [None, 1, b"a", ["a"]])
def test_not_a_string(source: object) -> None:
    same_compile(source, field="f")


@FAST
@given(st.text(max_size=40))
def test_random_text_compiles_alike(source: str) -> None:
    same_compile(source)


@FAST
@given(st.text(alphabet="ab12 ()[],=\"<>!andortin.-_'\\", max_size=40))
def test_dense_syntax_compiles_alike(source: str) -> None:
    if same_compile(source)[0] == "ok":
        same_matches(source, {"a": 2}, {"b": "x", "d": [1, "a"]}, 1)
        same_matches(source, {"b": 1}, {"a": 1.0}, 0)


@FAST
@given(token_sources)
def test_random_tokens_compile_alike(source: str) -> None:
    if same_compile(source)[0] == "ok":
        same_matches(source, {"billing": 2, "vip": 1}, {"tags": ["a", 1], "lang": "a"}, 1)


@FAST
@given(st.integers(0, 80), st.integers(0, 80), st.sampled_from(["(", "not ", "( not ", "[", "(["]))
def test_deep_nesting_compiles_alike(opens: int, closes: int, unit: str) -> None:
    same_compile(unit * opens + "a" + ")" * closes)


@settings(max_examples=40, deadline=None)
@given(st.integers(MAX_LENGTH - 3, MAX_LENGTH + 3), st.sampled_from(["a", " ", "1", "中", "'"]))
def test_long_input_compiles_alike(length: int, fill: str) -> None:
    same_compile((fill * length)[:length])


@settings(max_examples=300, deadline=None)
@given(valid_sources, skill_maps, attribute_maps, st.integers(0, 6))
def test_matches_alike(
    source: str, skills: dict[str, int], attrs: dict[str, Any], relax: int
) -> None:
    if same_compile(source)[0] == "ok":
        same_matches(source, skills, attrs, relax)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(NAMES),
    st.sampled_from([">=", ">", "<=", "<"]),
    st.one_of(ints, floats, st.sampled_from([0, 1, 2, 5, 6, 1.5, 0.5, -1])),
    skill_maps,
    attribute_maps,
    st.integers(-3, 8),
)
def test_thresholds_alike(
    name: str, op: str, n: int | float, skills: dict[str, int], attrs: dict[str, Any], relax: int
) -> None:
    literal = num_literal(n).replace("e+", "").replace("inf", "1")
    if "e" in literal:
        return
    for source in (f"{name} {op} {literal}", f"{literal} {op} {name}"):
        if same_compile(source)[0] == "ok":
            same_matches(source, skills, attrs, relax)


@settings(max_examples=150, deadline=None)
@given(
    json_values, json_values, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"])
)
def test_attribute_comparisons_alike(left: Any, right: Any, op: str) -> None:
    """Any two JSON values compare alike (as attributes, where literals cannot reach)."""
    attrs = {"l": left, "r": right}
    for source in (f"l {op} r", f"(l) {op} (r)", "l", "not r"):
        same_matches(source, {}, attrs, 0)


# Values that collide under Python's rules (True == 1 == 1.0, 2**53 + 1 != 2.0**53, a list is
# not a tuple at the top level but [True] == [1] inside one...), so that comparisons between
# them exercise every rule; beyond i64 and beyond i128 too.
POOL: list[Any] = [
    None, True, False, 0, 1, 2, -1, 0.0, -0.0, 1.0, 2.0, 0.5, 2**53, 2**53 + 1, 2.0**53,
    2**63 - 1, 2**63, 2.0**63, -(2**63), -(2**63) - 1, -(2.0**63), 2**64, 2.0**64, 10**20,
    1e20, 2**127, 2.0**127, 2**128 + 1, 2.0**128, 2**200, 2.0**200, -(2**200), -(2.0**200),
    1.7976931348623157e308, "", "a", "1", "ab", "b", "é", [], (), [1], (1,), [True], [1.0],
    ["a"], ("a",), [None], (None,), ["a", 1], {}, {"a": 1}, {"a": True}, {"a": 1.0},
    {"a": 1, "b": 2}, {"b": 2, "a": 1}, [[1]], [(1,)], ((1,),), {"a": [1]}, {"a": (1,)},
]  # fmt: skip
OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in"]


@pytest.mark.parametrize("op", OPS)
def test_pool_comparisons_alike(op: str) -> None:
    """Every pair of colliding values, as attributes, compares alike."""
    sources = [f"l {op} r", f"(l) {op} (r)"]
    exprs = [(compile_expression(src), CompiledExpression(src)) for src in sources]
    for left in POOL:
        for right in POOL:
            attrs = {"l": left, "r": right}
            for py, rs in exprs:
                want = py.matches({}, attrs)
                assert rs.matches({}, attrs) is want, (py.source, left, right)


LITERALS = [
    "1", "1.0", "2", "0", "-0.0", "0.5", "true", "false", '"a"', '""', '"1"', "9007199254740993",
    "9007199254740992.0", "18446744073709551616", "18446744073709551616.0", "1" * 60,
    "[1]", "[1.0]", '["a"]', '[1, "a"]', "[]", "[9007199254740993]", "[9007199254740992.0]",
]  # fmt: skip


@pytest.mark.parametrize("op", OPS)
def test_pool_against_literals_alike(op: str) -> None:
    """Every colliding value, as an attribute or a skill, against literals of every kind."""
    for literal in LITERALS:
        for source in (f"l {op} {literal}", f"{literal} {op} l"):
            py, rs = compile_expression(source), CompiledExpression(source)
            for value in POOL:
                want = py.matches({}, {"l": value})
                assert rs.matches({}, {"l": value}) is want, (source, value)
            for level in range(1, 6):
                want = py.matches({"l": level}, {"l": "shadowed"})
                assert rs.matches({"l": level}, {"l": "shadowed"}) is want, (source, level)


THRESHOLDS = [
    "-1", "0", "1", "2", "3", "5", "6", "0.5", "1.0", "1.5", "2.5", "4.5", "6.5", "-0.5",
    "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "340282366920938463463374607431768211457", "-340282366920938463463374607431768211457",
    "1" * 400 + ".0",
]  # fmt: skip


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_threshold_grid_alike(threshold: str) -> None:
    """Skill thresholds, both ways round, against skills (levels even outside 1..5, as the
    Python code allows) and attributes of every kind, for every relaxation."""
    sources = [f"s >= {threshold}", f"s > {threshold}", f"{threshold} <= s", f"{threshold} < s"]
    exprs = [(compile_expression(src), CompiledExpression(src)) for src in sources]
    agents: list[tuple[dict[str, int], dict[str, Any]]] = [
        ({"s": level}, {}) for level in (-1, 0, 1, 2, 3, 4, 5, 2**62)
    ]
    agents += [({}, {"s": value}) for value in POOL]
    agents.append(({}, {}))
    for py, rs in exprs:
        for skills, attrs in agents:
            for relax in range(-2, 8):
                want = py.matches(skills, attrs, relax)
                assert rs.matches(skills, attrs, relax) is want, (py.source, skills, attrs, relax)


def _same_type_tree(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same_type_tree, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_type_tree(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_values_roundtrip(value: Any) -> None:
    assert _same_type_tree(CompiledExpression._roundtrip(value), value)


def test_identifiers_and_repr() -> None:
    source = 'billing and language == "zh" or x.y >= 2 and billing'
    rs = CompiledExpression(source)
    assert rs.identifiers == compile_expression(source).identifiers
    assert isinstance(rs.identifiers, frozenset)
    assert rs.source == source
    assert not rs.is_empty
    assert CompiledExpression("").is_empty
    assert rs.matches({"billing": 1}, {"language": "zh"}) is True
    assert repr(CompiledExpression("a")) == "CompiledExpression('a')"
