"""Erlang A's two evaluation paths agree: incomplete-gamma closed forms and quadrature.

``erlang_a_metrics`` uses the closed forms (Mandelbaum & Zeltyn 2007, "Service engineering
in action: the Palm/Erlang-A queue": every integral of the offered-wait density is an
incomplete gamma function after u = y e^-v) where they are accurate and the log-space
quadrature elsewhere. Both are exact formulas; here they must agree to 1e-9 relative
wherever the closed forms claim to be trustworthy, and the fallback must be taken where
they would not be.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparklecomm.wfm import Targets, erlang_a_metrics, required_agents
from sparklecomm.wfm._numerics import (
    answered_wait_moment,
    offered_wait,
    offered_wait_closed,
)

FIELDS = ("log_a", "p_gt", "e_u", "e_u_le", "p_ab", "p_ab_le")


def grid(seed: int, size: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 3000, size).astype(float)
    a = n * rng.uniform(0.3, 1.6, size)
    aht = rng.uniform(30, 900, size)
    patience = 10 ** rng.uniform(-0.5, 4.5, size)
    t = rng.choice([0.0, 5.0, 20.0, 60.0, 300.0], size)
    ratio = patience / aht
    return (n - a) * ratio, n * ratio, a * ratio, t / patience


def test_closed_forms_match_quadrature_where_trusted() -> None:
    gap, x, y, split = grid(1, 20_000)
    quad = offered_wait(gap, x, y, split)
    closed, ok = offered_wait_closed(gap, x, y, split)
    assert ok.mean() > 0.6  # the rest: heavily overstaffed or huge x (the fallback)
    for name in FIELDS:
        q, c = getattr(quad, name)[ok], getattr(closed, name)[ok]
        # Values below 1e-8 are where the quadrature itself is the less accurate one
        # (checked against 50-digit arithmetic while developing: closed forms ~1e-15).
        big = np.abs(q) > 1e-8
        rel = np.abs(c[big] - q[big]) / np.abs(q[big])
        assert rel.max() < 1e-9, name


def test_answered_moment_matches_the_full_quadrature() -> None:
    gap, x, y, split = grid(2, 5_000)
    quad = offered_wait(gap, x, y, split)
    moment = answered_wait_moment(gap, x, y) * quad.e_u
    big = quad.e_vu > 1e-200
    rel = np.abs(moment[big] - quad.e_vu[big]) / quad.e_vu[big]
    assert rel.max() < 1e-11


def test_fallback_taken_where_closed_forms_lose_digits() -> None:
    # Heavily overstaffed with patient callers: almost no delayed caller abandons, and
    # 1 - E[e^-v] would cancel; huge x: gammainc itself loses digits.
    gap = np.array([400.0, 2e5, -10.0])
    x = np.array([500.0, 1e6, 20.0])
    y = x - gap
    _, ok = offered_wait_closed(gap, x, y, np.full(3, 0.1))
    assert ok.tolist() == [False, False, True]
    # ... and the public function stays exact there (Erlang C limit, patient callers).
    m = erlang_a_metrics(4900.0, 5000, 180, 1e9, 20)
    assert np.isfinite(float(m.asa_answered)) and 0 < float(m.p_abandon) < 1e-6


def test_staffing_reports_complete_metrics() -> None:
    # The search skips the answered ASA; the answer's metrics must still have it, equal to
    # a direct evaluation.
    traffic = np.array([5.0, 30.0, 250.0, 1200.0])
    aht = np.array([180.0, 240.0, 300.0, 200.0])
    plan = required_agents(traffic, aht, Targets(0.8, 20), model="a", patience=300)
    direct = erlang_a_metrics(traffic, plan.agents, aht, 300, 20)
    for name in ("p_wait", "service_level", "asa", "p_abandon", "occupancy"):
        assert getattr(plan.metrics, name) == pytest.approx(getattr(direct, name), rel=1e-12)
    assert np.isfinite(plan.metrics.asa).all()
    # And with an ASA target the search uses it.
    asa_plan = required_agents(traffic, aht, Targets(None, 20, asa=10.0), model="a", patience=300)
    assert (asa_plan.metrics.asa <= 10.0 * (1 + 1e-12)).all()
    fewer = erlang_a_metrics(traffic, asa_plan.agents - 1, aht, 300, 20)
    assert (fewer.asa > 10.0).all()
