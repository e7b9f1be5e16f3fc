"""Independent reference computations for the Erlang formulas (tests only).

Nothing here shares code or derivations with ``sparklecomm.wfm``: Erlang B/C by exact
rational arithmetic, Erlang A from the birth-death chain and a tagged-caller Markov chain
solved with dense linear algebra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import linalg


def erlang_b_exact(traffic: Fraction, lines: int) -> Fraction:
    """B = (A^N/N!) / sum_{k<=N} A^k/k!, in exact rationals."""
    terms = [traffic**k / math.factorial(k) for k in range(lines + 1)]
    return terms[-1] / sum(terms)


def erlang_c_exact(traffic: Fraction, agents: int) -> Fraction:
    """C = (A^N/N! * N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! * N/(N-A)), exact."""
    last = traffic**agents / math.factorial(agents) * agents / (agents - traffic)
    head = sum(traffic**k / math.factorial(k) for k in range(agents))
    return last / (head + last)


@dataclass(frozen=True)
class ErlangAReference:
    p_wait: float
    p_abandon: float
    answered_within: float
    abandoned_within: float
    asa_answered: float
    asa_offered: float
    mean_queue: float


def erlang_a_reference(
    traffic: float, agents: int, aht: float, patience: float, target: float, depth: int = 400
) -> ErlangAReference:
    """M/M/N+M by brute force.

    The number in system is a birth-death chain (truncated at N + depth waiting; the tail
    mass is negligible for the cases tested). An arriving caller sees its stationary law
    (PASTA). A caller who finds j callers waiting then moves down a pure-death chain:
    from position j (j ahead) to j-1 at rate N*mu + j*theta (someone ahead is served or
    hangs up), to "served" from position 0 at rate N*mu, and to "abandoned" at rate theta
    from anywhere. Its absorption probabilities by time t come from ``expm``; mean times
    from the fundamental matrix.
    """
    lam = traffic / aht
    mu = 1.0 / aht
    theta = 1.0 / patience
    top = agents + depth
    logp = np.zeros(top + 1)
    for j in range(1, top + 1):
        death = min(j, agents) * mu + max(j - agents, 0) * theta
        logp[j] = logp[j - 1] + math.log(lam / death)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    p_wait = float(p[agents:].sum())
    waiting = np.arange(top + 1) - agents
    mean_queue = float(np.clip(waiting, 0, None) @ p)

    # Tagged caller: transient states 0..depth (callers ahead), absorbing served/abandoned.
    size = depth + 1
    q = np.zeros((size + 2, size + 2))
    served, abandoned = size, size + 1
    for j in range(size):
        if j == 0:
            q[j, served] = agents * mu
        else:
            q[j, j - 1] = agents * mu + j * theta
        q[j, abandoned] = theta
        q[j, j] = -q[j].sum()
    start = p[agents : agents + size]  # arriving caller finds j waiting ahead
    start = start / start.sum()
    at_t = linalg.expm(q * target)
    served_by_t = float(start @ at_t[:size, served])
    abandoned_by_t = float(start @ at_t[:size, abandoned])
    qtt = q[:size, :size]
    fundamental = np.linalg.inv(-qtt)
    to_served = q[:size, served]
    p_served_if_wait = float(start @ fundamental @ to_served)
    time_served_if_wait = float(start @ fundamental @ fundamental @ to_served)
    p_abandon = p_wait * (1.0 - p_served_if_wait)
    answered = 1.0 - p_abandon
    # Mean time in queue of every caller: until served or abandoned, 0 if not delayed.
    mean_wait_if_wait = float(start @ fundamental @ np.ones(size))
    return ErlangAReference(
        p_wait=p_wait,
        p_abandon=p_abandon,
        answered_within=(1.0 - p_wait) + p_wait * served_by_t,
        abandoned_within=p_wait * abandoned_by_t,
        asa_answered=p_wait * time_served_if_wait / answered,
        asa_offered=p_wait * mean_wait_if_wait,
        mean_queue=mean_queue,
    )
