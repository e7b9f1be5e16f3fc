"""The Recordings page and Admin › Call recording in a real Chromium: a supervisor sees every
recorded call newest first with its agent, queue, length and paused spans, filters by agent
and queue, and the player loads the stereo WAV (with the session cookie, seekable); an agent
sees only their own calls; a recording stopped while the page is open appears without a
reload; an administrator deletes one and saves the recording policy (an unknown extension
is shown next to its field)."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_accessibility import static_problems
from tests.browser.test_desk import Client
from tests.browser.test_web_shell import sign_in

from sparklecomm.app import build_services
from sparklecomm.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUEUE = "rec-support"
EXTENSION = "2401"


def stereo(seconds: float) -> bytes:
    """What the recorder leaves: 8 kHz 16-bit stereo, the caller left and the agent right."""
    t = np.arange(int(8000 * seconds)) / 8000
    left = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    right = (np.sin(2 * np.pi * 660 * t) * 8000).astype(np.int16)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())
    return out.getvalue()


@dataclass
class Calls:
    """The live server's installation opened from this process: recordings are made through
    the same protocol the B2BUA uses (``begin_recording`` ... ``finish_recording``)."""

    services: Any
    tenant_id: str
    users: dict[str, str]

    def record(
        self,
        caller: str,
        agent: str,
        seconds: float,
        *,
        queue_id: str | None = QUEUE,
        pauses: list[tuple[float, float]] | None = None,
    ) -> str:
        recordings = self.services.extra["recordings"]
        recording_id, path = recordings.begin_recording_sync(
            self.tenant_id,
            call_id=f"browser-{caller}",
            caller=caller,
            dialled="+4930200",
            interaction_id=None,
            queue_id=queue_id,
            agent_id=self.users[agent],
            started_by="policy",
        )
        wav = stereo(seconds)
        path.write_bytes(wav)
        spans = pauses or []
        recordings.finish_recording_sync(
            self.tenant_id,
            recording_id,
            seconds=seconds,
            paused_seconds=sum(b - a for a, b in spans),
            pauses=spans,
            size=len(wav),
            ok=True,
        )
        return str(recording_id)


@pytest.fixture
def calls(live_server: LiveServer) -> Iterator[tuple[Calls, Client]]:
    """The queue ``rec-support`` and extension 2401; afterwards every recording, the policy,
    the queue and the extension are removed again (the server is shared)."""
    admin = Client(live_server.url, "admin")
    users = {u["username"]: u["id"] for u in admin.call("GET", "/users")}
    admin.call("POST", "/queues", {"id": QUEUE, "name": "Recorded support"})
    admin.call("POST", "/telephony/extensions", {"number": EXTENSION, "password": "desk-pass-123"})
    db = live_server.data_dir / "sparklecomm.db"
    services = build_services(
        Settings(data_dir=live_server.data_dir, database_url=f"sqlite:///{db}", sip_enabled=False)
    )
    try:
        tenant_id = services.auth.tenant_by_slug("demo").tenant_id
        yield Calls(services, tenant_id, users), admin
    finally:
        services.db.dispose()
        for r in admin.call("GET", "/recordings?limit=500"):
            admin.call("DELETE", f"/recordings/{r['id']}", ok=(204, 404, 409))
        admin.call(
            "PUT",
            "/recording-policy",
            {"all_calls": False, "queues": [], "extensions": [], "retention_days": 0},
        )
        admin.call("DELETE", f"/telephony/extensions/{EXTENSION}", ok=(204, 404))
        admin.call("DELETE", f"/queues/{QUEUE}", ok=(204, 404, 409))


def test_supervisors_and_agents_listen_to_recordings(
    page: Page, live_server: LiveServer, calls: tuple[Calls, Client]
) -> None:
    rec, admin = calls
    older = rec.record("+4930111", "agent", 1.5, pauses=[(0.5, 2.0)])
    other = rec.record("+4930222", "supervisor", 1.0, queue_id=None)
    newer = rec.record("+4930333", "agent", 2.0)

    sign_in(page, "supervisor")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Recordings").click()
    expect(page.get_by_role("heading", name="Call recordings", level=1)).to_be_visible()
    rows = page.get_by_test_id("recordings-table").locator("tbody tr[data-recording]")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("data-recording") for i in range(3)] == [
        newer,
        other,
        older,
    ]
    first = page.locator(f"tr[data-recording='{older}']")
    expect(first).to_contain_text("+4930111")
    expect(first).to_contain_text("+4930200")
    expect(first).to_contain_text("Recorded support")  # the queue's name
    expect(first).to_contain_text("00:01")
    expect(first).to_contain_text("00:00–00:02")  # the paused span
    expect(first.get_by_test_id("rec-status")).to_have_text("Complete")
    expect(page.get_by_test_id("recordings-status")).to_have_text("3 recordings.")
    # supervisors do not delete
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    assert static_problems(page) == []

    # the player reads the stereo WAV's metadata; the audio is seekable (Range)
    audio = page.locator(f"tr[data-recording='{newer}'] audio")
    expect(audio).to_have_attribute("src", f"/api/v1/recordings/{newer}/audio")
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle())
    assert audio.evaluate("a => a.duration") == pytest.approx(2.0, abs=0.05)
    part = page.request.get(f"/api/v1/recordings/{newer}/audio", headers={"Range": "bytes=0-43"})
    assert part.status == 206 and part.body()[:4] == b"RIFF" and len(part.body()) == 44

    # filters: agent and queue
    expect(page.locator(f"#rec-agent option[value='{rec.users['agent']}']")).to_have_count(1)
    page.get_by_label("Agent").select_option(rec.users["agent"])
    expect(rows).to_have_count(2)
    page.get_by_label("Agent").select_option("")
    page.get_by_label("Queue").select_option(QUEUE)
    expect(rows).to_have_count(2)
    expect(page.locator(f"tr[data-recording='{other}']")).to_have_count(0)
    page.get_by_label("Queue").select_option("")
    expect(rows).to_have_count(3)

    # a recording that ends while the page is open appears without a reload
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    newest = rec.record("+4930444", "agent", 1.0)
    admin.call("PUT", "/recording-policy", {"all_calls": False, "queues": [], "extensions": [],
                                            "retention_days": 0})  # fmt: skip
    expect(rows).to_have_count(4)
    expect(rows.first).to_have_attribute("data-recording", newest)
    screenshot(page, "recordings")

    # an agent: only their own calls
    page.context.clear_cookies()
    sign_in(page, "agent")
    page.goto("/recordings")
    expect(rows).to_have_count(3)
    expect(page.locator(f"tr[data-recording='{other}']")).to_have_count(0)
    expect(page.locator("#rec-agent")).to_have_count(0)
    expect(page.locator(f"tr[data-recording='{older}']")).to_contain_text("You")
    assert static_problems(page) == []


def test_an_admin_deletes_a_recording_and_saves_the_policy(
    page: Page, calls: tuple[Calls, Client]
) -> None:
    rec, admin = calls
    gone = rec.record("+4930555", "agent", 1.0)
    kept = rec.record("+4930666", "agent", 1.0)
    sign_in(page, "admin")
    page.goto("/recordings")
    row = page.locator(f"tr[data-recording='{gone}']")
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(page.locator(f"tr[data-recording='{kept}']")).to_be_visible()
    admin.call("GET", f"/recordings/{gone}", ok=(404,))

    page.goto("/admin/recording")
    page.get_by_role("navigation", name="Admin sections").get_by_role(
        "link", name="Call recording"
    ).wait_for()
    form = page.locator("#policy-form")
    expect(form.locator(f"input[data-queue='{QUEUE}']")).to_be_visible()
    assert static_problems(page) == []
    # an unknown extension is refused next to its field
    page.get_by_label("Record all calls").check()
    form.locator(f"input[data-queue='{QUEUE}']").check()
    page.get_by_label("Record calls with these extensions").fill(f"{EXTENSION}, 9999")
    page.get_by_label("Keep recordings for (days)").fill("30")
    page.get_by_role("button", name="Save policy").click()
    expect(form.locator(".field-error[data-for='extensions']")).to_contain_text("no extension 9999")
    policy = admin.call("GET", "/recording-policy")
    assert policy["all_calls"] is False
    # corrected: saved
    page.get_by_label("Record calls with these extensions").fill(EXTENSION)
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_test_id("policy-status")).to_have_text("Saved.")
    policy = admin.call("GET", "/recording-policy")
    assert (policy["all_calls"], policy["queues"], policy["extensions"]) == (
        True,
        [QUEUE],
        [EXTENSION],
    )
    assert policy["retention_days"] == 30
    # a reload shows what was saved
    page.reload()
    expect(page.get_by_label("Record all calls")).to_be_checked()
    expect(form.locator(f"input[data-queue='{QUEUE}']")).to_be_checked()
    expect(page.get_by_label("Keep recordings for (days)")).to_have_value("30")
    screenshot(page, "admin-recording")
