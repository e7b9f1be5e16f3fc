"""Property-based tests over random command sequences."""

from __future__ import annotations

from acd_harness import (
    Driver,
    check_event_stream,
    check_invariants,
    json_roundtrip,
    make_engine,
    ops,
    replay,
)
from acd_helpers import build, of, offers, one_offer
from hypothesis import given, settings
from hypothesis import strategies as st

from sparklecomm.acd import AcdEngine, Member, QueueConfig
from sparklecomm.core.clock import FakeClock

SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(ops)
def test_invariants_hold_after_every_command(sequence: list[tuple[int, int, int, int]]) -> None:
    engine, clock = make_engine()
    driver = Driver(engine, clock)
    for op in sequence:
        driver.step(op)  # also asserts that a refused command changed nothing
        check_invariants(engine)
    check_event_stream(driver.events)


@SETTINGS
@given(ops, st.integers(0, 3))
def test_deterministic_replay(sequence: list[tuple[int, int, int, int]], seed: int) -> None:
    engine, clock = make_engine(seed)
    driver = Driver(engine, clock)
    for op in sequence:
        driver.step(op, check_unchanged=False)
    engine2, clock2 = make_engine(seed)
    assert replay(driver.commands, engine2, clock2) == driver.events
    assert engine2.to_snapshot() == engine.to_snapshot()


@SETTINGS
@given(ops, ops)
def test_snapshot_restore_equivalence(
    before: list[tuple[int, int, int, int]], after: list[tuple[int, int, int, int]]
) -> None:
    engine, clock = make_engine()
    driver = Driver(engine, clock)
    for op in before:
        driver.step(op, check_unchanged=False)
    snapshot = json_roundtrip(engine.to_snapshot())
    clock2 = FakeClock(clock.now())
    restored = AcdEngine.from_snapshot(snapshot, clock2)
    assert restored.to_snapshot() == engine.to_snapshot()
    assert restored.next_deadline() == engine.next_deadline()
    # continue both with the same commands: identical events and state
    original = Driver(engine, clock)
    for op in after:
        original.step(op, check_unchanged=False)
    assert replay(original.commands, restored, clock2) == original.events
    assert restored.to_snapshot() == engine.to_snapshot()
    check_invariants(restored)


arrivals = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from([0.0, 0.5, 1.0, 5.0, 20.0]), st.booleans()),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(arrivals)
def test_best_score_first_fifo_on_ties_and_bounded_overtaking(
    stream: list[tuple[int, float, bool]],
) -> None:
    """One agent, one queue: each offer goes to the best score, FIFO among equal scores.

    Hence a later arrival overtakes an earlier one only if it arrived less than
    (priority difference x priority_points / ageing_rate) seconds later: no starvation.
    """
    engine, clock = build([QueueConfig("q", members=(Member("a"),))], ["a"])
    arrived: dict[str, tuple[float, int]] = {}
    served: list[str] = []
    active: str | None = None
    t = 0.0

    def record(events: list) -> str | None:  # type: ignore[type-arg]
        for iid, _ in offers(events):
            served.append(iid)
            # every interaction still waiting scores lower (or equal and arrived later)
            pay = of(events, "interaction.offered")[0]
            score = pay["priority"] * 60 + pay["wait_seconds"]
            for entry in engine.queue_snapshot("q").entries:
                other = arrived[entry.interaction_id]
                assert entry.score < score or (entry.score == score and other[0] >= arrived[iid][0])
            engine.accept(iid, "a")
            return iid
        return None

    for n, (priority, gap, finish) in enumerate(stream):
        clock.advance(gap)
        t += gap
        iid = f"i{n}"
        arrived[iid] = (t, priority)
        got = record(engine.create_interaction(iid, "q", "voice", priority=priority))
        active = got or active
        if finish and active is not None:
            got = record(engine.complete(active, "a"))
            active = got
    while active is not None:
        clock.advance(1)
        active = record(engine.complete(active, "a"))
    assert sorted(served) == sorted(arrived)
    position = {iid: k for k, iid in enumerate(served)}
    for x, (tx, px) in arrived.items():
        for y, (ty, py) in arrived.items():
            if ty > tx and position[y] < position[x]:
                # x was waiting when y, a later arrival, was offered first: only allowed
                # within y's priority head start (equal scores go first-come first-served)
                assert ty - tx < (py - px) * 60.0, (x, y)


def test_ageing_prevents_starvation_and_its_absence_starves() -> None:
    def low_priority_wait(ageing_rate: float) -> float | None:
        engine, clock = build(
            [QueueConfig("q", members=(Member("a"),), ageing_rate=ageing_rate)], ["a"]
        )
        engine.accept(*one_offer(engine.create_interaction("first", "q", "voice", priority=1)))
        engine.create_interaction("low", "q", "voice", priority=0)
        active = "first"
        for n in range(100):  # a steady stream of priority-1 work, one per service time
            clock.advance(10)
            engine.create_interaction(f"hi{n}", "q", "voice", priority=1)
            events = engine.complete(active, "a")
            iid, aid = one_offer(events)
            if iid == "low":
                return of(events, "interaction.offered")[0]["wait_seconds"]
            engine.accept(iid, aid)
            active = iid
        return None

    wait = low_priority_wait(1.0)
    assert wait is not None and wait <= 80.0  # one priority level = 60 s head start
    assert low_priority_wait(0.0) is None  # strict priority: starved for 1000 s
