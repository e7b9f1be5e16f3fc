"""First start of a data directory: schema, a demo organisation and its first admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sparklecomm.audit.store import Actor
from sparklecomm.container import Services
from sparklecomm.store.migrate import upgrade

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Contact Center"
PASSWORD_FILE = "initial-admin-password.txt"  # noqa: S105 (a file name)


@dataclass(frozen=True)
class FirstRun:
    tenant_slug: str
    admin_username: str
    password: str
    demo_users: tuple[str, ...]


def prepare(services: Services, *, admin_password: str | None = None) -> FirstRun | None:
    """Migrate the schema; on an empty database create the demo tenant and users.

    Returns what was created (to print once), or None when the database had tenants.
    """
    settings = services.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(services.db.engine)
    if services.auth.list_tenants():
        return None
    password = admin_password or secrets.token_urlsafe(12)
    actor = Actor(id=None, name="first-start")
    tenant = services.auth.do_create_tenant(DEMO_SLUG, DEMO_NAME, actor)
    services.auth.do_create_user(
        tenant.tenant_id,
        actor,
        username="admin",
        password=password,
        role="admin",
        display_name="Administrator",
    )
    demo = (("supervisor", "supervisor", "Sam Supervisor"), ("agent", "agent", "Ana Agent"))
    for username, role, name in demo:
        services.auth.do_create_user(
            tenant.tenant_id,
            actor,
            username=username,
            password=password,
            role=role,
            display_name=name,
        )
    path = settings.data_dir / PASSWORD_FILE
    path.write_text(
        f"admin / supervisor / agent password of the demo organisation: {password}\n"
        "Change it after signing in (sparklecomm user passwd admin).\n"
    )
    path.chmod(0o600)
    return FirstRun(DEMO_SLUG, "admin", password, tuple(u for u, _, _ in demo))
