"""Figures for the wallboard and the agent's "today", served over HTTP.

Every KPI comes from ``sparklecomm.analytics.KpiAccumulator`` (the definitions of
docs/kpis.md, the same code as the simulator's), fed with the tenant's routing event stream;
this package only keeps one accumulator per tenant (and per agent) up to date and shapes the
answers for the pages.
"""
