"""Erlang B, C and A against exact arithmetic, independent models and published values."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special

from sparklecomm.core.errors import InvalidInput
from sparklecomm.wfm import (
    ServiceLevelBasis,
    erlang_a_metrics,
    erlang_b,
    erlang_c,
    erlang_c_metrics,
    offered_load,
    service_level,
)

from .oracles import erlang_a_reference, erlang_b_exact, erlang_c_exact

# --------------------------------------------------------------------------- Erlang B


@pytest.mark.parametrize(
    ("traffic", "lines"),
    [
        (Fraction(10), 17),
        (Fraction(5), 10),
        (Fraction(1, 2), 1),
        (Fraction(25), 30),
        (Fraction(100), 50),  # overload
        (Fraction(7, 3), 0),
        (Fraction(50), 100),  # tiny blocking
        (Fraction(1000), 200),  # heavy overload: Poisson cdf underflows, series path
        (Fraction(3001, 10), 310),
    ],
)
def test_erlang_b_matches_exact_rationals(traffic: Fraction, lines: int) -> None:
    exact = float(erlang_b_exact(traffic, lines))
    assert float(erlang_b(float(traffic), lines)) == pytest.approx(exact, rel=1e-12)


def test_erlang_b_published_table_values() -> None:
    # Classic Erlang B table (e.g. Iversen, "Teletraffic Engineering and Network
    # Planning", ITU-D/DTU, Erlang B table): traffic carried at 1 % / 2 % blocking.
    for lines, traffic, blocking in [
        (10, 4.461, 0.01),
        (10, 5.084, 0.02),
        (20, 12.031, 0.01),
        (50, 37.901, 0.01),
        (100, 84.064, 0.01),
    ]:
        assert float(erlang_b(traffic, lines)) == pytest.approx(blocking, rel=5e-4)
    # Wolfram Language documentation, ErlangB: "30 call lines and the traffic is 25
    # Erlangs, then the blocking or loss probability is approximately 0.05".
    assert float(erlang_b(25, 30)) == pytest.approx(0.0526, abs=5e-4)


def test_erlang_b_thousands_of_lines_and_vectorised() -> None:
    traffic = np.array([4000.0, 4900.0, 5000.0, 10000.0, 20000.0])
    lines = np.array([5000, 5000, 5000, 5000, 19000])
    got = erlang_b(traffic, lines)
    # The recurrence B(n) = A B(n-1) / (n + A B(n-1)) is stable; run it in floats.
    for a, n, g in zip(traffic, lines, got, strict=True):
        b = 1.0
        for k in range(1, n + 1):
            b = a * b / (k + a * b)
        assert g == pytest.approx(b, rel=1e-10, abs=1e-300)
    assert got.shape == (5,)
    assert np.all(np.isfinite(got))


def test_erlang_b_edge_cases() -> None:
    assert float(erlang_b(0, 0)) == 1.0
    assert float(erlang_b(0, 3)) == 0.0
    assert float(erlang_b(2.0, 0)) == 1.0
    with pytest.raises(InvalidInput, match="traffic"):
        erlang_b(-1, 3)
    with pytest.raises(InvalidInput, match="lines"):
        erlang_b(1, 2.5)
    with pytest.raises(InvalidInput, match=r"lines\[1\]"):
        erlang_b(1, [2, -1])


# --------------------------------------------------------------------------- Erlang C


@pytest.mark.parametrize(
    ("traffic", "agents"),
    [
        (Fraction(10), 14),
        (Fraction(10), 11),
        (Fraction(48), 55),
        (Fraction(1, 3), 1),
        (Fraction(99, 10), 10),
    ],
)
def test_erlang_c_matches_exact_rationals(traffic: Fraction, agents: int) -> None:
    exact = float(erlang_c_exact(traffic, agents))
    assert float(erlang_c(float(traffic), agents)) == pytest.approx(exact, rel=1e-12)


def test_erlang_c_worked_example_100_calls() -> None:
    # 100 calls per 30 minutes, AHT 180 s, 14 agents, target 20 s. Published in the
    # tests of pyworkforce 0.5.1 (pyworkforce/queuing/tests/test_erlang.py: Pw 0.174,
    # SL 0.888, occupancy 0.714; they state the target as 0.33 min) and in P. Prevos,
    # "Call Centre Workforce Planning Using Erlang C in R" (lucidmanager.org), the
    # source pyworkforce cites. ASA = Pw * AHT / (N - A) = 7.84 s.
    m = erlang_c_metrics(offered_load(100, 1800, 180), 14, 180, 20)
    assert float(m.traffic) == 10.0
    assert round(float(m.p_wait), 3) == 0.174
    assert round(float(m.service_level), 3) == 0.888
    assert round(float(m.occupancy), 3) == 0.714
    assert float(m.asa) == pytest.approx(7.836, abs=1e-3)
    # Same source, 15 agents: Pw 0.102, SL 0.941, occupancy 0.667.
    m15 = erlang_c_metrics(10, 15, 180, 20)
    assert (round(float(m15.p_wait), 3), round(float(m15.service_level), 3)) == (0.102, 0.941)


def test_erlang_c_closed_forms_by_hand() -> None:
    # SL = 1 - C exp(-(N - A) t / AHT), ASA = C AHT / (N - A), occupancy A / N.
    a, n, aht, t = 48.0, 55, 240.0, 15.0
    c = float(erlang_c_exact(Fraction(48), 55))
    m = erlang_c_metrics(a, n, aht, t)
    assert float(m.service_level) == pytest.approx(1 - c * math.exp(-(n - a) * t / aht), rel=1e-13)
    assert float(m.asa) == pytest.approx(c * aht / (n - a), rel=1e-12)
    assert float(m.occupancy) == pytest.approx(a / n)
    assert float(m.p_abandon) == 0.0


def test_erlang_c_unstable_and_vectorised() -> None:
    m = erlang_c_metrics([5.0, 10.0, 12.0], [10, 10, 10], 180, 20)
    assert m.p_wait[1] == 1.0 and m.p_wait[2] == 1.0
    assert m.service_level[1] == 0.0
    assert math.isinf(m.asa[2])
    assert m.occupancy[2] == 1.0
    assert 0 < m.p_wait[0] < 1


def test_erlang_c_large_staff_is_finite() -> None:
    m = erlang_c_metrics(4900.0, 5000, 180, 20)
    assert 0 < float(m.p_wait) < 1
    assert np.isfinite(m.asa)


# --------------------------------------------------------------------------- Erlang A

CASES_A = [
    # traffic, agents, aht, patience, target
    (10.0, 14, 180.0, 300.0, 20.0),
    (10.0, 10, 180.0, 300.0, 20.0),
    (10.0, 8, 180.0, 120.0, 30.0),  # overloaded: stable thanks to abandonment
    (4.0, 5, 240.0, 60.0, 15.0),
    (2.0, 1, 300.0, 30.0, 20.0),  # patience much shorter than AHT
    (6.0, 7, 100.0, 2000.0, 10.0),  # patient callers
    (3.0, 4, 200.0, 200.0, 0.0),  # theta = mu; target 0
]


@pytest.mark.parametrize(("traffic", "agents", "aht", "patience", "target"), CASES_A)
def test_erlang_a_matches_markov_chain(
    traffic: float, agents: int, aht: float, patience: float, target: float
) -> None:
    ref = erlang_a_reference(traffic, agents, aht, patience, target)
    m = erlang_a_metrics(traffic, agents, aht, patience, target)
    assert float(m.p_wait) == pytest.approx(ref.p_wait, rel=1e-8, abs=1e-12)
    assert float(m.p_abandon) == pytest.approx(ref.p_abandon, rel=1e-8, abs=1e-12)
    assert float(m.answered_within) == pytest.approx(ref.answered_within, rel=1e-8, abs=1e-12)
    assert float(m.abandoned_within) == pytest.approx(ref.abandoned_within, rel=1e-8, abs=1e-12)
    assert float(m.asa_answered) == pytest.approx(ref.asa_answered, rel=1e-8, abs=1e-12)
    assert float(m.asa_offered) == pytest.approx(ref.asa_offered, rel=1e-8, abs=1e-12)
    # Little's law on the queue: abandonment rate = theta E[Q].
    assert float(m.p_abandon) == pytest.approx(
        ref.mean_queue / patience / (traffic / aht), rel=1e-8
    )
    # Default bases: service level of offered calls, ASA of answered calls.
    assert float(m.service_level) == float(m.answered_within)
    assert float(m.asa) == float(m.asa_answered)


def test_erlang_a_equal_rates_is_poisson() -> None:
    # With patience = AHT everyone in the system leaves at the same rate: M/M/infinity.
    # The number in system is Poisson(A) and P(wait) = P(Poisson(A) >= N).
    for traffic, agents in [(3.0, 4), (20.0, 25), (200.0, 190)]:
        m = erlang_a_metrics(traffic, agents, 180, 180, 20)
        assert float(m.p_wait) == pytest.approx(special.pdtrc(agents - 1, traffic), rel=1e-10)


def test_erlang_a_against_incomplete_gamma_closed_forms() -> None:
    # Garnett, Mandelbaum & Reiman (2002), "Designing a call center with impatient
    # customers", M&SOM 4(3): P(W>0) = A E / (1 + (A-1) E) with
    # A(x, y) = x e^y y^-x gamma(x, y), x = N mu / theta, y = lambda / theta, E Erlang B;
    # Mandelbaum & Zeltyn (2007), "Service engineering in action: the Palm/Erlang-A
    # queue": P(Ab | W>0) = 1/(rho A) + 1 - 1/rho. Evaluated here with scipy's regularised
    # incomplete gamma where that does not overflow.
    rng = np.random.default_rng(7)
    for _ in range(200):
        agents = int(rng.integers(1, 150))
        traffic = float(rng.uniform(0.3, 1.4) * agents)
        aht = float(rng.uniform(60, 600))
        patience = float(10 ** rng.uniform(0.5, 3.0))
        x, y = agents * patience / aht, traffic * patience / aht
        if x > 600:
            continue
        big_a = math.exp(
            math.log(x)
            + y
            - x * math.log(y)
            + special.gammaln(x)
            + math.log(special.gammainc(x, y))
        )
        e = float(erlang_b_exact(Fraction(traffic), agents))
        p_wait = big_a * e / (1 + (big_a - 1) * e)
        rho = traffic / agents
        p_ab = p_wait * (1 / (rho * big_a) + 1 - 1 / rho)
        m = erlang_a_metrics(traffic, agents, aht, patience, 20)
        assert float(m.p_wait) == pytest.approx(p_wait, rel=1e-9)
        assert float(m.p_abandon) == pytest.approx(p_ab, rel=1e-8, abs=1e-14)


def test_erlang_a_asa_by_numeric_integration() -> None:
    # E[W; answered] integrates the offered-wait density (Mandelbaum & Zeltyn 2007):
    # given W > 0, theta*V has density prop. to exp(-x v - y e^-v); an answered call is
    # one whose patience outlasts V, probability e^-v. Integrated with scipy.quad.
    for traffic, agents, aht, patience in [(10.0, 12, 180.0, 300.0), (2.0, 1, 300.0, 0.6)]:
        x, y = agents * patience / aht, traffic * patience / aht

        def density(v: float, x: float = x, y: float = y) -> float:
            return math.exp(-x * v - y * math.exp(-v))

        upper = 200.0 / min(x, 1.0) + 50.0
        norm = integrate.quad(density, 0, upper, limit=500, epsabs=0, epsrel=1e-12)[0]
        moment = integrate.quad(
            lambda v: v * math.exp(-v) * density(v), 0, 80, limit=500, epsabs=0, epsrel=1e-12
        )[0]
        m = erlang_a_metrics(traffic, agents, aht, patience, 20)
        expected = float(m.p_wait) * moment / norm * patience / (1 - float(m.p_abandon))
        assert float(m.asa_answered) == pytest.approx(expected, rel=1e-8)


def test_erlang_a_tends_to_erlang_c_for_patient_callers() -> None:
    c = erlang_c_metrics(4900.0, 5000, 180, 20)
    for patience, tol in [(1e9, 1e-6), (1e12, 1e-9)]:
        a = erlang_a_metrics(4900.0, 5000, 180, patience, 20)
        assert float(a.p_wait) == pytest.approx(float(c.p_wait), rel=tol)
        assert float(a.service_level) == pytest.approx(float(c.service_level), rel=tol)
        assert float(a.asa) == pytest.approx(float(c.asa), rel=tol)
    inf = erlang_a_metrics(10.0, 12, 180, math.inf, 20)
    c12 = erlang_c_metrics(10.0, 12, 180, 20)
    assert float(inf.service_level) == float(c12.service_level)


def test_erlang_a_extreme_parameters_stay_finite() -> None:
    traffic = np.array([5200.0, 4900.0, 0.01, 3000.0, 1.0])
    agents = np.array([5000, 5000, 1, 2000, 1])
    patience = np.array([1e9, 1e12, 1e-3, 5.0, 1e7])
    m = erlang_a_metrics(traffic, agents, 180.0, patience, 20.0)
    for field in ("p_wait", "service_level", "p_abandon", "occupancy", "asa"):
        values = getattr(m, field)
        assert np.all(np.isfinite(values)), field
    # Overloaded with very patient callers: the excess load abandons, 1 - N/A.
    assert m.p_abandon[0] == pytest.approx(1 - 5000 / 5200, rel=1e-9)


def test_erlang_a_no_agents_or_no_calls() -> None:
    m = erlang_a_metrics([0.0, 3.0], [0, 0], 180, 60, 20)
    assert m.p_wait.tolist() == [0.0, 1.0]
    assert m.p_abandon.tolist() == [0.0, 1.0]
    assert m.service_level.tolist() == [1.0, 0.0]
    assert m.abandoned_within[1] == pytest.approx(1 - math.exp(-20 / 60))


def test_service_level_variants() -> None:
    m = erlang_a_metrics(10.0, 10, 180, 120, 20)
    aw, ab_t, p_ab = float(m.answered_within), float(m.abandoned_within), float(m.p_abandon)
    assert 0 < ab_t < p_ab < 1
    assert float(service_level(aw, ab_t, p_ab, "answered")) == pytest.approx(aw / (1 - p_ab))
    assert float(service_level(aw, ab_t, p_ab, "offered_less_short_abandons")) == pytest.approx(
        aw / (1 - ab_t)
    )
    assert float(service_level(aw, ab_t, p_ab, "short_abandons_met")) == pytest.approx(aw + ab_t)
    ordered = [
        float(service_level(aw, ab_t, p_ab, b))
        for b in ("offered", "offered_less_short_abandons", "answered")
    ]
    assert ordered == sorted(ordered)
    ref = erlang_a_reference(10.0, 10, 180, 120, 20)
    variant = erlang_a_metrics(10.0, 10, 180, 120, 20, sl_basis="answered", asa_basis="offered")
    assert float(variant.service_level) == pytest.approx(
        ref.answered_within / (1 - ref.p_abandon), rel=1e-8
    )
    assert float(variant.asa) == pytest.approx(ref.asa_offered, rel=1e-8)


@settings(max_examples=60, deadline=None)
@given(
    agents=st.integers(1, 400),
    load=st.floats(0.2, 1.5),
    aht=st.floats(30, 900),
    patience=st.floats(1, 1e5),
    target=st.floats(0, 120),
)
def test_erlang_a_is_monotone_and_bounded(
    agents: int, load: float, aht: float, patience: float, target: float
) -> None:
    traffic = load * agents
    n = np.array([agents, agents + 1, agents + 5])
    m = erlang_a_metrics(traffic, n, aht, patience, target)
    for field in ("p_wait", "service_level", "p_abandon", "occupancy"):
        values = getattr(m, field)
        assert np.all((values >= 0) & (values <= 1)), field
    tol = 1e-12
    assert np.all(np.diff(m.p_wait) <= tol)
    assert np.all(np.diff(m.p_abandon) <= tol)
    assert np.all(np.diff(m.service_level) >= -tol)
    assert np.all(np.diff(m.asa) <= tol * np.max(m.asa) + 1e-12)
    assert np.all(np.diff(m.occupancy) <= tol)
    assert np.all(m.abandoned_within <= m.p_abandon + tol)
    # Erlang A never needs to wait longer than Erlang C with the same staff.
    if agents > traffic:
        c = erlang_c_metrics(traffic, n, aht, target)
        assert np.all(m.p_wait <= c.p_wait + 1e-12)


def test_input_validation_names_the_value() -> None:
    with pytest.raises(InvalidInput, match="patience"):
        erlang_a_metrics(10, 12, 180, 0, 20)
    with pytest.raises(InvalidInput, match="aht"):
        erlang_c_metrics(10, 12, -180, 20)
    with pytest.raises(InvalidInput, match="calls"):
        offered_load(-1, 1800, 180)
    with pytest.raises(InvalidInput, match="service-level basis"):
        erlang_a_metrics(10, 12, 180, 60, 20, sl_basis=cast(ServiceLevelBasis, "bogus"))
