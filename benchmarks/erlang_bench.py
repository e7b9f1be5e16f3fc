"""Benchmark: required agents for 10,000 half-hour intervals, ours vs a textbook reference.

Intervals: 20-2,000 calls per 30 minutes, AHT 2-7 minutes, target 80 % answered within
20 s (of offered calls), seeded. We time ``sparklecomm.wfm.required_agents`` under
Erlang C and Erlang A (mean patience 300 s) against a straightforward scalar reference
written below, run in the same process, and check that both give identical agent counts.

The reference is what most calculators do: one interval at a time, agents incremented
one by one from a lower bound, Erlang C by the classic iterative formula
(``1/B(k) = 1 + k/A * 1/B(k-1)``, redone for every candidate), Erlang A by the
Garnett-Mandelbaum-Reiman closed forms with scipy's regularised incomplete gamma.
pyworkforce (the library the issue suggested as reference) is timed as well when it is
importable; it is not a dependency of SparkleComm. Its Erlang C is timed on all intervals;
the Erlang A comparison uses the first 200 intervals whose load is at most 50 Erlang.
pyworkforce 0.5.1 has *no* Erlang A (its ``queuing`` module offers ErlangC and
MultiErlangC only), so ``pyworkforce_a_ms`` times its Erlang C staffing on those
intervals (the closest it offers) against our Erlang A (patience 300 s) on the same
intervals; agent counts are not comparable across the two models, so the identity check
on that subset is pyworkforce's Erlang C against ours. Install it outside the repo:
``uv pip install --target /tmp/pwf_site pyworkforce==0.5.1`` and run with
``PYTHONPATH=/tmp/pwf_site``.

Run:  .venv/bin/python benchmarks/erlang_bench.py [--intervals N] [--seed S]
Ends with one JSON line: intervals, erlang_c_ms, reference_c_ms, erlang_a_ms,
reference_a_ms, identical, subset_intervals, erlang_a_subset_ms (and, if pyworkforce is
importable: pyworkforce_c_ms, pyworkforce_identical, pyworkforce_a_ms, speedup_a,
pyworkforce_subset_identical_c).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from scipy import special

from sparklecomm.wfm import Targets, offered_load, required_agents

INTERVAL = 1800.0
TARGET_TIME = 20.0
SERVICE_LEVEL = 0.8
PATIENCE = 300.0


def reference_erlang_c_agents(calls: float, aht: float) -> int:
    """Textbook Erlang C staffing for one interval."""
    a = calls * aht / INTERVAL
    n = math.floor(a) + 1
    while True:
        inv_b = 1.0
        for k in range(1, n + 1):
            inv_b = 1.0 + inv_b * k / a
        b = 1.0 / inv_b
        pw = n * b / (n - a * (1.0 - b))
        sl = 1.0 - pw * math.exp(-(n - a) * TARGET_TIME / aht)
        if sl >= SERVICE_LEVEL:
            return n
        n += 1


def reference_erlang_a_agents(calls: float, aht: float) -> int:
    """Textbook Erlang A staffing for one interval (closed forms, scalar scipy calls).

    Garnett, Mandelbaum & Reiman (2002): P(wait) = A B / (1 + (A - 1) B) with
    A = x e^y y^-x gamma(x, y), x = N mu/theta, y = lambda/theta, B Erlang B. Answered
    within t (Mandelbaum & Zeltyn 2007, integrated against the patience law):
    1 - P(wait) + P(wait) (x/y) [P(x+1, y) - P(x+1, y e^-theta t)] / P(x, y), P the
    regularised lower incomplete gamma. Starts at the bound N >= SL * A (no staffing
    answers a larger share of calls than N / A).
    """
    a = calls * aht / INTERVAL
    ratio = PATIENCE / aht
    n = max(1, math.ceil(SERVICE_LEVEL * a))
    while True:
        inv_b = 1.0
        for k in range(1, n + 1):
            inv_b = 1.0 + inv_b * k / a
        b = 1.0 / inv_b
        x, y = n * ratio, a * ratio
        p_xy = special.gammainc(x, y)
        log_big_a = math.log(x) + y - x * math.log(y) + special.gammaln(x) + math.log(p_xy)
        big_a = math.exp(log_big_a)
        pw = big_a * b / (1.0 + (big_a - 1.0) * b)
        z = math.exp(-TARGET_TIME / PATIENCE)
        within = (x / y) * (special.gammainc(x + 1, y) - special.gammainc(x + 1, y * z)) / p_xy
        sl = 1.0 - pw + pw * within
        if sl >= SERVICE_LEVEL:
            return n
        n += 1


def _ms(seconds: float) -> float:
    return round(1000.0 * seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20240506)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    calls = rng.uniform(20, 2000, args.intervals)
    aht = rng.uniform(120, 420, args.intervals)
    traffic = offered_load(calls, INTERVAL, aht)
    targets = Targets(SERVICE_LEVEL, TARGET_TIME)

    t0 = time.perf_counter()
    ours_c = required_agents(traffic, aht, targets).agents
    t1 = time.perf_counter()
    ours_a = required_agents(traffic, aht, targets, model="a", patience=PATIENCE).agents
    t2 = time.perf_counter()
    ref_c = np.array([reference_erlang_c_agents(c, h) for c, h in zip(calls, aht, strict=True)])
    t3 = time.perf_counter()
    ref_a = np.array([reference_erlang_a_agents(c, h) for c, h in zip(calls, aht, strict=True)])
    t4 = time.perf_counter()

    same_c = ours_c == ref_c
    same_a = ours_a == ref_a
    result: dict[str, object] = {
        "intervals": args.intervals,
        "erlang_c_ms": _ms(t1 - t0),
        "reference_c_ms": _ms(t3 - t2),
        "erlang_a_ms": _ms(t2 - t1),
        "reference_a_ms": _ms(t4 - t3),
        "identical": bool(same_c.all() and same_a.all()),
    }
    subset = np.nonzero(traffic <= 50.0)[0][:200]
    t_s0 = time.perf_counter()
    sub_a = required_agents(
        traffic[subset], aht[subset], targets, model="a", patience=PATIENCE
    ).agents
    t_s1 = time.perf_counter()
    result["subset_intervals"] = int(subset.size)
    result["erlang_a_subset_ms"] = _ms(t_s1 - t_s0)
    assert (sub_a == ours_a[subset]).all()
    print(
        f"Erlang C: ours {result['erlang_c_ms']} ms, reference {result['reference_c_ms']} ms, "
        f"{int(same_c.sum())}/{args.intervals} identical"
    )
    print(
        f"Erlang A: ours {result['erlang_a_ms']} ms, reference {result['reference_a_ms']} ms, "
        f"{int(same_a.sum())}/{args.intervals} identical"
    )
    try:
        from pyworkforce.queuing import ErlangC
    except ImportError:
        print("pyworkforce not importable: skipped")
    else:
        t5 = time.perf_counter()
        pwf = np.array(
            [
                ErlangC(
                    transactions=c, aht=h / 60, asa=TARGET_TIME / 60, interval=INTERVAL / 60
                ).required_positions(service_level=SERVICE_LEVEL)["raw_positions"]
                for c, h in zip(calls, aht, strict=True)
            ]
        )
        t6 = time.perf_counter()
        result["pyworkforce_c_ms"] = _ms(t6 - t5)
        result["pyworkforce_identical"] = bool((pwf == ours_c).all())
        print(
            f"pyworkforce ErlangC: {result['pyworkforce_c_ms']} ms, "
            f"{int((pwf == ours_c).sum())}/{args.intervals} identical to ours"
        )
        t7 = time.perf_counter()
        pwf_sub = np.array(
            [
                ErlangC(
                    transactions=calls[i],
                    aht=aht[i] / 60,
                    asa=TARGET_TIME / 60,
                    interval=INTERVAL / 60,
                ).required_positions(service_level=SERVICE_LEVEL)["raw_positions"]
                for i in subset
            ]
        )
        t8 = time.perf_counter()
        result["pyworkforce_a_ms"] = _ms(t8 - t7)
        result["pyworkforce_a_model"] = "erlang-c (pyworkforce 0.5.1 has no Erlang A)"
        result["speedup_a"] = round((t8 - t7) / max(t_s1 - t_s0, 1e-9), 1)
        result["pyworkforce_subset_identical_c"] = bool((pwf_sub == ours_c[subset]).all())
        print(
            f"First {subset.size} intervals with load <= 50 Erlang: our Erlang A "
            f"{result['erlang_a_subset_ms']} ms, pyworkforce (Erlang C, it has no Erlang A) "
            f"{result['pyworkforce_a_ms']} ms, {result['speedup_a']}x"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
