"""HTTP route for reading the audit log (administrators)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from sparklecomm.api.deps import Admin, ServicesDep
from sparklecomm.audit.store import list_audit

router = APIRouter(prefix="/api/v1", tags=["audit"])


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    time: datetime
    actor_id: str | None
    actor_name: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    total: int


@router.get("/audit", response_model=AuditPage)
def read_audit(
    principal: Admin,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> AuditPage:
    """Newest first; page with ``before_id`` = the smallest id of the previous page."""
    with svc.db.read() as s:
        rows, total = list_audit(s, principal.tenant_id, limit=limit, before_id=before_id)
        return AuditPage(entries=[AuditEntry.model_validate(r) for r in rows], total=total)
