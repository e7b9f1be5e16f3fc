"""Accessibility of every page, checked in a real Chromium: each control has an accessible
name, text meets WCAG 2.1 AA contrast (4.5:1, 3:1 for large text), the page has a language,
one main landmark and a heading, and keyboard focus is visible.

The checks (a few dozen lines of DOM walking, in a11y/) are our own rather than axe-core,
which would have to be fetched or vendored: npm is not part of the test set-up, and the rules
below are the ones the issue names (labels, focus, contrast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.browser.conftest import LiveServer
from tests.browser.test_web_shell import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_HERE = Path(__file__).parent / "a11y"
AUDIT = (_HERE / "audit.js").read_text()  # returns a list of problems, each naming the element
FOCUS = (_HERE / "focus.js").read_text()  # "" when the focused element shows its focus


def static_problems(page: Page) -> list[str]:
    """Names, contrast, landmarks of the page as it is now (changes nothing on it)."""
    problems: list[str] = page.evaluate(AUDIT)
    return problems


def audit(page: Page) -> list[str]:
    problems = static_problems(page)
    # Keyboard focus: the first few Tab stops each show an outline or a focus ring.
    page.locator("body").click(position={"x": 1, "y": 1})
    for stop in range(4):
        page.keyboard.press("Tab")
        problem: str = page.evaluate(FOCUS)
        if problem == "nothing focused" and stop > 0:
            break  # past the last control of a short page
        if problem:
            problems.append(problem)
    return problems


def open_page(browser: Browser, live_server: LiveServer, username: str | None, path: str) -> Page:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 820})
    page = context.new_page()
    page.set_default_timeout(10_000)
    if username is not None:
        sign_in(page, username)
        page.wait_for_url(lambda url: not url.endswith("/login"))
    page.goto(path)
    page.wait_for_load_state("networkidle")
    return page


PAGES: list[tuple[str | None, str]] = [
    (None, "/login"),
    ("agent", "/agent"),
    ("supervisor", "/wallboard"),
    ("admin", "/admin"),
    ("admin", "/admin/queues"),
    ("admin", "/admin/agents"),
    ("admin", "/admin/codes"),
    ("admin", "/admin/numbers"),
    ("agent", "/voicemail"),
    ("supervisor", "/voicemail"),
    ("supervisor", "/recordings"),
    ("admin", "/admin/recording"),
    ("agent", "/quality"),
    ("supervisor", "/quality"),
    ("admin", "/quality"),
    ("agent", "/surveys"),
    ("supervisor", "/surveys"),
]


@pytest.mark.parametrize(("username", "path"), PAGES)
def test_page_is_accessible(
    browser: Browser, live_server: LiveServer, username: str | None, path: str
) -> None:
    page = open_page(browser, live_server, username, path)
    try:
        if path in ("/agent", "/wallboard"):
            expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        problems = audit(page)
        assert problems == [], "\n".join(problems)
    finally:
        page.context.close()


def test_the_audit_finds_what_it_is_meant_to_find(browser: Browser) -> None:
    """The checks themselves: a page with each fault gets each complaint."""
    page = browser.new_page()
    try:
        page.set_content(
            "<html><body><input id=q><button></button>"
            "<p style='color:#999;background:#fff'>faint text</p><img src='x.png'></body></html>"
        )
        problems: list[Any] = page.evaluate(AUDIT)
        text = "\n".join(problems)
        assert "html has no lang attribute" in text
        assert "not exactly one main landmark" in text and "no h1 heading" in text
        assert "no accessible name: input#q" in text
        assert "no accessible name: button" in text
        assert "contrast 2.85 < 4.5: p" in text
        assert "image without alt" in text
        page.set_content(
            "<html lang=en><body><main><h1>Fine</h1><label>Name <input></label>"
            "<button>Save</button><p style='color:#333'>dark text</p></main></body></html>"
        )
        assert page.evaluate(AUDIT) == []
    finally:
        page.close()
