"""The sorted list that backs every routing index, against a plain sorted() model."""

from __future__ import annotations

from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparklecomm.acd.sortedlist import SortedList


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 300)), max_size=400))
def test_matches_sorted_model(ops: list[tuple[bool, int]]) -> None:
    sl: SortedList[int] = SortedList(load=4)  # tiny load: many splits and merges
    model: set[int] = set()
    for add, value in ops:
        if add and value not in model:
            sl.add(value)
            model.add(value)
        elif not add:
            assert sl.discard(value) is (value in model)
            model.discard(value)
        assert len(sl) == len(model)
    expect = sorted(model)
    assert list(sl) == expect
    for probe in (0, 17, 150, 301):
        assert sl.rank(probe) == bisect_left(expect, probe)
        assert list(sl.iter_from(probe)) == [v for v in expect if v >= probe]
        assert list(sl.iter_from(probe, inclusive=False)) == [v for v in expect if v > probe]
        assert (probe in sl) is (probe in model)
    for i in range(len(expect)):
        assert sl[i] == expect[i]
        assert list(sl.iter_at(i)) == expect[i:]
    if expect:
        assert sl.first() == expect[0]
        assert sl[-1] == expect[-1]


def test_errors() -> None:
    sl: SortedList[int] = SortedList()
    with pytest.raises(IndexError):
        sl.first()
    with pytest.raises(KeyError):
        sl.remove(3)
    sl.add(3)
    with pytest.raises(KeyError):
        sl.remove(4)
    with pytest.raises(IndexError):
        sl[1]
    sl.clear()
    assert not sl
