"""Workforce management: queueing formulas, staffing, forecasting and shift scheduling
(pure, numpy/scipy).

Public API::

    from sparklecomm.wfm import (
        offered_load, erlang_b, erlang_c, erlang_c_metrics, erlang_a_metrics,
        service_level, QueueMetrics, Targets, Staffing, required_agents, scheduled_agents,
    )
    # Shift scheduling (imports scipy.optimize, so it is not loaded with the package):
    from sparklecomm.wfm.schedule import parse_shifts, build_roster, Roster, Infeasible

The command line lives in :mod:`sparklecomm.wfm.cli` (the only module here doing I/O).
Simulation (the digital twin checking a plan on the real routing engine) is
:mod:`sparklecomm.sim`.
"""

from sparklecomm.wfm.erlang import (
    AsaBasis,
    QueueMetrics,
    ServiceLevelBasis,
    erlang_a_metrics,
    erlang_b,
    erlang_c,
    erlang_c_metrics,
    offered_load,
    service_level,
)
from sparklecomm.wfm.staffing import (
    Model,
    Staffing,
    Targets,
    required_agents,
    scheduled_agents,
)

__all__ = [
    "AsaBasis",
    "Model",
    "QueueMetrics",
    "ServiceLevelBasis",
    "Staffing",
    "Targets",
    "erlang_a_metrics",
    "erlang_b",
    "erlang_c",
    "erlang_c_metrics",
    "offered_load",
    "required_agents",
    "scheduled_agents",
    "service_level",
]
