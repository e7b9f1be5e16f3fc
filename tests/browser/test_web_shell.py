"""The web shell in a real headless Chromium against a real ``sparklecomm serve``."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from tests.browser.conftest import ADMIN_PASSWORD, LiveServer, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def sign_in(page: Page, username: str, password: str = ADMIN_PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_serve_printed_the_login_url_and_first_admin(live_server: LiveServer) -> None:
    text = live_server.log.read_text()
    assert "Sign in at http://localhost:" in text
    assert "created the demo organisation 'demo'" in text
    assert ADMIN_PASSWORD in (live_server.data_dir / "initial-admin-password.txt").read_text()


def test_wrong_password_shows_an_error(page: Page) -> None:
    sign_in(page, "admin", "not the password")
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
    expect(page).to_have_url(re.compile(r"/login$"))
    screenshot(page, "login-error")


def test_sign_in_see_the_frame_go_live_and_sign_out(page: Page) -> None:
    page.goto("/wallboard")  # asks to sign in first, then comes back
    expect(page).to_have_url(re.compile(r"/login\?next=/wallboard"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/wallboard$"))
    nav = page.get_by_role("navigation", name="Sections")
    for label in ("Agent desktop", "Wallboard", "Admin"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    expect(page.get_by_test_id("current-user")).to_contain_text("Administrator")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    page.goto("/")
    expect(page.get_by_role("heading", name="Welcome, Administrator")).to_be_visible()
    screenshot(page, "home")
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/login\?next=/admin"))


def test_agent_sees_only_the_agent_desktop(page: Page) -> None:
    sign_in(page, "agent")
    nav = page.get_by_role("navigation", name="Sections")
    expect(nav.get_by_role("link", name="Agent desktop")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    response = page.goto("/admin")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("needs the admin role")


def test_admin_adds_a_user_and_the_live_feed_shows_it(page: Page, browser: object) -> None:
    sign_in(page, "admin")
    page.goto("/admin")
    table = page.get_by_test_id("users-table")
    expect(table.locator("tr[data-username='agent']")).to_be_visible()
    # a validation error appears next to the field
    page.get_by_label("Username").fill("x")
    page.get_by_label("Password").fill("long enough pass")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator(".field-error[data-for='username']")).to_contain_text(
        "at least 2 characters"
    )
    expect(page.get_by_label("Username")).to_have_attribute("aria-invalid", "true")
    # a second window (a supervisor's home page) follows the event stream live
    other = browser.new_context(base_url=page.url.split("/admin")[0])  # type: ignore[attr-defined]
    sup = other.new_page()
    sign_in(sup, "supervisor")
    expect(sup.locator("#live-status")).to_have_attribute("data-state", "live")
    page.get_by_label("Username").fill("nora.ng")
    page.get_by_label("Display name").fill("Nora Ng")
    page.get_by_label("Role", exact=True).select_option("supervisor")
    page.get_by_label("Password").fill("long enough pass")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_have_text("Added nora.ng.")
    expect(table.locator("tr[data-username='nora.ng']")).to_contain_text("Nora Ng")
    expect(sup.get_by_test_id("event-feed")).to_contain_text("user.created", timeout=3000)
    expect(sup.get_by_test_id("event-feed")).to_contain_text("Nora Ng")
    screenshot(page, "admin-users")
    other.close()
