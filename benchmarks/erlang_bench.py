"""Benchmark: required agents for 10,000 half-hour intervals, ours vs a textbook reference.

Intervals: 20-2,000 calls per 30 minutes, AHT 2-7 minutes, target 80 % answered within
20 s (of offered calls), seeded. We time ``sparklecomm.wfm.required_agents`` under
Erlang C and Erlang A (mean patience 300 s) against a straightforward scalar reference
written below, run in the same process, and check that both give identical agent counts.

The reference is what most calculators do: one interval at a time, agents incremented
one by one from a lower bound, Erlang C by the classic iterative formula
(``1/B(k) = 1 + k/A * 1/B(k-1)``, redone for every candidate), Erlang A by the
Garnett-Mandelbaum-Reiman closed forms with scipy's regularised incomplete gamma.
pyworkforce (the library the issue names as reference; not a dependency of SparkleComm) is
timed too, in its own environment because it needs Python >= 3.12: its ErlangC on every
interval, and its ErlangA (added in pyworkforce 0.5.4; an exact birth-death chain plus
uniformisation per candidate) on the first 200 intervals whose load is at most 50 Erlang,
against our Erlang A on the same 200. Set it up once outside the repository:

    .tools/bin/uv venv -p python3.12 /tmp/pwf_venv
    .tools/bin/uv pip install -p /tmp/pwf_venv/bin/python pyworkforce==0.5.4

and pass ``--pyworkforce-python /tmp/pwf_venv/bin/python`` (the default) or set
``PYWORKFORCE_PYTHON``.

Run:  .venv/bin/python benchmarks/erlang_bench.py [--intervals N] [--seed S]
Ends with one JSON line: intervals, erlang_c_ms, reference_c_ms, erlang_a_ms,
reference_a_ms, identical (every agent count matches the references and pyworkforce),
subset_intervals, erlang_a_subset_ms and, when pyworkforce ran: pyworkforce_version,
pyworkforce_c_ms, pyworkforce_identical, pyworkforce_a_ms, pyworkforce_a_identical,
speedup_c, speedup_a.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from sparklecomm.wfm import Targets, offered_load, required_agents

INTERVAL = 1800.0
TARGET_TIME = 20.0
SERVICE_LEVEL = 0.8
PATIENCE = 300.0
DEFAULT_PWF_PYTHON = "/tmp/pwf_venv/bin/python"


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


# Run in pyworkforce's own interpreter (it needs Python >= 3.12; SparkleComm's venv is 3.11):
# reads {"calls", "aht", "subset"} on stdin, prints agent counts and timings as JSON.
_PWF_SCRIPT = """
import json, sys, time
from importlib.metadata import version
from pyworkforce.queuing import ErlangA, ErlangC
d = json.load(sys.stdin)
calls, aht, subset = d["calls"], d["aht"], d["subset"]
iv, asa, sl, pat = d["interval"] / 60, d["target"] / 60, d["sl"], d["patience"] / 60
t0 = time.perf_counter()
c = [ErlangC(transactions=x, aht=h / 60, asa=asa, interval=iv)
     .required_positions(service_level=sl)["raw_positions"] for x, h in zip(calls, aht)]
t1 = time.perf_counter()
a = [ErlangA(transactions=calls[i], aht=aht[i] / 60, asa=asa, interval=iv, patience=pat)
     .required_positions(service_level=sl)["raw_positions"] for i in subset]
t2 = time.perf_counter()
print(json.dumps({"version": version("pyworkforce"), "c_agents": c, "a_agents": a,
                  "c_seconds": t1 - t0, "a_seconds": t2 - t1}))
"""


def run_pyworkforce(
    python: str | None, calls: np.ndarray, aht: np.ndarray, subset: np.ndarray
) -> dict[str, Any] | None:
    """pyworkforce's ErlangC on every interval and ErlangA on ``subset``, timed in its own
    interpreter; None when that interpreter is not there."""
    if not python or not Path(python).exists():
        return None
    payload = {
        "calls": calls.tolist(),
        "aht": aht.tolist(),
        "subset": subset.tolist(),
        "interval": INTERVAL,
        "target": TARGET_TIME,
        "sl": SERVICE_LEVEL,
        "patience": PATIENCE,
    }
    done = subprocess.run(
        [python, "-c", _PWF_SCRIPT],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"pyworkforce failed: {done.stderr.strip()[-2000:]}")
        return None
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20240506)
    parser.add_argument(
        "--pyworkforce-python",
        default=os.environ.get("PYWORKFORCE_PYTHON", DEFAULT_PWF_PYTHON),
        help="interpreter of a separate environment with pyworkforce >= 0.5.4 installed",
    )
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
    pwf = run_pyworkforce(args.pyworkforce_python, calls, aht, subset)
    if pwf is None:
        print("pyworkforce not available (see --pyworkforce-python): skipped")
    else:
        pwf_c = np.array(pwf["c_agents"])
        pwf_a = np.array(pwf["a_agents"])
        result["pyworkforce_version"] = pwf["version"]
        result["pyworkforce_c_ms"] = _ms(pwf["c_seconds"])
        result["pyworkforce_identical"] = bool((pwf_c == ours_c).all())
        result["pyworkforce_a_ms"] = _ms(pwf["a_seconds"])
        result["pyworkforce_a_identical"] = bool((pwf_a == sub_a).all())
        result["speedup_c"] = round(pwf["c_seconds"] / max(t1 - t0, 1e-9), 1)
        result["speedup_a"] = round(pwf["a_seconds"] / max(t_s1 - t_s0, 1e-9), 1)
        result["identical"] = bool(
            result["identical"]
            and result["pyworkforce_identical"]
            and result["pyworkforce_a_identical"]
        )
        print(
            f"pyworkforce {pwf['version']} ErlangC: {result['pyworkforce_c_ms']} ms, "
            f"{int((pwf_c == ours_c).sum())}/{args.intervals} identical to ours, "
            f"ours {result['speedup_c']}x faster"
        )
        print(
            f"First {subset.size} intervals with load <= 50 Erlang, Erlang A (patience "
            f"{PATIENCE:g} s): ours {result['erlang_a_subset_ms']} ms, pyworkforce ErlangA "
            f"{result['pyworkforce_a_ms']} ms, {int((pwf_a == sub_a).sum())}/{subset.size} "
            f"identical, ours {result['speedup_a']}x faster"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
