"""A real ``sparklecomm serve`` process and a real headless Chromium (Debian's package)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SPARKLECOMM_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SPARKLECOMM_ARTIFACTS", "artifacts"))
ADMIN_PASSWORD = "browser-test-pass"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    log: Path


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``sparklecomm serve`` on a fresh data directory, as a user would start it."""
    data_dir = tmp_path_factory.mktemp("serve-data")
    port = _free_port()
    log = data_dir / "serve.log"
    exe = Path(sys.executable).with_name("sparklecomm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKLECOMM_")}
    env["SPARKLECOMM_SIP_PORT"] = "0"  # SIP on a free port (5060 may be taken)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(exe),
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--admin-password",
                ADMIN_PASSWORD,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sparklecomm serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
    try:
        yield LiveServer(url, data_dir, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Module scope, not session: Playwright's sync API keeps an asyncio loop running in the
    # main thread while it is open, which would break later tests that call asyncio.run().
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object, live_server: LiveServer) -> Iterator[object]:
    context = browser.new_context(
        base_url=live_server.url,  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 800},
    )
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p
    context.close()


def screenshot(page: object, name: str) -> Path:
    """Save a screenshot as a CI artifact under artifacts/screenshots/."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
