"""Admin › Phones in a real Chromium: extensions, whose agent they ring for, and the
do-not-disturb and auto-answer switches."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import LiveServer, screenshot
from tests.browser.test_accessibility import static_problems
from tests.browser.test_desk import Client
from tests.browser.test_web_shell import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_admin_adds_a_headset_phone_for_an_agent_and_turns_auto_answer_on(
    page: Page, live_server: LiveServer
) -> None:
    admin = Client(live_server.url, "admin")
    admin.call(
        "POST",
        "/telephony/extensions",
        {"number": "2101", "password": "desk-secret-123", "display_name": "Reception"},
    )
    try:
        check_the_phones_page(page, admin)
    finally:  # the server is shared: leave Ana without a phone, as the desk tests expect
        for number in ("2101", "2102"):
            admin.call("DELETE", f"/telephony/extensions/{number}", ok=(204, 404))


def check_the_phones_page(page: Page, admin: Client) -> None:
    sign_in(page, "admin")
    page.goto("/admin/phones")
    table = page.get_by_test_id("phones-table")
    expect(table.locator("tr[data-extension='2101']")).to_contain_text("Reception")
    expect(table.locator("tr[data-extension='2101']")).to_contain_text("shared")
    form = page.locator("#phone-form")
    # Mistakes are shown next to the field, and nothing is added.
    form.get_by_label("Extension number").fill("21x")
    form.get_by_label("SIP password").fill("short")
    form.get_by_role("button", name="Add phone").click()
    expect(form.locator(".field-error[data-for='number']")).not_to_be_empty()
    form.get_by_label("Extension number").fill("2102")
    form.get_by_role("button", name="Add phone").click()
    expect(form.locator(".field-error[data-for='password']")).to_contain_text("10")
    expect(table.locator("tr[data-extension='2102']")).to_have_count(0)
    form.get_by_label("Name shown").fill("Ana's headset")
    form.get_by_label("SIP password").fill("headset-secret-42")
    form.get_by_label("Agent").select_option(label="Ana Agent (agent)")
    form.get_by_role("button", name="Add phone").click()
    row = table.locator("tr[data-extension='2102']")
    expect(row).to_contain_text("Ana Agent (agent)")
    # Auto-answer on: saved at once, and there after a reload.
    row.get_by_label("Auto-answer for 2102").check()
    expect(page.get_by_role("status").last).to_contain_text("Auto-answer on for 2102")
    assert admin.call("GET", "/telephony/extensions/2102/call-settings")["auto_answer"] is True
    page.reload()
    expect(
        table.locator("tr[data-extension='2102']").get_by_label("Auto-answer for 2102")
    ).to_be_checked()
    expect(
        table.locator("tr[data-extension='2101']").get_by_label("Do not disturb for 2101")
    ).not_to_be_checked()
    screenshot(page, "admin-phones")
    assert static_problems(page) == []
