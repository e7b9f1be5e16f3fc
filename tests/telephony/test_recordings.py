"""Call recordings: the B2BUA's protocol writing rows and events, the policy with its
checks, listing with roles and filters, the audio download (with Range), delete, the
retention purge and the recovery of recordings a dead node left behind — over the real
database (SQLite and PostgreSQL) and disk. The recorder is not part of this: the tests write
the WAV files it would."""

from __future__ import annotations

import io
import json
import os
import time
import wave
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import World
from tests.routing.test_routing_service import Api
from tests.telephony.test_pbx_api import SIP_PASSWORD
from tests.telephony.test_pbx_cli import ok, run

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound
from sparklecomm.store.db import read_events
from sparklecomm.store.models import AuditLog, CallRecording
from sparklecomm.telephony.recordings import STALE_SECONDS, RecordingService, repair_wav


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def service(world: World) -> RecordingService:
    svc: RecordingService = world.services.extra["recordings"]
    return svc


def stereo(seconds: float) -> bytes:
    """What the recorder writes: 8 kHz, 16-bit, the caller left and the agent right."""
    t = np.arange(int(8000 * seconds)) / 8000
    left = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    right = (np.sin(2 * np.pi * 660 * t) * 8000).astype(np.int16)
    frames = np.column_stack([left, right]).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    return out.getvalue()


async def record(
    world: World,
    *,
    agent_id: str | None,
    queue_id: str | None = "support",
    seconds: float = 1.0,
    caller: str = "+4917612345",
    interaction_id: str | None = None,
    finish: bool = True,
) -> tuple[str, Path]:
    """A call recorded through the B2BUA's protocol, with the file the recorder would
    leave."""
    recordings = service(world)
    recording_id, path = await recordings.begin_recording(
        world.tenant_id,
        call_id=f"call-{caller}",
        caller=caller,
        dialled="+4930200",
        interaction_id=interaction_id,
        queue_id=queue_id,
        agent_id=agent_id,
        started_by="policy",
    )
    if finish:
        world.clock.advance(seconds)
        wav = stereo(seconds)
        path.write_bytes(wav)
        await recordings.finish_recording(
            world.tenant_id,
            recording_id,
            seconds=seconds,
            paused_seconds=0.0,
            pauses=[],
            size=len(wav),
            ok=True,
        )
    return recording_id, path


def event_types(world: World) -> list[str]:
    with world.services.db.read() as s:
        return [e.type for e in read_events(s, world.tenant_id, 0, 1000)]


def recording_events(world: World) -> list[tuple[str, dict[str, object]]]:
    with world.services.db.read() as s:
        return [
            (e.type, e.payload["recording"])
            for e in read_events(s, world.tenant_id, 0, 1000)
            if e.type.startswith("recording.") and "recording" in e.payload
        ]


# -- the protocol the B2BUA calls ----------------------------------------------------------------
async def test_a_recorded_call_from_start_to_end(client: TestClient, world: World) -> None:
    recordings = service(world)
    start = world.clock.now()
    recording_id, path = await recordings.begin_recording(
        world.tenant_id,
        call_id="c0ffee",
        caller="+49176\x00 12345",
        dialled="+4930200",
        interaction_id="i-1",
        queue_id="support",
        agent_id=world.agent_id,
        started_by=world.supervisor_id,
    )
    folder = world.services.settings.data_dir / "recordings" / world.tenant_id
    assert path == folder / f"{recording_id}.wav" and folder.is_dir()
    with world.services.db.read() as s:
        row = s.get(CallRecording, recording_id)
        assert row is not None
        assert (row.status, row.caller, row.started_by, row.started_at) == (
            "recording",
            "+49176 12345",  # what came in the SIP header, made safe to store
            world.supervisor_id,
            start,
        )
    world.clock.advance(10)
    await recordings.recording_paused(world.tenant_id, recording_id, offset=4.0, by=world.agent_id)
    paused = recordings.recording(world.tenant_id, recording_id)
    assert paused["pauses"] == [[4.0, None]]  # a listing shows it paused
    await recordings.recording_resumed(world.tenant_id, recording_id, offset=7.5, by=world.agent_id)
    wav = stereo(6.5)
    path.write_bytes(wav)
    await recordings.finish_recording(
        world.tenant_id,
        recording_id,
        seconds=6.5,
        paused_seconds=3.5,
        pauses=[(4.0, 7.5)],
        size=len(wav),
        ok=True,
    )
    done = recordings.recording(world.tenant_id, recording_id)
    assert done["status"] == "complete" and done["seconds"] == 6.5
    assert done["paused_seconds"] == 3.5 and done["pauses"] == [[4.0, 7.5]]
    assert done["bytes"] == len(wav) and done["ended_at"] is not None
    events = recording_events(world)
    assert [k for k, _ in events] == [
        "recording.started",
        "recording.paused",
        "recording.resumed",
        "recording.stopped",
    ]
    assert events[1][1]["offset"] == 4.0 and events[1][1]["by"] == world.agent_id
    assert events[2][1]["offset"] == 7.5
    assert set(events[3][1]) == {
        "id", "call_id", "interaction_id", "queue_id", "agent_id", "caller", "dialled",
        "started_by", "started_at", "ended_at", "seconds", "paused_seconds", "pauses",
        "status", "bytes",
    }  # fmt: skip
    # ended: no more pauses, no second finish
    with pytest.raises(Conflict):
        await recordings.recording_paused(world.tenant_id, recording_id, offset=9, by="x")
    with pytest.raises(Conflict):
        recordings.finish_recording_sync(
            world.tenant_id, recording_id, seconds=1, paused_seconds=0, pauses=[], size=1, ok=True
        )
    with pytest.raises(NotFound):
        await recordings.recording_paused(world.tenant_id, "nosuch", offset=1, by="x")


async def test_a_failed_recording_leaves_no_file(client: TestClient, world: World) -> None:
    recordings = service(world)
    recording_id, path = await record(world, agent_id=world.agent_id, finish=False)
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(stereo(0.5))
    await recordings.finish_recording(
        world.tenant_id, recording_id, seconds=0.5, paused_seconds=0, pauses=[], size=0, ok=False
    )
    assert not partial.exists() and not path.exists()
    failed = recordings.recording(world.tenant_id, recording_id)
    assert failed["status"] == "failed" and failed["bytes"] == 0
    with pytest.raises(NotFound, match="failed"):
        recordings.audio_path(world.tenant_id, recording_id)


# -- the policy ------------------------------------------------------------------------------------
async def test_the_policy_decides_which_calls_are_recorded(
    client: TestClient, world: World
) -> None:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    recordings = service(world)
    admin.post("/queues", {"id": "support", "name": "Support"}, status=201)
    admin.post("/queues", {"id": "sales", "name": "Sales"}, status=201)
    admin.post("/telephony/extensions", {"number": "1001", "password": SIP_PASSWORD}, status=201)
    admin.post("/telephony/extensions", {"number": "1002", "password": SIP_PASSWORD}, status=201)

    # no policy: nothing recorded, kept forever
    assert sup.get("/recording-policy") == {
        "all_calls": False, "queues": [], "extensions": [], "retention_days": 0,
        "updated_at": None,
    }  # fmt: skip
    assert not await recordings.recording_wanted(world.tenant_id, queue_id="support", extensions=[])
    ana.get("/recording-policy", status=403)

    body = {"all_calls": False, "queues": ["support"], "extensions": ["1002"], "retention_days": 90}
    sup.send("PUT", "/recording-policy", body, status=403)
    saved = admin.send("PUT", "/recording-policy", body)
    assert saved["queues"] == ["support"] and saved["extensions"] == ["1002"]
    assert saved["retention_days"] == 90 and saved["updated_at"] is not None
    assert sup.get("/recording-policy") == saved

    async def wanted(queue_id: str | None, *extensions: str) -> bool:
        return await recordings.recording_wanted(
            world.tenant_id, queue_id=queue_id, extensions=extensions
        )

    assert await wanted("support")
    assert not await wanted("sales")
    assert await wanted(None, "1001", "1002")
    assert not await wanted(None, "1001")
    admin.send("PUT", "/recording-policy", {**body, "all_calls": True})
    assert await wanted("sales") and await wanted(None)

    # unknown queues and extensions are named; the body is strict and bounded
    problem = admin.send("PUT", "/recording-policy", {**body, "queues": ["nope"]}, status=422)
    assert "no queue 'nope'" in problem["detail"] and problem["errors"][0]["field"] == "queues"
    problem = admin.send("PUT", "/recording-policy", {**body, "extensions": ["4711"]}, status=422)
    assert "no extension 4711" in problem["detail"]
    assert problem["errors"][0]["field"] == "extensions"
    problem = admin.send("PUT", "/recording-policy", {**body, "retention_days": 3651}, status=422)
    assert "retention_days" in problem["detail"]
    admin.send("PUT", "/recording-policy", {**body, "retention_days": -1}, status=422)
    admin.send("PUT", "/recording-policy", {**body, "bogus": 1}, status=422)
    with pytest.raises(InvalidInput) as refused:
        recordings.do_set_policy(world.tenant_id, Actor.cli(), False, [], [], 5000)
    assert refused.value.field == "retention_days"
    assert sup.get("/recording-policy")["all_calls"] is True  # refused changes changed nothing

    with world.services.db.read() as s:
        audit = [a.action for a in s.scalars(select(AuditLog))]
    assert audit.count("recording.policy_changed") == 2
    assert event_types(world).count("recording.policy_changed") == 2


# -- listing, download, delete -------------------------------------------------------------------
async def test_recordings_over_http_with_roles_and_filters(
    client: TestClient, world: World
) -> None:
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    t0 = world.clock.now()
    first, _ = await record(world, agent_id=world.agent_id, seconds=1.0, interaction_id="i-1")
    world.clock.advance(60)
    other, _ = await record(world, agent_id=world.supervisor_id, queue_id="sales", seconds=2.0)
    world.clock.advance(60)
    second, _ = await record(world, agent_id=world.agent_id, seconds=3.0, caller="+4930999")
    live, _ = await record(world, agent_id=world.agent_id, finish=False)

    assert [r["id"] for r in sup.get("/recordings")] == [live, second, other, first]
    assert [r["id"] for r in admin.get(f"/recordings?agent_id={world.agent_id}")] == [
        live, second, first,
    ]  # fmt: skip
    assert [r["id"] for r in sup.get("/recordings?queue_id=sales")] == [other]
    assert [r["id"] for r in sup.get("/recordings?interaction_id=i-1")] == [first]
    assert [r["id"] for r in sup.get("/recordings?call_id=call-%2B4930999")] == [second]
    # started at t0 (first), t0+61 s (other), t0+123 s (second), t0+126 s (live)
    since = (t0 + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    until = (t0 + timedelta(seconds=123)).isoformat().replace("+00:00", "Z")
    assert [r["id"] for r in sup.get(f"/recordings?since={since}&until={until}")] == [other]
    assert [r["id"] for r in sup.get("/recordings?limit=2&offset=1")] == [second, other]
    sup.get("/recordings?limit=501", status=422)
    problem = sup.get("/recordings?since=2026-12-01T10:00:00", status=422)
    assert problem["errors"][0]["field"] == "since"

    # agents: their own calls only
    assert [r["id"] for r in ana.get("/recordings")] == [live, second, first]
    problem = ana.get(f"/recordings?agent_id={world.supervisor_id}", status=403)
    assert problem["errors"][0]["field"] == "agent_id"
    assert ana.get(f"/recordings/{first}")["seconds"] == 1.0
    ana.get(f"/recordings/{other}", status=403)
    ana.get("/recordings/nosuchid", status=404)
    r = client.get(f"/api/v1/recordings/{other}/audio", headers=ana.headers)
    assert r.status_code == 403

    # the audio: a WAV file, with Range for seeking
    r = client.get(f"/api/v1/recordings/{second}/audio", headers=ana.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.headers["accept-ranges"] == "bytes"
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (8000, 2, 24000)
    part = client.get(
        f"/api/v1/recordings/{second}/audio", headers={**ana.headers, "Range": "bytes=44-1043"}
    )
    assert part.status_code == 206 and part.content == r.content[44:1044]
    assert part.headers["content-range"] == f"bytes 44-1043/{len(r.content)}"
    # still recording: no audio yet, and it cannot be deleted
    problem = sup.get(f"/recordings/{live}/audio", status=409)
    assert "in progress" in problem["detail"]
    problem = admin.send("DELETE", f"/recordings/{live}", status=409)
    assert "in progress" in problem["detail"]
    # a file gone missing is a 404 naming it
    folder = world.services.settings.data_dir / "recordings" / world.tenant_id
    (folder / f"{first}.wav").rename(folder / "elsewhere.wav")
    assert "missing" in sup.get(f"/recordings/{first}/audio", status=404)["detail"]

    # delete: administrators only; the row, the file, an audit entry and an event
    ana.send("DELETE", f"/recordings/{second}", status=403)
    sup.send("DELETE", f"/recordings/{second}", status=403)
    assert (folder / f"{second}.wav").exists()
    admin.send("DELETE", f"/recordings/{second}", status=204)
    assert not (folder / f"{second}.wav").exists()
    admin.send("DELETE", f"/recordings/{second}", status=404)
    assert [r["id"] for r in sup.get("/recordings")] == [live, other, first]
    with world.services.db.read() as s:
        audit = [a.action for a in s.scalars(select(AuditLog))]
    assert audit.count("recording.deleted") == 1
    deleted = [p for k, p in recording_events(world) if k == "recording.deleted"]
    assert [p["id"] for p in deleted] == [second]


def test_openapi_documents_the_recording_routes(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/v1/recordings"]) == {"get"}
    assert set(paths["/api/v1/recordings/{recording_id}"]) == {"get", "delete"}
    audio = paths["/api/v1/recordings/{recording_id}/audio"]["get"]
    assert "audio/wav" in audio["responses"]["200"]["content"]
    assert set(paths["/api/v1/recording-policy"]) == {"get", "put"}


# -- retention -------------------------------------------------------------------------------------
async def test_the_retention_purge_deletes_old_ended_recordings(
    client: TestClient, world: World
) -> None:
    recordings = service(world)
    old, old_path = await record(world, agent_id=world.agent_id)
    still_live, _ = await record(world, agent_id=world.agent_id, finish=False)
    world.clock.advance(29 * 86400)
    recent, recent_path = await record(world, agent_id=world.agent_id)
    # no policy: kept forever
    assert recordings.purge_expired(world.clock.now() + timedelta(days=3650)) == 0
    recordings.do_set_policy(world.tenant_id, Actor.cli(), False, [], [], 30)
    world.clock.advance(2 * 86400)  # "old" ended 31 days ago, "recent" 2 days ago
    assert recordings.purge_expired(world.clock.now()) == 1
    assert not old_path.exists() and recent_path.exists()
    ids = {r["id"] for r in recordings.recordings(world.tenant_id)}
    assert ids == {still_live, recent}  # a recording in progress is never purged
    assert recordings.purge_expired(world.clock.now()) == 0
    with world.services.db.read() as s:
        purged = [a for a in s.scalars(select(AuditLog)) if a.action == "recording.purged"]
    assert len(purged) == 1 and purged[0].details == {"count": 1, "retention_days": 30}
    assert purged[0].actor_name == "retention"
    assert [p["id"] for k, p in recording_events(world) if k == "recording.deleted"] == [old]


# -- recordings a dead node left behind ----------------------------------------------------------
def stale(path: Path) -> None:
    past = time.time() - STALE_SECONDS - 5
    os.utime(path, (past, past))


async def test_recovery_repairs_the_partial_file_of_a_dead_node(
    client: TestClient, world: World
) -> None:
    recordings = service(world)
    crashed, crashed_path = await record(world, agent_id=world.agent_id, finish=False)
    await recordings.recording_paused(world.tenant_id, crashed, offset=1.0, by=world.agent_id)
    await recordings.recording_resumed(world.tenant_id, crashed, offset=1.5, by=world.agent_id)
    await recordings.recording_paused(world.tenant_id, crashed, offset=2.0, by=world.agent_id)
    lost, _ = await record(world, agent_id=world.agent_id, finish=False, caller="+491")
    live, live_path = await record(world, agent_id=world.agent_id, finish=False, caller="+492")

    # The crashed node's last flush wrote the header for 1 s; 1.5 s more and half a frame
    # came after it.
    wav = stereo(2.5)
    header_of_one_second = stereo(1.0)[:44]
    crashed_partial = crashed_path.with_name(f".{crashed_path.name}.part")
    crashed_partial.write_bytes(header_of_one_second + wav[44:] + b"\x01\x02")
    stale(crashed_partial)  # it died while paused
    live_partial = live_path.with_name(f".{live_path.name}.part")
    live_partial.write_bytes(stereo(1.0))  # written just now: another node's live call
    world.clock.advance(STALE_SECONDS + 1)
    young, _ = await record(world, agent_id=world.agent_id, finish=False, caller="+494")

    assert recordings.recover_interrupted() == 2  # the crashed one and the lost one
    assert not crashed_partial.exists() and crashed_path.exists()
    with wave.open(str(crashed_path)) as w:
        assert (w.getnchannels(), w.getnframes()) == (2, 20000)
    assert crashed_path.read_bytes() == wav
    done = recordings.recording(world.tenant_id, crashed)
    assert done["status"] == "interrupted" and done["seconds"] == 2.5
    assert done["bytes"] == len(wav) and done["ended_at"] is not None
    assert done["pauses"] == [[1.0, 1.5]] and done["paused_seconds"] == 0.5
    assert recordings.recording(world.tenant_id, lost)["status"] == "failed"
    assert recordings.recording(world.tenant_id, live)["status"] == "recording"
    assert recordings.recording(world.tenant_id, young)["status"] == "recording"
    assert live_partial.exists()
    stopped = {p["id"]: p["status"] for k, p in recording_events(world) if k == "recording.stopped"}
    assert stopped == {crashed: "interrupted", lost: "failed"}
    _, path = recordings.audio_path(world.tenant_id, crashed)
    assert path == crashed_path
    # a second run (another node) finds nothing more to do
    assert recordings.recover_interrupted() == 0
    # the live call's node finishes normally later
    await recordings.finish_recording(
        world.tenant_id, live, seconds=1, paused_seconds=0, pauses=[], size=1, ok=True
    )
    assert recordings.recording(world.tenant_id, live)["status"] == "complete"
    # a node that only stalled (its file recovered by another) cannot rename its partial
    # file any more and reports a failure: the recovered audio stays
    await recordings.finish_recording(
        world.tenant_id, crashed, seconds=0, paused_seconds=0, pauses=[], size=0, ok=False
    )
    assert recordings.recording(world.tenant_id, crashed)["status"] == "interrupted"
    assert crashed_path.read_bytes() == wav


def test_repair_refuses_what_is_not_a_wav(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"hello" * 20)
    with pytest.raises(InvalidInput):
        repair_wav(junk)
    good = tmp_path / "good.wav"
    good.write_bytes(stereo(0.25))
    assert repair_wav(good) == (44 + 8000, 0.25)


# -- the command line ------------------------------------------------------------------------------
@pytest.fixture
def cli_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    """The organisation ``acme`` with queue ``support``, extension 1001 and one recording."""
    monkeypatch.setenv("SPARKLECOMM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SPARKLECOMM_DATABASE_URL", raising=False)
    monkeypatch.setenv("SPARKLECOMM_SIP_ENABLED", "false")
    from sparklecomm.cli import _overrides, _services

    _overrides.clear()
    ok("tenant", "add", "acme", "--name", "Acme")
    ok("extension", "add", "1001", "--tenant", "acme", "--password", "phone-secret-1")
    services = _services()
    tenant_id = services.auth.tenant_by_slug("acme").tenant_id
    services.extra["acd"].execute(tenant_id, "add_queue", config={"id": "support"})
    recordings: RecordingService = services.extra["recordings"]
    recording_id, path = recordings.begin_recording_sync(
        tenant_id,
        call_id="c",
        caller="+4917612345",
        dialled="+4930200",
        interaction_id=None,
        queue_id="support",
        agent_id="agent-1",
        started_by="policy",
    )
    wav = stereo(1.5)
    path.write_bytes(wav)
    recordings.finish_recording_sync(
        tenant_id, recording_id, seconds=1.5, paused_seconds=0, pauses=[], size=len(wav), ok=True
    )
    services.db.dispose()
    return "acme", recording_id, tenant_id


def test_recordings_from_the_command_line(cli_tenant: tuple[str, str, str]) -> None:
    tenant, recording_id, _ = cli_tenant
    t = ("--tenant", tenant)
    listed = ok("recordings", "list", *t)
    assert recording_id in listed and "+4917612345" in listed and "complete" in listed
    rows = json.loads(ok("recordings", "list", "--agent", "agent-1", *t, "--json"))
    assert [r["id"] for r in rows] == [recording_id] and rows[0]["seconds"] == 1.5
    assert json.loads(ok("recordings", "list", "--agent", "other", *t, "--json")) == []
    future = json.loads(ok("recordings", "list", "--since", "2999-01-01T00:00:00Z", *t, "--json"))
    assert future == []
    code, _, err = run("recordings", "list", "--since", "yesterday", *t)
    assert code == 2 and "since" in err

    shown = ok("recordings", "policy", *t)
    assert "all calls: no" in shown and "keep forever" in shown
    changed = json.loads(
        ok(
            "recordings", "policy", "--queue", "support", "--extension", "1001",
            "--retention-days", "30", *t, "--json",
        )
    )  # fmt: skip
    assert changed["queues"] == ["support"] and changed["extensions"] == ["1001"]
    assert changed["retention_days"] == 30 and changed["all_calls"] is False
    # options left out keep their values
    again = json.loads(ok("recordings", "policy", "--all-calls", *t, "--json"))
    assert again["all_calls"] is True and again["queues"] == ["support"]
    code, _, err = run("recordings", "policy", "--queue", "nope", *t)
    assert code == 2 and "no queue 'nope'" in err
    assert "purged 0 recordings" in ok("recordings", "purge")
