"""The routing engine's own property harness (tests/acd/acd_harness.py), on both engines.

The harness draws commands of every kind against a centre with ring-all, relaxation,
overflow, callbacks, transfers, consultations, conferences, breaks and timeouts. The same
commands run on the Python engine and on the compiled one: the event streams and the
snapshots must be the same, and a command the compiled engine refuses changes nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import given, settings

from sparklecomm.acd import AcdEngine
from sparklecomm.core.clock import FakeClock

from .engine_pair import CompiledEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "acd"))
from acd_harness import Driver, json_roundtrip, make_engine, ops, replay

SETTINGS = settings(
    max_examples=int(os.environ.get("ENGINE_HARNESS_EXAMPLES", "150")), deadline=None
)


@SETTINGS
@given(ops, ops)
def test_the_harness_commands_give_the_same_events_on_both_engines(
    before: list[tuple[int, int, int, int]], after: list[tuple[int, int, int, int]]
) -> None:
    engine, clock = make_engine(2)
    driver = Driver(engine, clock)
    for op in before:
        driver.step(op, check_unchanged=False)
    compiled, clock2 = make_engine(2, CompiledEngine)
    assert replay(driver.commands, compiled, clock2) == driver.events
    assert compiled.to_snapshot() == engine.to_snapshot()
    # Restored across kinds, both go on alike.
    clock_a, clock_b = FakeClock(clock.now()), FakeClock(clock.now())
    restored = CompiledEngine.from_snapshot(json_roundtrip(engine.to_snapshot()), clock_a)
    back = AcdEngine.from_snapshot(json_roundtrip(compiled.to_snapshot()), clock_b)
    rest = Driver(engine, clock)
    for op in after:
        rest.step(op, check_unchanged=False)
    assert replay(rest.commands, restored, clock_a) == rest.events
    assert replay(rest.commands, back, clock_b) == rest.events


@SETTINGS
@given(ops)
def test_a_refused_command_changes_nothing_in_the_compiled_engine(
    sequence: list[tuple[int, int, int, int]],
) -> None:
    compiled, clock = make_engine(1, CompiledEngine)
    driver = Driver(compiled, clock)
    for op in sequence:
        driver.step(op)  # asserts the snapshot is unchanged after each refusal
