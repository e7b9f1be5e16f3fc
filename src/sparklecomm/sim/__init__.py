"""Discrete-event simulation of a contact center: the digital twin.

Synthetic customers and agents drive the real routing engine (:mod:`sparklecomm.acd`) on a
fake clock, so the simulated event stream is the live one and the KPIs come from the same
:mod:`sparklecomm.analytics` code. Public API::

    from sparklecomm.sim import load_scenario, simulate, run_replications

    scenario = load_scenario(Path("scenario.yaml"))
    result = simulate(scenario)                   # one replication: result.report (KPIs)
    summary = run_replications(scenario, 10)      # means and 95 % confidence intervals

The scenario format and the validation against Erlang C / Erlang A are described in
docs/wfm.md ("Simulating a day").
"""

from sparklecomm.sim.distributions import (
    Constant,
    Distribution,
    Empirical,
    Exponential,
    LogNormal,
    parse_distribution,
)
from sparklecomm.sim.errors import ScenarioError
from sparklecomm.sim.results import HEADLINE, headline, mean_ci, run_replications, summarize
from sparklecomm.sim.scenario import (
    AgentGroup,
    ArrivalSpec,
    CallbackSpec,
    QueueMembership,
    QueueSpec,
    RateSegment,
    Scenario,
    Shift,
    TransferSpec,
    load_scenario,
    parse_scenario,
)
from sparklecomm.sim.simulator import SimResult, Simulation, replication_seed, simulate

__all__ = [
    "HEADLINE",
    "AgentGroup",
    "ArrivalSpec",
    "CallbackSpec",
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "LogNormal",
    "QueueMembership",
    "QueueSpec",
    "RateSegment",
    "Scenario",
    "ScenarioError",
    "Shift",
    "SimResult",
    "Simulation",
    "TransferSpec",
    "headline",
    "load_scenario",
    "mean_ci",
    "parse_distribution",
    "parse_scenario",
    "replication_seed",
    "run_replications",
    "simulate",
    "summarize",
]
