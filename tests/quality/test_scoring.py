"""The scoring formula and the validation of scorecards and answers: pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from sparklecomm.core.errors import InvalidInput
from sparklecomm.quality.scoring import check_answers, check_criteria, scale_bounds, score

CARD = check_criteria(
    [
        {"id": "greet", "section": "Etiquette", "label": "Greeting", "weight": 2, "scale": "1-5"},
        {"id": "name", "section": "Etiquette", "label": "Used the name", "scale": "yes_no"},
        {"id": "kb", "section": "Knowledge", "label": "Right answer", "weight": 3, "scale": "0-10"},
        {
            "id": "id_check",
            "section": "Procedure",
            "label": "Verified identity",
            "weight": 4,
            "scale": "yes_no",
            "critical": True,
        },
    ]
)


def answers(**values: Any) -> dict[str, dict[str, Any]]:
    return check_answers(CARD, {k: {"value": v} for k, v in values.items()}, complete=False)


def test_the_weighted_mean_of_normalised_values() -> None:
    # greet 4 on 1-5 → 0.75 (×2), name yes → 1 (×1), kb 7 on 0-10 → 0.7 (×3), id yes → 1 (×4)
    result = score(CARD, answers(greet=4, name=1, kb=7, id_check=1))
    assert result.score == pytest.approx(round(100 * (1.5 + 1 + 2.1 + 4) / 10, 1)) == 86.0
    assert result.sections == {"Etiquette": 83.3, "Knowledge": 70.0, "Procedure": 100.0}
    assert result.failed_critical == ()
    assert score(CARD, answers(greet=5, name=1, kb=10, id_check=1)).score == 100.0
    # the bottom of every scale that is not critical: 0, not an auto-fail
    low = score(CARD, answers(greet=1, name=0, kb=0, id_check=1))
    assert low.score == 40.0 and low.failed_critical == ()


def test_not_applicable_answers_take_their_weight_out() -> None:
    result = score(CARD, answers(greet=5, name=None, kb=None, id_check=None))
    assert result.score == 100.0  # only the greeting counted
    assert result.sections == {"Etiquette": 100.0, "Knowledge": None, "Procedure": None}
    everything_na = score(CARD, answers(greet=None, name=None, kb=None, id_check=None))
    assert everything_na.score is None
    # unanswered (a draft) counts like not applicable
    assert score(CARD, answers(kb=5)).score == 50.0


def test_a_failed_critical_criterion_fails_the_evaluation() -> None:
    result = score(CARD, answers(greet=5, name=1, kb=10, id_check=0))
    assert result.score == 0.0
    assert result.failed_critical == ("id_check",)
    # its section is 0, the others keep their scores (the agent sees where it went wrong)
    assert result.sections == {"Etiquette": 100.0, "Knowledge": 100.0, "Procedure": 0.0}
    # a critical criterion on a numeric scale fails at its lowest value only
    card = check_criteria([{"id": "a", "label": "A", "scale": "1-3", "critical": True}])
    assert score(card, {"a": {"value": 1, "comment": ""}}).score == 0.0
    assert score(card, {"a": {"value": 2, "comment": ""}}).score == 50.0
    # not applicable is not a failure
    assert score(CARD, answers(greet=5, id_check=None)).score == 100.0


def test_scales() -> None:
    assert scale_bounds("yes_no") == (0, 1)
    assert scale_bounds("1-5") == (1, 5)
    assert scale_bounds("0-10") == (0, 10)
    for bad in ("5-1", "3-3", "1-11", "1..5", "", None, 5, "yes/no"):
        with pytest.raises(InvalidInput) as refused:
            scale_bounds(bad)
        assert refused.value.field == "scale"


@pytest.mark.parametrize(
    ("criteria", "field", "message"),
    [
        ([], "criteria", "at least one criterion"),
        ("x", "criteria", "at least one criterion"),
        ([{"label": "A"}, {"id": "c1", "label": "B"}], "criteria[1].id", "used twice"),
        ([{"label": "A", "weight": 0}], "criteria[0].weight", "1 to 10"),
        ([{"label": "A", "weight": 11}], "criteria[0].weight", "1 to 10"),
        ([{"label": "A", "weight": 2.5}], "criteria[0].weight", "whole number"),
        ([{"label": "A", "weight": True}], "criteria[0].weight", "whole number"),
        ([{"label": "A"}, {"label": "B", "scale": "1-50"}], "criteria[1].scale", "'1-50'"),
        ([{"label": " "}], "criteria[0].label", "must not be empty"),
        ([{"label": "A", "critical": "yes"}], "criteria[0].critical", "true or false"),
        ([{"label": "A", "id": "has space"}], "criteria[0].id", "letters, digits"),
        ([{"label": "A", "points": 3}], "criteria[0]", "unknown fields: points"),
        ([7], "criteria[0]", "an object"),
    ],
)
def test_bad_criteria_are_named(criteria: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as refused:
        check_criteria(criteria)
    assert refused.value.field == field


def test_criteria_get_ids_and_defaults() -> None:
    assert check_criteria([{"label": " Greeting "}, {"label": "Close", "section": "End"}]) == [
        {
            "id": "c1",
            "section": "General",
            "label": "Greeting",
            "guidance": "",
            "weight": 1,
            "scale": "1-5",
            "critical": False,
        },
        {
            "id": "c2",
            "section": "End",
            "label": "Close",
            "guidance": "",
            "weight": 1,
            "scale": "1-5",
            "critical": False,
        },
    ]


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"nope": {"value": 1}}, "answers.nope", "no criterion 'nope'"),
        ({"greet": {"value": 6}}, "answers.greet", "takes 1 to 5"),
        ({"greet": {"value": 0}}, "answers.greet", "takes 1 to 5"),
        ({"name": {"value": 2}}, "answers.name", r"0 \(no\) or 1 \(yes\)"),
        ({"name": {"value": True}}, "answers.name", "0 \\(no\\)"),
        ({"kb": {"value": 2.5}}, "answers.kb", "takes 0 to 10"),
        ({"kb": 5}, "answers.kb", "must be"),
        ({"kb": {"value": 5, "score": 3}}, "answers.kb", "unknown fields: score"),
        ([], "answers", "an object"),
    ],
)
def test_bad_answers_are_named(given: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as refused:
        check_answers(CARD, given, complete=False)
    assert refused.value.field == field


def test_a_complete_evaluation_answers_every_criterion() -> None:
    partial = {"greet": {"value": 3}, "name": {"value": None}, "kb": {"value": 1}}
    assert check_answers(CARD, partial, complete=False)["name"] == {"value": None, "comment": ""}
    with pytest.raises(InvalidInput, match="'Verified identity' is not answered") as refused:
        check_answers(CARD, partial, complete=True)
    assert refused.value.field == "answers.id_check"
    done = check_answers(CARD, {**partial, "id_check": {"value": None}}, complete=True)
    assert set(done) == {"greet", "name", "kb", "id_check"}


def test_the_example_of_the_documentation() -> None:
    """docs/quality.md "How the score is computed"."""
    card = check_criteria(
        [
            {"id": "greet", "section": "Etiquette", "label": "Greeting", "weight": 2},
            {"id": "kb", "section": "Knowledge", "label": "Answer", "weight": 3, "scale": "0-10"},
            {
                "id": "verify",
                "section": "Procedure",
                "label": "Verified identity",
                "scale": "yes_no",
                "critical": True,
            },
        ]
    )

    def of(greet: int, kb: int | None, verify: int) -> Any:
        given = {"greet": {"value": greet}, "kb": {"value": kb}, "verify": {"value": verify}}
        return score(card, check_answers(card, given, complete=True))

    example = of(4, 8, 1)
    assert example.score == 81.7
    assert example.sections == {"Etiquette": 75.0, "Knowledge": 80.0, "Procedure": 100.0}
    failed = of(4, 8, 0)
    assert failed.score == 0.0
    assert failed.sections == {"Etiquette": 75.0, "Knowledge": 80.0, "Procedure": 0.0}
    assert of(4, None, 1).score == 83.3
