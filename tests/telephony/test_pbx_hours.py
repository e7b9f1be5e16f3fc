"""Business hours: the timetable, the dial plan following it, the API and the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import FAST_PASSWORDS, World
from tests.telephony.test_pbx_api import call, errors, pbx_of, route, setup
from tests.telephony.test_pbx_cli import ok, run

from sparklecomm.app import build_app, build_services
from sparklecomm.core.errors import InvalidInput
from sparklecomm.core.hours import (
    BusinessHours,
    parse_exceptions,
    parse_week_spec,
    parse_weekly,
)
from sparklecomm.settings import Settings
from sparklecomm.telephony.pbx.dialplan import (
    CLOSED,
    Destination,
    DidConfig,
    PbxConfig,
    decide,
)
from sparklecomm.telephony.pbx.routes import Hunt, Target, ToQueue

BERLIN = "Europe/Berlin"


def hours(weekly: dict[str, object], exceptions: list[object] | None = None) -> BusinessHours:
    return BusinessHours("h", BERLIN, parse_weekly(weekly), parse_exceptions(exceptions or []))


def berlin(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(BERLIN))


# -- the timetable ---------------------------------------------------------------------------


def test_weekly_ranges_are_local_time_with_an_exclusive_end() -> None:
    h = hours({"mon": ["08:00-12:00", "13:00-18:00"], "sat": ["09:00-13:00"]})
    monday = date(2026, 12, 7)
    assert monday.weekday() == 0
    assert not h.is_open(berlin(2026, 12, 7, 7, 59))
    assert h.is_open(berlin(2026, 12, 7, 8, 0))
    assert not h.is_open(berlin(2026, 12, 7, 12, 30))  # lunch
    assert h.is_open(berlin(2026, 12, 7, 17, 59))
    assert not h.is_open(berlin(2026, 12, 7, 18, 0))
    assert not h.is_open(berlin(2026, 12, 8, 10, 0))  # Tuesday: not listed, closed
    assert h.is_open(berlin(2026, 12, 12, 12, 59)) and not h.is_open(berlin(2026, 12, 12, 13))
    # The same instant seen from UTC: Berlin is UTC+1 in December.
    assert h.is_open(datetime(2026, 12, 7, 7, 0, tzinfo=UTC))
    assert not h.is_open(datetime(2026, 12, 7, 6, 59, tzinfo=UTC))


def test_a_range_ending_before_it_starts_runs_past_midnight_and_24_00_is_allowed() -> None:
    h = hours({"fri": ["22:00-06:00"], "sun": ["00:00-24:00"]})
    assert h.is_open(berlin(2026, 12, 11, 23, 30))  # Friday night
    assert h.is_open(berlin(2026, 12, 12, 5, 59))  # Saturday morning, Friday's range
    assert not h.is_open(berlin(2026, 12, 12, 6, 0))
    assert h.is_open(berlin(2026, 12, 13, 0, 0)) and h.is_open(berlin(2026, 12, 13, 23, 59))
    assert not h.is_open(berlin(2026, 12, 14, 0, 0))


def test_dated_exceptions_replace_the_day_and_keep_the_night_before() -> None:
    h = hours(
        {day: ["08:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
        | {"wed": ["20:00-02:00"]},
        [
            {"date": "2026-12-24", "name": "Christmas Eve", "hours": ["09:00-12:00"]},
            {"date": "2026-12-25", "name": "Christmas Day"},
            {"date": "2026-12-31"},
        ],
    )
    assert h.is_open(berlin(2026, 12, 24, 11, 0)) and not h.is_open(berlin(2026, 12, 24, 13))
    assert not h.is_open(berlin(2026, 12, 25, 10, 0))  # a Friday, closed all day
    # Thursday 31st is closed, but Wednesday night's range still runs until 02:00.
    assert h.is_open(berlin(2026, 12, 31, 1, 0))
    assert not h.is_open(berlin(2026, 12, 31, 10, 0))


def test_daylight_saving_changes_keep_local_opening_times() -> None:
    h = hours({"sat": ["08:00-18:00"], "sun": ["02:30-04:00"]})
    # 2026-03-28 (Saturday, UTC+1) and 2026-10-24 (Saturday, UTC+2 until the next night).
    assert h.is_open(datetime(2026, 3, 28, 7, 0, tzinfo=UTC))  # 08:00 local (UTC+1)
    assert h.is_open(datetime(2026, 10, 24, 6, 0, tzinfo=UTC))  # 08:00 local (UTC+2)
    assert not h.is_open(datetime(2026, 10, 24, 5, 59, tzinfo=UTC))
    # Sunday 25 October: 02:00-03:00 happens twice; 02:30-04:00 opens at the first 02:30.
    assert h.is_open(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 local, UTC+2
    assert h.is_open(datetime(2026, 10, 25, 2, 59, tzinfo=UTC))  # 03:59 local, UTC+1
    assert not h.is_open(datetime(2026, 10, 25, 3, 0, tzinfo=UTC))
    # Sunday 29 March: the clock jumps from 02:00 to 03:00, so 02:30 never happens and the
    # range starts at the jump (01:00 UTC), ending at 04:00 local = 02:00 UTC.
    assert not h.is_open(datetime(2026, 3, 29, 0, 59, tzinfo=UTC))
    assert h.is_open(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
    assert not h.is_open(datetime(2026, 3, 29, 2, 0, tzinfo=UTC))
    assert h.next_change(datetime(2026, 3, 28, 20, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )


def test_next_change_finds_the_next_opening_or_closing() -> None:
    h = hours({"mon": ["08:00-18:00"], "fri": ["22:00-06:00"]}, [{"date": "2026-12-14"}])
    monday_noon = berlin(2026, 12, 7, 12, 0)
    assert h.next_change(monday_noon) == berlin(2026, 12, 7, 18, 0).astimezone(UTC)
    assert h.next_change(berlin(2026, 12, 7, 19, 0)) == berlin(2026, 12, 11, 22).astimezone(UTC)
    assert h.next_change(berlin(2026, 12, 11, 23, 0)) == berlin(2026, 12, 12, 6).astimezone(UTC)
    # Monday the 14th is a holiday: after Saturday morning the next opening is the 18th.
    assert h.next_change(berlin(2026, 12, 12, 7, 0)) == berlin(2026, 12, 18, 22).astimezone(UTC)
    always = hours({day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat")})
    assert always.next_change(monday_noon) == berlin(2026, 12, 13, 0).astimezone(UTC)
    assert hours({}).next_change(monday_noon) is None  # never open


@pytest.mark.parametrize(
    ("weekly", "exceptions", "field", "needle"),
    [
        ({"mon": ["8-18"]}, [], "weekly.mon[0]", "'8' is not a time HH:MM"),
        ({"mon": ["08:00-25:00"]}, [], "weekly.mon[0]", "'25:00' is not a time"),
        ({"mon": ["08:00-08:00"]}, [], "weekly.mon[0]", "for a whole day use 00:00-24:00"),
        ({"mon": ["24:00-02:00"]}, [], "weekly.mon[0]", "cannot start at 24:00"),
        ({"mon": ["08:00-12:00", "11:00-13:00"]}, [], "weekly.mon", "overlap"),
        ({"monday": ["08:00-12:00"]}, [], "weekly.monday", "unknown day 'monday'"),
        ({"mon": "08:00-12:00,13:00-14:00"}, [{"date": "25.12.2026"}], "exceptions[0].date",
         "'25.12.2026'"),
        ({}, [{"date": "2026-12-25"}, {"date": "2026-12-25"}], "exceptions[1].date", "given twice"),
        ({}, [{"date": "2026-12-25", "hours": ["x"]}], "exceptions[0].hours[0]", "'x'"),
        ({}, [{"date": "2026-12-25", "colour": "red"}], "exceptions[0]", "unknown key 'colour'"),
    ],
)  # fmt: skip
def test_bad_timetables_name_the_field(
    weekly: dict[str, object], exceptions: list[object], field: str, needle: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_weekly(weekly)
        parse_exceptions(exceptions)
    assert info.value.field == field and needle in str(info.value)


def test_the_command_line_week_form() -> None:
    assert parse_week_spec(
        ["mon-fri 08:00-18:00", "sat 09:00-13:00,14:00-16:00", "wed closed"]
    ) == {
        "mon": ["08:00-18:00"],
        "tue": ["08:00-18:00"],
        "thu": ["08:00-18:00"],
        "fri": ["08:00-18:00"],
        "sat": ["09:00-13:00", "14:00-16:00"],
    }
    assert set(parse_week_spec(["fri-mon 10:00-11:00"])) == {"fri", "sat", "sun", "mon"}
    with pytest.raises(InvalidInput, match="days are mon"):
        parse_week_spec(["weekdays 08:00-18:00"])
    with pytest.raises(InvalidInput, match="give days then ranges"):
        parse_week_spec(["mon-fri"])


# -- the dial plan -----------------------------------------------------------------------------


def test_a_did_follows_its_hours_to_the_closed_destination_or_480() -> None:
    h = hours({"mon": ["08:00-18:00"]})
    did = DidConfig(
        "+4930100",
        Destination("queue", "support"),
        hours=h,
        closed=Destination("queue", "after-hours"),
    )
    to_bo = DidConfig("+4930200", Destination("extension", "1002"), hours=h)
    config = PbxConfig(
        tenant_id="t",
        extensions={"1001": "Ana", "1002": "Bo"},
        dids={"+4930100": did, "+4930200": to_bo},
    )
    request = call("+4930100", ext="1001", tenant_id="t")
    open_route = decide(config, request, berlin(2026, 12, 7, 9, 0))
    assert isinstance(open_route, ToQueue) and open_route.queue_id == "support"
    assert "hours" not in open_route.attributes
    closed_route = decide(config, request, berlin(2026, 12, 7, 19, 0))
    assert isinstance(closed_route, ToQueue) and closed_route.queue_id == "after-hours"
    assert closed_route.attributes["hours"] == "closed"
    assert closed_route.attributes["dnis"] == "+4930100"
    other = call("+4930200", ext="1001", tenant_id="t")
    assert isinstance(decide(config, other, berlin(2026, 12, 7, 9, 0)), Hunt)
    assert decide(config, other, berlin(2026, 12, 7, 19, 0)) == CLOSED
    assert CLOSED.status == 480 and "closed" in CLOSED.reason
    assert isinstance(decide(config, other), Hunt)  # no time given: as if open


# -- the API and the router reading SQL ---------------------------------------------------------


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(build_app(world.services)) as c:
        yield c


def test_business_hours_over_http_and_a_did_following_them(
    client: TestClient, world: World
) -> None:
    admin, sup, ana = setup(client)
    body = {
        "name": "support-hours",
        "timezone": BERLIN,
        "weekly": {"mon": ["13:00-18:00", "08:00-12:00"], "fri": "22:00-06:00"},
        "exceptions": [{"date": "2026-12-25", "name": "Christmas Day"}],
    }
    ana.post("/telephony/business-hours", body, status=403)
    # The world's fake clock starts at a fixed instant; put it on a Monday 09:00 in Berlin.
    start = world.clock.now()
    world.clock.advance((berlin(2027, 1, 4, 9, 0).astimezone(UTC) - start).total_seconds())
    created = admin.post("/telephony/business-hours", body, status=201)
    assert created["weekly"] == {"mon": ["08:00-12:00", "13:00-18:00"], "fri": ["22:00-06:00"]}
    assert created["exceptions"] == [{"date": "2026-12-25", "name": "Christmas Day", "hours": []}]
    assert created["open_now"] is True
    assert created["next_change"] == berlin(2027, 1, 4, 12, 0).astimezone(UTC).isoformat()
    assert [h["name"] for h in sup.get("/telephony/business-hours")] == ["support-hours"]
    admin.post("/telephony/business-hours", body, status=409)

    for number, dest in (("1002", "extension:1002"), ("1003", "extension:1003")):
        assert dest.endswith(number)
    admin.post(
        "/telephony/dids",
        {
            "number": "+4930100",
            "destination": "extension:1002",
            "hours": "support-hours",
            "closed_destination": "extension:1003",
        },
        status=201,
    )
    pbx = pbx_of(world)
    request = call("+4930100", ext="1001")
    assert route(pbx, request).steps[0].targets == (Target(extension="1002"),)  # type: ignore[union-attr]
    world.clock.advance(3 * 3600)  # 12:00: lunch
    assert route(pbx, request).steps[0].targets == (Target(extension="1003"),)  # type: ignore[union-attr]
    listed = sup.get("/telephony/business-hours/support-hours")
    assert listed["open_now"] is False
    # Hours change: open over lunch too. The router sees it at once.
    admin.send(
        "PATCH",
        "/telephony/business-hours/support-hours",
        {"weekly": {"mon": ["08:00-18:00"]}},
    )
    assert route(pbx, request).steps[0].targets == (Target(extension="1002"),)  # type: ignore[union-attr]
    # Without a closed destination the caller gets 480 while closed.
    admin.send("PATCH", "/telephony/dids/+4930100", {"closed_destination": ""})
    world.clock.advance(8 * 3600)  # 20:00
    assert route(pbx, request) == CLOSED
    dids = sup.get("/telephony/dids")
    assert dids[0]["hours"] == "support-hours" and dids[0]["closed_destination"] is None
    # Refusals name what is wrong; nothing half written.
    admin.send("DELETE", "/telephony/business-hours/support-hours", status=409)
    admin.send("DELETE", "/telephony/extensions/1003", status=204)  # no longer referenced
    bad = admin.post(
        "/telephony/dids",
        {"number": "+4930101", "destination": "reject", "closed_destination": "extension:1002"},
        status=422,
    )
    assert bad["errors"][0]["field"] == "closed_destination"
    bad = admin.post(
        "/telephony/dids",
        {"number": "+4930101", "destination": "reject", "hours": "night-hours"},
        status=422,
    )
    assert bad["errors"][0]["field"] == "hours" and "night-hours" in bad["detail"]
    bad = admin.post(
        "/telephony/business-hours", {**body, "name": "x", "timezone": "Mars/Olympus"}, 422
    )
    assert bad["errors"][0]["field"] == "timezone" and "Mars/Olympus" in bad["detail"]
    bad = admin.post(
        "/telephony/business-hours", {**body, "name": "x", "weekly": {"mon": ["9-5"]}}, 422
    )
    assert bad["errors"][0]["field"] == "weekly.mon[0]"
    assert [d["number"] for d in sup.get("/telephony/dids")] == ["+4930100"]
    admin.send("PATCH", "/telephony/dids/+4930100", {"closed_destination": "reject"})
    cleared = admin.send("PATCH", "/telephony/dids/+4930100", {"hours": ""})
    assert cleared["hours"] is None and cleared["closed_destination"] is None
    assert isinstance(route(pbx, request), Hunt)  # no hours: always open
    admin.send("DELETE", "/telephony/business-hours/support-hours", status=204)
    assert sup.get("/telephony/business-hours") == []


def test_a_referenced_closed_destination_cannot_be_deleted(client: TestClient) -> None:
    admin, _sup, _ana = setup(client)
    admin.post(
        "/telephony/business-hours",
        {"name": "h", "timezone": "UTC", "weekly": {"mon": ["08:00-18:00"]}},
        status=201,
    )
    admin.post(
        "/telephony/dids",
        {
            "number": "+4930100",
            "destination": "reject",
            "hours": "h",
            "closed_destination": "extension:1003",
        },
        status=201,
    )
    problem = admin.send("DELETE", "/telephony/extensions/1003", status=409)
    assert "+4930100" in problem["detail"]


# -- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SPARKLECOMM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SPARKLECOMM_DATABASE_URL", raising=False)
    monkeypatch.setenv("SPARKLECOMM_SIP_ENABLED", "false")
    from sparklecomm.cli import _overrides

    _overrides.clear()
    ok("tenant", "add", "acme", "--name", "Acme")
    ok("extension", "add", "1001", "--tenant", "acme", "--password", "phone-secret-1")
    return "acme"


def test_hours_from_the_command_line(cli_tenant: str) -> None:
    out = ok("hours", "add", "support-hours", "--timezone", BERLIN,
             "--open", "mon-fri 08:00-18:00", "--open", "sat 09:00-13:00",
             "--holiday", "2026-12-25 Christmas Day", "--special", "2026-12-24 09:00-12:00",
             "--tenant", cli_tenant, "--json")  # fmt: skip
    data = json.loads(out)
    assert data["weekly"]["fri"] == ["08:00-18:00"] and "sun" not in data["weekly"]
    assert data["exceptions"] == [
        {"date": "2026-12-24", "name": "", "hours": ["09:00-12:00"]},
        {"date": "2026-12-25", "name": "Christmas Day", "hours": []},
    ]
    assert isinstance(data["open_now"], bool) and data["next_change"]
    text = ok("hours", "list", "--tenant", cli_tenant)
    assert "business hours support-hours (Europe/Berlin)" in text and "mon 08:00-18:00" in text
    assert "2026-12-25 closed (Christmas Day)" in text
    out = ok("did", "add", "+4930100", "--to", "extension:1001", "--hours", "support-hours",
             "--tenant", cli_tenant)  # fmt: skip
    assert "during support-hours, else → 480 (closed)" in out
    out = ok("did", "update", "+4930100", "--closed-to", "reject", "--tenant", cli_tenant)
    assert "else → reject" in out
    out = ok("hours", "update", "support-hours", "--open", "mon-sun 00:00-24:00",
             "--tenant", cli_tenant, "--json")  # fmt: skip
    assert json.loads(out)["open_now"] is True
    code, _out, err = run("hours", "remove", "support-hours", "--tenant", cli_tenant)
    assert code != 0 and "DID +4930100 follows business hours 'support-hours'" in err
    code, _out, err = run("hours", "add", "x", "--timezone", "Berlin", "--tenant", cli_tenant)
    assert code == 2 and "'Berlin' is not a known time zone" in err
    code, _out, err = run("hours", "add", "x", "--timezone", "UTC", "--open", "mon 9-17",
                          "--tenant", cli_tenant)  # fmt: skip
    assert code == 2 and "'9' is not a time HH:MM" in err


def test_a_whole_year_of_next_changes_is_consistent() -> None:
    """Walking next_change through a year lands on every boundary exactly once, and the
    state flips at each one (checked a minute before and at the instant)."""
    h = hours(
        {"mon": ["08:00-18:00"], "tue": ["08:00-18:00"], "fri": ["22:00-06:00"],
         "sun": ["02:30-03:30"]},
        [{"date": "2026-12-25"}, {"date": "2026-12-24", "hours": ["09:00-12:00"]}],
    )  # fmt: skip
    at = datetime(2026, 1, 1, tzinfo=UTC)
    flips = 0
    while at < datetime(2027, 1, 1, tzinfo=UTC):
        nxt = h.next_change(at)
        assert nxt is not None and nxt > at
        assert h.is_open(nxt) != h.is_open(nxt - timedelta(minutes=1))
        at = nxt
        flips += 1
    assert 52 * 6 <= flips <= 53 * 8


def test_a_queue_follows_business_hours_and_closed_it_turns_new_chats_away(
    client: TestClient, world: World, database_url: str, tmp_path: Path
) -> None:
    """The routing engine gets the organisation's business hours (a journaled command) and
    keeps them in step when the administrator changes them."""
    admin, sup, _ = setup(client)
    start = world.clock.now()  # Monday 20:00 in Berlin: closed
    world.clock.advance((berlin(2027, 1, 4, 20, 0).astimezone(UTC) - start).total_seconds())
    admin.post(
        "/telephony/business-hours",
        {"name": "office", "timezone": BERLIN, "weekly": {"mon": ["08:00-18:00"]}},
        status=201,
    )
    problem = admin.post("/queues", {"id": "chat", "name": "Chat", "hours": "nope"}, status=422)
    assert errors(problem) == ["hours"]
    admin.post(
        "/queues",
        {
            "id": "chat",
            "name": "Chat",
            "channels": ["chat"],
            "hours": "office",
            "on_closed": {"queue_id": "q"},
        },
        status=201,
    )
    assert sup.get("/queues/chat")["open"] is False
    assert sup.get("/queues/q")["open"] is None  # follows no hours
    created = sup.post("/interactions", {"queue_id": "chat", "channel": "chat"}, status=201)
    overflowed = [e for e in created["events"] if e["type"] == "interaction.overflowed"]
    assert overflowed[0]["payload"]["reason"] == "closed"
    assert created["interaction"]["queue_id"] == "q"
    # Open in the evening too from now on: the engine follows at once.
    admin.send("PATCH", "/telephony/business-hours/office", {"weekly": {"mon": ["08:00-22:00"]}})
    assert sup.get("/queues/chat")["open"] is True
    created = sup.post("/interactions", {"queue_id": "chat", "channel": "chat"}, status=201)
    assert created["interaction"]["queue_id"] == "chat"
    # Hours a queue follows cannot be deleted.
    problem = admin.send("DELETE", "/telephony/business-hours/office", status=409)
    assert "queue 'chat' follows" in problem["detail"]
    # A new process on the same database replays the hours from the journal.
    acd = world.services.extra["acd"]
    before = acd.read(world.tenant_id, lambda e: e.business_hours())
    assert before["office"]["weekly"] == {"mon": ["08:00-22:00"]}
    restarted = build_services(
        Settings(data_dir=tmp_path, database_url=database_url),
        clock=world.clock,
        passwords=FAST_PASSWORDS,
    )
    assert restarted.extra["acd"].read(world.tenant_id, lambda e: e.business_hours()) == before
