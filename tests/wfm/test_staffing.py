"""Required and scheduled agents."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparklecomm.core.errors import InvalidInput
from sparklecomm.wfm import (
    Model,
    ServiceLevelBasis,
    Targets,
    erlang_a_metrics,
    erlang_c_metrics,
    offered_load,
    required_agents,
    scheduled_agents,
)


def _scan(targets: Targets, traffic: float, aht: float, patience: float | None) -> int:
    """Smallest agent count meeting the targets, by walking up from 1 (the textbook way)."""
    n = 1
    while True:
        if patience is None:
            m = erlang_c_metrics(traffic, n, aht, targets.target_time)
            stable = n > traffic
        else:
            m = erlang_a_metrics(
                traffic, n, aht, patience, targets.target_time, sl_basis=targets.sl_basis
            )
            stable = True
        if stable and bool(targets.met(m)):
            return n
        n += 1


def test_worked_example_with_shrinkage() -> None:
    # pyworkforce 0.5.1 tests (test_expected_erlangc_results / test_over_occupancy_erlangc)
    # and the Call Centre Helper / lucidmanager example: 100 calls per 30 min, AHT 3 min,
    # 80 % in 20 s, shrinkage 30 %: 14 agents on the phones, 20 scheduled; with an
    # occupancy cap of 70 %: 15 and 22.
    traffic = offered_load(100, 1800, 180)
    s = required_agents(traffic, 180, Targets(0.8, 20, max_occupancy=0.85), shrinkage=0.3)
    assert (int(s.agents), int(s.scheduled)) == (14, 20)
    assert round(float(s.metrics.service_level), 3) == 0.888
    s = required_agents(traffic, 180, Targets(0.8, 20, max_occupancy=0.7), shrinkage=0.3)
    assert (int(s.agents), int(s.scheduled)) == (15, 22)
    assert round(float(s.metrics.occupancy), 3) == 0.667


def test_scheduled_agents_round_up_without_float_noise() -> None:
    # 14 / (1 - 0.3) is 20.000000000000004 in floating point; that is 20 people.
    assert scheduled_agents(14, 0.3).tolist() == 20
    assert scheduled_agents([0, 1, 13, 15], 0.3).tolist() == [0, 2, 19, 22]
    assert scheduled_agents(7, 0.0).tolist() == 7
    with pytest.raises(InvalidInput, match="shrinkage"):
        scheduled_agents(7, 1.0)


@pytest.mark.parametrize("model", ["c", "a"])
def test_matches_a_linear_scan(model: Model) -> None:
    rng = np.random.default_rng(3)
    calls = rng.uniform(1, 600, 60)
    aht = rng.uniform(60, 500, 60)
    traffic = offered_load(calls, 1800, aht)
    patience = None if model == "c" else 240.0
    for targets in [
        Targets(0.8, 20),
        Targets(0.9, 30, max_occupancy=0.8),
        Targets(None, asa=15.0),
        Targets(0.7, 60, asa=30.0, abandon_rate=0.03 if model == "a" else None),
    ]:
        got = required_agents(traffic, aht, targets, model=model, patience=patience)
        for i in range(0, 60, 13):
            assert got.agents[i] == _scan(targets, traffic[i], aht[i], patience), (targets, i)
        assert bool(np.all(targets.met(got.metrics)))


def test_erlang_a_needs_no_more_than_erlang_c_for_these_targets() -> None:
    rng = np.random.default_rng(11)
    aht = rng.uniform(120, 420, 500)
    traffic = offered_load(rng.uniform(20, 2000, 500), 1800, aht)
    c = required_agents(traffic, aht, Targets(0.8, 20))
    a = required_agents(traffic, aht, Targets(0.8, 20), model="a", patience=300)
    assert np.all(a.agents <= c.agents)
    assert np.all(a.metrics.service_level >= 0.8 - 1e-12)
    below = erlang_a_metrics(traffic, a.agents - 1, aht, 300, 20)
    assert np.all(below.service_level < 0.8)


def test_zero_calls_need_nobody_and_shapes_are_kept() -> None:
    s = required_agents(np.array([[0.0, 5.0], [10.0, 0.0]]), 180, Targets(0.8, 20))
    assert s.agents.tolist() == [[0, _scan(Targets(0.8, 20), 5.0, 180, None)], [14, 0]]
    assert s.metrics.service_level.shape == (2, 2)
    assert s.metrics.service_level[0, 0] == 1.0


def test_thousands_of_agents() -> None:
    s = required_agents(5000.0, 180, Targets(0.8, 20), model="a", patience=1e6)
    c = required_agents(5000.0, 180, Targets(0.8, 20))
    assert 5000 < int(s.agents) <= int(c.agents)


def test_bad_targets_are_named() -> None:
    with pytest.raises(InvalidInput, match="service_level"):
        required_agents(10, 180, Targets(1.0, 20))
    with pytest.raises(InvalidInput, match="max_occupancy"):
        required_agents(10, 180, Targets(0.8, 20, max_occupancy=1.5))
    with pytest.raises(InvalidInput, match="patience"):
        required_agents(10, 180, Targets(0.8, 20), model="a")
    with pytest.raises(InvalidInput, match="at least one"):
        required_agents(10, 180, Targets(None))
    with pytest.raises(InvalidInput, match="traffic"):
        required_agents([1.0, -2.0], 180, Targets(0.8))


@settings(max_examples=40, deadline=None)
@given(
    traffic=st.floats(0.01, 300),
    aht=st.floats(20, 900),
    sl=st.floats(0.3, 0.99),
    t=st.floats(0, 120),
    patience=st.floats(5, 5000),
    basis=st.sampled_from(
        ["offered", "answered", "offered_less_short_abandons", "short_abandons_met"]
    ),
)
def test_answer_is_the_smallest_that_meets(
    traffic: float, aht: float, sl: float, t: float, patience: float, basis: ServiceLevelBasis
) -> None:
    targets = Targets(sl, t, sl_basis=basis)
    s = required_agents(traffic, aht, targets, model="a", patience=patience)
    n = int(s.agents)
    assert bool(targets.met(erlang_a_metrics(traffic, n, aht, patience, t, sl_basis=basis)))
    if n > 1:
        below = erlang_a_metrics(traffic, n - 1, aht, patience, t, sl_basis=basis)
        assert not bool(targets.met(below))
