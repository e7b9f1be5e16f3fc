"""The compiled ready index (rust/acd_core/src/ready.rs) against strategies.py ``ReadyIndex``.

Differential: hypothesis generates a queue (strategy, channels) and a sequence of updates
(add, replace, remove, set_channels, bulk adds and removals that grow tiers past a sublist
split) and checks; both indexes get the same updates, and every check asks both the same
question with two ``random.Random`` of the same seed: the answers (candidates as full lists
and cut short) and the random draws (the generators' states) must be identical.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparklecomm.acd.model import Channel, Strategy
from sparklecomm.acd.strategies import ReadyIndex

_acd_core = pytest.importorskip("sparklecomm.acd._acd_core")

CHANNELS = list(Channel)

#: How many integers each strategy's key has before the agent id (strategies.py docstring).
KEY_INTS = {
    Strategy.RING_ALL: 1,
    Strategy.LINEAR: 1,
    Strategy.ROUND_ROBIN: 1,
    Strategy.RANDOM: 1,
    Strategy.WEIGHTED_RANDOM: 2,
    Strategy.LONGEST_IDLE: 3,
    Strategy.FEWEST_INTERACTIONS: 4,
    Strategy.LEAST_TALK_TIME: 4,
    Strategy.BEST_SKILL: 4,
}

#: Agent id prefixes: ties on the integers are broken by the id (code point order).
PREFIXES = ("a", "B", "a1", "ä", "é", "z", "\U0001d51e", "")

Key = tuple[Any, ...]


def agent_id(n: int) -> str:
    return f"{PREFIXES[n % len(PREFIXES)]}{n // len(PREFIXES)}"


def make_ints(strategy: Strategy, rng: random.Random, big: bool = False) -> list[int]:
    """Key integers with plenty of ties (and, when ``big``, values near the i64 range)."""
    n = KEY_INTS[strategy]
    ints = [rng.randrange(6) for _ in range(n)]
    if strategy is Strategy.WEIGHTED_RANDOM:
        ints[0] = rng.choice((1, 2, 3, 50, 100, rng.randint(1, 100)))
    if strategy is Strategy.BEST_SKILL:
        ints[0] = -rng.randrange(6)
    ints[-1] = rng.randrange(40)  # member order (round-robin: compared with rr_last)
    if big and n > 1:
        ints[1] = rng.choice((-(2**62), 2**62, 2**40 + rng.randrange(3)))
    return ints


class Pair:
    """The Python reference and the compiled index, updated and asked together."""

    def __init__(self, strategy: Strategy, channels: tuple[Channel, ...]) -> None:
        self.strategy = strategy
        self.channels = tuple(dict.fromkeys(channels))
        self.py = ReadyIndex(strategy, channels)
        self.rs = _acd_core.ReadyIndexForTests(str(strategy), tuple(str(c) for c in channels))
        self.present: dict[str, Key] = {}
        self.known: set[str] = set()

    def chans(self, mask: int) -> tuple[Channel, ...]:
        """A non-empty subset of the queue's channels, in enum order (as the engine has them)."""
        chosen = [c for i, c in enumerate(self.channels) if mask >> i & 1]
        if not chosen:
            chosen = [self.channels[mask % len(self.channels)]]
        return tuple(c for c in CHANNELS if c in chosen)

    def add(self, aid: str, penalty: int, ints: list[int], mask: int) -> None:
        if aid in self.present:
            self.remove(aid)
        key = (*ints, aid)
        chans = self.chans(mask)
        self.py.add(aid, penalty, key, chans)
        self.rs.add(aid, penalty, key, tuple(str(c) for c in chans))
        self.present[aid] = key
        self.known.add(aid)

    def replace(self, aid: str, penalty: int, ints: list[int], mask: int) -> None:
        """The compiled ``replace``: the reference's ``remove`` (when present) then ``add``."""
        key = (*ints, aid)
        chans = self.chans(mask)
        if aid in self.present:
            self.py.remove(aid)
        self.py.add(aid, penalty, key, chans)
        self.rs.replace(aid, penalty, key, tuple(str(c) for c in chans))
        self.present[aid] = key
        self.known.add(aid)

    def remove(self, aid: str) -> None:
        py_error = rs_error = None
        try:
            self.py.remove(aid)
        except KeyError as e:
            py_error = e
        try:
            self.rs.remove(aid)
        except KeyError as e:
            rs_error = e
        assert repr(py_error) == repr(rs_error)
        self.present.pop(aid, None)

    def set_channels(self, aid: str, mask: int) -> None:
        chans = self.chans(mask)
        py_error = rs_error = None
        try:
            self.py.set_channels(aid, chans)
        except KeyError as e:
            py_error = e
        try:
            self.rs.set_channels(aid, tuple(str(c) for c in chans))
        except KeyError as e:
            rs_error = e
        assert repr(py_error) == repr(rs_error)

    def check(self, channel: Channel, rr_last: int, max_penalty: int | None, seed: int) -> None:
        py, rs, ch = self.py, self.rs, str(channel)
        assert len(py) == len(rs)
        for aid in sorted(self.known):
            assert (aid in py) == (aid in rs)
            assert py.has(aid, channel) == rs.has(aid, ch)
        assert py.count(channel) == rs.count(ch)
        assert py.serves(channel) == rs.serves(ch)
        lowest = py.lowest(channel)
        assert (lowest[0] if lowest else None) == rs.lowest(ch)
        for limit in (None, max_penalty):
            tiers = py.tiers(limit, channel)
            assert [p for p, _ in tiers] == rs.tiers(limit, ch)
        py_rng, rs_rng = random.Random(seed), random.Random(seed)
        for penalty, keys in py.tiers(max_penalty, channel):
            assert list(keys) == rs.tier_keys(penalty)
            assert len(keys) == rs.tier_len(penalty)
            first = py.first(penalty, keys, py_rng, rr_last, channel)
            assert first == rs.first(penalty, rs_rng, rr_last, ch)
            assert py_rng.getstate() == rs_rng.getstate()
            every = list(py.candidates(penalty, keys, py_rng, rr_last, channel))
            assert every == rs.candidates(penalty, rs_rng, rr_last, ch)
            assert py_rng.getstate() == rs_rng.getstate()
            assert len(every) == len(set(every))
            for limit_n in (1, 3):
                some = list(
                    itertools.islice(
                        py.candidates(penalty, keys, py_rng, rr_last, channel), limit_n
                    )
                )
                assert some == rs.candidates(penalty, rs_rng, rr_last, ch, limit_n)
                assert py_rng.getstate() == rs_rng.getstate()
            if self.strategy not in (Strategy.RANDOM, Strategy.WEIGHTED_RANDOM):
                assert every[0] == first


ADD = st.tuples(
    st.just("add"),
    st.integers(0, 60),  # agent number
    st.integers(0, 3),  # penalty
    st.integers(0, 2**31),  # key seed
    st.integers(0, 31),  # channel mask
    st.booleans(),  # big integers
)
REPLACE = st.tuples(
    st.just("replace"),
    st.integers(0, 60),  # agent number
    st.integers(0, 3),  # penalty
    st.integers(0, 2**31),  # key seed
    st.integers(0, 31),  # channel mask
)
REMOVE = st.tuples(st.just("remove"), st.integers(0, 70))
SET = st.tuples(st.just("set"), st.integers(0, 70), st.integers(0, 31))
BULK = st.tuples(
    st.just("bulk"),
    st.integers(100, 700),  # agents
    st.integers(0, 2**31),  # seed
    st.sampled_from([(0,), (0, 1), (2,)]),  # penalties
    # share of agents missing channels; "low": those of member order < 20 (runs of agents
    # on the first queue channel only: whole sublists without anyone on the others)
    st.sampled_from([0.0, 0.1, 0.5, "low"]),
)
THIN = st.tuples(st.just("thin"), st.integers(0, 2**31), st.sampled_from([0.1, 0.5, 0.9]))
CHECK = st.tuples(
    st.just("check"),
    st.sampled_from(CHANNELS),
    st.integers(-1, 42),  # rr_last
    st.none() | st.integers(0, 3),  # max penalty
    st.integers(0, 2**31),  # rng seed
)
OPS = st.lists(st.one_of(ADD, ADD, REPLACE, REMOVE, SET, CHECK, CHECK, BULK, THIN), max_size=30)
QUEUE_CHANNELS = st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=6)


def run(strategy: Strategy, channels: list[Channel], ops: list[tuple[Any, ...]]) -> None:
    pair = Pair(strategy, tuple(channels))
    bulk_no = 1000
    for op in ops:
        kind = op[0]
        if kind == "add":
            _, n, penalty, seed, mask, big = op
            pair.add(agent_id(n), penalty, make_ints(strategy, random.Random(seed), big), mask)
        elif kind == "replace":
            _, n, penalty, seed, mask = op
            pair.replace(agent_id(n), penalty, make_ints(strategy, random.Random(seed)), mask)
        elif kind == "remove":
            pair.remove(agent_id(op[1]))
        elif kind == "set":
            pair.set_channels(agent_id(op[1]), op[2])
        elif kind == "bulk":
            _, count, seed, penalties, partial = op
            rng = random.Random(seed)
            for _ in range(count):
                bulk_no += 1
                full = (1 << len(pair.channels)) - 1
                ints = make_ints(strategy, rng)
                if partial == "low":
                    mask = 1 if ints[-1] < 20 else full
                else:
                    mask = rng.randrange(full) if rng.random() < partial else full
                pair.add(agent_id(bulk_no), rng.choice(penalties), ints, mask)
        elif kind == "thin":
            _, seed, share = op
            rng = random.Random(seed)
            for aid in sorted(pair.present):
                if rng.random() < share:
                    pair.remove(aid)
                elif rng.random() < 0.2:
                    pair.set_channels(aid, rng.randrange(32))
                elif rng.random() < 0.1:
                    pair.replace(aid, rng.randrange(3), make_ints(strategy, rng), rng.randrange(32))
        else:
            _, channel, rr_last, max_penalty, seed = op
            pair.check(channel, rr_last, max_penalty, seed)
    for channel in CHANNELS:
        pair.check(channel, 3, None, 7)


@pytest.mark.parametrize("strategy", list(Strategy), ids=str)
@settings(max_examples=40, deadline=None)
@given(channels=QUEUE_CHANNELS, ops=OPS)
def test_same_as_python(
    strategy: Strategy, channels: list[Channel], ops: list[tuple[Any, ...]]
) -> None:
    run(strategy, channels, ops)


@pytest.mark.parametrize("strategy", list(Strategy), ids=str)
def test_big_tiers(strategy: Strategy) -> None:
    """Tiers of hundreds of agents (several sublists), some missing channels, thinned out."""
    channels = [Channel.VOICE, Channel.CHAT, Channel.EMAIL]
    ops: list[tuple[Any, ...]] = [("bulk", 900, 5, (0, 1), 0.3), ("bulk", 700, 6, (2,), "low")]
    for i in range(3):
        for channel in channels:
            for rr_last in (-1, 5 * i + 3, 19, 20, 45):
                ops.append(("check", channel, rr_last, None, i))
        ops.append(("thin", i, 0.3))
    run(strategy, channels, ops)


def test_errors_and_shapes() -> None:
    rs = _acd_core.ReadyIndexForTests("linear", ("voice",))
    with pytest.raises(KeyError, match="'x'"):
        rs.remove("x")
    with pytest.raises(KeyError, match="'x'"):
        rs.set_channels("x", ("voice",))
    with pytest.raises(ValueError, match="unknown strategy"):
        _acd_core.ReadyIndexForTests("fastest", ("voice",))
    with pytest.raises(ValueError, match="unknown channel"):
        rs.count("fax")
    rs.add("a", 0, (1, "a"), ("voice",))
    assert rs.tier_keys(0) == [(1, "a")]
    assert rs.penalties() == [0]
    rs.remove("a")
    assert rs.penalties() == []
    assert rs.tier_keys(0) == []
    assert rs.tiers(None, "voice") == []
