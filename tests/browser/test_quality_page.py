"""The Quality page in a real Chromium, the whole feedback loop: an administrator writes a
scorecard (a wrong weight is shown next to the criteria), a supervisor evaluates a recorded
call with its player beside the form (the score computed while answering), saves a draft and
submits it; the agent sees the review, reads it and acknowledges it with a comment; the
month's trend shows the score."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_accessibility import static_problems
from tests.browser.test_desk import Client
from tests.browser.test_recordings_page import Calls
from tests.browser.test_web_shell import sign_in

from sparklecomm.app import build_services
from sparklecomm.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def calls(live_server: LiveServer) -> Iterator[tuple[Calls, Client]]:
    """Recordings made through the B2BUA's protocol on the live server's database; removed
    afterwards with the scorecards this test wrote (archived: scorecards are never deleted)."""
    admin = Client(live_server.url, "admin")
    users = {u["username"]: u["id"] for u in admin.call("GET", "/users")}
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
        for card in admin.call("GET", "/quality/scorecards"):
            admin.call("POST", f"/quality/scorecards/{card['id']}/archive", ok=(200, 409))


def test_a_call_is_evaluated_submitted_and_acknowledged(
    page: Page, live_server: LiveServer, calls: tuple[Calls, Client]
) -> None:
    rec, admin = calls
    recording = rec.record("+4930777", "agent", 2.0, queue_id=None)
    name = f"Inbound call {uuid.uuid4().hex[:6]}"

    # the administrator writes the scorecard
    sign_in(page, "admin")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Quality").click()
    expect(page.get_by_role("heading", name="Quality", level=1)).to_be_visible()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Section of criterion 1").fill("Etiquette")
    page.get_by_label("Criterion of criterion 1").fill("Greeting")
    page.get_by_label("Weight of criterion 1").fill("2")
    page.get_by_role("button", name="Add criterion").click()
    page.get_by_label("Section of criterion 2").fill("Procedure")
    page.get_by_label("Criterion of criterion 2").fill("Verified identity")
    page.get_by_label("Weight of criterion 2").fill("11")
    page.get_by_label("Scale of criterion 2").select_option("yes_no")
    page.get_by_label("Critical of criterion 2").check()
    page.get_by_role("button", name="Save scorecard").click()
    errors = page.locator("#sc-form .field-error[data-for='criteria']")
    expect(errors).to_contain_text("criteria[1].weight must be 1 to 10")
    expect(page.get_by_label("Weight of criterion 2")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Weight of criterion 2").fill("1")
    page.get_by_role("button", name="Save scorecard").click()
    expect(page.get_by_test_id("scorecard-status")).to_have_text("Saved.")
    card = next(c for c in admin.call("GET", "/quality/scorecards") if c["name"] == name)
    assert [(c["label"], c["weight"], c["scale"], c["critical"]) for c in card["criteria"]] == [
        ("Greeting", 2, "1-5", False),
        ("Verified identity", 1, "yes_no", True),
    ]
    expect(page.locator(f"tr[data-scorecard='{card['id']}']")).to_contain_text(name)
    assert static_problems(page) == []

    # the supervisor evaluates the recorded call
    page.context.clear_cookies()
    sign_in(page, "supervisor")
    page.goto("/quality")
    page.get_by_role("button", name="New evaluation").click()
    editor = page.get_by_test_id("evaluation-editor")
    expect(editor).to_be_visible()
    editor.get_by_label("Recorded call").select_option(recording)
    editor.get_by_label("Scorecard").select_option(card["id"])
    audio = editor.locator("audio")
    expect(audio).to_have_attribute("src", f"/api/v1/recordings/{recording}/audio")
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle())
    greeting = editor.locator("fieldset[data-criterion='c1']")
    greeting.get_by_label("4", exact=True).check()
    expect(page.get_by_test_id("live-score")).to_have_text("75.0")  # the greeting alone
    editor.locator("fieldset[data-criterion='c2']").get_by_label("Yes").check()
    expect(page.get_by_test_id("live-score")).to_have_text("83.3")  # (2×0.75 + 1) / 3
    editor.get_by_label("Comment on Greeting").fill("Warm, but say the company's name.")
    editor.get_by_label("Overall comment").fill("A good call.")
    assert static_problems(page) == []
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_test_id("editor-status")).to_contain_text("Draft saved")
    rows = page.get_by_test_id("evaluations-table").locator("tbody tr[data-evaluation]")
    expect(rows.first).to_have_attribute("data-status", "draft")
    screenshot(page, "quality-evaluation")
    editor.get_by_role("button", name="Submit").click()
    expect(editor).to_be_hidden()
    expect(rows.first).to_have_attribute("data-status", "submitted")
    expect(rows.first.get_by_test_id("ev-score")).to_have_text("83.3")
    evaluation = rows.first.get_attribute("data-evaluation")

    # the agent reads it and acknowledges it
    page.context.clear_cookies()
    sign_in(page, "agent")
    page.goto("/quality")
    mine = page.locator(f"tr[data-evaluation='{evaluation}']")
    expect(page.get_by_test_id("evaluations-status")).to_contain_text("1 to acknowledge")
    mine.get_by_role("button", name="Read and acknowledge").click()
    detail = page.get_by_test_id("evaluation-detail")
    expect(detail.get_by_test_id("detail-score")).to_have_text("83.3")
    expect(detail.get_by_test_id("detail-comment")).to_have_text("A good call.")
    expect(detail).to_contain_text("Warm, but say the company's name.")
    assert static_problems(page) == []
    detail.get_by_label("Your answer (optional)").fill("Will do.")
    detail.get_by_role("button", name="Acknowledge").click()
    expect(mine).to_have_attribute("data-status", "acknowledged")
    sup = Client(live_server.url, "supervisor")
    assert sup.call("GET", f"/quality/evaluations/{evaluation}")["agent_comment"] == "Will do."

    # the month's trend shows it (months in the browser's time zone)
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    trend = Client(live_server.url, "agent").call("GET", f"/quality/trends?timezone={zone}")
    month = trend["months"][-1]
    assert month["review"]["count"] >= 1
    row = page.locator(f"#tr-body tr[data-month='{month['month']}']")
    expect(row.get_by_test_id("trend-average")).to_have_text(f"{month['review']['average']:.1f}")
    expect(row.get_by_test_id("trend-count")).to_have_text(str(month["review"]["count"]))
    screenshot(page, "quality-agent")
