"""The ready index (one per queue, agents noted with their channels) against a per-channel model.

For every channel, picking from the shared index must give exactly what an index holding only
that channel's agents would give: the same tiers, the same order, the same random draws.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from sparklecomm.acd.model import Channel, Strategy
from sparklecomm.acd.strategies import Key, ReadyIndex

CHANNELS = (Channel.VOICE, Channel.CHAT, Channel.EMAIL)
Entry = tuple[int, Key, tuple[Channel, ...]]


def key_for(strategy: Strategy, agent: int, load: int, weight: int) -> Key:
    aid = f"a{agent}"
    if strategy is Strategy.WEIGHTED_RANDOM:
        return (weight, agent, aid)
    if strategy is Strategy.LONGEST_IDLE:
        return (load, 1000 - agent, agent, aid)
    return (agent, aid)


def reference(
    strategy: Strategy, keys: list[Key], rng: random.Random, rr_last: int
) -> Iterator[str]:
    """The per-channel index's candidate order over ``keys`` (sorted, that channel only)."""
    if strategy is Strategy.ROUND_ROBIN:
        yield from (k[-1] for k in keys if k[0] >= rr_last + 1)
        yield from (k[-1] for k in keys if k[0] <= rr_last)
        return
    if strategy in (Strategy.RANDOM, Strategy.WEIGHTED_RANDOM):
        if strategy is Strategy.RANDOM:
            start = rng.randrange(len(keys))
        else:
            counts: dict[int, int] = {}
            for k in keys:
                counts[k[0]] = counts.get(k[0], 0) + 1
            draw = rng.randrange(sum(w * n for w, n in counts.items()))
            start = position = 0
            for w in sorted(counts):
                if draw < w * counts[w]:
                    start = position + draw // w
                    break
                draw -= w * counts[w]
                position += counts[w]
        yield from (k[-1] for k in keys[start:] + keys[:start])
        return
    yield from (k[-1] for k in keys)


ops = st.lists(
    st.tuples(
        st.integers(0, 11),  # agent
        st.integers(0, 2),  # penalty
        st.sets(st.sampled_from(CHANNELS), max_size=3),  # channels (empty: leave)
        st.integers(0, 2),  # load
        st.integers(1, 4),  # weight
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(
        [
            Strategy.LINEAR,
            Strategy.ROUND_ROBIN,
            Strategy.RANDOM,
            Strategy.WEIGHTED_RANDOM,
            Strategy.LONGEST_IDLE,
        ]
    ),
    ops,
    st.integers(-1, 12),
    st.integers(0, 1000),
)
def test_shared_index_picks_like_one_index_per_channel(
    strategy: Strategy,
    steps: list[tuple[int, int, set[Channel], int, int]],
    rr_last: int,
    seed: int,
) -> None:
    index = ReadyIndex(strategy, CHANNELS)
    model: dict[str, Entry] = {}
    for agent, penalty, channel_set, load, weight in steps:
        aid = f"a{agent}"
        chans = tuple(c for c in CHANNELS if c in channel_set)
        key = key_for(strategy, agent, load, weight)
        old = model.get(aid)
        if not chans:
            if old is not None:
                index.remove(aid)
                del model[aid]
        elif old is None:
            index.add(aid, penalty, key, chans)
            model[aid] = (penalty, key, chans)
        elif old[:2] == (penalty, key):
            index.set_channels(aid, chans)
            model[aid] = (penalty, key, chans)
        else:
            index.remove(aid)
            index.add(aid, penalty, key, chans)
            model[aid] = (penalty, key, chans)
    assert len(index) == len(model)
    for ch in CHANNELS:
        mine = {aid: e for aid, e in model.items() if ch in e[2]}
        assert index.count(ch) == len(mine)
        assert index.serves(ch) == bool(mine)
        for aid in model:
            assert index.has(aid, ch) == (aid in mine)
        penalties = sorted({e[0] for e in mine.values()})
        tiers = index.tiers(None, ch)
        assert [p for p, _ in tiers] == penalties
        assert [p for p, _ in index.tiers(0, ch)] == [p for p in penalties if p <= 0]
        for penalty, keys in tiers:
            expect_keys = sorted(e[1] for e in mine.values() if e[0] == penalty)
            ours = list(index.candidates(penalty, keys, random.Random(seed), rr_last, ch))
            theirs = list(reference(strategy, expect_keys, random.Random(seed), rr_last))
            assert ours == theirs
            assert index.first(penalty, keys, random.Random(seed), rr_last, ch) == theirs[0]
        if mine:
            assert index.lowest_tier(ch)[0] == penalties[0]


@settings(max_examples=100, deadline=None)
@given(ops)
def test_lowest_is_serves_and_lowest_tier_in_one(
    steps: list[tuple[int, int, set[Channel], int, int]],
) -> None:
    index = ReadyIndex(Strategy.LONGEST_IDLE, CHANNELS)
    for agent, penalty, channel_set, load, weight in steps:
        aid = f"a{agent}"
        if aid in index:
            index.remove(aid)
        chans = tuple(c for c in CHANNELS if c in channel_set)
        if chans:
            index.add(aid, penalty, key_for(Strategy.LONGEST_IDLE, agent, load, weight), chans)
        for ch in (*CHANNELS, Channel.TASK):  # TASK: not one of the queue's channels
            lowest = index.lowest(ch)
            if index.serves(ch):
                assert lowest is not None
                penalty_, keys = index.lowest_tier(ch)
                assert lowest[0] == penalty_ and lowest[1] is keys
            else:
                assert lowest is None
