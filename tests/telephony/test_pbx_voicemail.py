"""Voicemail boxes: the dial plan sending callers to them (pure), the service storing the
messages (WAV file + row + event) over the real database and disk, the HTTP API with its
roles, and the command line."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from tests.conftest import World
from tests.routing.test_routing_service import Api
from tests.telephony.test_pbx_api import SIP_PASSWORD, call, errors, pbx_of, route
from tests.telephony.test_pbx_cli import ok, run

from sparklecomm.app import build_app
from sparklecomm.core.errors import InvalidInput, Unavailable
from sparklecomm.core.hours import BusinessHours, parse_exceptions, parse_weekly
from sparklecomm.store.db import read_events
from sparklecomm.store.models import AuditLog, User
from sparklecomm.telephony.media.audio import to_wav_bytes
from sparklecomm.telephony.pbx.dialplan import (
    MAX_MESSAGE_SECONDS,
    CallSettings,
    Destination,
    DidConfig,
    IvrMenuConfig,
    PbxConfig,
    RingGroupConfig,
    TrunkConfig,
    decide,
    divert,
    divert_problem,
    ivr_choice,
    voicemail_greeting,
)
from sparklecomm.telephony.pbx.models import VoicemailRow
from sparklecomm.telephony.pbx.routes import (
    CallRequest,
    Hunt,
    Reject,
    ToIvr,
    ToVoicemail,
    VoicemailStore,
)
from sparklecomm.telephony.pbx.service import PbxService

T = "tenant-a"
TRUNK = TrunkConfig("trunk-1", "carrier", caller_id="+4930200")
GREETING_TAIL = "is not available. Please leave a message after the tone."


def config(**changes: object) -> PbxConfig:
    base = PbxConfig(
        tenant_id=T,
        # 1001 has a name of its own; 1002 is named by its number (the default) and belongs
        # to a user; 1003 is neither.
        extensions={"1001": "Reception", "1002": "1002", "1003": "1003"},
        owners={"1002": "Ana Lima"},
        dids={
            "+4930200": DidConfig("+4930200", Destination("voicemail", "1002")),
            "+4930201": DidConfig("+4930201", Destination("ivr", "main")),
        },
        ring_groups={"desk": RingGroupConfig("desk", ("1001",), "simultaneous", 15.0)},
        menus={
            "main": IvrMenuConfig(
                "main",
                "Leave a message for Ana: press 1.",
                {"1": Destination("voicemail", "1002"), "2": Destination("voicemail", "1003")},
                default=Destination("voicemail", "1001"),
            )
        },
        trunks={TRUNK.id: TRUNK},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def from_trunk(dialled: str) -> CallRequest:
    return CallRequest(
        dialled=dialled,
        caller="+4917612345",
        caller_name=None,
        source="127.0.0.2:5060",
        trunk_id=TRUNK.id,
        tenant_id=T,
    )


# -- the dial plan ---------------------------------------------------------------------------
def test_the_greeting_names_the_extension_else_its_user_else_the_number() -> None:
    cfg = config()
    assert voicemail_greeting(cfg, "1001") == f"Reception {GREETING_TAIL}"
    assert voicemail_greeting(cfg, "1002") == f"Ana Lima {GREETING_TAIL}"
    assert voicemail_greeting(cfg, "1003") == f"The person at extension 1003 {GREETING_TAIL}"


def test_a_did_to_a_box_takes_a_message_with_the_users_name() -> None:
    assert decide(config(), from_trunk("+4930200")) == ToVoicemail(
        tenant_id=T,
        box="1002",
        greeting=f"Ana Lima {GREETING_TAIL}",
        max_seconds=MAX_MESSAGE_SECONDS,
    )
    assert MAX_MESSAGE_SECONDS == 120
    # an internal caller dialling the DID reaches the same box
    internal = CallRequest("+4930200", "1001", None, "127.0.0.1:5070", extension="1001")
    assert isinstance(decide(config(), internal), ToVoicemail)


def test_a_closed_did_goes_to_the_box_while_closed() -> None:
    hours = BusinessHours(
        "office", "Europe/Berlin", parse_weekly({"mon": ["08:00-18:00"]}), parse_exceptions([])
    )
    did = DidConfig(
        "+4930200",
        Destination("ring_group", "desk"),
        hours=hours,
        closed=Destination("voicemail", "1001"),
    )
    cfg = config(dids={"+4930200": did})
    monday_night = datetime(2026, 12, 7, 22, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    closed = decide(cfg, from_trunk("+4930200"), monday_night)
    assert isinstance(closed, ToVoicemail) and closed.box == "1001"
    assert closed.greeting == f"Reception {GREETING_TAIL}"
    monday_noon = monday_night.replace(hour=12)
    assert not isinstance(decide(cfg, from_trunk("+4930200"), monday_noon), ToVoicemail)


def test_a_menu_key_and_its_default_lead_to_boxes() -> None:
    entered = decide(config(), from_trunk("+4930201"))
    assert isinstance(entered, ToIvr)
    one = ivr_choice(config(), entered, "1", from_trunk("+4930201"))
    assert isinstance(one, ToVoicemail) and one.box == "1002"
    assert one.greeting.startswith("Ana Lima ")
    two = ivr_choice(config(), entered, "2", from_trunk("+4930201"))
    assert isinstance(two, ToVoicemail) and two.greeting.startswith("The person at extension")
    nothing = ivr_choice(config(), entered, None, from_trunk("+4930201"))
    assert isinstance(nothing, ToVoicemail) and nothing.box == "1001"


def test_a_queue_diverts_to_a_box_and_an_unknown_box_is_a_problem_naming_it() -> None:
    diverted = divert(config(), "voicemail:1002", from_trunk("+4930200"))
    assert isinstance(diverted, ToVoicemail) and diverted.box == "1002"
    assert divert_problem(config(), "voicemail:1002") is None
    problem = divert_problem(config(), "voicemail:4711")
    assert (
        problem is not None and "voicemail:4711" in problem and "no voicemail box 4711" in problem
    )
    # a box whose extension is gone (the snapshot changed under a waiting caller): 404
    gone = config(extensions={"1001": "Reception"})
    assert decide(gone, from_trunk("+4930200")) == Reject(404, "Not Found (no voicemail box 1002)")


# -- the service and the API over the database -----------------------------------------------
@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def boxes(client: TestClient, world: World) -> tuple[Api, Api, Api]:
    """Extensions 1001 (Ana's, the agent), 1002 ("Ben Ortiz"), 1003 (nobody's) and the
    routing queue ``q``."""
    with world.services.db.write() as tx:
        user = tx.session.get(User, world.agent_id)
        assert user is not None
        user.display_name = "Ana Lima"
    admin, sup, ana = Api(client, "admin"), Api(client, "sup"), Api(client, "ana")
    admin.post(
        "/telephony/extensions",
        {"number": "1001", "password": SIP_PASSWORD, "user_id": world.agent_id},
        status=201,
    )
    admin.post(
        "/telephony/extensions",
        {"number": "1002", "password": SIP_PASSWORD, "display_name": "Ben Ortiz"},
        status=201,
    )
    admin.post("/telephony/extensions", {"number": "1003", "password": SIP_PASSWORD}, status=201)
    admin.post("/queues", {"id": "q", "name": "Q"}, status=201)
    return admin, sup, ana


def message(seconds: float = 1.5, hz: float = 440.0) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return to_wav_bytes((np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16))


def test_boxes_are_reached_from_dids_menus_and_queues(client: TestClient, world: World) -> None:
    admin, _, _ = boxes(client, world)
    pbx = pbx_of(world)
    admin.post(
        "/telephony/dids", {"number": "+4930200", "destination": "voicemail:1001"}, status=201
    )
    admin.send(
        "PUT",
        "/telephony/ivr-menus/main",
        {"prompt": "Ben: 2", "options": {"2": "voicemail:1002"}, "default": "voicemail:1003"},
    )
    admin.post(
        "/telephony/trunks",
        {"name": "carrier", "host": "127.0.0.1", "allowed_sources": ["127.0.0.2"]},
        status=201,
    )
    inbound = call(
        "+4930200", ext=None, caller="+4917612345", trunk_id=pbx.trusted_source("127.0.0.2")
    )
    assert route(pbx, inbound) == ToVoicemail(
        tenant_id=world.tenant_id, box="1001", greeting=f"Ana Lima {GREETING_TAIL}"
    )
    admin.send("PATCH", "/telephony/dids/+4930200", {"destination": "ivr:main"})
    entered = route(pbx, inbound)
    assert isinstance(entered, ToIvr)
    ben = pbx.ivr_choice_sync(entered, "2", inbound)
    assert isinstance(ben, ToVoicemail) and ben.greeting == f"Ben Ortiz {GREETING_TAIL}"
    nobody = pbx.ivr_choice_sync(entered, None, inbound)
    assert isinstance(nobody, ToVoicemail) and nobody.greeting.startswith("The person at ext")
    # a voice queue may divert to a box; an unknown box is refused naming the field
    config = admin.get("/queues/q/config")
    body = {**config, "max_wait_seconds": 60, "on_max_wait": {"divert_to": "voicemail:1002"}}
    assert admin.send("PUT", "/queues/q", body)["on_max_wait"]["divert_to"] == "voicemail:1002"
    body["on_max_wait"] = {"divert_to": "voicemail:4711"}
    problem = admin.send("PUT", "/queues/q", body, status=422)
    assert (
        errors(problem) == ["on_max_wait.divert_to"] and "voicemail box 4711" in problem["detail"]
    )
    assert isinstance(pbx.divert_sync(world.tenant_id, "voicemail:1003", inbound), ToVoicemail)


def test_unknown_boxes_are_422_naming_the_field(client: TestClient, world: World) -> None:
    admin, _, _ = boxes(client, world)
    problem = admin.post(
        "/telephony/dids", {"number": "+4930200", "destination": "voicemail:4711"}, status=422
    )
    assert errors(problem) == ["destination"] and "no voicemail box 4711" in problem["detail"]
    problem = admin.post(
        "/telephony/dids", {"number": "+4930200", "destination": "voicemail:ana"}, status=422
    )
    assert errors(problem) == ["destination"] and "extension's number" in problem["detail"]
    admin.post(
        "/telephony/business-hours",
        {"name": "h", "timezone": "UTC", "weekly": {"mon": ["08:00-18:00"]}},
        status=201,
    )
    problem = admin.post(
        "/telephony/dids",
        {"number": "+4930200", "destination": "reject", "hours": "h",
         "closed_destination": "voicemail:4711"},
        status=422,
    )  # fmt: skip
    assert errors(problem) == ["closed_destination"]
    for change, field in (
        ({"options": {"1": "voicemail:4711"}}, "options.1"),
        ({"options": {"1": "voicemail:"}}, "options.1"),
        ({"options": {"1": "reject"}, "default": "voicemail:4711"}, "default"),
    ):
        body = {"prompt": "Hello", "options": {"1": "queue:q"}, **change}
        problem = admin.send("PUT", "/telephony/ivr-menus/main", body, status=422)
        assert errors(problem) == [field], (change, problem)
    problem = admin.post(
        "/telephony/ring-groups",
        {"name": "desk", "members": ["1001"], "fallback": "voicemail:4711"},
        status=422,
    )
    assert errors(problem) == ["fallback"] and "no voicemail box 4711" in problem["detail"]
    assert admin.get("/telephony/dids") == [] and admin.get("/telephony/ivr-menus") == []


def test_a_ring_group_falls_back_to_a_box_and_an_extension_forwards_to_its_own(
    client: TestClient, world: World
) -> None:
    """Over the API: a ring group nobody answers falls back to voicemail:1001; extension
    1002 forwards calls it does not answer to its own box (``voicemail``); 1001 cannot be
    deleted while the group falls back to its box."""
    admin, _, _ = boxes(client, world)
    admin.post(
        "/telephony/ring-groups",
        {"name": "600", "members": ["1003"], "fallback": "voicemail:1001"},
        status=201,
    )
    admin.post(
        "/telephony/dids", {"number": "+4930210", "destination": "ring_group:600"}, status=201
    )
    admin.send(
        "PUT", "/telephony/extensions/1002/call-settings", {"forward_no_answer": "voicemail"}
    )
    settings = admin.get("/telephony/extensions/1002/call-settings")
    assert settings["forward_no_answer"] == "voicemail"
    problem = admin.send("DELETE", "/telephony/extensions/1001", status=409)
    assert "ring group '600'" in problem["detail"]
    pbx = pbx_of(world)
    group = pbx.route_sync(call("+4930210", ext="1002"))
    assert isinstance(group, Hunt) and isinstance(group.final, ToVoicemail)
    assert group.final.box == "1001"
    own = pbx.route_sync(call("1002", ext="1001"))
    assert isinstance(own, Hunt) and isinstance(own.final, ToVoicemail)
    assert own.final.box == "1002" and len(own.steps) == 1  # ring 1002, then its box


def test_forwarding_to_voicemail_ends_the_hunt_in_the_box() -> None:
    """``voicemail`` in an extension's forwarding: busy or not answered, the caller reaches
    the extension's own box (the hunt's end); always or in do-not-disturb, at once."""
    plain = decide(config(), CallRequest("1002", "1001", None, "127.0.0.1:5070", extension="1001"))
    assert isinstance(plain, Hunt) and plain.final == Reject(480, "Temporarily Unavailable")
    for settings in (
        CallSettings(forward_no_answer="voicemail"),
        CallSettings(forward_busy="voicemail"),
        CallSettings(forward_no_answer="1003", forward_busy="voicemail"),
    ):
        cfg = config(settings={"1002": settings})
        request = CallRequest("1002", "1001", None, "127.0.0.1:5070", extension="1001")
        hunt = decide(cfg, request)
        assert isinstance(hunt, Hunt) and isinstance(hunt.final, ToVoicemail), settings
        assert hunt.final.box == "1002" and hunt.final.greeting.startswith("Ana Lima")
        assert hunt.steps[0].targets[0].extension == "1002"
    for settings in (
        CallSettings(forward_always="voicemail"),
        CallSettings(dnd=True, forward_busy="voicemail"),
    ):
        cfg = config(settings={"1002": settings})
        request = CallRequest("1002", "1001", None, "127.0.0.1:5070", extension="1001")
        assert isinstance(decide(cfg, request), ToVoicemail), settings
    group = config(
        dids={"+4930210": DidConfig("+4930210", Destination("ring_group", "600"))},
        ring_groups={
            "600": RingGroupConfig(
                "600", ("1001",), "simultaneous", 15.0, fallback=Destination("voicemail", "1003")
            )
        },
    )
    hunt = decide(group, from_trunk("+4930210"))
    assert isinstance(hunt, Hunt) and isinstance(hunt.final, ToVoicemail)
    assert hunt.final.box == "1003"


def test_an_extension_whose_box_is_in_use_cannot_be_deleted(
    client: TestClient, world: World
) -> None:
    admin, _, _ = boxes(client, world)
    admin.post(
        "/telephony/dids", {"number": "+4930200", "destination": "voicemail:1002"}, status=201
    )
    admin.send(
        "PUT", "/telephony/ivr-menus/main", {"prompt": "m", "options": {"3": "voicemail:1003"}}
    )
    problem = admin.send("DELETE", "/telephony/extensions/1002", status=409)
    assert "DID +4930200" in problem["detail"] and "voicemail box" in problem["detail"]
    assert errors(problem) == ["number"]
    problem = admin.send("DELETE", "/telephony/extensions/1003", status=409)
    assert "voice menu 'main'" in problem["detail"] and "key 3" in problem["detail"]
    admin.send("DELETE", "/telephony/dids/+4930200", status=204)
    admin.send("DELETE", "/telephony/extensions/1002", status=204)


async def test_leaving_a_message_writes_the_file_then_the_row_and_the_event(
    client: TestClient, world: World
) -> None:
    boxes(client, world)
    pbx = pbx_of(world)
    store: VoicemailStore = pbx  # the B2BUA's contract
    wav = message()
    box = ToVoicemail(world.tenant_id, "1001", "Ana Lima is not available.")
    message_id = await store.leave_message(
        box,
        caller="+4917612345",
        caller_name="Carla\x00 Caller",
        call_id="c0ffee",
        wav=wav,
        seconds=1.5,
    )
    folder = world.services.settings.data_dir / "voicemail" / world.tenant_id
    assert (folder / f"{message_id}.wav").read_bytes() == wav
    assert [p.name for p in folder.iterdir()] == [f"{message_id}.wav"]  # no leftovers
    with world.services.db.read() as s:
        row = s.get(VoicemailRow, message_id)
        assert row is not None
        assert (row.box, row.caller, row.caller_name, row.call_id) == (
            "1001",
            "+4917612345",
            "Carla Caller",  # what came in the SIP header, made safe to store
            "c0ffee",
        )
        assert row.seconds == 1.5 and row.heard_at is None
        events = [e for e in read_events(s, world.tenant_id, 0, 1000) if e.type == "voicemail.left"]
        audit = [a.action for a in s.scalars(select(AuditLog))]
    assert len(events) == 1
    left = events[0].payload["voicemail"]
    assert (left["id"], left["box"], left["caller"], left["seconds"]) == (
        message_id,
        "1001",
        "+4917612345",
        1.5,
    )
    assert not any(a.startswith("voicemail") for a in audit)  # a call, not an administrator
    # B2BUA wiring: the app hands the PBX to call control as its voicemail
    sip = world.services.extra.get("sip")
    if sip is not None:
        assert sip.calls.voicemail is pbx


def test_nothing_is_left_half_written(client: TestClient, world: World, tmp_path: Path) -> None:
    boxes(client, world)
    pbx = pbx_of(world)
    # the row cannot be written (no such organisation): the recording goes again
    ghost = ToVoicemail("0" * 32, "1001", "x")
    with pytest.raises(IntegrityError):
        pbx.leave_message_sync(
            ghost, caller="1", caller_name=None, call_id="c", wav=message(), seconds=1.5
        )
    folder = world.services.settings.data_dir / "voicemail" / ("0" * 32)
    assert list(folder.iterdir()) == []
    # not a WAV: refused before anything is written
    with pytest.raises(InvalidInput) as refused:
        pbx.leave_message_sync(
            ToVoicemail(world.tenant_id, "1001", "x"),
            caller="1",
            caller_name=None,
            call_id="c",
            wav=b"hello" * 20,
            seconds=1.5,
        )
    assert refused.value.field == "wav"
    assert not (world.services.settings.data_dir / "voicemail" / world.tenant_id).exists()
    with world.services.db.read() as s:
        assert s.scalars(select(VoicemailRow)).all() == []
    # without a directory for the recordings, voicemail is unavailable (503)
    bare = PbxService(
        world.services.db, world.clock, world.services.extra["extensions"], secret="x"
    )
    with pytest.raises(Unavailable, match="not set up"):
        bare.leave_message_sync(
            ToVoicemail(world.tenant_id, "1001", "x"),
            caller="1",
            caller_name=None,
            call_id="c",
            wav=message(),
            seconds=1.5,
        )


def test_messages_over_http_with_roles(client: TestClient, world: World) -> None:
    admin, sup, ana = boxes(client, world)
    pbx = pbx_of(world)

    def leave(box: str, caller: str, seconds: float) -> str:
        world.clock.advance(60)
        return pbx.leave_message_sync(
            ToVoicemail(world.tenant_id, box, "greeting"),
            caller=caller,
            caller_name=f"Caller {caller}",
            call_id=f"call-{caller}",
            wav=message(seconds),
            seconds=seconds,
        )

    first = leave("1001", "+491111", 1.5)
    other = leave("1002", "+492222", 2.0)
    second = leave("1001", "+493333", 3.0)

    # supervisors (and admins) see every box, newest first; ?box= narrows
    listed = sup.get("/telephony/voicemail")
    assert [m["id"] for m in listed] == [second, other, first]
    assert set(listed[0]) == {
        "id", "box", "caller", "caller_name", "seconds", "created_at", "heard", "heard_at"
    }  # fmt: skip
    assert listed[0]["caller_name"] == "Caller +493333" and listed[0]["heard"] is False
    assert [m["id"] for m in admin.get("/telephony/voicemail?box=1002")] == [other]
    # the agent sees the boxes of their own extensions only
    assert [m["id"] for m in ana.get("/telephony/voicemail")] == [second, first]
    assert [m["id"] for m in ana.get("/telephony/voicemail?box=1001")] == [second, first]
    problem = ana.get("/telephony/voicemail?box=1002", status=403)
    assert "1002" in problem["detail"]
    ana.send("POST", f"/telephony/voicemail/{other}/heard", status=403)
    ana.send("DELETE", f"/telephony/voicemail/{other}", status=403)
    r = client.get(f"/api/v1/telephony/voicemail/{other}/audio", headers=ana.headers)
    assert r.status_code == 403
    ana.get("/telephony/voicemail/nosuchid/audio", status=404)

    # download: the WAV as stored
    r = client.get(f"/api/v1/telephony/voicemail/{first}/audio", headers=ana.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert "attachment" in r.headers["content-disposition"]
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (8000, 1, 12000)

    # heard: once, by the owner; the time stays
    heard = ana.post(f"/telephony/voicemail/{first}/heard")
    assert heard["heard"] is True and heard["heard_at"] is not None
    world.clock.advance(5)
    assert ana.post(f"/telephony/voicemail/{first}/heard")["heard_at"] == heard["heard_at"]
    assert [m["heard"] for m in ana.get("/telephony/voicemail")] == [False, True]

    # delete: the row and the file; then 404
    folder = world.services.settings.data_dir / "voicemail" / world.tenant_id
    assert (folder / f"{first}.wav").exists()
    ana.send("DELETE", f"/telephony/voicemail/{first}", status=204)
    assert not (folder / f"{first}.wav").exists()
    ana.send("DELETE", f"/telephony/voicemail/{first}", status=404)
    admin.send("DELETE", f"/telephony/voicemail/{other}", status=204)  # any box for admins
    assert [m["id"] for m in sup.get("/telephony/voicemail")] == [second]

    with world.services.db.read() as s:
        types = [e.type for e in read_events(s, world.tenant_id, 0, 1000)]
        audit = [a.action for a in s.scalars(select(AuditLog))]
    assert types.count("voicemail.left") == 3 and types.count("voicemail.heard") == 1
    assert types.count("voicemail.deleted") == 2 and audit.count("voicemail.deleted") == 2


def test_openapi_documents_the_voicemail_routes(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/v1/telephony/voicemail"]) == {"get"}
    audio = paths["/api/v1/telephony/voicemail/{message_id}/audio"]["get"]
    assert "audio/wav" in audio["responses"]["200"]["content"]
    assert set(paths["/api/v1/telephony/voicemail/{message_id}/heard"]) == {"post"}
    assert set(paths["/api/v1/telephony/voicemail/{message_id}"]) == {"delete"}


# -- the command line --------------------------------------------------------------------------
@pytest.fixture
def cli_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The organisation ``acme`` with extension 1001 and one message in its box."""
    monkeypatch.setenv("SPARKLECOMM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SPARKLECOMM_DATABASE_URL", raising=False)
    monkeypatch.setenv("SPARKLECOMM_SIP_ENABLED", "false")
    from sparklecomm.cli import _overrides, _services

    _overrides.clear()
    ok("tenant", "add", "acme", "--name", "Acme")
    ok("extension", "add", "1001", "--tenant", "acme", "--password", "phone-secret-1")
    services = _services()
    tenant_id = services.auth.tenant_by_slug("acme").tenant_id
    pbx: PbxService = services.extra["pbx"]
    message_id = pbx.leave_message_sync(
        ToVoicemail(tenant_id, "1001", "greeting"),
        caller="+4917612345",
        caller_name="Carla",
        call_id="c",
        wav=message(),
        seconds=1.5,
    )
    services.db.dispose()
    return "acme", message_id


def test_messages_from_the_command_line(cli_tenant: tuple[str, str], tmp_path: Path) -> None:
    tenant, message_id = cli_tenant
    t = ("--tenant", tenant)
    listed = ok("voicemail", "list", *t)
    assert message_id in listed and "box 1001" in listed and "+4917612345 (Carla)" in listed
    assert "[new]" in listed
    rows = json.loads(ok("voicemail", "list", "--box", "1001", *t, "--json"))
    assert [r["id"] for r in rows] == [message_id] and rows[0]["seconds"] == 1.5
    assert json.loads(ok("voicemail", "list", "--box", "1002", *t, "--json")) == []
    target = tmp_path / "out.wav"
    assert "saved message" in ok("voicemail", "save", message_id, str(target), *t)
    assert target.read_bytes() == message()
    code, _, err = run("voicemail", "save", message_id, str(tmp_path / "no" / "dir.wav"), *t)
    assert code == 2 and err.startswith("error: file: ")
    assert f"deleted message {message_id}" in ok("voicemail", "delete", message_id, *t)
    code, _, err = run("voicemail", "delete", message_id, *t)
    assert code == 1 and "no voicemail message" in err
    assert "no messages" in ok("voicemail", "list", *t)
