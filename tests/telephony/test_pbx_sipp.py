"""The PBX's dial plan and trunk recognition behind the real SIP server, with SIPp peers, in
a loopback-only network namespace: a carrier trunk (SIPp from 127.0.0.2, no password)
calls a DID that rings extension 1002 (a registered SIPp UAS); a number that is no DID gets
404, a blocked caller 403; an authenticated extension dialling out without a dial rule 403.
Extensions, DIDs, trunks come from SQL through PbxService, registrations are kept in SQL
(SqlLocationStore) — SQLite here."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import World
from tests.telephony.sip_support import loopback_namespace, run_sipp

from sparklecomm.audit.store import Actor
from sparklecomm.core.clock import SystemClock
from sparklecomm.store.db import Database
from sparklecomm.telephony import SipServer, SipServerConfig, loopback_only
from sparklecomm.telephony.extensions import ExtensionService
from sparklecomm.telephony.pbx.locations import SqlLocationStore
from sparklecomm.telephony.pbx.service import PbxService
from sparklecomm.telephony.sip.timers import TimerConfig

SIPP = Path(__file__).parent / "sipp"
PASSWORDS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
TRUNK_HOST = "127.0.0.2"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
async def server(sqlite_world: World) -> AsyncIterator[SipServer]:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    svc = sqlite_world.services
    extensions: ExtensionService = svc.extra["extensions"]
    pbx: PbxService = svc.extra["pbx"]
    tenant, actor = sqlite_world.tenant_id, Actor.cli()
    for number, password in PASSWORDS.items():
        extensions.do_create(tenant, actor, number=number, password=password)
    pbx.do_create_trunk(
        tenant, actor, {"name": "carrier", "host": TRUNK_HOST, "allowed_sources": [TRUNK_HOST]}
    )
    pbx.do_create_did(tenant, actor, number="+4930100", destination="extension:1002")
    pbx.do_block(tenant, actor, "+1900*")
    with loopback_namespace():
        sip = SipServer(
            SipServerConfig(
                host="127.0.0.1",
                port=0,
                transports=("UDP",),
                realm=svc.settings.sip_realm,
                digest_algorithms=("MD5", "SHA-256"),  # SIPp 3.6 knows only MD5
                timers=TimerConfig(t1=0.2, t2=1.0, t4=1.0),
                allowed_target=loopback_only,
            ),
            clock=SystemClock(),
            credentials=extensions,
            locations=SqlLocationStore(svc.db),  # registrations in SQL
            **pbx.sip_options(),
        )
        await sip.start()
        try:
            yield sip
        finally:
            await sip.stop()


async def sipp(server: SipServer, *args: str, ip: str = "127.0.0.1") -> tuple[int, str]:
    return await run_sipp(
        f"127.0.0.1:{server.port}",
        *args,
        "-i",
        ip,
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "15s",
        "-timeout_error",
    )


async def test_trunk_call_to_a_did_rings_the_extension(
    server: SipServer, sqlite_world: World
) -> None:
    world = sqlite_world
    # 1002's phone: a SIPp UAS that registers and answers
    callee = asyncio.get_running_loop().create_task(
        asyncio.create_subprocess_exec(
            "sipp",
            "-sf",
            str(SIPP / "call_uas.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            "5080",
            "-mp",
            "16000",
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    )
    await asyncio.sleep(0.3)
    rc, out = await sipp(
        server,
        "-sf", str(SIPP / "call_register.xml"),
        "-s", "1002", "-au", "1002", "-ap", PASSWORDS["1002"],
        "-key", "contact_port", "5080",
        "-p", "5070",
    )  # fmt: skip
    assert rc == 0, out[-2000:]
    # the registration is in SQL, visible to another node with its own connection
    other_node = SqlLocationStore(Database(world.services.db.url, SystemClock()))
    (binding,) = other_node.all_bindings()
    assert binding.aor.startswith("sip:1002@") and ":5080" in binding.contact
    assert await other_node.bindings(binding.aor) == [binding]
    other_node.db.dispose()
    rc, out = await sipp(
        server,
        "-sf", str(SIPP / "pbx_trunk_uac.xml"),
        "-s", "4930100",  # the carrier sends the DID without '+'
        "-key", "caller", "+4917612345",
        "-p", "5090", "-mp", "17000",
        ip=TRUNK_HOST,
    )  # fmt: skip
    assert rc == 0, out[-3000:]
    process = await callee
    uas_out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, uas_out.decode(errors="replace")[-3000:]


async def test_trunk_calls_to_unknown_numbers_and_from_blocked_callers_are_refused(
    server: SipServer,
) -> None:
    rc, out = await sipp(
        server,
        "-sf", str(SIPP / "pbx_trunk_404.xml"),
        "-s", "+4930999", "-key", "caller", "+4917612345", "-p", "5091",
        ip=TRUNK_HOST,
    )  # fmt: skip
    assert rc == 0, out[-3000:]
    rc, out = await sipp(
        server,
        "-sf", str(SIPP / "pbx_trunk_403.xml"),
        "-s", "+4930100", "-key", "caller", "+19005550000", "-p", "5092",
        ip=TRUNK_HOST,
    )  # fmt: skip
    assert rc == 0, out[-3000:]


async def test_extension_dialling_out_without_a_rule_gets_403(server: SipServer) -> None:
    rc, out = await sipp(
        server,
        "-sf", str(SIPP / "pbx_auth_403.xml"),
        "-s", "+4930555666",
        "-au", "1001", "-ap", PASSWORDS["1001"],
        "-auth_uri", f"+4930555666@127.0.0.1:{server.port}",
        "-key", "caller", "1001", "-p", "5093",
    )  # fmt: skip
    assert rc == 0, out[-3000:]
