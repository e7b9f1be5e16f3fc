"""The compiled core's glue (rust/acd_core/src/glue.rs, mt.rs) against the Python reference.

ISO text and datetimes of engine instants (model.py ``IsoText`` / ``from_us``), ``NewEvent``
objects (engine.py ``_new_event``), payload dicts, domain errors, ``repr`` of ids, and
``random.Random`` (MT19937) draws and states: the same results, types and errors.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sparklecomm.acd.engine import _sec
from sparklecomm.acd.model import IsoText, from_us, seconds_to_us, to_us
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sparklecomm.core.events import NewEvent

_acd_core = pytest.importorskip("sparklecomm.acd._acd_core")

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MIN_US = to_us(datetime.min.replace(tzinfo=UTC))
MAX_US = to_us(datetime.max.replace(tzinfo=UTC))
US = 1_000_000
DAY = 86_400 * US


def _us(year: int, month: int, day: int, *rest: int) -> int:
    return to_us(datetime(year, month, day, *rest, tzinfo=UTC))


# ==============================================================================================
# Instants
# ==============================================================================================

instants = st.one_of(
    st.integers(MIN_US, MAX_US),
    st.integers(-100 * 365 * DAY, 100 * 365 * DAY),  # around now
    st.integers(-10 * US, 10 * US),
    st.sampled_from([MIN_US, MAX_US, 0, -1, 1]),
)


@FAST
@given(instants)
@example(_us(2024, 2, 29, 23, 59, 59))
@example(_us(2000, 2, 29, 12))
@example(_us(1900, 3, 1))
@example(_us(1600, 2, 29))
@example(_us(2026, 12, 6, 17, 3, 4) + 123)
@example(_us(9999, 12, 31, 23, 59, 59) + 999_999)
@example(_us(1, 1, 1))
@example(_us(1969, 12, 31, 23, 59, 59) + 1)
def test_iso_text_is_isoformat(us: int) -> None:
    assert _acd_core.iso_text(us) == from_us(us).isoformat()


@FAST
@given(st.integers(MIN_US, MAX_US - 10 * US), st.lists(st.integers(0, 3 * US), max_size=20))
def test_iso_text_of_instants_in_a_row(start: int, steps: list[int]) -> None:
    # Same second, next second, back again: the cached head must follow.
    reference = IsoText()
    for us in [start, *(start + s for s in steps), start]:
        assert _acd_core.iso_text(us) == reference(us) == from_us(us).isoformat()


@pytest.mark.parametrize("us", [MIN_US - 1, MAX_US + 1, -(2**63), 2**63 - 1])
def test_out_of_range_instants_raise_overflow(us: int) -> None:
    with pytest.raises(OverflowError) as expected:
        from_us(us)
    with pytest.raises(OverflowError) as got:
        _acd_core.iso_text(us)
    assert str(got.value) == str(expected.value)
    with pytest.raises(OverflowError) as got:
        _acd_core.datetime_from_us(us)
    assert str(got.value) == str(expected.value)


@FAST
@given(instants)
def test_datetime_from_us(us: int) -> None:
    got = _acd_core.datetime_from_us(us)
    expected = from_us(us)
    assert got == expected
    assert type(got) is datetime
    assert got.tzinfo is UTC
    assert got.isoformat() == expected.isoformat()
    assert to_us(got) == us


halves = st.integers(-(2**52), 2**52).map(lambda n: (n + 0.5) / US)


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-9e12, max_value=9e12) | halves)
@example(0.0000005)
@example(0.0000015)
@example(-0.0000025)
@example(2.5e-6)
@example(-0.0)
def test_seconds_to_us(seconds: float) -> None:
    assert _acd_core.seconds_to_us(seconds) == seconds_to_us(seconds)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -math.inf])
def test_seconds_to_us_errors(seconds: float) -> None:
    with pytest.raises((ValueError, OverflowError)) as expected:
        seconds_to_us(seconds)
    with pytest.raises((ValueError, OverflowError)) as got:
        _acd_core.seconds_to_us(seconds)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)


@FAST
@given(st.integers(-(2**53), 2**53) | st.integers(-10 * DAY, 10 * DAY))
def test_sec(us: int) -> None:
    got = _acd_core.sec(us)
    assert type(got) is float
    assert got == _sec(us)


# ==============================================================================================
# Events and payloads
# ==============================================================================================

PATHS = ["slots", "descriptors", "call", "owned"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
payloads = st.dictionaries(st.text(max_size=12), json_values, max_size=6)
times = st.one_of(
    st.none(),
    st.integers(-50 * 365 * DAY, 50 * 365 * DAY).map(from_us),
    st.datetimes(timezones=st.just(UTC)),
)


def test_events_take_the_fast_path() -> None:
    assert _acd_core.event_path() == "slots"


@FAST
@given(st.text(), payloads, times, st.sampled_from(PATHS))
def test_events_equal_newevent(type_: str, payload: dict[str, Any], time: Any, path: str) -> None:
    expected = NewEvent(type_, payload, time)
    got = _acd_core.make_event(type_, payload, time, path)
    assert type(got) is NewEvent
    assert got == expected
    assert dataclasses.astuple(got) == dataclasses.astuple(expected)
    assert repr(got) == repr(expected)
    assert got.type is type_ and got.payload is payload and got.time is time
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.type = "other"  # type: ignore[misc]


def test_events_keep_reference_counts_balanced() -> None:
    type_ = "agent.state_changed-" + str(random.random())  # not shared with anything else
    payload: dict[str, Any] = {"agent_id": "a1"}
    time = from_us(123_456_789)
    make = _acd_core.make_event
    counts = (sys.getrefcount(type_), sys.getrefcount(payload), sys.getrefcount(time))
    runs = (("slots", 1_000_000), ("owned", 200_000), ("descriptors", 200_000), ("call", 50_000))
    for path, n in runs:
        for _ in range(n):
            make(type_, payload, time, path)
        kept = [make(type_, payload, time, path) for _ in range(1000)]
        assert sys.getrefcount(payload) == counts[1] + 1000
        del kept
        assert (sys.getrefcount(type_), sys.getrefcount(payload), sys.getrefcount(time)) == counts


def test_payload_values_and_interned_keys() -> None:
    marker = object()
    got = _acd_core.sample_payload(marker)
    expected = {
        "s": "text",
        "n": None,
        "b": True,
        "i": -7,
        "f": 1.5,
        "k": "agent_id",
        "l": [1, "x", None],
        "d": {"a": 1},
        "o": marker,
    }
    assert got == expected
    assert list(got) == list(expected)
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
    assert got["o"] is marker
    assert all(k is sys.intern(k) for k in got)
    assert got["k"] is sys.intern("agent_id")
    before = sys.getrefcount(marker)
    for _ in range(10_000):
        _acd_core.sample_payload(marker)
    assert sys.getrefcount(marker) == before


# ==============================================================================================
# Errors
# ==============================================================================================

ERRORS = {
    "invalid": InvalidInput,
    "not_found": NotFound,
    "conflict": Conflict,
    "permission_denied": PermissionDenied,
}


@FAST
@given(st.sampled_from(sorted(ERRORS)), st.text(), st.none() | st.text(max_size=20))
def test_errors_are_the_domain_errors(kind: str, detail: str, field: str | None) -> None:
    expected = ERRORS[kind](detail, field=field)
    with pytest.raises(ERRORS[kind]) as got:
        _acd_core.raise_error(kind, detail, field)
    err = got.value
    assert type(err) is type(expected)
    assert (err.detail, err.field, err.args, str(err)) == (
        expected.detail,
        expected.field,
        expected.args,
        str(expected),
    )


def test_error_without_field() -> None:
    with pytest.raises(NotFound) as got:
        _acd_core.raise_error("not_found", "No agent 'a1'.")
    assert got.value.field is None and got.value.detail == "No agent 'a1'."


@FAST
@given(st.text() | st.text(alphabet=st.characters(max_codepoint=127)))
@example("it's")
@example('it\'s "quoted"')
@example("\x00\x1f\x7f\t\n\r\\")
@example("\x80\u200b\U0001f600\ud7ff")
def test_repr_str_is_repr(text: str) -> None:
    assert _acd_core.repr_str(text) == repr(text)


# ==============================================================================================
# random.Random
# ==============================================================================================

MT = _acd_core.MersenneTwister

seeds = st.one_of(st.integers(-(2**200), 2**200), st.integers(0, 2**32), st.sampled_from([0, 1]))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("randrange"), st.integers(1, 2**64)),
        st.tuples(st.just("randrange"), st.integers(1, 64)),
        st.tuples(st.just("randrange"), st.integers(1, 2**128 - 1)),
        st.tuples(st.just("randrange"), st.sampled_from([1, 2, 2**32, 2**32 + 1, 2**64 - 1])),
        st.tuples(st.just("random"), st.just(0)),
        st.tuples(st.just("getrandbits"), st.integers(0, 128)),
        st.tuples(st.just("getrandbits"), st.integers(129, 300)),
    ),
    max_size=80,
)


def _run(rng: Any, script: list[tuple[str, int]]) -> list[Any]:
    out: list[Any] = []
    for op, n in script:
        if op == "randrange":
            out.append(rng.randrange(n))
        elif op == "random":
            out.append(rng.random())
        else:
            out.append(rng.getrandbits(n))
    return out


@FAST
@given(seeds)
def test_seeding_is_random_random(seed: int) -> None:
    assert MT(seed).getstate() == random.Random(seed).getstate()


@FAST
@given(seeds, st.integers(0, 1300), ops)
def test_draws_are_random_randoms(seed: int, skip: int, script: list[tuple[str, int]]) -> None:
    reference = random.Random(seed)
    for _ in range(skip):  # anywhere in the 624-word block
        reference.getrandbits(32)
    twister = MT.from_state(reference.getstate())
    assert twister.getstate() == reference.getstate()
    got = _run(twister, script)
    expected = _run(reference, script)
    assert [type(v) for v in got] == [type(v) for v in expected]
    assert got == expected
    assert twister.getstate() == reference.getstate()


@FAST
@given(seeds, st.integers(1, 2**64 - 1), st.integers(1, 2000))
def test_many_randranges(seed: int, n: int, count: int) -> None:
    reference = random.Random(seed)
    twister = MT.from_state(reference.getstate())
    assert twister.randrange_many(n, count) == [reference.randrange(n) for _ in range(count)]
    assert twister.getstate() == reference.getstate()


def test_snapshot_state_and_gauss_next() -> None:
    reference = random.Random(7)
    reference.gauss(0, 1)  # leaves gauss_next set
    state = reference.getstate()
    assert isinstance(state[2], float)
    version, internal, gauss = state
    twister = MT.from_state([version, list(internal), gauss])  # a snapshot's form
    assert twister.getstate() == state
    assert twister.snapshot() == [version, list(internal), gauss]
    assert _run(twister, [("random", 0)] * 700) == _run(reference, [("random", 0)] * 700)


@pytest.mark.parametrize("index_shift", [0, 2**32, -(2**32), 2**64])
def test_version_2_states_are_taken_modulo_2_32(index_shift: int) -> None:
    _version, internal, gauss = random.Random(3).getstate()
    words = (w + 2**32 * 5 for w in internal[:-1])
    v2 = (2, (*words, internal[-1] + index_shift), gauss)
    reference = random.Random()
    reference.setstate(v2)
    assert MT.from_state(v2).getstate() == reference.getstate()


def _bad_states() -> list[Any]:
    _version, internal, gauss = random.Random(1).getstate()
    return [
        (4, internal, gauss),
        (3, internal[:-1], gauss),
        (3, (*internal[:-1], 625), gauss),
        (3, (*internal[:-1], -1), gauss),
        (3, (-1, *internal[1:]), gauss),
        (3, ("x", *internal[1:]), gauss),
    ]


@pytest.mark.parametrize("state", _bad_states())
def test_bad_states_raise_like_setstate(state: Any) -> None:
    with pytest.raises(Exception) as expected:
        random.Random().setstate(state)
    with pytest.raises(Exception) as got:
        MT.from_state(state)
    assert type(got.value) is type(expected.value)
    if type(expected.value) is ValueError:
        assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("n", [0, -1, -(2**70)])
def test_empty_randrange(n: int) -> None:
    with pytest.raises(ValueError) as expected:
        random.Random(0).randrange(n)
    with pytest.raises(ValueError) as got:
        MT(0).randrange(n)
    assert str(got.value) == str(expected.value)


def test_negative_bits() -> None:
    with pytest.raises(ValueError) as expected:
        random.Random(0).getrandbits(-1)
    with pytest.raises(ValueError) as got:
        MT(0).getrandbits(-1)
    assert str(got.value) == str(expected.value)


def test_timedelta_sanity() -> None:
    # from_us is EPOCH + timedelta: the range above is the datetime range.
    assert from_us(MIN_US) == datetime.min.replace(tzinfo=UTC)
    assert from_us(MAX_US) - from_us(MAX_US - 1) == timedelta(microseconds=1)


def test_from_random_and_store_into() -> None:
    class Sub(random.Random):
        pass

    assert MT.from_random(Sub(1)) is None
    assert MT.from_random(random.SystemRandom()) is None
    assert MT.from_random(object()) is None
    rng = random.Random(11)
    twister = MT.from_random(rng)
    assert twister is not None
    drawn = [twister.randrange(1000) for _ in range(50)]
    assert rng.getstate() == random.Random(11).getstate()  # left alone until stored
    twister.store_into(rng)
    reference = random.Random(11)
    assert drawn == [reference.randrange(1000) for _ in range(50)]
    assert rng.getstate() == reference.getstate()
    assert rng.random() == reference.random()
