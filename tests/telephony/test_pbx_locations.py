"""Registrations in SQL (SqlLocationStore), shared by two nodes, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from tests.conftest import World

from sparklecomm.audit.store import Actor
from sparklecomm.core.clock import SystemClock
from sparklecomm.store.db import Database
from sparklecomm.telephony.extensions import ExtensionService
from sparklecomm.telephony.pbx.locations import SqlLocationStore
from sparklecomm.telephony.pbx.models import SipBindingRow
from sparklecomm.telephony.sip.location import Binding


async def test_bindings_are_shared_replaced_and_purged(world: World) -> None:
    extensions: ExtensionService = world.services.extra["extensions"]
    extensions.do_create(world.tenant_id, Actor.cli(), number="1001", password="pw-1001-secret")
    node_a = SqlLocationStore(world.services.db)
    node_b = SqlLocationStore(Database(world.services.db.url, SystemClock()))
    now = world.clock.now()
    aor = "sip:1001@sparklecomm"
    desk = Binding(aor, "<sip:1001@127.0.0.1:5080>", now + timedelta(seconds=600), "c1", 1,
                   q=1.0, source="UDP:127.0.0.1:5080", user_agent="desk")  # fmt: skip
    soft = Binding(aor, "<sip:1001@127.0.0.1:5090;transport=tcp>", now + timedelta(seconds=60),
                   "c2", 7)  # fmt: skip
    try:
        assert await node_b.bindings(aor) == []
        await node_a.replace(aor, [desk, soft])
        assert await node_b.bindings(aor) == [desk, soft]  # the other node sees them
        await node_b.replace(aor, [desk])
        assert await node_a.bindings(aor) == [desk]
        with world.services.db.read() as s:
            assert s.scalar(select(SipBindingRow.tenant_id)) == world.tenant_id
        await node_a.replace("sip:9999@elsewhere", [soft])  # unknown user: no tenant
        assert node_a.purge_expired(now + timedelta(seconds=61)) == 1
        assert node_b.all_bindings() == [desk]
        await node_a.replace(aor, [])
        assert await node_b.bindings(aor) == []
    finally:
        node_b.db.dispose()


async def test_serve_purges_expired_registrations_in_the_background(world: World) -> None:
    """The application's SIP housekeeping deletes bindings whose time ran out."""
    import asyncio
    from types import SimpleNamespace

    from sparklecomm.app import _sip_housekeeping

    extensions: ExtensionService = world.services.extra["extensions"]
    extensions.do_create(world.tenant_id, Actor.cli(), number="1001", password="pw-1001-secret")
    store = SqlLocationStore(world.services.db)
    now = world.clock.now()
    aor = "sip:1001@sparklecomm"
    gone = Binding(aor, "<sip:1001@127.0.0.1:5080>", now - timedelta(seconds=1), "c1", 1)
    live = Binding(aor, "<sip:1001@127.0.0.1:5090>", now + timedelta(seconds=600), "c2", 1)
    await store.replace(aor, [gone, live])
    assert store.all_bindings() == [gone, live]
    sip = SimpleNamespace(locations=store, clock=world.clock)
    housekeeping = _sip_housekeeping(sip, interval=0.05)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(housekeeping)
    try:
        for _ in range(200):
            if store.all_bindings() == [live]:
                break
            await asyncio.sleep(0.02)
        assert store.all_bindings() == [live]
    finally:
        task.cancel()
