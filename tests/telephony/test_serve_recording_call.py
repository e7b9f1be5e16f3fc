"""A recorded call through the real ``sparklecomm serve``: an administrator has the support
queue recorded (``PUT /recording-policy``); a caller (SIPp) dials the queue's DID and Ana's
desk phone (SIPp) answers, each streaming its own tone; Ana pauses the recording from her
desk while the customer gives a card number, then resumes. The recording is then listed
(for the supervisor and for Ana), downloadable as a stereo WAV with the caller on the
left, Ana on the right and silence where it was paused, and its steps are on the event
stream. Inside a loopback-only network namespace."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.telephony.sip_support import ServeApi
from tests.telephony.test_call_recording_sipp import (
    AGENT_HZ,
    CALLER_HZ,
    channel_tone,
    read_stereo,
    spoken,
    talking_scenarios,
)
from tests.telephony.test_serve_queue_call import (
    CALLER_PASSWORD,
    DESK_PASSWORD,
    SIPP,
    _events,
    _finish,
    _sipp,
    serve_center,
)

DID = "5550100"
TALK_SECONDS = 4.0
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _wait(check: object, what: str, seconds: float = 15.0) -> object:
    deadline = time.monotonic() + seconds
    while True:
        value = check()  # type: ignore[operator]
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_queue_call_is_recorded_paused_and_listened_to(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    desk_scenario, caller_scenario = talking_scenarios(tmp_path, TALK_SECONDS)
    with serve_center(tmp_path) as (admin, ana_id, http_port, sip_port):
        queue = admin.call(
            "POST",
            "/queues",
            {"name": "Support", "channels": ["voice"], "members": [{"agent_id": ana_id}]},
        )
        assert isinstance(queue, dict)
        admin.call(
            "POST", "/telephony/dids", {"number": DID, "destination": f"queue:{queue['id']}"}
        )
        policy = admin.call(
            "PUT",
            "/recording-policy",
            {"all_calls": False, "queues": [queue["id"]], "extensions": [], "retention_days": 90},
        )
        assert isinstance(policy, dict) and policy["queues"] == [queue["id"]]
        ana = ServeApi(http_port)
        ana.login("ana", "ana-password-1")
        ana.call("POST", f"/agents/{ana_id}/login")
        ana.call("POST", f"/agents/{ana_id}/state", {"state": "available"})

        target = f"127.0.0.1:{sip_port}"
        desk_phone = _sipp("-sf", str(desk_scenario), "-p", "5080", "-mp", "16000")
        time.sleep(0.3)
        register = _sipp(
            target,
            *("-sf", str(SIPP / "call_register.xml"), "-s", "2001", "-au", "2001"),
            *("-ap", DESK_PASSWORD, "-key", "contact_port", "5080", "-p", "5070"),
        )
        _finish(register, "the desk phone's REGISTER", log)
        caller = _sipp(
            target,
            *("-sf", str(caller_scenario), "-s", DID, "-au", "1001"),
            *("-ap", CALLER_PASSWORD, "-auth_uri", f"{DID}@{target}", "-key", "caller", "1001"),
            *("-p", "5071", "-mp", "17000"),
        )

        def talking_with_ana() -> str | None:
            me = ana.call("GET", f"/agents/{ana_id}")
            assert isinstance(me, dict)
            return me["interactions"][0] if me["interactions"] else None

        iid = str(_wait(talking_with_ana, "Ana's call"))
        path = f"/interactions/{iid}/recording"

        def recording_state() -> str | None:
            state = ana.call("POST", path, {"action": "state"})
            assert isinstance(state, dict)
            return state["state"] if state["state"] != "off" else None

        assert _wait(recording_state, "the rules' recording", 5) == "recording"
        time.sleep(1.0)
        paused = ana.call("POST", path, {"action": "pause"})
        assert isinstance(paused, dict) and paused["state"] == "paused"
        assert paused["interaction_id"] == iid
        time.sleep(1.0)
        resumed = ana.call("POST", path, {"action": "resume"})
        assert isinstance(resumed, dict) and resumed["state"] == "recording"
        _finish(caller, "the caller", log)
        _finish(desk_phone, "Ana's desk phone", log)

        def stored() -> dict | None:  # type: ignore[type-arg]
            found = admin.call("GET", f"/recordings?interaction_id={iid}")
            assert isinstance(found, list)
            return found[0] if found and found[0]["status"] == "complete" else None

        recording = _wait(stored, "the stored recording")
        assert isinstance(recording, dict)
        assert recording["queue_id"] == queue["id"] and recording["agent_id"] == ana_id
        assert recording["started_by"] == "policy" and recording["caller"] == "1001"
        ((start, end),) = recording["pauses"]
        assert 0.7 <= end - start <= 1.6
        assert TALK_SECONDS - 0.5 <= recording["seconds"] <= TALK_SECONDS + 2.0
        mine = ana.call("GET", "/recordings")
        assert isinstance(mine, list) and [r["id"] for r in mine] == [recording["id"]]

        with admin._opener.open(
            f"{admin.base}/recordings/{recording['id']}/audio", timeout=15
        ) as got:
            assert got.headers["Content-Type"] == "audio/wav"
            wav = tmp_path / "downloaded.wav"
            wav.write_bytes(got.read())
        audio = read_stereo(wav)
        left, right = audio[:, 0], audio[:, 1]
        assert abs(channel_tone(left) - CALLER_HZ) < 15
        assert abs(channel_tone(right) - AGENT_HZ) < 15
        quiet = audio[int(start * 8000) + 80 : int(end * 8000) - 80]
        assert len(quiet) > 0.5 * 8000 and not quiet.any()  # nothing while paused
        heard = TALK_SECONDS - (end - start)
        assert heard - 0.6 <= spoken(left) <= heard + 0.3
        assert heard - 0.6 <= spoken(right) <= heard + 0.3

        kinds = [e["type"] for e in _events(admin) if e["type"].startswith("recording.")]
        assert kinds[-4:] == [
            "recording.started",
            "recording.paused",
            "recording.resumed",
            "recording.stopped",
        ], kinds
        assert list(Path(tmp_path).rglob(f"{recording['id']}.wav"))  # in the data directory
