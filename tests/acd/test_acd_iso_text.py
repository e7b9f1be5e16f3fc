"""``IsoText`` writes exactly what ``from_us(us).isoformat()`` writes, in any order of calls."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sparklecomm.acd.model import US, IsoText, from_us

# From 1970 to 2100 around the engine's epoch (2020), whole seconds included.
instants = st.lists(
    st.one_of(
        st.integers(-50 * 365 * 86400 * US, 80 * 365 * 86400 * US),
        st.integers(-1000, 1000).map(lambda s: s * US),
        st.integers(0, 3 * US),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(instants)
def test_iso_text_matches_isoformat(values: list[int]) -> None:
    text = IsoText()
    for us in values:
        assert text(us) == from_us(us).isoformat()
        assert text(us + 1) == from_us(us + 1).isoformat()  # same second, mostly


def test_iso_text_examples() -> None:
    text = IsoText()
    assert text(0) == "2020-01-01T00:00:00+00:00"
    assert text(1) == "2020-01-01T00:00:00.000001+00:00"
    assert text(US - 1) == "2020-01-01T00:00:00.999999+00:00"
    assert text(-1) == "2019-12-31T23:59:59.999999+00:00"
    assert text(20 * US + 120) == "2020-01-01T00:00:20.000120+00:00"
