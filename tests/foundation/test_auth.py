"""Accounts and sign-in: passwords, lockout, sessions, tokens and role checks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sparklecomm.auth.service import AuthService, Principal
from sparklecomm.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    Unauthenticated,
)
from sparklecomm.store.models import AuditLog, User
from tests.conftest import PASSWORD, World


def principal(world: World, username: str) -> Principal:
    _, p = world.services.auth.login(username, PASSWORD, "10.0.0.1")
    return p


def test_password_is_stored_as_argon2_hash(world: World) -> None:
    with world.services.db.read() as s:
        user = s.scalar(select(User).where(User.username == "ana"))
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_login_opens_a_session_that_resolves_to_the_user(world: World) -> None:
    auth = world.services.auth
    cookie, p = auth.login("  ANA ", PASSWORD, "10.0.0.1")  # case and spaces forgiven
    assert p.username == "ana" and p.role == "agent" and p.tenant_id == world.tenant_id
    again = auth.principal_from_session(cookie)
    assert again is not None and again.user_id == world.agent_id
    assert again.csrf_token == p.csrf_token
    auth.logout(cookie)
    assert auth.principal_from_session(cookie) is None


def test_session_expires(world: World) -> None:
    auth = world.services.auth
    cookie, _ = auth.login("ana", PASSWORD, "10.0.0.1")
    world.clock.advance(auth.session_ttl.total_seconds() + 1)
    assert auth.principal_from_session(cookie) is None


def test_wrong_password_and_unknown_user_give_the_same_error(world: World) -> None:
    auth = world.services.auth
    with pytest.raises(Unauthenticated) as a:
        auth.login("ana", "wrong password", "10.0.0.1")
    with pytest.raises(Unauthenticated) as b:
        auth.login("nobody", "wrong password", "10.0.0.1")
    assert a.value.detail == b.value.detail == "wrong username or password"


def test_repeated_failures_lock_the_account_then_it_unlocks(world: World) -> None:
    auth = world.services.auth
    for _ in range(auth.max_failures):
        with pytest.raises(Unauthenticated):
            auth.login("ana", "guess", "10.0.0.2")
    # even the right password is refused while locked, with the wait in the message
    with pytest.raises(TooManyAttempts) as locked:
        auth.login("ana", PASSWORD, "10.0.0.3")
    assert locked.value.retry_after == auth.lockout.total_seconds() + 1
    with world.services.db.read() as s:
        actions = s.scalars(select(AuditLog.action)).all()
    assert "user.locked_out" in actions
    world.clock.advance(auth.lockout.total_seconds() + 1)
    _, p = auth.login("ana", PASSWORD, "10.0.0.3")
    assert p.username == "ana"


def test_lockout_doubles_on_further_failures(world: World) -> None:
    auth = world.services.auth
    for _ in range(auth.max_failures):
        with pytest.raises(Unauthenticated):
            auth.login("ana", "guess", "10.0.0.2")
    world.clock.advance(auth.lockout.total_seconds() + 1)
    with pytest.raises(Unauthenticated):
        auth.login("ana", "guess again", "10.0.0.2")
    with pytest.raises(TooManyAttempts) as locked:
        auth.login("ana", PASSWORD, "10.0.0.2")
    assert locked.value.retry_after == 2 * auth.lockout.total_seconds() + 1


def test_a_guessing_source_address_is_slowed_down(world: World) -> None:
    auth = world.services.auth
    from sparklecomm.auth.service import SOURCE_MAX_FAILURES

    for i in range(SOURCE_MAX_FAILURES):
        with pytest.raises(Unauthenticated):
            auth.login(f"nobody{i}", "guess", "203.0.113.9")
    with pytest.raises(TooManyAttempts):
        auth.login("sup", PASSWORD, "203.0.113.9")
    _, p = auth.login("sup", PASSWORD, "198.51.100.1")  # other sources are unaffected
    assert p.role == "supervisor"


def test_deactivated_user_cannot_sign_in_and_loses_sessions(world: World) -> None:
    auth = world.services.auth
    cookie, _ = auth.login("ana", PASSWORD, "10.0.0.1")
    admin = principal(world, "admin")
    auth.update_user(admin, world.agent_id, is_active=False)
    assert auth.principal_from_session(cookie) is None
    with pytest.raises(Unauthenticated):
        auth.login("ana", PASSWORD, "10.0.0.1")


def test_api_tokens_resolve_until_revoked(world: World) -> None:
    auth = world.services.auth
    sup = principal(world, "sup")
    secret, token = auth.create_token(sup, "wallboard-tv")
    assert secret.startswith("sct_")
    resolved = auth.principal_from_token(secret)
    assert resolved is not None and resolved.user_id == world.supervisor_id
    assert resolved.auth == "token"
    assert auth.principal_from_token(secret + "x") is None
    with pytest.raises(NotFound):  # an agent cannot revoke someone else's token
        auth.revoke_token(principal(world, "ana"), token.id)
    auth.revoke_token(sup, token.id)
    assert auth.principal_from_token(secret) is None


def test_role_checks(world: World) -> None:
    auth = world.services.auth
    agent, sup, admin = principal(world, "ana"), principal(world, "sup"), principal(world, "admin")
    with pytest.raises(PermissionDenied):
        auth.create_user(agent, username="x1", password=PASSWORD, role="agent")
    with pytest.raises(PermissionDenied):
        auth.create_user(sup, username="x2", password=PASSWORD, role="agent")
    with pytest.raises(PermissionDenied):
        auth.list_users(agent)
    assert {u.username for u in auth.list_users(sup)} == {"admin", "sup", "ana"}
    with pytest.raises(PermissionDenied):  # agents cannot promote themselves
        auth.update_user(agent, world.agent_id, role="admin")
    me = auth.update_user(agent, world.agent_id, display_name="Ana Lima")
    assert me.display_name == "Ana Lima"
    created = auth.create_user(admin, username="Bo.Chen", password=PASSWORD, role="supervisor")
    assert created.username == "bo.chen"


def test_the_last_admin_cannot_be_demoted_or_deactivated(world: World) -> None:
    auth = world.services.auth
    admin = principal(world, "admin")
    with pytest.raises(Conflict, match="last active admin"):
        auth.update_user(admin, world.admin_id, role="agent")
    with pytest.raises(Conflict):
        auth.update_user(admin, world.admin_id, is_active=False)
    auth.update_user(admin, world.supervisor_id, role="admin")
    demoted = auth.update_user(admin, world.admin_id, role="agent")
    assert demoted.role == "agent"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": "a", "password": PASSWORD, "role": "agent"}, "username"),
        ({"username": "has space", "password": PASSWORD, "role": "agent"}, "username"),
        ({"username": "bob", "password": "short", "role": "agent"}, "password"),
        ({"username": "bob", "password": PASSWORD, "role": "boss"}, "role"),
        ({"username": "bob", "password": PASSWORD, "role": "agent", "email": "nope"}, "email"),
    ],
)
def test_bad_user_input_names_the_field(world: World, fields: dict, field: str) -> None:
    admin = principal(world, "admin")
    with pytest.raises(InvalidInput) as err:
        world.services.auth.create_user(admin, **fields)
    assert err.value.field == field


def test_username_is_unique_across_tenants(world: World) -> None:
    from sparklecomm.audit.store import Actor

    auth: AuthService = world.services.auth
    other = auth.do_create_tenant("globex", "Globex", Actor.cli())
    with pytest.raises(Conflict) as err:
        auth.do_create_user(
            other.tenant_id, Actor.cli(), username="ana", password=PASSWORD, role="agent"
        )
    assert err.value.field == "username"


def test_changing_own_password_needs_the_current_one(world: World) -> None:
    auth = world.services.auth
    agent = principal(world, "ana")
    with pytest.raises(InvalidInput) as err:
        auth.set_password(agent, world.agent_id, "new password 1", "wrong")
    assert err.value.field == "current_password"
    auth.set_password(agent, world.agent_id, "new password 1", PASSWORD)
    _, p = auth.login("ana", "new password 1", "10.0.0.1")
    assert p.user_id == world.agent_id
