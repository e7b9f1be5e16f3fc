"""Alert thresholds of the wallboard, kept on the server per tenant and per queue.

Supervisors edit them on the wallboard; each change is validated, audited and emitted as a
``thresholds.updated`` event so that every open wallboard of the tenant follows at once.
Unset fields inherit (queue → tenant → built-in defaults).
"""

from __future__ import annotations

from typing import Any

from sparklecomm.acd.service import AcdService
from sparklecomm.audit.store import write_audit_txn
from sparklecomm.auth.service import Principal
from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import InvalidInput, NotFound, PermissionDenied
from sparklecomm.core.events import NewEvent
from sparklecomm.stats import store
from sparklecomm.stats.models import TENANT_DEFAULT, AlertThreshold
from sparklecomm.store.db import Database

#: What applies when neither the queue nor the tenant set a field.
BUILTIN: dict[str, float] = {"max_wait_seconds": 60, "min_service_level": 80, "max_waiting": 10}
#: Allowed range of each field (inclusive).
LIMITS: dict[str, tuple[float, float]] = {
    "max_wait_seconds": (1, 86_400),
    "min_service_level": (0, 100),
    "max_waiting": (1, 100_000),
}
FIELDS = tuple(BUILTIN)


def _stored(row: AlertThreshold | None) -> dict[str, Any]:
    return {f: (getattr(row, f) if row is not None else None) for f in FIELDS}


def validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check a change: known fields, numbers in range (None = inherit). Raises InvalidInput
    naming the field."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in LIMITS:
            raise InvalidInput(f"unknown threshold {name!r}", field=name)
        if value is None:
            out[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{name} must be a number or null", field=name)
        low, high = LIMITS[name]
        if not low <= value <= high or value != value:  # NaN fails too
            raise InvalidInput(f"{name} must be between {low:g} and {high:g}", field=name)
        if name != "min_service_level" and value != int(value):
            raise InvalidInput(f"{name} must be a whole number", field=name)
        out[name] = int(value) if name != "min_service_level" else float(value)
    return out


class ThresholdService:
    """Reads and changes a tenant's alert thresholds."""

    def __init__(self, db: Database, clock: Clock, acd: AcdService) -> None:
        self.db = db
        self.clock = clock
        self.acd = acd

    def get(self, principal: Principal) -> dict[str, Any]:
        """The tenant's defaults, each queue's overrides, and what applies to each queue."""
        with self.db.read() as s:
            rows = {r.queue_id: r for r in store.thresholds(s, principal.tenant_id)}
        queue_ids = self.acd.read(principal.tenant_id, lambda e: list(e.queue_ids()))
        tenant = _stored(rows.get(TENANT_DEFAULT))
        default = {f: tenant[f] if tenant[f] is not None else BUILTIN[f] for f in FIELDS}
        queues: dict[str, Any] = {}
        for qid in sorted(set(queue_ids) | (set(rows) - {TENANT_DEFAULT})):
            own = _stored(rows.get(qid))
            queues[qid] = {
                "override": own,
                "effective": {f: own[f] if own[f] is not None else default[f] for f in FIELDS},
            }
        return {"builtin": BUILTIN, "tenant": tenant, "default": default, "queues": queues}

    def do_set(
        self, principal: Principal, queue_id: str | None, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Set the tenant's defaults (``queue_id`` None) or a queue's overrides; the fields
        not in ``values`` keep their value."""
        if not principal.has_role("supervisor"):
            raise PermissionDenied("only supervisors change alert thresholds")
        changes = validate(values)
        key = TENANT_DEFAULT if queue_id is None else queue_id
        if queue_id is not None:
            known = self.acd.read(principal.tenant_id, lambda e: queue_id in e.queue_ids())
            if not known:
                raise NotFound(f"no queue {queue_id!r}", field="queue_id")
        with self.db.write() as tx:
            row = store.threshold(tx.session, principal.tenant_id, key)
            before = _stored(row)
            if row is None:
                row = AlertThreshold(tenant_id=principal.tenant_id, queue_id=key)
                tx.session.add(row)
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = self.clock.now()
            row.updated_by = principal.actor.name
            after = _stored(row)
            details = {"queue_id": queue_id, "before": before, "after": after}
            write_audit_txn(
                tx.session,
                self.clock,
                tenant_id=principal.tenant_id,
                actor=principal.actor,
                action="thresholds.updated",
                target_type="queue" if queue_id is not None else "tenant",
                target_id=queue_id or principal.tenant_id,
                details=details,
            )
            tx.emit(
                principal.tenant_id,
                NewEvent("thresholds.updated", {"queue_id": queue_id, "thresholds": after}),
            )
        return self.get(principal)

    def do_clear(self, principal: Principal, queue_id: str) -> dict[str, Any]:
        """Remove a queue's overrides: it follows the tenant's defaults again."""
        if not principal.has_role("supervisor"):
            raise PermissionDenied("only supervisors change alert thresholds")
        with self.db.write() as tx:
            row = store.threshold(tx.session, principal.tenant_id, queue_id)
            if row is None:
                raise NotFound(f"queue {queue_id!r} has no thresholds of its own", field="queue_id")
            before = _stored(row)
            tx.session.delete(row)
            write_audit_txn(
                tx.session,
                self.clock,
                tenant_id=principal.tenant_id,
                actor=principal.actor,
                action="thresholds.cleared",
                target_type="queue",
                target_id=queue_id,
                details={"queue_id": queue_id, "before": before},
            )
            tx.emit(
                principal.tenant_id,
                NewEvent("thresholds.updated", {"queue_id": queue_id, "thresholds": None}),
            )
        return self.get(principal)
