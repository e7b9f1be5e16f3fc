"""A phone registers with ``sparklecomm serve``: the real command, an extension created with
the CLI, SIPp as the phone, all inside a loopback-only network namespace. The registration
lands in the SQL ``sip_bindings`` table (shared by every node, kept across restarts)."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.telephony.sip_support import loopback_namespace

SCENARIO = Path(__file__).parent / "sipp" / "register_options.xml"
EXE = Path(sys.executable).with_name("sparklecomm")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_sipp_phone_registers_its_extension_with_serve(tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    with loopback_namespace() as namespace:
        http_port, sip_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKLECOMM_")}
        # SIPp 3.6 answers only the first challenge, and knows only MD5.
        env["SPARKLECOMM_SIP_DIGEST_ALGORITHMS"] = '["MD5", "SHA-256"]'
        log = (tmp_path / "serve.log").open("w")
        server = subprocess.Popen(
            [
                str(EXE),
                "serve",
                "--data-dir",
                str(tmp_path),
                "--port",
                str(http_port),
                "--sip-port",
                str(sip_port),
                "--admin-password",
                "serve-test-pass",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{http_port}/api/v1/health", timeout=1
                    ):
                        break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline, (
                        tmp_path / "serve.log"
                    ).read_text()
                    time.sleep(0.2)
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
            wrong = subprocess.run(
                [
                    "sipp",
                    f"127.0.0.1:{sip_port}",
                    "-sf",
                    str(SCENARIO),
                    "-s",
                    "1001",
                    "-au",
                    "1001",
                    "-ap",
                    "wrong-password",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    "5072",
                    "-m",
                    "1",
                    "-nostdin",
                    "-timeout",
                    "10s",
                    "-timeout_error",
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            assert wrong.returncode != 0  # a wrong password is refused
            phone = subprocess.run(
                [
                    "sipp",
                    f"127.0.0.1:{sip_port}",
                    "-sf",
                    str(SCENARIO),
                    "-s",
                    "1001",
                    "-au",
                    "1001",
                    "-ap",
                    "desk-secret-1",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    "5071",
                    "-m",
                    "1",
                    "-nostdin",
                    "-timeout",
                    "20s",
                    "-timeout_error",
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=40,
            )
            assert phone.returncode == 0, phone.stdout[-2000:] + phone.stderr[-1000:]
        finally:
            server.terminate()
            server.wait(timeout=15)
            log.close()
        del namespace
    assert not (tmp_path / "sip-bindings.json").exists()  # no longer kept in a file
    with sqlite3.connect(tmp_path / "sparklecomm.db") as db:
        rows = db.execute("SELECT aor, contact, tenant_id, source FROM sip_bindings").fetchall()
    assert len(rows) == 1, rows  # the wrong password registered nothing
    aor, contact, tenant_id, source = rows[0]
    assert aor == "sip:1001@127.0.0.1" and ":5071" in contact, rows
    assert tenant_id is not None and source.endswith(":5071"), rows
    output = (tmp_path / "serve.log").read_text()
    assert "phones register as their extension" in output
