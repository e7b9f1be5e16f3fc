"""HTTP routes of the wallboard's and the agent desktop's figures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from sparklecomm.api.deps import CurrentPrincipal, ServicesDep, Supervisor
from sparklecomm.container import Services
from sparklecomm.stats.service import StatsService
from sparklecomm.stats.thresholds import ThresholdService

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])


def stats(svc: Services) -> StatsService:
    service: StatsService = svc.extra["stats"]
    return service


@router.get("/queues")
def queue_stats(principal: Supervisor, svc: ServicesDep) -> dict[str, Any]:
    """Today per queue (offered, answered, abandoned, service level, ASA, AHT, CSAT) and by
    15-minute interval; computed from the routing event stream and the survey answers."""
    return stats(svc).queues(principal)


@router.get("/agents/{agent_id}/today")
def agent_today(
    agent_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> dict[str, Any]:
    """An agent's day: handled, average handle time, time in each state, CSAT."""
    return stats(svc).agent_today(principal, agent_id)


@router.get("/presence")
def presence(principal: CurrentPrincipal, svc: ServicesDep) -> list[dict[str, Any]]:
    """Agents with their state, for choosing a transfer target."""
    return stats(svc).presence(principal)


# ---- alert thresholds ------------------------------------------------------------------


class ThresholdsIn(BaseModel):
    """A change of alert thresholds; a field left out keeps its value, null inherits."""

    model_config = ConfigDict(extra="forbid")
    max_wait_seconds: int | None = Field(default=None, ge=1, le=86_400)
    min_service_level: float | None = Field(default=None, ge=0, le=100)
    max_waiting: int | None = Field(default=None, ge=1, le=100_000)


def thresholds(svc: Services) -> ThresholdService:
    return stats(svc).thresholds


@router.get("/thresholds")
def get_thresholds(principal: Supervisor, svc: ServicesDep) -> dict[str, Any]:
    """The alert thresholds: the tenant's defaults, each queue's overrides and what applies."""
    return thresholds(svc).get(principal)


@router.put("/thresholds")
def set_tenant_thresholds(
    body: ThresholdsIn, principal: Supervisor, svc: ServicesDep
) -> dict[str, Any]:
    """Set the tenant's default thresholds (audited; every wallboard follows)."""
    return thresholds(svc).do_set(principal, None, body.model_dump(exclude_unset=True))


@router.put("/thresholds/queues/{queue_id}")
def set_queue_thresholds(
    queue_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: ThresholdsIn,
    principal: Supervisor,
    svc: ServicesDep,
) -> dict[str, Any]:
    """Set one queue's thresholds (null: follow the tenant's default)."""
    return thresholds(svc).do_set(principal, queue_id, body.model_dump(exclude_unset=True))


@router.delete("/thresholds/queues/{queue_id}")
def clear_queue_thresholds(
    queue_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Supervisor,
    svc: ServicesDep,
) -> dict[str, Any]:
    """Remove a queue's own thresholds: it follows the tenant's defaults again."""
    return thresholds(svc).do_clear(principal, queue_id)
