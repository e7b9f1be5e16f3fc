"""A phone registers with ``sparklecomm serve``: the real command, an extension created with
the CLI, SIPp as the phone, all inside a loopback-only network namespace. The registration
lands in the SQL ``sip_bindings`` table (shared by every node, kept across restarts)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from tests.telephony.sip_support import loopback_namespace, running_serve

SCENARIO = Path(__file__).parent / "sipp" / "register_options.xml"
EXE = Path(sys.executable).with_name("sparklecomm")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _register(sip_port: int, password: str, port: str, timeout: str) -> CompletedProcess[str]:
    return subprocess.run(
        [
            *("sipp", f"127.0.0.1:{sip_port}", "-sf", str(SCENARIO), "-s", "1001", "-au", "1001"),
            *("-ap", password, "-i", "127.0.0.1", "-p", port, "-m", "1", "-nostdin"),
            *("-timeout", timeout, "-timeout_error"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=40,
    )


def test_a_sipp_phone_registers_its_extension_with_serve(tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKLECOMM_")}
    with (
        loopback_namespace(),
        running_serve(
            tmp_path,
            "serve-test-pass",
            # SIPp 3.6 answers only the first challenge, and knows only MD5.
            SPARKLECOMM_SIP_DIGEST_ALGORITHMS='["MD5", "SHA-256"]',
        ) as (_, sip_port),
    ):
        added = subprocess.run(
            [
                str(EXE),
                "--data-dir",
                str(tmp_path),
                "extension",
                "add",
                "1001",
                "--display-name",
                "Front desk",
                "--password",
                "desk-secret-1",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        wrong = _register(sip_port, "wrong-password", "5072", "10s")
        assert wrong.returncode != 0  # a wrong password is refused
        phone = _register(sip_port, "desk-secret-1", "5071", "20s")
        assert phone.returncode == 0, phone.stdout[-2000:] + phone.stderr[-1000:]
    assert not (tmp_path / "sip-bindings.json").exists()  # no longer kept in a file
    with sqlite3.connect(tmp_path / "sparklecomm.db") as db:
        rows = db.execute("SELECT aor, contact, tenant_id, source FROM sip_bindings").fetchall()
    assert len(rows) == 1, rows  # the wrong password registered nothing
    aor, contact, tenant_id, source = rows[0]
    assert aor == "sip:1001@127.0.0.1" and ":5071" in contact, rows
    assert tenant_id is not None and source.endswith(":5071"), rows
    output = (tmp_path / "serve.log").read_text()
    assert "phones register as their extension" in output
