"""Skill expressions: parsing, semantics, relaxation and errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparklecomm.acd.expressions import MAX_DEPTH, compile_expression
from sparklecomm.core.errors import InvalidInput

AGENT_SKILLS = {"billing": 3, "spanish": 2, "level": 4}
AGENT_ATTRS = {"language": "zh", "product": "billing", "site": "lyon", "langs": ["fr", "en"]}


def ok(source: str, relax: int = 0) -> bool:
    return compile_expression(source).matches(AGENT_SKILLS, AGENT_ATTRS, relax)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("", True),
        ("billing", True),
        ("sales", False),
        ("not sales", True),
        ("billing and spanish >= 3", False),
        ("billing and spanish >= 2", True),
        ('language == "zh" and product in ["billing","sales"] and level >= 2', True),
        ('language == "fr"', False),
        ('language != "fr"', True),
        ("level > 4 or billing", True),
        ("level > 4 or sales", False),
        ("(level > 4 or billing) and not (spanish < 2)", True),
        ("sales or billing and spanish", True),  # and binds tighter than or
        ("(sales or billing) and spanish >= 3", False),
        ('"fr" in langs', True),
        ('"de" in langs', False),
        ('"de" not in langs', True),
        ('site in ["paris", "lyon"]', True),
        ("level == 4", True),
        ("level >= 4.0", True),
        ("3 <= spanish", False),
        ("2 <= spanish", True),
        ("unknown == 1", False),
        ("unknown != 1", True),
        ('level == "4"', False),  # no silent number/string coercion
        ("language > 1", False),
        ("true and not false", True),
        ("[1, 2, 3,]", True),  # a non-empty list is truthy
    ],
)
def test_semantics(source: str, expected: bool) -> None:
    assert ok(source) is expected


def test_relax_lowers_skill_thresholds_but_not_below_having_the_skill() -> None:
    expr = compile_expression("spanish >= 4 and billing")
    assert not expr.matches(AGENT_SKILLS, AGENT_ATTRS, 1)
    assert expr.matches(AGENT_SKILLS, AGENT_ATTRS, 2)
    floor = compile_expression("german >= 3")
    assert not floor.matches({}, {}, 5)  # never "has no skill at all"
    assert floor.matches({"german": 1}, {}, 5)
    reversed_form = compile_expression("4 <= spanish")
    assert reversed_form.matches(AGENT_SKILLS, AGENT_ATTRS, 2)
    # attributes are not relaxed
    attr = compile_expression("years >= 5")
    assert not attr.matches({}, {"years": 4}, 3)


def test_identifiers_and_equality() -> None:
    expr = compile_expression('billing and language == "zh" or x.y >= 2')
    assert expr.identifiers == frozenset({"billing", "language", "x.y"})
    assert expr == compile_expression('billing and language == "zh" or x.y >= 2')
    assert compile_expression("").is_empty


@pytest.mark.parametrize(
    ("source", "position"),
    [
        ("billing and", 12),
        ("billing = 3", 9),
        ("(billing", 9),
        ('"open', 1),
        ("level >= ", 10),
        ("a b", 3),
        ("[1, x]", 5),
        ("billing ; 1", 9),
        ("__import__('os').system('x')", 17),
    ],
)
def test_syntax_errors_name_the_position(source: str, position: int) -> None:
    with pytest.raises(InvalidInput) as err:
        compile_expression(source, field="required_skills")
    assert f"position {position}" in err.value.detail
    assert err.value.field == "required_skills"


def test_limits() -> None:
    with pytest.raises(InvalidInput, match="too long"):
        compile_expression("a or " * 2000 + "a")
    with pytest.raises(InvalidInput, match="nested too deeply"):
        compile_expression("(" * (MAX_DEPTH + 2) + "a" + ")" * (MAX_DEPTH + 2))
    with pytest.raises(InvalidInput, match="nested too deeply"):
        compile_expression("not " * (MAX_DEPTH + 2) + "a")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab12 ()[],=\"<>!andortin.-_'", max_size=40))
def test_any_text_compiles_or_fails_cleanly(source: str) -> None:
    try:
        expr = compile_expression(source)
    except InvalidInput as exc:
        assert "position" in exc.detail or "too" in exc.detail
        return
    assert isinstance(expr.matches({"a": 2}, {"b": "x"}), bool)


# A reference evaluator over generated trees, compared with the compiled expression.
_names = st.sampled_from(["a", "b", "c", "d"])
_literals = st.one_of(st.integers(0, 6), st.sampled_from(['"x"', '"y"']))
_atoms = st.one_of(
    _names.map(lambda n: (n, ("name", n))),
    st.tuples(_names, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), _literals).map(
        lambda t: (f"{t[0]} {t[1]} {t[2]}", ("cmp", *t))
    ),
)


def _combine(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(children, children).map(
            lambda t: (f"({t[0][0]} and {t[1][0]})", ("and", t[0][1], t[1][1]))
        ),
        st.tuples(children, children).map(
            lambda t: (f"({t[0][0]} or {t[1][0]})", ("or", t[0][1], t[1][1]))
        ),
        children.map(lambda c: (f"not {c[0]}", ("not", c[1]))),
    )


_trees = st.recursive(_atoms, _combine, max_leaves=8)


def _reference(node: tuple, skills: dict, attrs: dict) -> bool:
    kind = node[0]
    if kind == "name":
        value = skills.get(node[1], attrs.get(node[1]))
        return bool(value)
    if kind == "and":
        return _reference(node[1], skills, attrs) and _reference(node[2], skills, attrs)
    if kind == "or":
        return _reference(node[1], skills, attrs) or _reference(node[2], skills, attrs)
    if kind == "not":
        return not _reference(node[1], skills, attrs)
    _, name, op, lit = node
    left = skills.get(name, attrs.get(name))
    right = lit.strip('"') if isinstance(lit, str) else lit
    same = left is not None and (isinstance(left, str) == isinstance(right, str))
    if op == "==":
        return same and left == right
    if op == "!=":
        return not (same and left == right)
    if not same:
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


@settings(max_examples=300, deadline=None)
@given(
    _trees,
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(1, 5)),
    st.dictionaries(
        st.sampled_from(["c", "d"]), st.one_of(st.integers(0, 6), st.sampled_from(["x", "y"]))
    ),
)
def test_compiled_matches_reference(tree: tuple, skills: dict, attrs: dict) -> None:
    source, node = tree
    assert compile_expression(source).matches(skills, attrs) is _reference(node, skills, attrs)
