"""Customer records, interaction notes and desk codes: check → do (one transaction) → event.

Events carry ids and the names of changed fields, never the customer's personal data: the
tenant's stream reaches every signed-in user, the record itself is read through the API.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparklecomm.audit.store import write_audit_txn
from sparklecomm.auth.service import Principal
from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sparklecomm.core.events import NewEvent
from sparklecomm.core.ids import new_id
from sparklecomm.customers import store
from sparklecomm.customers.models import Customer, DeskCode, InteractionNote
from sparklecomm.store.db import Database

CUSTOMER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 ().-]{2,38}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The routing engine's own rule for reason and disposition codes.
CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
CODE_KINDS = ("reason", "disposition")
VIP_TIERS = ("silver", "gold", "platinum")
CUSTOMER_FIELDS = ("name", "phone", "email", "vip_tier", "attributes")
#: Attributes an interaction may carry that name the caller's number.
PHONE_ATTRIBUTES = ("phone", "ani", "from", "caller", "to")
HISTORY_LIMIT = 20


def customer_payload(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "phone": c.phone,
        "email": c.email,
        "vip_tier": c.vip_tier,
        "attributes": c.attributes or {},
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
    }


def note_payload(n: InteractionNote) -> dict[str, Any]:
    return {
        "id": n.id,
        "interaction_id": n.interaction_id,
        "customer_id": n.customer_id,
        "author_id": n.author_id,
        "author_name": n.author_name,
        "kind": n.kind,
        "disposition": n.disposition,
        "text": n.text,
        "time": n.time.isoformat(),
    }


def code_payload(c: DeskCode) -> dict[str, Any]:
    return {"kind": c.kind, "code": c.code, "label": c.label, "active": c.active}


#: Codes a new organisation starts with (the demo and first start use them).
DEFAULT_CODES: dict[str, list[tuple[str, str]]] = {
    "reason": [
        ("lunch", "Lunch"),
        ("coffee", "Coffee break"),
        ("training", "Training"),
        ("coaching", "Coaching"),
        ("meeting", "Meeting"),
    ],
    "disposition": [
        ("resolved", "Resolved"),
        ("follow-up", "Needs follow-up"),
        ("escalated", "Escalated"),
        ("sale", "Sale"),
        ("wrong-number", "Wrong number"),
    ],
}


@dataclass(frozen=True)
class CustomerInput:
    """Checked fields of a customer record (None: not given)."""

    fields: dict[str, Any]


def _clean_text(value: Any, field: str, *, max_len: int, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidInput(f"{field} is required", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field=field)
    text = str(value).strip()
    if not text:
        if required:
            raise InvalidInput(f"{field} is required", field=field)
        return None
    if len(text) > max_len:
        raise InvalidInput(f"{field} must be at most {max_len} characters", field=field)
    return text


def check_customer_fields(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate customer fields; returns the cleaned ones that were given."""
    out: dict[str, Any] = {}
    unknown = set(data) - set(CUSTOMER_FIELDS) - {"id"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {name!r}", field=name)
    if "name" in data or not partial:
        out["name"] = _clean_text(data.get("name"), "name", max_len=200, required=True)
    if "phone" in data:
        phone = _clean_text(data["phone"], "phone", max_len=40)
        if phone is not None and not PHONE_RE.match(phone):
            raise InvalidInput("phone must be a phone number such as +15550100", field="phone")
        out["phone"] = phone
    if "email" in data:
        email = _clean_text(data["email"], "email", max_len=254)
        if email is not None and not EMAIL_RE.match(email):
            raise InvalidInput("email must look like name@example.com", field="email")
        out["email"] = email
    if "vip_tier" in data:
        tier = _clean_text(data["vip_tier"], "vip_tier", max_len=20)
        if tier is not None and tier not in VIP_TIERS:
            raise InvalidInput(
                f"vip_tier must be one of {', '.join(VIP_TIERS)} (or empty)", field="vip_tier"
            )
        out["vip_tier"] = tier
    if "attributes" in data:
        attrs = data["attributes"] or {}
        if not isinstance(attrs, dict) or len(attrs) > 50:
            raise InvalidInput(
                "attributes must be an object of at most 50 keys", field="attributes"
            )
        for key, value in attrs.items():
            if not isinstance(key, str) or not 0 < len(key) <= 50:
                raise InvalidInput("attribute names are 1-50 characters", field="attributes")
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise InvalidInput(
                    f"attribute {key!r} must be text, a number or true/false", field="attributes"
                )
            if isinstance(value, str) and len(value) > 500:
                raise InvalidInput(f"attribute {key!r} is too long", field="attributes")
        out["attributes"] = dict(attrs)
    return out


class CustomerService:
    """Customer records, notes and codes of every tenant. Permission checks are here too."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        #: ``listener(tenant_id, kind)`` after codes of that kind changed (committed); the
        #: routing service uses it to give the engine the new break reason codes.
        self.code_listeners: list[Callable[[str, str], None]] = []

    def _codes_changed(self, tenant_id: str, kind: str) -> None:
        for listener in self.code_listeners:
            listener(tenant_id, kind)

    # ---- customers -----------------------------------------------------------------------

    def search(self, principal: Principal, query: str | None, limit: int = 50) -> list[Customer]:
        with self.db.read() as s:
            return store.search_customers(s, principal.tenant_id, query, limit)

    def get(self, principal: Principal, customer_id: str) -> Customer:
        with self.db.read() as s:
            customer = store.get_customer(s, principal.tenant_id, customer_id)
        if customer is None:
            raise NotFound(f"no customer {customer_id!r}", field="customer_id")
        return customer

    def do_create(self, principal: Principal, data: dict[str, Any]) -> Customer:
        """Create a customer record (any signed-in user; agents create them on a call)."""
        fields = check_customer_fields(data, partial=False)
        customer_id = data.get("id") or new_id()[:16]
        if not isinstance(customer_id, str) or not CUSTOMER_ID_RE.match(customer_id):
            raise InvalidInput("id: letters, digits and _ . : - (at most 100)", field="id")
        now = self.clock.now()
        with self.db.write() as tx:
            if store.get_customer(tx.session, principal.tenant_id, customer_id) is not None:
                raise Conflict(f"customer {customer_id!r} exists already", field="id")
            fields.setdefault("attributes", {})
            customer = Customer(
                tenant_id=principal.tenant_id,
                id=customer_id,
                created_at=now,
                updated_at=now,
                **fields,
            )
            tx.session.add(customer)
            self._audit(tx, principal, "customer.created", "customer", customer_id, {})
            tx.emit(
                principal.tenant_id,
                NewEvent("customer.created", {"customer_id": customer_id}),
            )
        return customer

    def do_update(self, principal: Principal, customer_id: str, data: dict[str, Any]) -> Customer:
        """Change some fields of a customer record (audited: who changed which fields)."""
        if "id" in data:
            raise InvalidInput("a customer's id cannot change", field="id")
        fields = check_customer_fields(data, partial=True)
        if not fields:
            raise InvalidInput("nothing to change", field="name")
        with self.db.write() as tx:
            customer = store.get_customer(tx.session, principal.tenant_id, customer_id)
            if customer is None:
                raise NotFound(f"no customer {customer_id!r}", field="customer_id")
            changed = [k for k, v in fields.items() if getattr(customer, k) != v]
            for key in changed:
                setattr(customer, key, fields[key])
            if changed:
                customer.updated_at = self.clock.now()
                self._audit(
                    tx, principal, "customer.updated", "customer", customer_id, {"fields": changed}
                )
                tx.emit(
                    principal.tenant_id,
                    NewEvent("customer.updated", {"customer_id": customer_id, "fields": changed}),
                )
        return customer

    # ---- an interaction's context, notes and a customer's history ------------------------

    def interaction_context(self, principal: Principal, interaction_id: str) -> dict[str, Any]:
        """What the agent desktop shows with an offer: the interaction as created (customer
        id, attributes such as DNIS), the customer's record, history, and the notes so far."""
        with self.db.read() as s:
            created = store.created_event(s, principal.tenant_id, interaction_id)
            if created is None:
                raise NotFound(f"no interaction {interaction_id!r}", field="interaction_id")
            customer = self._customer_for(s, principal.tenant_id, created)
            notes = store.notes_of_interaction(s, principal.tenant_id, interaction_id)
            timing = timing_of(store.timing_events(s, principal.tenant_id, interaction_id))
        history = (
            self.history(principal, customer.id, exclude=interaction_id)
            if customer is not None
            else []
        )
        return {
            "interaction": {
                "interaction_id": interaction_id,
                "queue_id": created.get("queue_id"),
                "channel": created.get("channel"),
                "priority": created.get("priority"),
                "customer_id": created.get("customer_id"),
                "attributes": created.get("attributes") or {},
                "created_at": created.get("created_at") or created.get("time"),
                "direction": created.get("direction", "inbound"),
            },
            "customer": customer_payload(customer) if customer is not None else None,
            "history": history,
            "notes": [note_payload(n) for n in notes],
            "timing": timing,
        }

    @staticmethod
    def _customer_for(s: Any, tenant_id: str, created: dict[str, Any]) -> Customer | None:
        customer_id = created.get("customer_id")
        if customer_id:
            found = store.get_customer(s, tenant_id, customer_id)
            if found is not None:
                return found
        attrs = created.get("attributes") or {}
        for key in PHONE_ATTRIBUTES:
            value = attrs.get(key)
            if isinstance(value, str) and value:
                found = store.customer_by_phone(s, tenant_id, value)
                if found is not None:
                    return found
        return None

    def history(
        self, principal: Principal, customer_id: str, *, exclude: str | None = None
    ) -> list[dict[str, Any]]:
        """The customer's past interactions, newest first, from the routing event stream."""
        with self.db.read() as s:
            created = store.customer_interactions(
                s, principal.tenant_id, customer_id, HISTORY_LIMIT + 1
            )
            created = [e for e in created if e.payload.get("interaction_id") != exclude]
            ids = [e.payload["interaction_id"] for e in created[:HISTORY_LIMIT]]
            outcomes = store.outcome_events(s, principal.tenant_id, ids)
            notes = store.notes_of_interactions(s, principal.tenant_id, ids)
        rows: dict[str, dict[str, Any]] = {}
        for e in created[:HISTORY_LIMIT]:
            p = e.payload
            rows[p["interaction_id"]] = {
                "interaction_id": p["interaction_id"],
                "time": e.time.isoformat(),
                "channel": p.get("channel"),
                "queue_id": p.get("queue_id"),
                "attributes": p.get("attributes") or {},
                "direction": p.get("direction", "inbound"),
                "outcome": "open",
                "agent_id": None,
                "disposition": None,
                "wait_seconds": None,
                "handle_seconds": None,
                "notes": [],
            }
        for e in outcomes:
            row = rows.get(e.payload.get("interaction_id", ""))
            if row is None:
                continue
            p = e.payload
            if e.type == "interaction.accepted":
                # An outbound contact is "placed" by the agent, not answered by them.
                placed = p.get("kind") == "outbound"
                row["outcome"], row["agent_id"] = (
                    "placed" if placed else "answered",
                    p.get("agent_id"),
                )
                row["wait_seconds"] = None if placed else p.get("wait_seconds")
            elif e.type == "interaction.completed":
                row["outcome"], row["disposition"] = "completed", p.get("disposition")
            elif e.type == "interaction.abandoned":
                row["outcome"], row["wait_seconds"] = "abandoned", p.get("wait_seconds")
            elif e.type == "interaction.diverted":
                row["outcome"] = "diverted"
            elif e.type == "interaction.wrapup_ended":
                row["handle_seconds"] = p.get("handle_seconds")
        for n in notes:
            if n.interaction_id in rows:
                rows[n.interaction_id]["notes"].append(note_payload(n))
                if n.disposition:
                    rows[n.interaction_id]["disposition"] = n.disposition
        return list(rows.values())

    def notes(self, principal: Principal, interaction_id: str) -> list[InteractionNote]:
        with self.db.read() as s:
            return store.notes_of_interaction(s, principal.tenant_id, interaction_id)

    def do_add_note(
        self,
        principal: Principal,
        interaction_id: str,
        *,
        text: str,
        kind: str = "note",
        disposition: str | None = None,
        customer_id: str | None = None,
    ) -> InteractionNote:
        """Add a note to an interaction (``kind='wrapup'`` with a disposition code)."""
        body = _clean_text(text, "text", max_len=4000, required=kind == "note") or ""
        if kind not in ("note", "wrapup"):
            raise InvalidInput("kind must be note or wrapup", field="kind")
        if disposition is not None:
            self.codes(principal, "disposition")  # seeds the defaults on first use
        with self.db.write() as tx:
            created = store.created_event(tx.session, principal.tenant_id, interaction_id)
            if created is None:
                raise NotFound(f"no interaction {interaction_id!r}", field="interaction_id")
            if disposition is not None:
                self._check_code(tx.session, principal.tenant_id, "disposition", disposition)
            if customer_id is None:
                found = self._customer_for(tx.session, principal.tenant_id, created)
                customer_id = found.id if found is not None else created.get("customer_id")
            note = InteractionNote(
                tenant_id=principal.tenant_id,
                interaction_id=interaction_id,
                customer_id=customer_id,
                author_id=principal.user_id,
                author_name=principal.display_name,
                kind=kind,
                disposition=disposition,
                text=body,
                time=self.clock.now(),
            )
            tx.session.add(note)
            tx.session.flush()
            tx.emit(
                principal.tenant_id,
                NewEvent(
                    "note.added",
                    {
                        "note_id": note.id,
                        "interaction_id": interaction_id,
                        "customer_id": customer_id,
                        "kind": kind,
                        "disposition": disposition,
                        "author_id": principal.user_id,
                    },
                ),
            )
        return note

    # ---- reason and disposition codes ----------------------------------------------------

    def codes(self, principal: Principal, kind: str | None = None) -> list[DeskCode]:
        if kind is not None and kind not in CODE_KINDS:
            raise InvalidInput("kind must be reason or disposition", field="kind")
        with self.db.read() as s:
            rows = store.list_codes(s, principal.tenant_id, kind)
            seeded = rows or store.list_codes(s, principal.tenant_id, None)
        if not seeded:
            # An organisation that never configured codes starts with the defaults.
            self.seed_default_codes(principal.tenant_id)
            with self.db.read() as s:
                rows = store.list_codes(s, principal.tenant_id, kind)
        return rows

    @staticmethod
    def _check_code(session: Any, tenant_id: str, kind: str, code: str) -> None:
        row = store.get_code(session, tenant_id, kind, code)
        if row is None or not row.active:
            raise InvalidInput(f"{code!r} is not an active {kind} code", field=kind)

    def do_set_code(
        self, principal: Principal, kind: str, code: str, label: str, active: bool = True
    ) -> DeskCode:
        """Create or change a reason or disposition code (admins; audited)."""
        if not principal.has_role("admin"):
            raise PermissionDenied("only admins change codes")
        if kind not in CODE_KINDS:
            raise InvalidInput("kind must be reason or disposition", field="kind")
        if not CODE_RE.match(code or ""):
            raise InvalidInput(
                "code: lower-case letters, digits, - and _ (at most 50), e.g. lunch",
                field="code",
            )
        clean_label = _clean_text(label, "label", max_len=100, required=True)
        with self.db.write() as tx:
            row = store.get_code(tx.session, principal.tenant_id, kind, code)
            action = "code.updated" if row is not None else "code.created"
            if row is None:
                row = DeskCode(tenant_id=principal.tenant_id, kind=kind, code=code)
                tx.session.add(row)
            row.label = clean_label or code
            row.active = active
            self._audit(
                tx,
                principal,
                action,
                "code",
                f"{kind}:{code}",
                {"label": row.label, "active": active},
            )
            tx.emit(principal.tenant_id, NewEvent(action, code_payload(row)))
        self._codes_changed(principal.tenant_id, kind)
        return row

    def do_remove_code(self, principal: Principal, kind: str, code: str) -> None:
        if not principal.has_role("admin"):
            raise PermissionDenied("only admins change codes")
        with self.db.write() as tx:
            row = store.get_code(tx.session, principal.tenant_id, kind, code)
            if row is None:
                raise NotFound(f"no {kind} code {code!r}", field="code")
            tx.session.delete(row)
            self._audit(tx, principal, "code.removed", "code", f"{kind}:{code}", {})
            tx.emit(principal.tenant_id, NewEvent("code.removed", {"kind": kind, "code": code}))
        self._codes_changed(principal.tenant_id, kind)

    def seed_default_codes(self, tenant_id: str) -> int:
        """Give a tenant the default codes it lacks (first start and the demo)."""
        added = 0
        with self.db.write() as tx:
            for kind, codes in DEFAULT_CODES.items():
                for code, label in codes:
                    if store.get_code(tx.session, tenant_id, kind, code) is None:
                        tx.session.add(
                            DeskCode(
                                tenant_id=tenant_id, kind=kind, code=code, label=label, active=True
                            )
                        )
                        added += 1
        if added:
            for kind in DEFAULT_CODES:
                self._codes_changed(tenant_id, kind)
        return added

    def _audit(
        self,
        tx: Any,
        principal: Principal,
        action: str,
        target_type: str,
        target_id: str,
        details: dict[str, Any],
    ) -> None:
        write_audit_txn(
            tx.session,
            self.clock,
            tenant_id=principal.tenant_id,
            actor=principal.actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )


def timing_of(events: list[Any]) -> dict[str, Any]:
    """Server timestamps of an interaction's timers, per agent, from its events: the latest
    offer (expiry, timeout), when it was accepted, and when its wrap-up began (planned
    length). The desk drives its countdowns from these, so a reload does not restart them."""
    offers: dict[str, Any] = {}
    accepted: dict[str, str] = {}
    wrapups: dict[str, Any] = {}
    for e in events:
        p = e.payload
        agent = p.get("agent_id")
        if not isinstance(agent, str):
            continue
        if e.type == "interaction.offered":
            offers[agent] = {
                "offered_at": e.time.isoformat(),
                "expires_at": p.get("expires_at"),
                "timeout_seconds": p.get("timeout_seconds"),
                "wait_seconds": p.get("wait_seconds"),
            }
        elif e.type == "interaction.accepted":
            accepted[agent] = e.time.isoformat()
        elif e.type == "interaction.completed":
            planned = p.get("wrapup_planned_seconds", p.get("wrapup_seconds"))
            wrapups[agent] = {"started_at": e.time.isoformat(), "planned_seconds": planned}
    return {"offers": offers, "accepted_at": accepted, "wrapups": wrapups}
