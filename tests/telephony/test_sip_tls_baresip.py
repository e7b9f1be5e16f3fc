"""A real softphone over TLS against the real ``sparklecomm serve``: baresip (Debian 1.0,
TLS through libre/OpenSSL) registers as extension 1002 over TLS, trusting a self-signed
certificate made with ``openssl`` for this run; SIPp (which has no TLS here) is the other
phone, over UDP. SIPp calls baresip (the INVITE goes down baresip's own TLS connection),
then baresip dials a SIPp UAS. Everything runs inside a loopback-only network namespace.
Media stays RTP (no SRTP)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.telephony.sip_support import free_port, loopback_namespace, make_tls_certificate
from tests.telephony.test_baresip import (
    ADMIN_PASSWORD,
    BARESIP,
    EXE,
    PASSWORDS,
    SIPP,
    TEMPLATES,
    Baresip,
    Serve,
    _healthy,
    _squeeze,
    _stop,
    _tail,
    register_sipp_1001,
    registered,
    run_baresip,
    sipp,
    wait_until,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(150),
    pytest.mark.skipif(BARESIP is None, reason="baresip is not installed (Debian package)"),
    pytest.mark.skipif(
        shutil.which("sipp") is None, reason="sipp is not installed (Debian package sip-tester)"
    ),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]


class TlsServe(Serve):
    """``Serve`` with its TLS port and the certificate phones must trust."""

    tls_port: int = 0
    certificate: str = ""


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServe]:
    """``sparklecomm serve`` with SIP over TLS, extensions 1001 and 1002 made with the CLI."""
    tmp = tmp_path_factory.mktemp("serve-tls")
    certificate, key = make_tls_certificate(tmp)
    with loopback_namespace():
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKLECOMM_")}
        env["SPARKLECOMM_SIP_DIGEST_ALGORITHMS"] = '["MD5"]'  # baresip 1.0 knows only MD5
        http_port, sip_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
        tls_port = free_port(socket.SOCK_STREAM)
        with (tmp / "serve.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    str(EXE),
                    "serve",
                    "--data-dir",
                    str(tmp),
                    "--port",
                    str(http_port),
                    "--sip-port",
                    str(sip_port),
                    "--sip-tls-port",
                    str(tls_port),
                    "--sip-tls-certificate",
                    certificate,
                    "--sip-tls-private-key",
                    key,
                    "--admin-password",
                    ADMIN_PASSWORD,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        server = TlsServe(tmp, http_port, sip_port, process)
        server.tls_port = tls_port
        server.certificate = certificate
        try:
            wait_until("serve's health endpoint", lambda: _healthy(server), 60, server.log_text)
            listening = rf"sip.listening .*port={tls_port} transport=TLS"
            wait_until(
                "the TLS listener",
                lambda: re.search(listening, server.log_text()) is not None,
                10,
                server.log_text,
            )
            adds = [
                subprocess.Popen(
                    [
                        str(EXE),
                        "--data-dir",
                        str(tmp),
                        "extension",
                        "add",
                        number,
                        "--display-name",
                        f"Phone {number}",
                        "--password",
                        password,
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=env,
                    text=True,
                )
                for number, password in PASSWORDS.items()
            ]
            for add in adds:
                out, _ = add.communicate(timeout=60)
                assert add.returncode == 0, out
            yield server
        finally:
            _stop(server.process)


@contextlib.contextmanager
def tls_baresip(serve: TlsServe, tmp: Path) -> Iterator[Baresip]:
    """baresip registered as 1002 over TLS (auto-answer), trusting serve's certificate."""
    assert BARESIP is not None
    sip_port, ctrl_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    rtp = free_port(socket.SOCK_DGRAM) & ~1
    config_dir = tmp / "baresip"
    config_dir.mkdir()
    values = {
        "SIP_LISTEN": f"127.0.0.1:{sip_port}",
        "CTRL_LISTEN": f"127.0.0.1:{ctrl_port}",
        "RTP_PORTS": f"{rtp}-{rtp + 20}",
    }
    config = (TEMPLATES / "config").read_text()
    for name, value in values.items():
        config = config.replace("{" + name + "}", value)
    config = config.replace("sip_transports\t\tudp", "sip_transports\t\tudp,tcp,tls")
    config += f"sip_cafile\t\t{serve.certificate}\n"
    (config_dir / "config").write_text(config)
    (config_dir / "accounts").write_text(
        f"<sip:1002@127.0.0.1:{serve.tls_port};transport=tls>;auth_user=1002;"
        f"auth_pass={PASSWORDS['1002']};answermode=auto;regint=60;audio_codecs=PCMU,PCMA\n"
    )
    (config_dir / "contacts").write_text("")
    output = tmp / "baresip.log"
    with run_baresip(config_dir, output, sip_port, ctrl_port, "baresip") as phone:
        yield phone


def _registered_over_tls(serve: TlsServe) -> bool:
    """The registrar's binding of 1002 came over TLS (read from the SQLite store)."""
    import sqlite3

    for db in serve.data_dir.glob("*.db"):
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            try:
                rows = conn.execute("SELECT source FROM sip_bindings").fetchall()
            except sqlite3.OperationalError:
                continue
        if any(str(row[0]).startswith("TLS:127.0.0.1:") for row in rows):
            return True
    return False


def test_baresip_registers_over_tls_and_answers_a_call_from_sipp(
    serve: TlsServe, tmp_path: Path
) -> None:
    assert f"SIP over TLS on 127.0.0.1:{serve.tls_port}" in serve.log_text()  # serve's banner
    registration = registered(serve, "1002")
    with tls_baresip(serve, tmp_path) as phone:
        wait_until(
            "baresip's registration as 1002 over TLS",
            registration,
            20,
            lambda: _tail(phone.output) + _tail(serve.log),
        )
        assert _registered_over_tls(serve), _tail(serve.log)
        before = len(serve.events("call.ended"))
        target = f"127.0.0.1:{serve.sip_port}"
        caller = sipp(
            target,
            "-sf",
            str(SIPP / "call_uac.xml"),
            "-s",
            "1002",
            "-au",
            "1001",
            "-ap",
            PASSWORDS["1001"],
            "-auth_uri",
            f"1002@{target}",
            "-key",
            "caller",
            "1001",
            "-p",
            str(free_port(socket.SOCK_DGRAM)),
            "-mp",
            str(free_port(socket.SOCK_DGRAM) & ~1),
            "-timeout",
            "20s",
        )
        assert caller.returncode == 0, (
            _squeeze(caller.stdout) + _tail(phone.output) + _tail(serve.log)
        )
        phone.control.event("CALL_ESTABLISHED")
        phone.control.event("CALL_CLOSED")
        wait_until(
            "call.ended", lambda: len(serve.events("call.ended")) > before, 10, serve.log_text
        )
        trace = phone.output.read_text(errors="replace")
    # baresip got the INVITE over TLS, from our TLS port, naming TLS in our Contact.
    invite = r"INVITE sip:1002[^@ ]*@127\.0\.0\.1:\d+;transport=tls SIP/2\.0"
    assert re.search(invite, trace), trace[-3000:]
    assert f"Via: SIP/2.0/TLS 127.0.0.1:{serve.tls_port}" in trace, trace[-3000:]
    assert f"127.0.0.1:{serve.tls_port};transport=tls>" in trace
    ended = [e for e in serve.events("call.ended") if e["dialled"] == "1002"]
    assert ended and ended[-1]["reason"] == "caller_hangup" and ended[-1]["duration"] > 0
    # baresip's tone reached the relay on its leg: media is plain RTP, as documented.
    assert ended[-1].get("media", {}).get("b_packets_in", 0) > 0, ended[-1]


def test_baresip_over_tls_dials_a_sipp_phone_and_hangs_up(serve: TlsServe, tmp_path: Path) -> None:
    target = f"127.0.0.1:{serve.sip_port}"
    uas_port = free_port(socket.SOCK_DGRAM)
    common = ["-i", "127.0.0.1", "-nostdin", "-timeout_error", "-m", "1", "-timeout", "25s"]
    callee = subprocess.Popen(
        [
            "sipp",
            "-sf",
            str(SIPP / "call_uas.xml"),
            "-p",
            str(uas_port),
            "-mp",
            str(free_port(socket.SOCK_DGRAM) & ~1),
            *common,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        register_sipp_1001(target, uas_port)
        before = len(serve.events("call.ended"))
        phone_registration = registered(serve, "1002")
        with tls_baresip(serve, tmp_path) as phone:
            wait_until(
                "baresip's registration as 1002 over TLS",
                phone_registration,
                20,
                lambda: _tail(phone.output) + _tail(serve.log),
            )
            reply = phone.control.command("dial", "1001")
            assert reply.get("ok") is True, reply
            phone.control.event("CALL_ESTABLISHED")
            time.sleep(1.0)
            reply = phone.control.command("hangup")
            assert reply.get("ok") is True, reply
            phone.control.event("CALL_CLOSED")
            trace = phone.output.read_text(errors="replace")
        out, _ = callee.communicate(timeout=30)
        assert callee.returncode == 0, _squeeze(out)
    finally:
        _stop(callee)
    wait_until("call.ended", lambda: len(serve.events("call.ended")) > before, 10, serve.log_text)
    # baresip's INVITE went over TLS; our 200 OK's Contact sends the ACK and BYE back there.
    assert re.search(r"INVITE sip:1001@127\.0\.0\.1:\d+;transport=tls SIP/2\.0", trace), trace[
        -3000:
    ]
    # Our answer names our TLS port and transport in its Contact (where ACK and BYE go).
    assert f"Contact: <sip:127.0.0.1:{serve.tls_port};transport=tls>" in trace, trace[-3000:]
    ended = [e for e in serve.events("call.ended") if e["dialled"] == "1001"]
    assert ended and ended[-1]["caller"] == "1002"
    assert ended[-1]["reason"] == "caller_hangup" and ended[-1]["duration"] > 0
    assert ended[-1].get("media", {}).get("a_packets_in", 0) > 0, ended[-1]
