"""Satisfaction (CSAT) figures of the KPI accumulator, from ``survey.answered`` events, with
values worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sparklecomm.analytics import JsonEvent, KpiAccumulator, KpiConfig

START = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def survey(
    at: float, score: Any, max_score: Any, queue_id: str | None = "q", agent: str = "a1"
) -> JsonEvent:
    return JsonEvent(
        "survey.answered",
        START + timedelta(seconds=at),
        {
            "interaction_id": f"i-{at}",
            "queue_id": queue_id,
            "agent_id": agent,
            "channel": "chat",
            "score": score,
            "max_score": max_score,
            "source": "web",
        },
    )


def contact(at: float, iid: str, queue_id: str = "q") -> list[JsonEvent]:
    """A contact answered at once (created, accepted): one answered contact."""
    when = START + timedelta(seconds=at)
    return [
        JsonEvent("interaction.created", when, {"interaction_id": iid, "queue_id": queue_id}),
        JsonEvent(
            "interaction.accepted",
            when,
            {"interaction_id": iid, "queue_id": queue_id, "agent_id": "a1", "wait_seconds": 0},
        ),
    ]


def test_csat_satisfied_share_and_response_rate_by_hand() -> None:
    acc = KpiAccumulator(KpiConfig(interval_seconds=900))
    for n in range(4):
        acc.feed_all(contact(n, f"c{n}"))
    # 5 of 5 -> 100, 4 of 5 -> 75, 2 of 5 -> 25 (CSAT (100 + 75 + 25) / 3 = 66.67);
    # satisfied (4 or 5 of 5): 2 of 3; three answers for four answered contacts.
    acc.feed_all([survey(10, 5, 5), survey(20, 4, 5), survey(30, 2, 5)])
    q = acc.report().queues["q"]
    assert q.surveys == 3
    assert q.csat == pytest.approx(200 / 3)
    assert q.csat_satisfied == pytest.approx(2 / 3)
    assert q.survey_response_rate == pytest.approx(3 / 4)
    overall = acc.report().overall
    assert (overall.surveys, overall.csat) == (3, pytest.approx(200 / 3))
    data = acc.report().to_dict()
    assert data["queues"]["q"]["csat"] == pytest.approx(200 / 3)
    assert data["overall"]["csat_satisfied"] == pytest.approx(2 / 3)


def test_scales_are_rescaled_so_they_average_and_the_top_two_box_follows_the_scale() -> None:
    acc = KpiAccumulator()
    # 10 of 10 -> 100, 9 of 10 -> 88.89 (8/9), 8 of 10 -> 77.78: satisfied 2 of 3.
    # 1 of 2 -> 0, 2 of 2 -> 100: on a 2-point scale only the top value is satisfied.
    # 2 of 3 -> 50, not satisfied (top value only on 3 points).
    acc.feed_all(
        [
            survey(1, 10, 10),
            survey(2, 9, 10),
            survey(3, 8, 10),
            survey(4, 1, 2),
            survey(5, 2, 2),
            survey(6, 2, 3),
        ]
    )
    q = acc.report().queues["q"]
    assert q.surveys == 6
    expected = (100 + 800 / 9 + 700 / 9 + 0 + 100 + 50) / 6
    assert q.csat == pytest.approx(expected)
    assert q.csat_satisfied == pytest.approx(3 / 6)  # 10, 9 of 10 and 2 of 2
    assert q.survey_response_rate is None  # no answered contact seen


def test_answers_count_in_the_interval_of_the_answer_and_without_a_queue_overall_only() -> None:
    acc = KpiAccumulator(KpiConfig(interval_seconds=900))
    acc.feed_all(contact(0, "c0"))
    acc.feed_all([survey(100, 5, 5), survey(1000, 1, 5), survey(1100, 3, 5, queue_id=None)])
    report = acc.report()
    first, second = report.intervals
    assert first.start == START and second.start == START + timedelta(seconds=900)
    assert (first.queues["q"].surveys, first.queues["q"].csat) == (1, 100.0)
    assert (second.queues["q"].surveys, second.queues["q"].csat) == (1, 0.0)
    assert (second.overall.surveys, second.overall.csat) == (2, pytest.approx(25.0))
    assert report.queues["q"].surveys == 2 and report.overall.surveys == 3
    assert report.overall.csat == pytest.approx(50.0)  # (100 + 0 + 50) / 3


def test_malformed_answers_and_answers_outside_the_window_are_left_out() -> None:
    acc = KpiAccumulator(KpiConfig(since=START + timedelta(seconds=10)))
    acc.feed_all(
        [
            survey(5, 5, 5),  # before the window
            survey(11, 6, 5),
            survey(12, 0, 5),
            survey(13, 3, 1),
            survey(14, "4", 5),
            survey(15, True, 2),
            survey(16, 3, 5),
        ]
    )
    overall = acc.report().overall
    assert (overall.surveys, overall.csat, overall.csat_satisfied) == (1, 50.0, 0.0)


def test_no_answers_no_figures() -> None:
    k = KpiAccumulator().report().overall
    assert (k.surveys, k.csat, k.csat_satisfied, k.survey_response_rate) == (0, None, None, None)
