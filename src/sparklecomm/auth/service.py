"""Tenants, users, sign-in, sessions and API tokens.

Every mutation follows the three steps of the architecture: ``check_*`` validates input and
permission (raising a :mod:`sparklecomm.core.errors` error that names the field), ``do_*``
changes the database inside one transaction that also writes the audit row and appends the
event, and the event is published after commit by :class:`~sparklecomm.store.db.Database`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sparklecomm.audit.store import Actor, write_audit_txn
from sparklecomm.auth.passwords import MIN_PASSWORD_LENGTH, Passwords
from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    Unauthenticated,
)
from sparklecomm.core.events import NewEvent
from sparklecomm.core.ids import hash_secret, new_id, new_secret
from sparklecomm.core.validation import check_email, check_name
from sparklecomm.store.db import Database
from sparklecomm.store.models import ROLES, ApiToken, AuthSession, LoginThrottle, Tenant, User

Role = Literal["admin", "supervisor", "agent"]
_RANK = {"agent": 0, "supervisor": 1, "admin": 2}
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,149}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
SOURCE_MAX_FAILURES = 20
SOURCE_WINDOW = timedelta(minutes=15)
MAX_LOCKOUT = timedelta(hours=24)


@dataclass(frozen=True)
class Principal:
    """The signed-in caller of an API request."""

    user_id: str
    tenant_id: str
    username: str
    display_name: str
    role: str
    auth: Literal["session", "token"]
    csrf_token: str | None = None

    def has_role(self, minimum: str) -> bool:
        return _RANK[self.role] >= _RANK[minimum]

    @property
    def actor(self) -> Actor:
        return Actor(id=self.user_id, name=self.username)


def user_payload(user: User) -> dict[str, Any]:
    """The public form of a user, as in events and API responses (never the hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
    }


def _principal(user: User, auth: Literal["session", "token"], csrf: str | None) -> Principal:
    return Principal(
        user_id=user.id,
        tenant_id=user.tenant_id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        auth=auth,
        csrf_token=csrf,
    )


class AuthService:
    """Accounts and authentication for all tenants."""

    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        *,
        session_ttl: timedelta = timedelta(hours=12),
        max_failures: int = 5,
        lockout: timedelta = timedelta(minutes=5),
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.session_ttl = session_ttl
        self.max_failures = max_failures
        self.lockout = lockout

    @property
    def clock(self) -> Clock:
        return self.db.clock

    # ---- tenants -------------------------------------------------------------------------

    def check_tenant(self, slug: str, name: str) -> tuple[str, str]:
        slug = slug.strip().lower()
        name = name.strip()
        if not SLUG_RE.match(slug):
            raise InvalidInput(
                "slug must be 2-63 characters: lower-case letters, digits and '-', "
                "starting with a letter or digit",
                field="slug",
            )
        return slug, check_name(name, "name")

    def do_create_tenant(self, slug: str, name: str, actor: Actor) -> Tenant:
        """Create an organisation."""
        slug, name = self.check_tenant(slug, name)
        with self.db.write() as tx:
            if tx.session.scalar(select(Tenant).where(Tenant.slug == slug)) is not None:
                raise Conflict(f"a tenant with slug {slug!r} already exists", field="slug")
            tenant = Tenant(
                tenant_id=new_id(),
                slug=slug,
                name=name,
                created_at=self.clock.now(),
                last_event_id=0,
            )
            tx.session.add(tenant)
            tx.session.flush()
            write_audit_txn(
                tx.session,
                self.clock,
                tenant_id=tenant.tenant_id,
                actor=actor,
                action="tenant.created",
                target_type="tenant",
                target_id=tenant.tenant_id,
                details={"slug": slug, "name": name},
            )
            tx.emit(tenant.tenant_id, NewEvent("tenant.created", {"slug": slug, "name": name}))
        return tenant

    def list_tenants(self) -> list[Tenant]:
        with self.db.read() as s:
            return list(s.scalars(select(Tenant).order_by(Tenant.slug)))

    def tenant_by_slug(self, slug: str) -> Tenant:
        with self.db.read() as s:
            tenant = s.scalar(select(Tenant).where(Tenant.slug == slug.strip().lower()))
            known = [] if tenant is not None else list(s.scalars(select(Tenant.slug).limit(21)))
        if tenant is None:
            if known:
                listed = ", ".join(sorted(known)[:20]) + (" …" if len(known) > 20 else "")
                hint = f"organisations here: {listed}"
            else:
                hint = (
                    "this database has no organisation yet: is the data directory right "
                    "(--data-dir, SPARKLECOMM_DATA_DIR)?"
                )
            raise NotFound(f"no tenant with slug {slug!r} ({hint})", field="tenant")
        return tenant

    def get_tenant(self, tenant_id: str) -> Tenant:
        with self.db.read() as s:
            tenant = s.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant with id {tenant_id!r}", field="tenant_id")
        return tenant

    def do_rename_tenant(self, principal: Principal, name: str) -> Tenant:
        self._require(principal, "admin")
        name = check_name(name, "name")
        with self.db.write() as tx:
            tenant = tx.session.get(Tenant, principal.tenant_id)
            if tenant is None:
                raise NotFound("tenant not found", field="tenant_id")
            old = tenant.name
            tenant.name = name
            write_audit_txn(
                tx.session,
                self.clock,
                tenant_id=tenant.tenant_id,
                actor=principal.actor,
                action="tenant.renamed",
                target_type="tenant",
                target_id=tenant.tenant_id,
                details={"from": old, "to": name},
            )
            tx.emit(tenant.tenant_id, NewEvent("tenant.updated", {"name": name}))
        return tenant

    # ---- users ---------------------------------------------------------------------------

    @staticmethod
    def _require(principal: Principal, role: str) -> None:
        if not principal.has_role(role):
            raise PermissionDenied(f"this needs the {role} role; you are {principal.role}")

    def check_password(self, password: str, field: str = "password") -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(
                f"password must be at least {MIN_PASSWORD_LENGTH} characters", field=field
            )
        if len(password) > 1024:
            raise InvalidInput("password must be at most 1024 characters", field=field)

    def check_new_user(
        self,
        username: str,
        password: str,
        role: str,
        display_name: str | None,
        email: str | None,
    ) -> dict[str, Any]:
        username = username.strip().lower()
        if not USERNAME_RE.match(username):
            raise InvalidInput(
                "username must be 2-150 characters: lower-case letters, digits and . _ @ -",
                field="username",
            )
        self.check_password(password)
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
        display = check_name(display_name or username, "display_name")
        check_email(email)
        return {"username": username, "role": role, "display_name": display, "email": email}

    def do_create_user(
        self,
        tenant_id: str,
        actor: Actor,
        *,
        username: str,
        password: str,
        role: str,
        display_name: str | None = None,
        email: str | None = None,
    ) -> User:
        """Create a user in ``tenant_id`` (permission is the caller's to check)."""
        fields = self.check_new_user(username, password, role, display_name, email)
        password_hash = self.passwords.hash(password)
        with self.db.write() as tx:
            if tx.session.get(Tenant, tenant_id) is None:
                raise NotFound(f"no tenant with id {tenant_id!r}", field="tenant_id")
            taken = tx.session.scalar(select(User.id).where(User.username == fields["username"]))
            if taken is not None:
                raise Conflict(f"username {fields['username']!r} is taken", field="username")
            user = User(
                id=new_id(),
                tenant_id=tenant_id,
                password_hash=password_hash,
                is_active=True,
                created_at=self.clock.now(),
                failed_logins=0,
                **fields,
            )
            tx.session.add(user)
            tx.session.flush()
            write_audit_txn(
                tx.session,
                self.clock,
                tenant_id=tenant_id,
                actor=actor,
                action="user.created",
                target_type="user",
                target_id=user.id,
                details={"username": user.username, "role": user.role},
            )
            tx.emit(tenant_id, NewEvent("user.created", {"user": user_payload(user)}))
        return user

    def create_user(self, principal: Principal, **fields: Any) -> User:
        self._require(principal, "admin")
        return self.do_create_user(principal.tenant_id, principal.actor, **fields)

    def list_users(self, principal: Principal) -> list[User]:
        self._require(principal, "supervisor")
        return self.users_of_tenant(principal.tenant_id)

    def users_of_tenant(self, tenant_id: str) -> list[User]:
        with self.db.read() as s:
            return list(
                s.scalars(select(User).where(User.tenant_id == tenant_id).order_by(User.username))
            )

    def get_user(self, principal: Principal, user_id: str) -> User:
        if user_id != principal.user_id:
            self._require(principal, "supervisor")
        with self.db.read() as s:
            user = s.get(User, user_id)
        if user is None or user.tenant_id != principal.tenant_id:
            raise NotFound(f"no user with id {user_id!r}", field="user_id")
        return user

    def _user_txn(self, s: Session, tenant_id: str, user_id: str) -> User:
        user = s.get(User, user_id)
        if user is None or user.tenant_id != tenant_id:
            raise NotFound(f"no user with id {user_id!r}", field="user_id")
        return user

    def _active_admins_txn(self, s: Session, tenant_id: str) -> int:
        return int(
            s.scalar(
                select(func.count())
                .select_from(User)
                .where(User.tenant_id == tenant_id, User.role == "admin", User.is_active.is_(True))
            )
            or 0
        )

    def update_user(
        self,
        principal: Principal,
        user_id: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        role: str | None = None,
        is_active: bool | None = None,
    ) -> User:
        """Change a user's profile, role or active flag (admins; anyone their own name)."""
        is_self = user_id == principal.user_id
        if role is not None or is_active is not None or not is_self:
            self._require(principal, "admin")
        if role is not None and role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
        if display_name is not None:
            display_name = check_name(display_name, "display_name")
        check_email(email)
        with self.db.write() as tx:
            user = self._user_txn(tx.session, principal.tenant_id, user_id)
            before = user_payload(user)
            losing_admin = (
                user.role == "admin"
                and user.is_active
                and ((role is not None and role != "admin") or is_active is False)
            )
            if losing_admin and self._active_admins_txn(tx.session, user.tenant_id) <= 1:
                raise Conflict(
                    "this is the organisation's last active admin; make someone else admin first",
                    field="role" if role is not None else "is_active",
                )
            if display_name is not None:
                user.display_name = display_name
            if email is not None:
                user.email = email
            if role is not None:
                user.role = role
            if is_active is not None:
                user.is_active = is_active
                if not is_active:
                    self._end_sessions_txn(tx.session, user.id)
            after = user_payload(user)
            changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
            if changes:
                write_audit_txn(
                    tx.session,
                    self.clock,
                    tenant_id=user.tenant_id,
                    actor=principal.actor,
                    action="user.updated",
                    target_type="user",
                    target_id=user.id,
                    details=changes,
                )
                tx.emit(user.tenant_id, NewEvent("user.updated", {"user": after}))
        return user

    def set_password(
        self,
        principal: Principal,
        user_id: str,
        new_password: str,
        current_password: str | None = None,
    ) -> None:
        """Set a password: an admin for anyone in the tenant, a user for themselves."""
        is_self = user_id == principal.user_id
        if not is_self:
            self._require(principal, "admin")
        self.check_password(new_password, field="new_password")
        with self.db.read() as s:
            user = self._user_txn(s, principal.tenant_id, user_id)
        if is_self and not self.passwords.verify(user.password_hash, current_password or ""):
            raise InvalidInput("current password is wrong", field="current_password")
        self.do_set_password(user.tenant_id, user.id, new_password, principal.actor)

    def do_set_password(self, tenant_id: str, user_id: str, password: str, actor: Actor) -> None:
        self.check_password(password)
        password_hash = self.passwords.hash(password)
        with self.db.write() as tx:
            user = self._user_txn(tx.session, tenant_id, user_id)
            user.password_hash = password_hash
            user.failed_logins = 0
            user.locked_until = None
            write_audit_txn(
                tx.session,
                self.clock,
                tenant_id=tenant_id,
                actor=actor,
                action="user.password_set",
                target_type="user",
                target_id=user.id,
            )

    def user_by_username(self, username: str) -> User:
        with self.db.read() as s:
            user = s.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None:
            raise NotFound(f"no user named {username!r}", field="username")
        return user

    # ---- sign-in -------------------------------------------------------------------------

    def _lock_duration(self, failures: int) -> timedelta:
        extra = max(0, failures - self.max_failures)
        longer: timedelta = self.lockout * (2 ** min(extra, 16))
        return min(longer, MAX_LOCKOUT)

    def login(self, username: str, password: str, source: str) -> tuple[str, Principal]:
        """Check a password and open a browser session; returns (cookie value, principal).

        Repeated failures lock the account for a while (doubling each time) and slow down
        the source address; both are committed even though the sign-in fails.
        """
        now = self.clock.now()
        username = username.strip().lower()
        source = source[:64] or "unknown"
        with self.db.read() as s:
            throttle = s.get(LoginThrottle, ("*", source))
            user = s.scalar(select(User).where(User.username == username))
        if throttle and throttle.blocked_until and throttle.blocked_until > now:
            wait = int((throttle.blocked_until - now).total_seconds()) + 1
            raise TooManyAttempts(
                f"too many failed sign-ins from this address; try again in {wait} s",
                retry_after=wait,
            )
        if user and user.locked_until and user.locked_until > now:
            wait = int((user.locked_until - now).total_seconds()) + 1
            raise TooManyAttempts(
                f"this account is locked after repeated failed sign-ins; try again in {wait} s",
                retry_after=wait,
            )
        ok = self.passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None or not user.is_active:
            self._record_failure(user.id if user and not ok else None, source, now)
            raise Unauthenticated("wrong username or password")
        cookie = new_secret("scs")
        csrf = secrets.token_urlsafe(24)
        with self.db.write() as tx:
            tx.session.execute(
                update(User)
                .where(User.id == user.id)
                .values(failed_logins=0, locked_until=None, last_login_at=now)
            )
            tx.session.add(
                AuthSession(
                    id=hash_secret(cookie),
                    tenant_id=user.tenant_id,
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + self.session_ttl,
                )
            )
            throttle_row = tx.session.get(LoginThrottle, ("*", source))
            if throttle_row is not None:
                tx.session.delete(throttle_row)
        return cookie, _principal(user, "session", csrf)

    def _record_failure(self, user_id: str | None, source: str, now: datetime) -> None:
        with self.db.write() as tx:
            if user_id is not None:
                user = tx.session.get(User, user_id)
                if user is not None:
                    user.failed_logins += 1
                    if user.failed_logins >= self.max_failures:
                        user.locked_until = now + self._lock_duration(user.failed_logins)
                        write_audit_txn(
                            tx.session,
                            self.clock,
                            tenant_id=user.tenant_id,
                            actor=Actor(id=None, name=f"sign-in from {source}"),
                            action="user.locked_out",
                            target_type="user",
                            target_id=user.id,
                            details={
                                "failures": user.failed_logins,
                                "until": user.locked_until.isoformat(),
                            },
                        )
            row = tx.session.get(LoginThrottle, ("*", source))
            if row is None or now - row.window_start > SOURCE_WINDOW:
                if row is not None:
                    tx.session.delete(row)
                    tx.session.flush()
                row = LoginThrottle(tenant_id="*", source=source, failures=0, window_start=now)
                tx.session.add(row)
            row.failures += 1
            if row.failures >= SOURCE_MAX_FAILURES:
                row.blocked_until = now + SOURCE_WINDOW

    def logout(self, cookie: str) -> None:
        with self.db.write() as tx:
            row = tx.session.get(AuthSession, hash_secret(cookie))
            if row is not None:
                tx.session.delete(row)

    @staticmethod
    def _end_sessions_txn(s: Session, user_id: str) -> None:
        for row in s.scalars(select(AuthSession).where(AuthSession.user_id == user_id)):
            s.delete(row)

    def principal_from_session(self, cookie: str) -> Principal | None:
        now = self.clock.now()
        with self.db.read() as s:
            row = s.get(AuthSession, hash_secret(cookie))
            if row is None or row.expires_at <= now:
                return None
            user = s.get(User, row.user_id)
            if user is None or not user.is_active:
                return None
            return _principal(user, "session", row.csrf_token)

    # ---- API tokens ----------------------------------------------------------------------

    def create_token(self, principal: Principal, name: str) -> tuple[str, ApiToken]:
        """A new bearer token for the caller; the secret is shown only now."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidInput("name must be 1-100 characters", field="name")
        secret = new_secret("sct")
        with self.db.write() as tx:
            token = ApiToken(
                id=new_id(),
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                name=name,
                token_hash=hash_secret(secret),
                created_at=self.clock.now(),
            )
            tx.session.add(token)
            write_audit_txn(
                tx.session,
                self.clock,
                tenant_id=principal.tenant_id,
                actor=principal.actor,
                action="api_token.created",
                target_type="api_token",
                target_id=token.id,
                details={"name": name},
            )
        return secret, token

    def do_create_token_for(self, user: User, name: str) -> str:
        """Issue a token for ``user`` from the command line."""
        principal = _principal(user, "token", None)
        secret, _ = self.create_token(principal, name)
        return secret

    def list_tokens(self, principal: Principal) -> list[ApiToken]:
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(ApiToken)
                    .where(ApiToken.user_id == principal.user_id)
                    .order_by(ApiToken.created_at)
                )
            )

    def revoke_token(self, principal: Principal, token_id: str) -> None:
        with self.db.write() as tx:
            token = tx.session.get(ApiToken, token_id)
            if (
                token is None
                or token.tenant_id != principal.tenant_id
                or (token.user_id != principal.user_id and not principal.has_role("admin"))
            ):
                raise NotFound(f"no API token with id {token_id!r}", field="token_id")
            if token.revoked_at is None:
                token.revoked_at = self.clock.now()
                write_audit_txn(
                    tx.session,
                    self.clock,
                    tenant_id=principal.tenant_id,
                    actor=principal.actor,
                    action="api_token.revoked",
                    target_type="api_token",
                    target_id=token.id,
                )

    def principal_from_token(self, secret: str) -> Principal | None:
        with self.db.read() as s:
            token = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
            if token is None or token.revoked_at is not None:
                return None
            user = s.get(User, token.user_id)
            if user is None or not user.is_active:
                return None
            return _principal(user, "token", None)
