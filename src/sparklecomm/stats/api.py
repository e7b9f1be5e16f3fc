"""HTTP routes of the wallboard's and the agent desktop's figures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from sparklecomm.api.deps import CurrentPrincipal, ServicesDep, Supervisor
from sparklecomm.container import Services
from sparklecomm.stats.service import StatsService

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])


def stats(svc: Services) -> StatsService:
    service: StatsService = svc.extra["stats"]
    return service


@router.get("/queues")
def queue_stats(principal: Supervisor, svc: ServicesDep) -> dict[str, Any]:
    """Today per queue (offered, answered, abandoned, service level, ASA, AHT) and by
    15-minute interval; computed from the routing event stream."""
    return stats(svc).queues(principal)


@router.get("/agents/{agent_id}/today")
def agent_today(
    agent_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> dict[str, Any]:
    """An agent's day: handled, average handle time, time in each state."""
    return stats(svc).agent_today(principal, agent_id)


@router.get("/presence")
def presence(principal: CurrentPrincipal, svc: ServicesDep) -> list[dict[str, Any]]:
    """Agents with their state, for choosing a transfer target."""
    return stats(svc).presence(principal)
