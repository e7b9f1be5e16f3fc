"""Request dependencies: the services and the signed-in principal with role checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from sparklecomm.auth.service import Principal
from sparklecomm.container import Services
from sparklecomm.core.errors import PermissionDenied, Unauthenticated

MAX_OFFSET = 1_000_000_000
"""The largest ``offset`` a listing takes (larger ones would overflow the database's
integers: a 422, not a 500)."""

SESSION_COOKIE = "sparklecomm_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def optional_principal(request: Request) -> Principal | None:
    """The caller from a bearer token or the session cookie, or None."""
    svc = services(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        principal = svc.auth.principal_from_token(secret.strip())
        if principal is None:
            raise Unauthenticated("the API token is not valid or was revoked")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    principal = svc.auth.principal_from_session(cookie)
    if principal is None:
        return None
    if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != (
        principal.csrf_token
    ):
        raise PermissionDenied(
            "missing or wrong X-CSRF-Token header (required with cookie sign-in)"
        )
    return principal


def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthenticated("sign in first, or send 'Authorization: Bearer <token>'")
    return principal


def require(role: str) -> Callable[[Principal], Principal]:
    """A dependency that admits callers with at least ``role``."""

    def _check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has_role(role):
            raise PermissionDenied(f"this needs the {role} role; you are {principal.role}")
        return principal

    return _check


ServicesDep = Annotated[Services, Depends(services)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(require("admin"))]
Supervisor = Annotated[Principal, Depends(require("supervisor"))]
