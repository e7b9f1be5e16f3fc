"""Shared fixtures: the whole platform in-process, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sparklecomm.app import build_services
from sparklecomm.audit.store import Actor
from sparklecomm.auth.passwords import Passwords
from sparklecomm.container import Services
from sparklecomm.core.clock import FakeClock
from sparklecomm.settings import Settings
from sparklecomm.store.metadata import target_metadata
from sparklecomm.store.migrate import upgrade

# In-process apps don't open SIP sockets unless a test asks for it (several apps may run
# at once); the browser tests' real servers listen on a free port instead.
os.environ.setdefault("SPARKLECOMM_SIP_ENABLED", "false")
POSTGRES_URL = os.environ.get("SPARKLECOMM_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("SPARKLECOMM_TEST_REDIS_URL")
PASSWORD = "correct horse battery"
FAST_PASSWORDS = Passwords.fast_for_tests()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    from sparklecomm.store.db import make_engine

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once, dropped at the end."""
    if not POSTGRES_URL:
        pytest.skip("SPARKLECOMM_TEST_POSTGRES_URL is not set: PostgreSQL tests not run")
    base = make_url(POSTGRES_URL)
    name = f"sparklecomm_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    from sparklecomm.store.db import make_engine

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in target_metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        target = tmp_path / "sparklecomm.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate_postgres(url)
    return url


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "sparklecomm.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@dataclass
class World:
    """A tenant with an admin, a supervisor and an agent, on a fake clock."""

    services: Services
    clock: FakeClock
    tenant_id: str
    admin_id: str
    supervisor_id: str
    agent_id: str


def make_world(database_url: str, data_dir: Path, **settings: object) -> World:
    clock = FakeClock()
    svc = build_services(
        Settings(data_dir=data_dir, database_url=database_url, **settings),  # type: ignore[arg-type]
        clock=clock,
        passwords=FAST_PASSWORDS,
    )
    actor = Actor.cli()
    tenant = svc.auth.do_create_tenant("acme", "Acme Support", actor)
    ids = {}
    for username, role in (("admin", "admin"), ("sup", "supervisor"), ("ana", "agent")):
        user = svc.auth.do_create_user(
            tenant.tenant_id, actor, username=username, password=PASSWORD, role=role
        )
        ids[role] = user.id
    return World(svc, clock, tenant.tenant_id, ids["admin"], ids["supervisor"], ids["agent"])


def redis_nodes(
    database_url: str, data_dir: Path, *, shared_clock: bool = False, **settings: object
) -> tuple[World, Services]:
    """Two nodes on one database sharing live events through the real Redis server: the
    world's services (node A) and a second process's services (node B), each with its own
    :class:`RedisBus` on a channel prefix of its own test. ``settings`` go to both; node B
    runs on the system clock unless ``shared_clock`` gives it the world's fake one (then
    neither node's timers end a wrap-up the other started)."""
    from sparklecomm.bus.redis import RedisBus

    assert REDIS_URL is not None
    prefix = f"sparklecomm-test-{uuid.uuid4().hex}:"
    # No SIP listeners unless asked (on port 0): both would try the default port 5060.
    settings = {"sip_enabled": False, **settings}
    world = make_world(database_url, data_dir, **settings)
    world.services.bus = RedisBus(REDIS_URL, prefix=prefix)
    world.services.db.publisher = world.services.bus.publish
    node_b = build_services(
        Settings(data_dir=data_dir, database_url=database_url, **settings),  # type: ignore[arg-type]
        clock=world.clock if shared_clock else None,
        passwords=FAST_PASSWORDS,
        bus=RedisBus(REDIS_URL, prefix=prefix),
    )
    return world, node_b


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    w = make_world(database_url, tmp_path)
    yield w
    w.services.db.dispose()


@pytest.fixture
def sqlite_world(sqlite_url: str, tmp_path: Path) -> Iterator[World]:
    w = make_world(sqlite_url, tmp_path)
    yield w
    w.services.db.dispose()
