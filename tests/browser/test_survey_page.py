"""The customers' survey page in a real Chromium: a customer opens the link from a chat,
presses 4, leaves a comment and is thanked; the answer is stored as the link says; a second
answer (another tab still showing the form) is refused politely; a forged link says so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_accessibility import static_problems

from sparklecomm.app import build_services
from sparklecomm.core.ids import new_id
from sparklecomm.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def surveys(live_server: LiveServer) -> Iterator[tuple[Any, str]]:
    """The live server's installation opened from this process (same secret key, same
    database): its survey service and the demo organisation's id."""
    db = live_server.data_dir / "sparklecomm.db"
    services = build_services(
        Settings(data_dir=live_server.data_dir, database_url=f"sqlite:///{db}", sip_enabled=False)
    )
    try:
        yield services.extra["surveys"], services.auth.tenant_by_slug("demo").tenant_id
    finally:
        services.db.dispose()


def test_a_customer_answers_a_survey_link_once(
    page: Page, live_server: LiveServer, surveys: tuple[Any, str]
) -> None:
    service, tenant_id = surveys
    interaction_id = new_id()
    token, _ = service.link_for(
        tenant_id,
        interaction_id=interaction_id,
        queue_id="support",
        agent_id="agent-7",
        channel="chat",
        max_score=5,
    )
    other_tab = page.context.new_page()
    other_tab.goto(f"/survey/{token}")  # the form, opened twice

    page.goto(f"/survey/{token}")
    expect(page.get_by_role("heading", name="How did we do?")).to_be_visible()
    scale = page.get_by_role("group", name="How satisfied are you")
    expect(scale.get_by_role("radio")).to_have_count(5)
    assert static_problems(page) == []
    scale.get_by_role("radio", name="4").click()  # the button "4" (the radio covers it)
    expect(scale.get_by_role("radio", name="4")).to_be_checked()
    page.get_by_label("Anything you would like to tell us?").fill("Quick and friendly.")
    screenshot(page, "survey-form")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("survey-thanks")).to_contain_text("Thank you!")
    expect(page.get_by_test_id("survey-thanks")).to_contain_text("4 out of 5")
    screenshot(page, "survey-thanks")
    stored = service.answer(tenant_id, interaction_id)
    assert stored is not None
    assert (stored["score"], stored["max_score"], stored["comment"]) == (
        4,
        5,
        "Quick and friendly.",
    )
    assert (stored["agent_id"], stored["queue_id"], stored["source"]) == (
        "agent-7",
        "support",
        "web",
    )

    # The other tab still shows the form: its answer is refused, politely.
    other_tab.get_by_role("radio", name="1").click()
    other_tab.get_by_role("button", name="Send").click()
    expect(other_tab.get_by_test_id("survey-answered")).to_contain_text("already have your answer")
    assert service.answer(tenant_id, interaction_id)["score"] == 4
    # Opening the link again says thank you without a form.
    page.reload()
    expect(page.get_by_test_id("survey-answered")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_have_count(0)
    other_tab.close()


def test_a_broken_link_says_so(page: Page, live_server: LiveServer) -> None:
    response = page.goto("/survey/not-a-real-link.at-all")
    assert response is not None and response.status == 404
    expect(page.get_by_test_id("survey-invalid")).to_contain_text("does not work")
