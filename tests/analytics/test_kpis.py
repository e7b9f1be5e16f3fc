"""KPI definitions, checked on event streams produced by the real routing engine."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sparklecomm.acd import AcdEngine, AgentConfig, Diversion, EngineConfig, Member, QueueConfig
from sparklecomm.analytics import (
    OVERALL,
    SL_BASES,
    KpiAccumulator,
    KpiConfig,
    Kpis,
    event_from_json,
)
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import InvalidInput
from sparklecomm.core.events import NewEvent
from sparklecomm.wfm.erlang import SL_BASES as WFM_SL_BASES

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Center:
    """An engine, a fake clock and the list of every event emitted, in order."""

    def __init__(self, *queues: QueueConfig, agents: tuple[str, ...] = ("a",)) -> None:
        self.clock = FakeClock(START)
        self.engine = AcdEngine(self.clock, EngineConfig(rng=random.Random(0)))
        self.events: list[NewEvent] = []
        for q in queues:
            self.do(self.engine.add_queue, q)
        for a in agents:
            self.do(self.engine.add_agent, AgentConfig(a))
            self.do(self.engine.login, a)

    def do(self, command: Any, *args: Any, **kwargs: Any) -> list[NewEvent]:
        events: list[NewEvent] = command(*args, **kwargs)
        self.events.extend(events)
        return events

    def wait(self, seconds: float) -> None:
        """Advance the clock, firing the engine's timers on the way."""
        target = self.clock.now() + timedelta(seconds=seconds)
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > target:
                break
            self.clock.advance((deadline - self.clock.now()).total_seconds())
            self.do(self.engine.tick)
        self.clock.advance((target - self.clock.now()).total_seconds())

    def offer_of(self, iid: str) -> str:
        for e in reversed(self.events):
            if e.type == "interaction.offered" and e.payload["interaction_id"] == iid:
                return str(e.payload["agent_id"])
        raise AssertionError(f"{iid} was not offered")

    def kpis(self, **config: Any) -> KpiAccumulator:
        acc = KpiAccumulator(KpiConfig(**config))
        acc.feed_all(self.events)
        return acc


def one_agent_day() -> Center:
    """Four calls on one agent (wrap-up 10 s, service level 20 s):

    c1 answered at once, talk 110 + hold 20; c2 waits 130 s (answered late), talk 50;
    c3 hangs up after 3 s (short abandon); c4 hangs up after 40 s.
    """
    c = Center(QueueConfig("q", members=(Member("a"),), wrapup_seconds=10.0))
    e, a = c.engine, "a"
    c.do(e.create_interaction, "c1", "q", "voice")
    c.do(e.accept, "c1", a)
    c.wait(10)
    c.do(e.create_interaction, "c2", "q", "voice")  # waits: the agent is busy
    c.wait(50)
    c.do(e.hold, "c1", a)
    c.wait(20)
    c.do(e.resume, "c1", a)
    c.wait(50)  # c1: talk 110, hold 20
    c.do(e.complete, "c1", a)
    c.wait(10)  # the wrap-up timer ends: c2 is offered after 130 s of waiting
    c.do(e.accept, "c2", a)
    c.do(e.create_interaction, "c3", "q", "voice")
    c.wait(3)
    c.do(e.abandon, "c3")
    c.do(e.create_interaction, "c4", "q", "voice")
    c.wait(40)
    c.do(e.abandon, "c4")
    c.wait(7)  # c2: talk 50
    c.do(e.complete, "c2", a)
    c.do(e.end_wrapup, "c2", a)  # ends its wrap-up at once
    c.wait(100)  # idle
    return c


def test_counts_rates_and_handle_times() -> None:
    c = one_agent_day()
    report = c.kpis().report(START + timedelta(seconds=290))  # the agent idled 100 s at the end
    q = report.queues["q"]
    assert (q.offered, q.answered, q.abandoned, q.short_abandoned) == (4, 2, 2, 1)
    assert q.answered_within == 1 and q.abandoned_within == 0
    assert q.service_level == pytest.approx(1 / 3)  # 1 of (2 answered + 1 real abandon)
    assert q.abandon_rate == pytest.approx(1 / 3)
    assert q.asa == pytest.approx(65.0)  # (0 + 130) / 2
    assert q.average_abandon_wait == pytest.approx(40.0)
    assert q.longest_wait == pytest.approx(130.0)
    assert q.handled == 2
    assert q.average_talk == pytest.approx(80.0)
    assert q.average_hold == pytest.approx(10.0)
    assert q.average_wrapup == pytest.approx(5.0)
    assert q.aht == pytest.approx((110 + 20 + 10 + 50 + 0) / 2)
    assert q.transfer_rate == 0.0
    assert q.service_level_seconds == 20.0  # taken from the queue's configuration event
    overall = report.overall
    assert (overall.offered, overall.answered, overall.abandoned) == (4, 2, 2)
    assert overall.service_level == pytest.approx(1 / 3)
    # Agent time: busy 130 + 50, wrap-up 10, available the rest of 290 s.
    assert overall.busy_seconds == pytest.approx(180.0)
    assert overall.wrap_up_seconds == pytest.approx(10.0)
    assert overall.logged_in_seconds == pytest.approx(290.0)
    assert overall.occupancy == pytest.approx(190.0 / 290.0)
    assert overall.utilisation == pytest.approx(190.0 / 290.0)
    assert overall.waiting == 0 and overall.oldest_waiting is None


def test_short_abandon_threshold_zero_counts_every_abandon() -> None:
    q = one_agent_day().kpis(short_abandon_seconds=0).report().queues["q"]
    assert q.short_abandoned == 0
    assert q.abandon_rate == pytest.approx(2 / 4)
    assert q.abandoned_within == 1  # c3 hung up within 20 s
    assert q.service_level == pytest.approx(1 / 4)


@pytest.mark.parametrize(
    ("basis", "expected"),
    [
        ("offered", 1 / 4),
        ("answered", 1 / 2),
        ("offered_less_short_abandons", 1 / 3),
        ("short_abandons_met", 2 / 4),
    ],
)
def test_service_level_bases(basis: Any, expected: float) -> None:
    acc = one_agent_day().kpis(short_abandon_seconds=0, sl_basis=basis)
    assert acc.report().queues["q"].service_level == pytest.approx(expected)


def test_basis_names_are_the_wfm_ones() -> None:
    assert SL_BASES == WFM_SL_BASES


def test_fixed_threshold_overrides_the_queue_configuration() -> None:
    q = one_agent_day().kpis(service_level_seconds=130).report().queues["q"]
    assert q.answered_within == 2 and q.service_level_seconds == 130


def test_intervals_attribute_contacts_to_their_arrival_and_split_agent_time() -> None:
    c = Center(QueueConfig("q", members=(Member("a"),)))
    e = c.engine
    c.wait(25 * 60)  # 09:25
    c.do(e.create_interaction, "c1", "q", "voice")
    c.do(e.accept, "c1", "a")
    c.do(e.create_interaction, "c2", "q", "voice")  # 09:25, waits
    c.wait(10 * 60)  # 09:35
    c.do(e.complete, "c1", "a")
    c.do(e.accept, "c2", "a")  # answered at 09:35 after 600 s
    c.wait(60)
    c.do(e.complete, "c2", "a")
    report = c.kpis(interval_seconds=1800).report()
    first, second = report.intervals
    assert first.start == START and second.start == START + timedelta(minutes=30)
    q1 = first.queues["q"]
    assert (q1.offered, q1.answered, q1.answered_within, q1.handled) == (2, 2, 1, 2)
    assert "q" not in second.queues  # nothing arrived after 09:30
    assert first.overall.busy_seconds == pytest.approx(300.0)  # 09:25-09:30
    assert second.overall.busy_seconds == pytest.approx(360.0)  # 09:30-09:36
    assert first.overall.available_seconds == pytest.approx(1500.0)
    # Totals are the sum of the intervals.
    assert report.overall.busy_seconds == pytest.approx(660.0)
    fifteen = c.kpis(interval_seconds=900).report()
    assert [iv.start.minute for iv in fifteen.intervals] == [0, 15, 30]


def test_overflow_counts_in_both_queues_but_once_overall() -> None:
    c = Center(
        QueueConfig(
            "sales",
            members=(Member("a"),),
            max_wait_seconds=30,
            on_max_wait=Diversion(queue_id="help"),
        ),
        QueueConfig("help", members=(Member("b"),)),
        agents=("a", "b"),
    )
    e = c.engine
    c.do(e.set_break, "b", "lunch")
    c.do(e.create_interaction, "c0", "sales", "voice")
    c.do(e.accept, "c0", "a")  # a is busy from now on
    c.do(e.create_interaction, "c1", "sales", "voice")
    c.wait(30)  # overflows to help
    c.wait(15)
    c.do(e.set_available, "b")
    c.do(e.accept, "c1", "b")
    report = c.kpis().report()
    sales, help_ = report.queues["sales"], report.queues["help"]
    assert (sales.offered, sales.answered, sales.overflowed) == (2, 1, 1)
    assert (help_.offered, help_.answered) == (1, 1)
    assert help_.asa == pytest.approx(15.0)  # waited 15 s in help
    overall = report.overall
    assert (overall.offered, overall.answered, overall.overflowed) == (2, 2, 0)
    assert overall.longest_wait == pytest.approx(45.0)  # 30 s in sales + 15 s in help


def test_max_wait_without_overflow_is_diverted() -> None:
    c = Center(QueueConfig("q", max_wait_seconds=60, on_max_wait=Diversion(divert_to="vm")))
    c.do(c.engine.create_interaction, "c1", "q", "voice")  # no member: nobody to answer
    c.wait(30)
    live = c.kpis().report(START + timedelta(seconds=30))
    assert live.queues["q"].waiting == 1 and live.queues["q"].oldest_waiting == pytest.approx(30)
    c.wait(30)
    q = c.kpis().report().queues["q"]
    assert (q.offered, q.diverted, q.answered, q.abandoned) == (1, 1, 0, 0)
    assert q.service_level is None and q.asa is None  # nothing answered nor abandoned
    assert q.waiting == 0


def test_callbacks_are_an_outcome_and_counted_when_answered() -> None:
    c = Center(QueueConfig("q", members=(Member("a"),)))
    e = c.engine
    c.do(e.create_interaction, "c0", "q", "voice")
    c.do(e.accept, "c0", "a")
    c.do(e.create_interaction, "c1", "q", "voice")
    c.wait(60)
    c.do(e.request_callback, "c1", phone="+3222000000")
    c.wait(60)
    c.do(e.complete, "c0", "a")  # the agent is free: the callback is offered
    c.do(e.accept, "c1", c.offer_of("c1"))
    c.wait(30)
    c.do(e.complete, "c1", "a")
    q = c.kpis().report().queues["q"]
    assert (q.offered, q.answered, q.callbacks_requested, q.callbacks_answered) == (2, 1, 1, 1)
    assert q.handled == 2  # the callback's talk counts as handled work
    assert q.service_level == 1.0  # the callback request is neither answered nor abandoned


def test_transfers_to_a_queue() -> None:
    c = Center(
        QueueConfig("first", members=(Member("a"),)),
        QueueConfig("second", members=(Member("b"),)),
        agents=("a", "b"),
    )
    e = c.engine
    c.do(e.create_interaction, "c1", "first", "voice")
    c.do(e.accept, "c1", "a")
    c.wait(30)
    c.do(e.transfer, "c1", "a", to_queue_id="second")
    c.do(e.accept, "c1", "b")
    c.wait(20)
    c.do(e.complete, "c1", "b")
    report = c.kpis().report()
    first, second = report.queues["first"], report.queues["second"]
    assert (first.transferred, first.handled, first.transfer_rate) == (1, 1, 1.0)
    assert (second.offered, second.answered, second.handled) == (1, 1, 1)
    assert (report.overall.offered, report.overall.answered, report.overall.handled) == (1, 1, 2)
    assert report.overall.transfer_rate == pytest.approx(0.5)


def test_since_and_until_window() -> None:
    c = one_agent_day()
    since = START + timedelta(seconds=135)  # c3 and c4 arrive in the window, c1 and c2 before
    acc = c.kpis(since=since, until=START + timedelta(seconds=200))
    q = acc.report().queues["q"]
    assert (q.offered, q.abandoned, q.answered) == (2, 2, 0)
    assert q.handled == 0  # c1 and c2 arrived before the window
    overall = acc.report(START + timedelta(seconds=290)).overall
    assert overall.logged_in_seconds == pytest.approx(65.0)  # 135 s to 200 s


def test_incremental_reads_do_not_disturb_and_json_gives_the_same() -> None:
    c = one_agent_day()
    batch = c.kpis().report().to_dict()
    acc = KpiAccumulator()
    for i, event in enumerate(c.events):
        acc.feed(event)
        if i % 3 == 0:
            acc.report()  # reading in between changes nothing
    assert acc.report().to_dict() == batch
    lines = [
        json.dumps(
            {"type": e.type, "time": e.time.isoformat() if e.time else None, "payload": e.payload}
        )
        for e in c.events
    ]
    again = KpiAccumulator()
    again.feed_all(event_from_json(json.loads(line)) for line in lines)
    assert again.report().to_dict() == batch
    assert acc.events == len(c.events)


def test_live_figures_grow_with_now() -> None:
    c = Center(QueueConfig("q", members=(Member("a"),)))
    acc = c.kpis()
    later = acc.report(START + timedelta(hours=1)).overall
    assert later.available_seconds == pytest.approx(3600.0)
    assert acc.report().overall.available_seconds == 0.0  # now = the last event's time


def test_to_dict_is_json_ready() -> None:
    data = one_agent_day().kpis().report().to_dict()
    text = json.dumps(data)
    assert json.loads(text)["queues"]["q"]["offered"] == 4
    assert data["overall"]["service_level"] == pytest.approx(1 / 3)
    assert OVERALL not in data["queues"]


def test_empty_figures_are_none() -> None:
    report = KpiAccumulator().report()
    assert report.now is None and report.queues == {}
    kp: Kpis = report.overall
    assert kp.offered == 0
    for name in ("service_level", "abandon_rate", "asa", "aht", "occupancy", "utilisation"):
        assert getattr(kp, name) is None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"interval_seconds": 7}, "interval_seconds"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"service_level_seconds": -1}, "service_level_seconds"),
        ({"short_abandon_seconds": float("nan")}, "short_abandon_seconds"),
        ({"sl_basis": "served"}, "sl_basis"),
        ({"since": datetime(2026, 1, 1)}, "since"),
        ({"since": START, "until": START - timedelta(1)}, "until"),
    ],
)
def test_bad_configuration_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        KpiAccumulator(KpiConfig(**config))
    assert info.value.field == field


def test_bad_json_events() -> None:
    with pytest.raises(InvalidInput):
        event_from_json({"type": "x", "time": "yesterday", "payload": {}})
    with pytest.raises(InvalidInput):
        event_from_json({"type": "x", "time": "2026-01-05T09:00:00", "payload": {}})
    with pytest.raises(InvalidInput):
        event_from_json({"payload": {}})


def test_outbound_contacts_are_counted_apart_from_offered_and_answered() -> None:
    """An agent's own call (start_outbound): not offered, answered or in the service level or
    AHT of inbound contacts; counted as outbound with its own handle time; the agent's busy
    time (occupancy) includes it."""
    c = Center(QueueConfig("q", members=(Member("a"),), wrapup_seconds=10.0))
    e, a = c.engine, "a"
    c.do(e.start_outbound, "o1", a, "q")
    c.wait(60)
    c.do(e.complete, "o1", a)  # talk 60, then 10 s wrap-up
    c.wait(10)
    c.do(e.create_interaction, "c1", "q", "voice")
    c.do(e.accept, "c1", a)
    c.wait(30)
    c.do(e.complete, "c1", a)
    c.wait(10)
    report = c.kpis().report()
    for k in (report.queues["q"], report.overall):
        assert (k.offered, k.answered, k.handled) == (1, 1, 1)
        assert k.aht == pytest.approx(40.0)  # the inbound call only: 30 talk + 10 wrap-up
        assert (k.outbound, k.outbound_handled) == (1, 1)
        assert k.outbound_aht == pytest.approx(70.0)  # 60 talk + 10 wrap-up
        assert k.service_level == 1.0
    assert report.overall.busy_seconds == pytest.approx(90.0)  # 60 outbound + 30 inbound
    assert json.loads(json.dumps(report.to_dict()))["overall"]["outbound"] == 1


def test_a_consulted_agents_ring_time_is_reserved_not_busy_nor_talk() -> None:
    """A consultation's ring is ``reserved`` time, like an offer's: not busy (occupancy),
    not talk. A consult transfer made while the phone rang starts the new owner's leg (its
    talk, its handle time) when it answers."""
    c = Center(QueueConfig("q", members=(Member("a"), Member("b"))), agents=("a", "b"))
    e = c.engine
    c.do(e.create_interaction, "c1", "q", "voice")
    owner = c.offer_of("c1")
    other = "b" if owner == "a" else "a"
    c.do(e.accept, "c1", owner)
    c.wait(10)
    c.do(e.consult, "c1", owner, other)  # rings 7 s, talks 30 s
    c.wait(7)
    c.do(e.consult_connected, "c1", other)
    c.wait(30)
    c.do(e.end_consult, "c1", owner, other)
    c.wait(20)
    c.do(e.consult, "c1", owner, other)  # rings 5 s, handed over, rings 4 s more
    c.wait(5)
    c.do(e.transfer, "c1", owner, to_agent_id=other)  # the owner's leg: 72 s of talk
    c.wait(4)
    c.do(e.consult_connected, "c1", other)
    c.wait(30)
    c.do(e.complete, "c1", other)  # the new owner's leg: 30 s of talk, not 34
    overall = c.kpis().report().overall
    assert overall.reserved_seconds == pytest.approx(7 + 9)
    assert overall.busy_seconds == pytest.approx(72 + 30 + 30)  # owner, consulted, new owner
    assert (overall.handled, overall.transferred) == (2, 1)
    assert overall.talk_seconds == pytest.approx(72 + 30)
    assert overall.aht == pytest.approx(51.0)
    assert overall.occupancy == pytest.approx(132 / (2 * 106))
