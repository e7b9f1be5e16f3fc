"""HTTP routes for sign-in, the caller's profile, users, API tokens and the tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from sparklecomm.api.deps import (
    SESSION_COOKIE,
    Admin,
    CurrentPrincipal,
    ServicesDep,
    Supervisor,
)

router = APIRouter(prefix="/api/v1", tags=["auth"])

RoleName = Literal["admin", "supervisor", "agent"]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    username: str
    display_name: str
    email: str | None
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    user: UserOut
    tenant_id: str
    csrf_token: str = Field(description="Send as X-CSRF-Token on unsafe requests")


class MeOut(BaseModel):
    user: UserOut
    tenant_id: str
    tenant_name: str
    auth: str


class UserCreate(BaseModel):
    username: str = Field(min_length=2, max_length=150, examples=["ana.lima"])
    password: str = Field(min_length=8, max_length=1024)
    role: RoleName = "agent"
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=254)


class UserPatch(BaseModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    role: RoleName | None = None
    is_active: bool | None = None


class PasswordSet(BaseModel):
    new_password: str = Field(min_length=8, max_length=1024)
    current_password: str | None = Field(default=None, max_length=1024)


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["crm-sync"])


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret; shown only once")


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    tenant_id: str
    slug: str
    name: str
    created_at: datetime


class TenantPatch(BaseModel):
    name: str = Field(min_length=1, max_length=200)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/auth/login", response_model=LoginOut)
def login(body: LoginIn, request: Request, response: Response, svc: ServicesDep) -> LoginOut:
    """Sign in with a password; sets the session cookie used by the web pages."""
    cookie, principal = svc.auth.login(body.username, body.password, _client(request))
    set_session_cookie(response, cookie, svc.settings.cookie_secure, svc.auth)
    user = svc.auth.get_user(principal, principal.user_id)
    assert principal.csrf_token is not None
    return LoginOut(
        user=UserOut.model_validate(user),
        tenant_id=principal.tenant_id,
        csrf_token=principal.csrf_token,
    )


def set_session_cookie(response: Response, cookie: str, secure: bool, auth: object) -> None:
    ttl = int(getattr(auth, "session_ttl").total_seconds())  # noqa: B009
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, response: Response, svc: ServicesDep) -> None:
    """End the browser session (no-op for bearer tokens)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        svc.auth.logout(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=MeOut)
def me(principal: CurrentPrincipal, svc: ServicesDep) -> MeOut:
    user = svc.auth.get_user(principal, principal.user_id)
    tenant = svc.auth.get_tenant(principal.tenant_id)
    return MeOut(
        user=UserOut.model_validate(user),
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.name,
        auth=principal.auth,
    )


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_my_password(body: PasswordSet, principal: CurrentPrincipal, svc: ServicesDep) -> None:
    """Change your own password (the current one is required)."""
    svc.auth.set_password(principal, principal.user_id, body.new_password, body.current_password)


@router.get("/users", response_model=list[UserOut], tags=["users"])
def list_users(principal: Supervisor, svc: ServicesDep) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in svc.auth.list_users(principal)]


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"])
def create_user(body: UserCreate, principal: Admin, svc: ServicesDep) -> UserOut:
    user = svc.auth.create_user(principal, **body.model_dump())
    return UserOut.model_validate(user)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(user_id: str, principal: CurrentPrincipal, svc: ServicesDep) -> UserOut:
    return UserOut.model_validate(svc.auth.get_user(principal, user_id))


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
def update_user(
    user_id: str, body: UserPatch, principal: CurrentPrincipal, svc: ServicesDep
) -> UserOut:
    """Change a user's name, e-mail, role or active flag (role and active: admins only)."""
    user = svc.auth.update_user(principal, user_id, **body.model_dump(exclude_unset=True))
    return UserOut.model_validate(user)


@router.put("/users/{user_id}/password", status_code=204, tags=["users"])
def set_user_password(
    user_id: str, body: PasswordSet, principal: CurrentPrincipal, svc: ServicesDep
) -> None:
    """Set a user's password: admins for anyone; users for themselves with the current one."""
    svc.auth.set_password(principal, user_id, body.new_password, body.current_password)


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
def list_tokens(principal: CurrentPrincipal, svc: ServicesDep) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in svc.auth.list_tokens(principal)]


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["tokens"])
def create_token(body: TokenCreate, principal: CurrentPrincipal, svc: ServicesDep) -> TokenCreated:
    """Create a bearer token for scripts, acting as you. The secret is shown only here."""
    secret, token = svc.auth.create_token(principal, body.name)
    return TokenCreated(
        id=token.id,
        name=token.name,
        created_at=token.created_at,
        revoked_at=None,
        token=secret,
    )


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
def revoke_token(token_id: str, principal: CurrentPrincipal, svc: ServicesDep) -> None:
    svc.auth.revoke_token(principal, token_id)


@router.get("/tenant", response_model=TenantOut, tags=["tenant"])
def get_tenant(principal: CurrentPrincipal, svc: ServicesDep) -> TenantOut:
    return TenantOut.model_validate(svc.auth.get_tenant(principal.tenant_id))


@router.patch("/tenant", response_model=TenantOut, tags=["tenant"])
def rename_tenant(body: TenantPatch, principal: Admin, svc: ServicesDep) -> TenantOut:
    return TenantOut.model_validate(svc.auth.do_rename_tenant(principal, body.name))
