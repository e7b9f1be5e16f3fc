"""A post-call survey through the real ``sparklecomm serve``: an administrator has the support
queue ask its callers to rate the call (1 to 5); a caller (SIPp) dials the queue's DID and
Ana's desk phone (SIPp) answers, then hangs up first; the platform keeps the caller, asks
the question (RTP from the platform) and takes the key 5 (RFC 4733 from the caller's media
port), thanks and hangs up. The answer is listed for the supervisor and is the queue's
CSAT of the day. Inside a loopback-only network namespace."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from tests.telephony.sip_support import ServeApi
from tests.telephony.test_serve_menu_call import _press, listening_caller
from tests.telephony.test_serve_queue_call import (
    _events,
    _finish,
    desk_phone_ready,
    serve_center,
)

from sparklecomm.telephony.media.rtp import parse_rtp_header

DID = "5550100"
CALLER_MEDIA = 17400
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_the_caller_rates_the_call_after_the_agent_hangs_up(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with serve_center(tmp_path) as (admin, ana_id, http_port, sip_port):
        admin.call(
            "POST",
            "/queues",
            {
                "id": "support",
                "name": "Support line",
                "channels": ["voice"],
                "members": [{"agent_id": ana_id}],
                "survey": {"enabled": True, "max_score": 5},
            },
        )
        admin.call("POST", "/telephony/dids", {"number": DID, "destination": "queue:support"})
        ana = ServeApi(http_port)
        ana.login("ana", "ana-password-1")
        ana.call("POST", f"/agents/{ana_id}/login")  # ready at once

        target = f"127.0.0.1:{sip_port}"
        desk_phone = desk_phone_ready(target, log, "call_uas_hangs_up.xml")
        scenario = "menu_uac_hung_up.xml"
        with listening_caller(target, scenario, DID, CALLER_MEDIA) as (caller, media):
            # Ana's phone answers, then hangs up; the question is the platform's RTP.
            packets = []
            while len(packets) < 25:
                data, relay = media.recvfrom(2048)
                packets.append(parse_rtp_header(data))
            assert {p.payload_type for p in packets} == {0}
            _press(media, 5, relay)
            _finish(caller, "the caller", log)
        _finish(desk_phone, "Ana's desk phone", log)

        def answered() -> list[dict[str, Any]]:
            found = admin.call("GET", "/surveys")
            assert isinstance(found, list)
            return found

        deadline = time.monotonic() + 15
        while not answered():
            assert time.monotonic() < deadline, "no survey answer stored"
            time.sleep(0.2)
        (answer,) = answered()
        events = _events(admin)
        completed = [e["payload"] for e in events if e["type"] == "interaction.completed"]
        assert len(completed) == 1
        assert answer["interaction_id"] == completed[0]["interaction_id"]
        assert (answer["queue_id"], answer["agent_id"]) == ("support", ana_id)
        assert (answer["score"], answer["max_score"]) == (5, 5)
        assert (answer["channel"], answer["source"]) == ("voice", "phone")
        calls = [e for e in events if e["type"].startswith("call.")]
        assert [e["type"] for e in calls] == [
            "call.started",
            "call.answered",
            "call.survey",
            "call.survey_answered",
            "call.ended",
        ], calls
        assert calls[-1]["payload"]["reason"] == "survey"
        stats = admin.call("GET", "/stats/queues")
        assert isinstance(stats, dict)
        assert stats["queues"]["support"]["csat"] == 100.0  # one answer, the top of the scale
        assert stats["queues"]["support"]["surveys"] == 1
