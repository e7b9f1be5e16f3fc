"""The telephony issue's "done when", through the real ``sparklecomm serve``: an administrator
sets up an agent, a queue, two extensions and a DID over the REST API; the agent's desk
phone (SIPp) registers and the agent goes ready; a caller (SIPp, extension 1001) dials the
DID and is answered by the agent the ACD chose; hanging up puts the agent in wrap-up. All
inside a loopback-only network namespace."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.telephony.sip_support import ServeApi, loopback_namespace, running_serve

SIPP = Path(__file__).parent / "sipp"
DID = "5550100"
CALLER_PASSWORD = "pw-1001-secret"
DESK_PASSWORD = "pw-2001-secret"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _sipp(*args: str) -> subprocess.Popen[str]:
    common = ["-i", "127.0.0.1", "-nostdin", "-timeout_error", "-m", "1", "-timeout", "30s"]
    return subprocess.Popen(
        ["sipp", *args, *common], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process: subprocess.Popen[str], what: str, log: Path) -> None:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, (
        f"{what}: {out[-3000:]}\n--- serve.log\n" + (log.read_text()[-3000:])
    )


def _events(api: ServeApi) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.call("GET", f"/events?after={after}&limit=1000")
        assert isinstance(page, dict)
        out += page["events"]
        if not page["events"] or page["events"][-1]["id"] >= page["last_event_id"]:
            return out
        after = page["events"][-1]["id"]


@contextmanager
def serve_center(tmp_path: Path) -> Iterator[tuple[ServeApi, str, int, int]]:
    """``sparklecomm serve`` in a loopback-only namespace, with Ana (an agent taking one
    call at a time) and two extensions: her desk phone 2001 and the caller's 1001. Yields
    the signed-in admin's client, Ana's id, the HTTP and the SIP port."""
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    with (
        loopback_namespace(),
        running_serve(
            tmp_path,
            "serve-test-pass",
            # SIPp 3.6 answers only the first challenge, and knows only MD5.
            SPARKLECOMM_SIP_DIGEST_ALGORITHMS='["MD5", "SHA-256"]',
        ) as (http_port, sip_port),
    ):
        admin = ServeApi(http_port)
        admin.login("admin", "serve-test-pass")
        ana = admin.call(
            "POST",
            "/users",
            {"username": "ana", "password": "ana-password-1", "display_name": "Ana Lima"},
        )
        assert isinstance(ana, dict)
        ana_id = ana["id"]
        admin.call("PUT", f"/agents/{ana_id}", {"capacity": {"voice": 1}})
        admin.call(
            "POST",
            "/telephony/extensions",
            {"number": "2001", "password": DESK_PASSWORD, "user_id": ana_id},
        )
        admin.call("POST", "/telephony/extensions", {"number": "1001", "password": CALLER_PASSWORD})
        yield admin, ana_id, http_port, sip_port


def desk_phone_ready(
    target: str, log: Path, scenario: str = "call_uas.xml"
) -> subprocess.Popen[str]:
    """Ana's desk phone (SIPp answering one call: ``scenario`` of ``sipp/``), registered as
    2001."""
    desk_phone = _sipp("-sf", str(SIPP / scenario), "-p", "5080", "-mp", "16000")
    time.sleep(0.3)
    register = _sipp(
        target,
        *("-sf", str(SIPP / "call_register.xml"), "-s", "2001"),
        *("-au", "2001", "-ap", DESK_PASSWORD, "-key", "contact_port", "5080", "-p", "5070"),
    )
    _finish(register, "the desk phone's REGISTER", log)
    return desk_phone


def test_a_did_call_is_answered_by_the_agent_the_acd_chose(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with serve_center(tmp_path) as (admin, ana_id, http_port, sip_port):
        queue = admin.call(
            "POST",
            "/queues",
            {
                "name": "Support line",
                "channels": ["voice"],
                "members": [{"agent_id": ana_id}],
                "offer_timeout_seconds": 20,
                "wrapup_seconds": 120,
            },
        )
        assert isinstance(queue, dict)
        admin.call(
            "POST",
            "/telephony/dids",
            {
                "number": DID,
                "destination": f"queue:{queue['id']}",
                "attributes": {"campaign": "spring"},
            },
        )

        agent = ServeApi(http_port)
        agent.login("ana", "ana-password-1")
        agent.call("POST", f"/agents/{ana_id}/login")
        agent.call("POST", f"/agents/{ana_id}/state", {"state": "available"})

        target = f"127.0.0.1:{sip_port}"
        desk_phone = desk_phone_ready(target, log)
        caller = _sipp(
            target,
            *("-sf", str(SIPP / "call_uac.xml"), "-s", DID, "-au", "1001"),
            *("-ap", CALLER_PASSWORD, "-auth_uri", f"{DID}@{target}", "-key", "caller", "1001"),
            *("-p", "5071", "-mp", "17000"),
        )
        _finish(caller, "the caller", log)
        _finish(desk_phone, "the agent's desk phone", log)

        # What the platform recorded: one voice interaction, offered to Ana, accepted when
        # her phone answered, completed when the caller hung up, then wrap-up.
        deadline = time.monotonic() + 15
        while True:
            events = _events(admin)
            kinds = [e["type"] for e in events]
            if "interaction.completed" in kinds or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        created = [e for e in events if e["type"] == "interaction.created"]
        assert len(created) == 1, kinds
        interaction = created[0]["payload"]
        assert interaction["channel"] == "voice"
        assert interaction["queue_id"] == queue["id"]
        assert interaction["attributes"]["dnis"] == DID
        assert interaction["attributes"]["ani"] == "1001"
        assert interaction["attributes"]["campaign"] == "spring"
        mine = [
            e for e in events if e["payload"].get("interaction_id") == interaction["interaction_id"]
        ]
        lifecycle = [e["type"] for e in mine]
        for step in ("interaction.offered", "interaction.accepted", "interaction.completed"):
            assert step in lifecycle, lifecycle
        assert lifecycle.index("interaction.offered") < lifecycle.index("interaction.accepted")
        assert lifecycle.index("interaction.accepted") < lifecycle.index("interaction.completed")
        offered = next(e for e in mine if e["type"] == "interaction.offered")
        assert offered["payload"]["agent_id"] == ana_id

        state = agent.call("GET", f"/agents/{ana_id}")
        assert isinstance(state, dict)
        assert state["state"] == "wrap_up", state
        # The call's own events are on the same stream: answered by Ana's phone, then ended.
        calls = [e for e in events if e["type"].startswith("call.")]
        assert [e["type"] for e in calls] == ["call.started", "call.answered", "call.ended"]
        assert calls[0]["payload"]["route"] == f"queue {queue['id']}", calls[0]
        assert calls[1]["payload"]["agent_id"] == ana_id, calls[1]
        assert calls[2]["payload"]["reason"] == "caller_hangup", calls[2]
