"""HTTP routes: customers, an interaction's context and notes, reason/disposition codes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from sparklecomm.api.deps import Admin, CurrentPrincipal, ServicesDep
from sparklecomm.container import Services
from sparklecomm.customers.service import (
    CustomerService,
    code_payload,
    customer_payload,
    note_payload,
)

router = APIRouter(prefix="/api/v1", tags=["customers"])
AnyId = Annotated[str, Path(min_length=1, max_length=100)]
Scalar = str | int | float | bool | None


def customers(svc: Services) -> CustomerService:
    service: CustomerService = svc.extra["customers"]
    return service


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerCreate(Strict):
    id: str | None = Field(default=None, max_length=100)
    name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    vip_tier: str | None = Field(default=None, max_length=20)
    attributes: dict[str, Scalar] = Field(default_factory=dict)


class CustomerPatch(Strict):
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    vip_tier: str | None = Field(default=None, max_length=20)
    attributes: dict[str, Scalar] | None = None


class NoteIn(Strict):
    text: str = Field(default="", max_length=4000)
    kind: Literal["note", "wrapup"] = "note"
    disposition: str | None = Field(default=None, max_length=50)


class CodeIn(Strict):
    label: str = Field(max_length=100)
    active: bool = True


@router.get("/customers")
def search_customers(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    """Customers whose name, number or e-mail contains ``q`` (all when omitted)."""
    return [customer_payload(c) for c in customers(svc).search(principal, q, limit)]


@router.post("/customers", status_code=201)
def create_customer(
    body: CustomerCreate, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    return customer_payload(customers(svc).do_create(principal, data))


@router.get("/customers/{customer_id}")
def get_customer(
    customer_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    service = customers(svc)
    return {
        **customer_payload(service.get(principal, customer_id)),
        "history": service.history(principal, customer_id),
    }


@router.patch("/customers/{customer_id}")
def update_customer(
    customer_id: AnyId, body: CustomerPatch, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """Change a customer's record; only the fields sent change."""
    data = body.model_dump(exclude_unset=True)
    return customer_payload(customers(svc).do_update(principal, customer_id, data))


@router.get("/interactions/{interaction_id}/context")
def interaction_context(
    interaction_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """The interaction as created (customer, DNIS and other attributes), the customer's
    record and past interactions, and the notes written on it so far."""
    return customers(svc).interaction_context(principal, interaction_id)


@router.get("/interactions/{interaction_id}/notes")
def list_notes(
    interaction_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep
) -> list[dict[str, Any]]:
    return [note_payload(n) for n in customers(svc).notes(principal, interaction_id)]


@router.post("/interactions/{interaction_id}/notes", status_code=201)
def add_note(
    interaction_id: AnyId, body: NoteIn, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """A note on the interaction; ``kind: wrapup`` records the disposition and wrap-up notes."""
    note = customers(svc).do_add_note(
        principal, interaction_id, text=body.text, kind=body.kind, disposition=body.disposition
    )
    return note_payload(note)


@router.get("/codes")
def list_codes(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    kind: Annotated[str | None, Query(max_length=20)] = None,
) -> list[dict[str, Any]]:
    """Reason codes (breaks) and disposition codes (how interactions ended)."""
    return [code_payload(c) for c in customers(svc).codes(principal, kind)]


@router.put("/codes/{kind}/{code}")
def set_code(
    kind: Annotated[str, Path(max_length=20)],
    code: Annotated[str, Path(max_length=50)],
    body: CodeIn,
    principal: Admin,
    svc: ServicesDep,
) -> dict[str, Any]:
    return code_payload(customers(svc).do_set_code(principal, kind, code, body.label, body.active))


@router.delete("/codes/{kind}/{code}", status_code=204)
def remove_code(
    kind: Annotated[str, Path(max_length=20)],
    code: Annotated[str, Path(max_length=50)],
    principal: Admin,
    svc: ServicesDep,
) -> None:
    customers(svc).do_remove_code(principal, kind, code)
