"""Numerical kernels behind the Erlang formulas (private; use :mod:`sparklecomm.wfm.erlang`).

Everything here works on numpy arrays, one element per interval, and stays finite for
thousands of agents and for patience/handle-time ratios up to ~1e12:

* Erlang B is evaluated in log space as a Poisson ratio, ``B = pmf(N) / cdf(N)``, with the
  pmf written the Loader way (Stirling error + ``bd0``) so that nothing cancels for large N.
* Erlang A (M/M/N+M) needs the law of the *offered* wait V of a delayed call (the wait it
  would have with infinite patience). With ``theta = 1/patience``, ``x = N*mu/theta`` and
  ``y = lambda/theta``, the scaled wait ``v = theta*V`` given ``V > 0`` has the density

      f(v) = exp(-x*v - y*exp(-v)) / J,      v > 0,

  (a mixture of hypoexponential laws; see ``docs/wfm.md``). All performance measures are
  integrals of this log-concave density. We integrate it with Gauss-Legendre rules on a
  window that holds all but e**-46 of its mass, relative to its maximum, so nothing
  overflows or underflows however large x and y get (large patience/AHT ratios).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]

_LOG_2PI: Final = math.log(2.0 * math.pi)
# Mass we are willing to lose in each tail of the quadrature window, as a log ratio to the
# density's peak: e**-46 ~ 1e-20.
_WINDOW: Final = 46.0
_NODES: Final = 24
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_NODES)
# Gauss-Legendre on [0, 1].
_GL_T: Final[FloatArray] = (0.5 * (_GL_X + 1.0)).astype(np.float64)
_GL_WT: Final[FloatArray] = (0.5 * _GL_W).astype(np.float64)


def _series(u: FloatArray, coefficients: list[float]) -> FloatArray:
    """Evaluate sum(coefficients[j] * u**(j + 2)) by Horner's rule."""
    acc = np.zeros_like(u)
    for c in reversed(coefficients):
        acc = acc * u + c
    return acc * u * u


# (1+u)*log1p(u) - u = u^2/2 - u^3/6 + u^4/12 - ... = sum_{j>=2} (-1)^j u^j / (j (j-1))
_PHI_COEF: Final = [(-1.0) ** j / (j * (j - 1)) for j in range(2, 20)]
# u - log1p(u) = u^2/2 - u^3/3 + u^4/4 - ...
_H_COEF: Final = [(-1.0) ** j / j for j in range(2, 20)]
# d - 1 + exp(-d) = d^2/2 - d^3/6 + d^4/24 - ...
_G_COEF: Final = [(-1.0) ** j / math.factorial(j) for j in range(2, 11)]


def xlog1px_minus_x(u: FloatArray) -> FloatArray:
    """``(1+u)*log1p(u) - u`` for ``u > -1``, accurate near ``u = 0``."""
    small = np.abs(u) < 0.1
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = (1.0 + u) * np.log1p(u) - u
    direct = np.where(u == -1.0, 1.0, direct)
    return np.where(small, _series(np.where(small, u, 0.0), _PHI_COEF), direct)


def x_minus_log1p(u: FloatArray) -> FloatArray:
    """``u - log1p(u)`` for ``u > -1``, accurate near ``u = 0``."""
    small = np.abs(u) < 0.1
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = u - np.log1p(u)
    return np.where(small, _series(np.where(small, u, 0.0), _H_COEF), direct)


def expm1_plus_x(d: FloatArray) -> FloatArray:
    """``d - 1 + exp(-d)`` (>= 0), accurate near ``d = 0``."""
    out = d + np.expm1(-d)
    small = np.abs(d) < 0.01
    if small.any():
        out[small] = _series(d[small], _G_COEF)
    return out


def bd0(k: FloatArray, m: FloatArray) -> FloatArray:
    """Loader's deviance term ``k*log(k/m) + m - k`` (>= 0), for ``k >= 0``, ``m > 0``."""
    return m * xlog1px_minus_x((k - m) / m)


def stirlerr(n: FloatArray) -> FloatArray:
    """``log(n!) - log(sqrt(2*pi*n) * (n/e)**n)`` for ``n > 0``."""
    big = n > 15.0
    nb = np.where(big, n, 16.0)
    n2 = nb * nb
    series = (
        1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 - 1.0 / (1188 * n2)) / n2) / n2) / n2
    ) / nb
    ns = np.where(big, 1.0, np.maximum(n, 1e-300))
    direct: FloatArray = special.gammaln(ns + 1.0) - (ns + 0.5) * np.log(ns) + ns - 0.5 * _LOG_2PI
    return np.where(big, series, direct)


def log_poisson_pmf(k: FloatArray, m: FloatArray) -> FloatArray:
    """``log(m**k * exp(-m) / k!)`` for real ``k >= 0``, ``m > 0`` without cancellation."""
    kk = np.maximum(k, 1e-300)
    general = -0.5 * (_LOG_2PI + np.log(kk)) - stirlerr(kk) - bd0(kk, m)
    return np.where(k == 0.0, -m, general)


def log_erlang_b(traffic: FloatArray, lines: FloatArray) -> FloatArray:
    """Natural log of the Erlang B blocking probability for ``traffic > 0``, integer lines.

    ``B(N, A) = pmf(N; A) / cdf(N; A)`` for a Poisson variable with mean A. Where the cdf
    underflows (N far below A) we sum ``1/B = sum_k prod_{i<k} (N-i)/A`` instead, which then
    converges geometrically with ratio at most ``N/A``.
    """
    a, n = np.broadcast_arrays(np.asarray(traffic, float), np.asarray(lines, float))
    a = a.astype(np.float64)
    n = n.astype(np.float64)
    cdf = special.pdtr(n, a)
    ok = cdf > 1e-280
    with np.errstate(divide="ignore"):
        out = log_poisson_pmf(n, a) - np.log(np.where(ok, cdf, 1.0))
    if not ok.all():
        idx = np.nonzero(~ok)
        aa, nn = a[idx], n[idx]
        total = np.ones_like(aa)
        term = np.ones_like(aa)
        k = 0
        active = np.ones(aa.shape, dtype=bool)
        while active.any():
            term = np.where(active, term * np.maximum(nn - k, 0.0) / aa, 0.0)
            total += term
            k += 1
            active &= term > 1e-17 * total
        out[idx] = -np.log(total)
    return np.minimum(out, 0.0)


@dataclass(frozen=True)
class _Window:
    """Quadrature window for ``exp(-c*v - y*exp(-v))`` on ``v >= 0``, relative to its peak."""

    vstar: FloatArray  # location of the maximum (0 when the density decreases from 0)
    s0: FloatArray  # slope of -log density at the peak (0 at an interior maximum)
    m: FloatArray  # curvature scale: y*exp(-vstar)
    left: FloatArray  # window in d = v - vstar
    right: FloatArray

    def take(self, mask: npt.NDArray[np.bool_]) -> _Window:
        return _Window(
            self.vstar[mask], self.s0[mask], self.m[mask], self.left[mask], self.right[mask]
        )


def _window(gap: FloatArray, c: FloatArray, y: FloatArray) -> _Window:
    """Window for exponent ``-c*v - y*exp(-v)``; ``gap = c - y`` passed in exactly."""
    interior = gap < 0.0
    vstar = np.where(interior, np.log1p(np.where(interior, -gap / c, 0.0)), 0.0)
    m = np.where(interior, c, y)
    s0 = np.where(interior, 0.0, gap)
    # Right end: -log density rises from the peak by Delta(d) = s0*d + m*(d - 1 + e^-d),
    # which is at least s0*d, c*d - m, and m*d^2/3 (for d <= 1); take the tightest bound.
    with np.errstate(divide="ignore"):
        r1 = np.where(s0 > 0.0, _WINDOW / np.where(s0 > 0.0, s0, 1.0), np.inf)
    r2 = (_WINDOW + m) / c
    r3 = np.sqrt(3.0 * _WINDOW / m)
    right = np.minimum(np.minimum(r1, r2), np.where(r3 <= 1.0, r3, np.inf))
    # Left end (interior peak only): Delta_L(d) = m*(e^d - 1 - d).
    q = _WINDOW / m
    d = np.log1p(q)
    for _ in range(6):
        d = np.log1p(q + d)
    d = d + 0.5
    left = np.where(interior, -np.minimum(np.minimum(np.sqrt(2.0 * q), d), vstar), 0.0)
    return _Window(vstar=vstar, s0=s0, m=m, left=left, right=right)


# Narrow windows: one cut at the peak (when it is interior), where the density's
# curvature changes most; 24 nodes per piece then give ~1e-13.
_PEAK_BREAKS: Final[tuple[float, ...]] = (0.0,)
_NO_BREAKS: Final[tuple[float, ...]] = ()
# Extra breakpoints (in d = v - vstar) for wide windows, where the density has structure at
# the unit scale of exp(-v) near its peak and a long exponential tail: a composite rule on
# geometrically growing pieces resolves both.
_WIDE_BREAKS: Final = (-36.0, -12.0, -4.0, -1.0, 0.0, 1.0, 4.0, 12.0, 36.0)


def _quadrature(
    w: _Window, split: FloatArray, breaks: tuple[float, ...]
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Nodes v, weight*density at them and a below-split mask, each of shape (K, nodes).

    The density is relative to its peak. Pieces are cut at the given breakpoints and at
    ``v = split`` so that integrals over ``v <= split`` are sums over whole pieces.
    """
    ds = np.clip(split - w.vstar, w.left, w.right)
    cuts = [w.left, *(np.clip(b, w.left, w.right) for b in breaks), w.right, ds]
    edges = np.sort(np.stack(cuts, axis=1), axis=1)
    a, b = edges[:, :-1], edges[:, 1:]
    length = (b - a)[:, :, None]
    d = a[:, :, None] + length * _GL_T
    s0, m = w.s0[:, None, None], w.m[:, None, None]
    wf = np.exp(-(s0 * d + m * expm1_plus_x(d))) * length * _GL_WT
    below = np.broadcast_to((b <= ds[:, None])[:, :, None], d.shape)
    k = d.shape[0]
    v = w.vstar[:, None, None] + d
    return v.reshape(k, -1), wf.reshape(k, -1), below.reshape(k, -1)


@dataclass(frozen=True)
class OfferedWait:
    """Law of the offered wait of a delayed call in M/M/N+M, in units of the patience.

    All fields are conditional on ``V > 0``; ``v = V/patience``, ``T = t/patience``.
    """

    log_a: FloatArray  # log of A(x, y) = 1F1(1; x+1; y), the Garnett-Mandelbaum-Reiman A
    p_gt: FloatArray  # P(V > t)
    e_u: FloatArray  # E[exp(-v)]          = P(served | delayed)
    e_u_le: FloatArray  # E[exp(-v); V <= t] = P(served within t | delayed)
    e_vu: FloatArray  # E[v exp(-v)]        (answered calls' scaled wait, unnormalised)
    p_ab: FloatArray  # 1 - E[exp(-v)]      = P(abandon | delayed)
    p_ab_le: FloatArray  # P(abandon within t | delayed)


def offered_wait(gap: FloatArray, x: FloatArray, y: FloatArray, split: FloatArray) -> OfferedWait:
    """Offered-wait law for ``x = N*patience/AHT > 0``, ``y = A*patience/AHT > 0``.

    ``gap`` must equal ``x - y`` computed without cancellation (``(N - A)*patience/AHT``).
    ``split`` is ``t/patience``. Arrays are 1-d and of equal length.
    """
    # Density of v given V > 0 is exp(-x v - y e^-v)/J; "0" is its own window, "1" is the
    # window of exp(-(x+1) v - y e^-v) = e^-v * (density), used for expectations of e^-v.
    w0 = _window(gap, x, y)
    w1 = _window(gap + 1.0, x + 1.0, y)
    wide = (w0.left < -1.0) | (w0.right > 1.0) | (w1.left < -1.0) | (w1.right > 1.0)
    peak = (w0.left < 0.0) | (w1.left < 0.0)
    k = x.shape[0]
    s0_lo, s0_hi, s1_lo, s1, s1v, q0_lo, q0 = (np.zeros(k) for _ in range(7))
    groups = (
        (~wide & ~peak, _NO_BREAKS),
        (~wide & peak, _PEAK_BREAKS),
        (wide, _WIDE_BREAKS),
    )
    for mask, breaks in groups:
        if not mask.any():
            continue
        v0, f0, lo0 = _quadrature(w0.take(mask), split[mask], breaks)
        v1, f1, lo1 = _quadrature(w1.take(mask), split[mask], breaks)
        g0 = f0 * -np.expm1(-v0)
        s0_lo[mask] = np.where(lo0, f0, 0.0).sum(axis=1)
        s0_hi[mask] = np.where(lo0, 0.0, f0).sum(axis=1)
        s1_lo[mask] = np.where(lo1, f1, 0.0).sum(axis=1)
        s1[mask] = f1.sum(axis=1)
        s1v[mask] = (f1 * v1).sum(axis=1)
        q0_lo[mask] = np.where(lo0, g0, 0.0).sum(axis=1)
        q0[mask] = g0.sum(axis=1)
    s0 = s0_lo + s0_hi

    # Peak of each window's exponent, relative: psi1* - psi0* (<= 0), computed case by case
    # so that nothing of size x or y is subtracted.
    int0 = gap < 0.0
    int1 = gap + 1.0 < 0.0
    both = int0 & int1
    with np.errstate(divide="ignore", invalid="ignore"):
        d_both = -w1.vstar + x * np.log1p(1.0 / x) - 1.0
        d_mixed = -x * x_minus_log1p(np.where(int0 & ~int1, -gap / x, 0.0))
    dpsi = np.where(both, d_both, np.where(int0, d_mixed, 0.0))
    ratio = np.exp(dpsi) / s0

    e_u = s1 * ratio
    e_u_le = s1_lo * ratio
    e_vu = s1v * ratio
    p_gt = s0_hi / s0
    # 1 - E[e^-v] cancels when v is concentrated near 0; then the direct integral of
    # (1 - e^-v) over window 0 is accurate (the window is narrow), and conversely.
    direct = e_u >= 0.5
    p_ab = np.where(direct, q0 / s0, 1.0 - e_u)
    t_frac = -np.expm1(-split)
    p_ab_le = np.where(direct, q0_lo / s0, (1.0 - p_gt) - e_u_le) + t_frac * p_gt
    # log A = log x + log J + y where log J = psi0* + log s0; psi0* + y = bd0(x, y) at an
    # interior peak, 0 otherwise.
    with np.errstate(divide="ignore"):
        log_a = np.log(x) + np.log(s0) + np.where(int0, bd0(x, y), 0.0)
    return OfferedWait(
        log_a=log_a,
        p_gt=np.clip(p_gt, 0.0, 1.0),
        e_u=np.clip(e_u, 0.0, 1.0),
        e_u_le=np.clip(e_u_le, 0.0, 1.0),
        e_vu=np.maximum(e_vu, 0.0),
        p_ab=np.clip(p_ab, 0.0, 1.0),
        p_ab_le=np.clip(p_ab_le, 0.0, 1.0),
    )


# -- closed forms (the fast path) --------------------------------------------------------------
#
# With u = y*exp(-v) the offered-wait integrals become incomplete gamma functions
# (Mandelbaum & Zeltyn 2007): for s > 0 and T >= 0,
#
#     int_0^T exp(-s*v - y*exp(-v)) dv = y**-s * Gamma(s) * (P(s, y) - P(s, y*exp(-T)))
#
# with P the regularised lower incomplete gamma (scipy.special.gammainc). Hence, given V > 0,
#
#     P(V > t)           = P(x, y e^-T) / P(x, y)
#     E[e^-v]            = (x/y) P(x+1, y) / P(x, y)
#     E[e^-v; V <= t]    = (x/y) (P(x+1, y) - P(x+1, y e^-T)) / P(x, y)
#     1 - E[e^-v]        = (y - x)/y + pois(x - 1; y) / P(x, y)     (P(s+1,y) = P(s,y) - pois(s; y))
#     A(x, y)            = P(x, y) / pois(x; y)
#
# where pois(k; y) = y**k e**-y / Gamma(k + 1) for real k. Only E[v e^-v] (the answered
# callers' wait) has no such form; :func:`answered_wait_moment` integrates it.
#
# These are accurate where P(x, y) does not underflow and the abandon share does not cancel;
# :func:`offered_wait_closed` flags the rest, which the caller sends to :func:`offered_wait`.

# Below this, P(x, y) is too close to underflow to trust its ratios.
_P_FLOOR: Final = 1e-250
# When x > y, 1 - E[e^-v] is a difference of two terms near (x - y)/y, and scipy's gammainc
# is good to ~1e-13..1e-11 relative (worse as x grows): below this floor, or beyond
# _X_CEILING, the quadrature is the more accurate and is used instead.
_P_AB_FLOOR: Final = 0.02
_X_CEILING: Final = 1e5


def _diff_p(
    s: FloatArray, hi: FloatArray, lo: FloatArray, p_hi: FloatArray, p_lo: FloatArray
) -> FloatArray:
    """``P(s, hi) - P(s, lo)`` for ``hi >= lo`` given both, recomputed from the upper
    functions ``Q`` where both are near 1 (where the difference would cancel)."""
    out = p_hi - p_lo
    upper = p_lo > 0.5
    if upper.any():
        su = s[upper]
        out[upper] = special.gammaincc(su, lo[upper]) - special.gammaincc(su, hi[upper])
    return out


def offered_wait_closed(
    gap: FloatArray, x: FloatArray, y: FloatArray, split: FloatArray
) -> tuple[OfferedWait, npt.NDArray[np.bool_]]:
    """:func:`offered_wait` by incomplete-gamma closed forms, except ``e_vu`` (NaN).

    Returns the law and a mask of the elements where the closed forms are trustworthy to
    ~1e-12 relative; the others must be recomputed by quadrature.
    """
    with np.errstate(all="ignore"):
        px = special.gammainc(x, y)
        yz = y * np.exp(-split)
        pz = special.gammainc(x, yz)
        x1 = x + 1.0
        p1 = special.gammainc(x1, y)
        d1 = _diff_p(x1, y, yz, p1, special.gammainc(x1, yz))
        d0 = _diff_p(x, y, yz, px, pz)
        r = x / y
        e_u = r * p1 / px
        e_u_le = r * d1 / px
        p_gt = pz / px
        p_le = d0 / px
        log_pois_prev = _log_pois_real(x - 1.0, y)
        tail = np.exp(log_pois_prev) / px
        # (y - x)/y + tail: both terms >= 0 when y >= x; otherwise 1 - e_u (checked below).
        p_ab = np.where(gap <= 0.0, -gap / y + tail, 1.0 - e_u)
        t_frac = -np.expm1(-split)
        p_ab_le = p_le - e_u_le + t_frac * p_gt
        log_a = np.log(px) - log_poisson_pmf(x, y)
        ok = (
            (px > _P_FLOOR)
            & (x <= _X_CEILING)
            & (yz > _P_FLOOR)
            & ((gap <= 0.0) | (p_ab > _P_AB_FLOOR))
            & np.isfinite(log_a)
            & np.isfinite(e_u)
            & np.isfinite(e_u_le)
            & np.isfinite(p_ab_le)
        )
    nan = np.full(x.shape, np.nan)
    return (
        OfferedWait(
            log_a=log_a,
            p_gt=np.clip(p_gt, 0.0, 1.0),
            e_u=np.clip(e_u, 0.0, 1.0),
            e_u_le=np.clip(e_u_le, 0.0, 1.0),
            e_vu=nan,
            p_ab=np.clip(p_ab, 0.0, 1.0),
            p_ab_le=np.clip(p_ab_le, 0.0, 1.0),
        ),
        ok,
    )


def _log_pois_real(k: FloatArray, m: FloatArray) -> FloatArray:
    """``log(m**k e**-m / Gamma(k + 1))`` for real ``k > -1`` (``k`` may lie in (-1, 0))."""
    neg = k < 0.0
    if not neg.any():
        return log_poisson_pmf(k, m)
    out = log_poisson_pmf(np.where(neg, 0.0, k), m)
    kn = k[neg]
    mn = m[neg]
    out[neg] = kn * np.log(mn) - mn - special.gammaln(kn + 1.0)
    return out


def answered_wait_moment(gap: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
    """``E[v e^-v] / E[e^-v]`` given ``V > 0``: the mean of v under ``exp(-(x+1)v - y e^-v)``.

    Quadrature on that one density's window (the same rules as :func:`offered_wait`).
    """
    w1 = _window(gap + 1.0, x + 1.0, y)
    out = np.zeros(x.shape)
    wide = (w1.left < -1.0) | (w1.right > 1.0)
    peak = w1.left < 0.0
    far = np.full(x.shape, np.inf)
    for mask, breaks in (
        (~wide & ~peak, _NO_BREAKS),
        (~wide & peak, _PEAK_BREAKS),
        (wide, _WIDE_BREAKS),
    ):
        if not mask.any():
            continue
        v1, f1, _ = _quadrature(w1.take(mask), far[mask], breaks)
        out[mask] = (f1 * v1).sum(axis=1) / f1.sum(axis=1)
    return out


def merge_wait(base: OfferedWait, mask: npt.NDArray[np.bool_], other: OfferedWait) -> OfferedWait:
    """``base`` with the elements selected by ``mask`` replaced by ``other`` (in order)."""
    fields = ("log_a", "p_gt", "e_u", "e_u_le", "e_vu", "p_ab", "p_ab_le")
    merged: dict[str, FloatArray] = {}
    for name in fields:
        arr = getattr(base, name).copy()
        arr[mask] = getattr(other, name)
        merged[name] = arr
    return OfferedWait(**merged)
