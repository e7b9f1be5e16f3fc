"""The Customer satisfaction page in a real Chromium: a supervisor reads every survey answer
newest first with its queue, agent, score and the customer's comment, filters by queue and
agent, and sees a new answer arrive without a reload; an agent sees only the answers about
their own contacts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import LiveServer
from tests.browser.test_accessibility import static_problems
from tests.browser.test_desk import Client
from tests.browser.test_web_shell import sign_in

from sparklecomm.app import build_services
from sparklecomm.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUEUE = "srv-support"


@dataclass
class Answers:
    """The live server's installation opened from this process: answers are stored as the
    phone survey and the survey links store them."""

    services: Any
    tenant_id: str
    users: dict[str, str]

    def answer(self, agent: str, score: int, max_score: int = 5, **extra: Any) -> str:
        answer = self.services.extra["surveys"].do_answer(
            self.tenant_id,
            interaction_id=f"srv-{uuid.uuid4().hex[:12]}",
            queue_id=QUEUE,
            agent_id=self.users[agent],
            channel=extra.pop("channel", "voice"),
            score=score,
            max_score=max_score,
            source=extra.pop("source", "phone"),
            **extra,
        )
        return str(answer["id"])


@pytest.fixture
def answers(live_server: LiveServer) -> Iterator[Answers]:
    admin = Client(live_server.url, "admin")
    users = {u["username"]: u["id"] for u in admin.call("GET", "/users")}
    admin.call("POST", "/queues", {"id": QUEUE, "name": "Rated support"}, ok=(201, 409))
    db = live_server.data_dir / "sparklecomm.db"
    services = build_services(
        Settings(data_dir=live_server.data_dir, database_url=f"sqlite:///{db}", sip_enabled=False)
    )
    try:
        yield Answers(services, services.auth.tenant_by_slug("demo").tenant_id, users)
    finally:
        services.db.dispose()


def test_supervisors_read_what_customers_said_and_agents_their_own(
    page: Page, answers: Answers
) -> None:
    older = answers.answer("agent", 4, comment="Quick and kind")
    other = answers.answer("supervisor", 3, max_score=10, channel="chat", source="web")
    sign_in(page, "supervisor")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Satisfaction").click()
    expect(page.get_by_role("heading", name="Customer satisfaction", level=1)).to_be_visible()
    expect(page.locator("#surveys")).to_have_attribute("data-ready", "true")
    page.get_by_label("Queue").select_option(QUEUE)  # answers of other tests stay out
    rows = page.get_by_test_id("surveys-table").locator("tbody tr[data-answer]")
    expect(rows).to_have_count(2)
    assert [rows.nth(i).get_attribute("data-answer") for i in range(2)] == [other, older]
    first = page.locator(f"tr[data-answer='{older}']")
    expect(first).to_contain_text("Quick and kind")
    expect(first).to_contain_text("Rated support")
    expect(first).to_contain_text("Call")
    expect(first).to_contain_text("Phone survey")
    expect(first.get_by_test_id("survey-score")).to_have_text(" 4 / 5")
    expect(page.locator(f"tr[data-answer='{other}']")).to_contain_text("Survey link")
    expect(page.locator(f"tr[data-answer='{other}']").get_by_test_id("survey-score")).to_have_text(
        " 3 / 10"
    )
    page.get_by_label("Agent").select_option(answers.users["agent"])
    expect(rows).to_have_count(1)
    page.get_by_label("Agent").select_option("")
    assert static_problems(page) == []
    # an answer given while the page is open appears without a reload
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    newest = answers.answer("agent", 5)
    expect(rows).to_have_count(3)
    expect(rows.first).to_have_attribute("data-answer", newest)

    # an agent: only the answers about their own contacts, no agent filter
    page.context.clear_cookies()
    sign_in(page, "agent")
    page.goto("/surveys")
    expect(page.locator("#surveys")).to_have_attribute("data-ready", "true")
    page.get_by_label("Queue").select_option(QUEUE)
    expect(rows).to_have_count(2)
    expect(page.locator(f"tr[data-answer='{other}']")).to_have_count(0)
    expect(page.locator("#srv-agent")).to_have_count(0)
    expect(page.locator(f"tr[data-answer='{older}']")).to_contain_text("You")
    assert static_problems(page) == []
