"""Admin pages (errors next to the field) and the demo center (a living wallboard)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.browser.conftest import _free_port, screenshot
from tests.browser.test_web_shell import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_admin_creates_a_queue_and_a_code_with_errors_next_to_the_field(page: Page) -> None:
    sign_in(page, "admin")
    page.goto("/admin/queues")
    page.get_by_label("Id").fill("billing")
    page.get_by_label("Name").fill("Billing")
    page.get_by_label("Service level (s)").fill("0")
    page.get_by_role("button", name="Save queue").click()
    expect(page.locator(".field-error[data-for='service_level_seconds']")).to_contain_text(
        "greater than 0"
    )
    expect(page.get_by_label("Service level (s)")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Service level (s)").fill("30")
    page.get_by_role("button", name="Save queue").click()
    expect(page.get_by_test_id("queues-table").locator("tr[data-queue='billing']")).to_contain_text(
        "Billing"
    )
    screenshot(page, "admin-queues")
    page.goto("/admin/codes")
    page.get_by_label("Code").fill("Gym Time")
    page.get_by_label("Label").fill("Gym")
    page.get_by_role("button", name="Save code").click()
    expect(page.locator(".field-error[data-for='code']")).to_contain_text("lower-case")
    page.get_by_label("Code").fill("gym")
    page.get_by_role("button", name="Save code").click()
    expect(page.locator("tr[data-code='reason:gym']")).to_contain_text("Gym")
    page.goto("/admin/agents")
    row = page.locator("form[data-agent='agent']").locator("xpath=ancestor::tr")
    row.get_by_label("Skills of Ana Agent").fill("billing:9")
    row.get_by_role("button", name="Save").click()
    expect(row.locator(".field-error[data-for='skills']")).not_to_be_empty()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> object:
    data_dir = tmp_path_factory.mktemp("demo-data")
    port = _free_port()
    exe = Path(sys.executable).with_name("sparklecomm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKLECOMM_")}
    env["SPARKLECOMM_SIP_PORT"] = "0"  # SIP on a free port (5060 may be taken)
    log = (data_dir / "demo.log").open("w")
    proc = subprocess.Popen(
        [
            str(exe),
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--speed",
            "20",
            "--load",
            "2",
            "--admin-password",
            "demo-password",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1):  # noqa: S310
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail((data_dir / "demo.log").read_text())
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_demo_center_wallboard_moves_and_a_person_gets_offers(
    browser: Browser, demo_server: str
) -> None:
    context = browser.new_context(base_url=demo_server, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, "supervisor", "demo-password")
    page.goto("/wallboard")
    expect(page.get_by_test_id("queue-support")).to_be_visible()
    answered = page.get_by_test_id("queue-support").locator("[data-field='answered']")
    expect(answered).not_to_have_text("0 / 0", timeout=20_000)
    expect(page.locator("tr[data-agent]")).to_have_count(9)  # 8 simulated agents and Ana
    time.sleep(4)
    screenshot(page, "wallboard-demo")
    agent_ctx = browser.new_context(base_url=demo_server, viewport={"width": 1366, "height": 820})
    agent = agent_ctx.new_page()
    sign_in(agent, "agent", "demo-password")
    agent.goto("/agent")
    expect(agent.locator("#desk")).to_have_attribute("data-ready", "true")
    agent.get_by_role("button", name="Log in").click()
    expect(agent.get_by_test_id("agent-state")).not_to_have_text("Logged out")
    expect(agent.get_by_test_id("offer")).to_be_visible(timeout=30_000)
    expect(agent.get_by_test_id("offer-countdown")).to_be_visible()
    screenshot(agent, "agent-desktop-demo-offer")
    context.close()
    agent_ctx.close()
