"""Queue business hours: a closed queue turns new contacts away (on_closed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from acd_helpers import build, of, one_offer, types

from sparklecomm.acd import AcdEngine, Diversion, Member, QueueConfig
from sparklecomm.acd.persistence import queue_config_from_dict, queue_config_to_dict
from sparklecomm.core.errors import InvalidInput

# Berlin office hours (UTC+1 in January) with a company holiday on Monday 12 January.
OFFICE = {
    "timezone": "Europe/Berlin",
    "weekly": {day: ["08:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    "exceptions": [{"date": "2026-01-12", "name": "Company day"}],
}
EVENING = datetime(2026, 1, 5, 19, 0, tzinfo=UTC)  # Monday 20:00 in Berlin: closed


def centre(**queue: object):  # type: ignore[no-untyped-def]
    queues = [
        QueueConfig("sales", members=(Member("a"),), hours="office", **queue),  # type: ignore[arg-type]
        QueueConfig("night", members=(Member("b"),)),
    ]
    engine, clock = build(queues, ["a", "b"])
    engine.set_business_hours({"office": OFFICE})
    at(engine, clock, EVENING)
    return engine, clock


def at(engine: AcdEngine, clock, when: datetime) -> None:  # type: ignore[no-untyped-def]
    clock.advance((when - clock.now()).total_seconds())


def test_closed_queue_diverts_new_contacts_and_open_one_routes_them() -> None:
    engine, clock = centre(on_closed=Diversion(divert_to="voicemail:sales"))
    assert engine.queue_open("sales") is False and engine.queue_open("night") is None
    events = engine.create_interaction("i1", "sales", "chat")
    assert types(events) == ["interaction.created", "interaction.diverted"]
    diverted = of(events, "interaction.diverted")[0]
    assert (diverted["reason"], diverted["divert_to"]) == ("closed", "voicemail:sales")
    assert "i1" not in engine.interaction_ids()
    at(engine, clock, datetime(2026, 1, 7, 7, 0, tzinfo=UTC))  # Wednesday 08:00 in Berlin
    assert engine.queue_open("sales") is True
    assert one_offer(engine.create_interaction("i2", "sales", "voice")) == ("i2", "a")


def test_closed_queue_can_overflow_to_another_queue_keeping_the_wait() -> None:
    engine, _ = centre(on_closed=Diversion(queue_id="night"))
    events = engine.create_interaction("i1", "sales", "voice")
    overflowed = of(events, "interaction.overflowed")[0]
    assert (overflowed["reason"], overflowed["queue_id"]) == ("closed", "night")
    assert one_offer(events) == ("i1", "b")


def test_holidays_close_and_contacts_waiting_at_closing_time_stay() -> None:
    engine, clock = centre()
    at(engine, clock, datetime(2026, 1, 9, 16, 59, tzinfo=UTC))  # Friday 17:59 in Berlin
    engine.set_break("a", "lunch")
    engine.create_interaction("waiting", "sales", "voice")
    at(engine, clock, datetime(2026, 1, 9, 17, 30, tzinfo=UTC))  # closed now
    engine.tick()
    assert "waiting" in engine.interaction_ids()  # still in line, served when a is back
    assert one_offer(engine.set_available("a")) == ("waiting", "a")
    at(engine, clock, datetime(2026, 1, 12, 10, 0, tzinfo=UTC))  # Monday, but a holiday
    assert engine.queue_open("sales") is False
    at(engine, clock, datetime(2026, 1, 13, 10, 0, tzinfo=UTC))  # Tuesday 11:00
    assert engine.queue_open("sales") is True


def test_unknown_hours_mean_open_and_the_hours_survive_a_snapshot() -> None:
    engine, clock = centre()
    engine.set_business_hours({})
    assert engine.queue_open("sales") is None
    assert one_offer(engine.create_interaction("i1", "sales", "voice")) == ("i1", "a")
    engine.set_business_hours({"office": OFFICE})
    copy = AcdEngine.from_snapshot(engine.to_snapshot(), clock)
    assert copy.business_hours() == engine.business_hours()
    assert copy.business_hours()["office"]["exceptions"][0]["date"] == "2026-01-12"
    assert copy.queue_open("sales") is False


def test_bad_hours_are_refused_naming_the_field() -> None:
    engine, _ = centre()
    with pytest.raises(InvalidInput) as err:
        engine.set_business_hours({"office": {**OFFICE, "timezone": "Mars/Olympus"}})
    assert err.value.field == "hours.office.timezone"
    assert engine.business_hours()["office"]["timezone"] == "Europe/Berlin"  # unchanged
    with pytest.raises(InvalidInput) as err:
        QueueConfig("q", hours="").normalized()
    assert err.value.field == "hours"


def test_queue_config_round_trips_with_hours() -> None:
    config = QueueConfig("q", hours="office", on_closed=Diversion(queue_id="night")).normalized()
    assert queue_config_from_dict(queue_config_to_dict(config)).normalized() == config
