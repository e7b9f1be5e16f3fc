"""The Voicemail page in a real Chromium: an agent sees the messages of their own extension's
box (not another box's), newest first; a new one appears without reloading; playing one
marks it heard (the recording is fetched with the session cookie), and a deleted one is
gone from the page and the API."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_accessibility import static_problems
from tests.browser.test_desk import Client
from tests.browser.test_web_shell import sign_in

from sparklecomm.app import build_services
from sparklecomm.settings import Settings
from sparklecomm.telephony.pbx.routes import ToVoicemail

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OWN_BOX, OTHER_BOX = "2301", "2302"


def spoken(seconds: float) -> bytes:
    """A real 8 kHz mono WAV: a 440 Hz tone, as a recording of a caller would be stored."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / 8000)))
        for n in range(int(seconds * 8000))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    return out.getvalue()


@dataclass
class Boxes:
    """The live server's installation opened from this process: messages are left through
    the same ``PbxService.leave_message_sync`` a call's recording goes through."""

    services: Any
    tenant_id: str

    def leave(self, box: str, caller: str, name: str | None, seconds: float) -> str:
        message_id: str = self.services.extra["pbx"].leave_message_sync(
            ToVoicemail(self.tenant_id, box, "greeting"),
            caller=caller,
            caller_name=name,
            call_id=f"browser-{caller}",
            wav=spoken(seconds),
            seconds=seconds,
        )
        return message_id


@pytest.fixture
def boxes(live_server: LiveServer) -> Iterator[tuple[Boxes, Client]]:
    """Extension 2301 for the agent, 2302 for nobody; afterwards their messages and the
    extensions are deleted again (the server is shared: the desk tests expect the agent
    without a phone)."""
    admin = Client(live_server.url, "admin")
    agent_id = next(u["id"] for u in admin.call("GET", "/users") if u["username"] == "agent")
    admin.call(
        "POST",
        "/telephony/extensions",
        {"number": OWN_BOX, "password": "agent-phone-123", "user_id": agent_id},
    )
    admin.call("POST", "/telephony/extensions", {"number": OTHER_BOX, "password": "desk-pass-123"})
    db = live_server.data_dir / "sparklecomm.db"
    services = build_services(
        Settings(data_dir=live_server.data_dir, database_url=f"sqlite:///{db}", sip_enabled=False)
    )
    try:
        tenant_id = services.auth.tenant_by_slug("demo").tenant_id
        yield Boxes(services, tenant_id), admin
    finally:
        services.db.dispose()
        for box in (OWN_BOX, OTHER_BOX):
            for m in admin.call("GET", f"/telephony/voicemail?box={box}"):
                admin.call("DELETE", f"/telephony/voicemail/{m['id']}", ok=(204, 404))
            admin.call("DELETE", f"/telephony/extensions/{box}", ok=(204, 404))


def test_an_agent_plays_marks_and_deletes_their_messages(
    page: Page, live_server: LiveServer, boxes: tuple[Boxes, Client]
) -> None:
    vm, admin = boxes
    older = vm.leave(OWN_BOX, "+4930111", "Carla Ruiz", 1.5)
    newer = vm.leave(OWN_BOX, "+4930222", None, 2.0)
    other = vm.leave(OTHER_BOX, "+4930333", "Someone Else", 1.0)
    agent = Client(live_server.url, "agent")

    sign_in(page, "agent")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Voicemail").click()
    expect(page.get_by_role("heading", name="Voicemail", level=1)).to_be_visible()
    rows = page.get_by_test_id("voicemail-table").locator("tbody tr[data-message]")
    # only the agent's own box, newest first
    expect(rows).to_have_count(2)
    assert [rows.nth(i).get_attribute("data-message") for i in range(2)] == [newer, older]
    expect(page.locator(f"tr[data-message='{other}']")).to_have_count(0)
    first = page.locator(f"tr[data-message='{older}']")
    expect(first).to_contain_text("Carla Ruiz")
    expect(first).to_contain_text("+4930111")
    expect(first).to_contain_text(OWN_BOX)
    expect(first).to_contain_text("00:01")
    expect(first.get_by_test_id("new")).to_have_text("New")
    expect(page.get_by_test_id("voicemail-status")).to_have_text("2 messages, 2 new.")
    assert static_problems(page) == []

    # A message left while the page is open appears without a reload. It was written by this
    # process, so the server's stream delivers it with its next event (here: an
    # administrator marking the other box's message heard).
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    newest = vm.leave(OWN_BOX, "+4930444", "Dora", 1.0)
    admin.call("POST", f"/telephony/voicemail/{other}/heard")
    expect(rows).to_have_count(3)
    expect(rows.first).to_have_attribute("data-message", newest)

    # Playing a message marks it heard; the recording comes with the session cookie.
    audio = page.locator(f"tr[data-message='{newer}'] audio")
    expect(audio).to_have_attribute("preload", "none")
    page.evaluate("a => { a.muted = true; return a.play(); }", audio.element_handle())
    played = page.locator(f"tr[data-message='{newer}']")
    expect(played).to_have_attribute("data-heard", "true")
    expect(played.get_by_test_id("heard")).to_have_text("Heard")
    assert audio.evaluate("a => a.duration") == pytest.approx(2.0, abs=0.05)
    src = audio.get_attribute("src")
    assert src == f"/api/v1/telephony/voicemail/{newer}/audio"
    fetched = page.request.get(src)
    assert fetched.status == 200 and fetched.headers["content-type"] == "audio/wav"
    assert fetched.body()[:4] == b"RIFF"

    # "Mark as heard" without playing
    page.locator(f"tr[data-message='{older}']").get_by_role("button", name="Mark as heard").click()
    expect(page.locator(f"tr[data-message='{older}']")).to_have_attribute("data-heard", "true")
    heard = {m["id"]: m["heard"] for m in agent.call("GET", "/telephony/voicemail")}
    assert heard == {newest: False, newer: True, older: True}
    expect(page.get_by_test_id("voicemail-status")).to_have_text("3 messages, 1 new.")
    screenshot(page, "voicemail")

    # Delete asks first; dismissing keeps the message, accepting deletes it.
    page.once("dialog", lambda d: d.dismiss())
    page.locator(f"tr[data-message='{older}']").get_by_role("button", name="Delete").click()
    expect(rows).to_have_count(3)
    page.once("dialog", lambda d: d.accept())
    page.locator(f"tr[data-message='{older}']").get_by_role("button", name="Delete").click()
    expect(page.locator(f"tr[data-message='{older}']")).to_have_count(0)
    expect(rows).to_have_count(2)
    assert [m["id"] for m in agent.call("GET", "/telephony/voicemail")] == [newest, newer]
    agent.call("GET", f"/telephony/voicemail/{older}/audio", ok=(404,))
    # the other box's message is untouched
    assert [m["id"] for m in admin.call("GET", f"/telephony/voicemail?box={OTHER_BOX}")] == [other]


def test_a_supervisor_filters_by_box_and_an_empty_box_says_so(
    page: Page, boxes: tuple[Boxes, Client]
) -> None:
    vm, _ = boxes
    mine = vm.leave(OWN_BOX, "+4930555", "Eve", 1.0)
    theirs = vm.leave(OTHER_BOX, "+4930666", "Finn", 1.0)
    sign_in(page, "supervisor")
    page.goto("/voicemail")
    table = page.get_by_test_id("voicemail-table")
    expect(table.locator(f"tr[data-message='{mine}']")).to_be_visible()
    expect(table.locator(f"tr[data-message='{theirs}']")).to_be_visible()
    page.get_by_label("Box").select_option(OTHER_BOX)
    expect(table.locator(f"tr[data-message='{mine}']")).to_have_count(0)
    expect(table.locator("tr[data-message]")).to_have_count(1)
    page.once("dialog", lambda d: d.accept())
    table.get_by_role("button", name="Delete").click()
    expect(page.get_by_test_id("voicemail-empty")).to_have_text("No messages.")
    page.get_by_label("Box").select_option("")
    expect(table.locator(f"tr[data-message='{mine}']")).to_be_visible()
    assert static_problems(page) == []
