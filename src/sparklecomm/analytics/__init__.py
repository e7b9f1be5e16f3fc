"""Contact-center KPIs derived from the routing event stream (pure).

Public API::

    from sparklecomm.analytics import KpiAccumulator, KpiConfig, Kpis, KpiReport

    acc = KpiAccumulator(KpiConfig(interval_seconds=900))
    for event in events:          # NewEvent / Event objects, in stream order
        acc.feed(event)
    report = acc.report()         # totals, per queue, per interval
    report.overall.service_level, report.queues["support"].asa

Definitions: docs/kpis.md.
"""

from sparklecomm.analytics.kpis import (
    DEFAULT_SERVICE_LEVEL_SECONDS,
    DEFAULT_SHORT_ABANDON_SECONDS,
    OVERALL,
    RATES,
    SL_BASES,
    IntervalKpis,
    JsonEvent,
    KpiAccumulator,
    KpiConfig,
    KpiReport,
    Kpis,
    ServiceLevelBasis,
    StreamEvent,
    Tally,
    event_from_json,
)

__all__ = [
    "DEFAULT_SERVICE_LEVEL_SECONDS",
    "DEFAULT_SHORT_ABANDON_SECONDS",
    "OVERALL",
    "RATES",
    "SL_BASES",
    "IntervalKpis",
    "JsonEvent",
    "KpiAccumulator",
    "KpiConfig",
    "KpiReport",
    "Kpis",
    "ServiceLevelBasis",
    "StreamEvent",
    "Tally",
    "event_from_json",
]
