"""The SIP part of the application's lifespan: registrations kept in SQL, and trunks with
``register`` set registering with their carrier at start and unregistering at shutdown
(a recording UDP socket plays the carrier, inside a loopback-only namespace)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import make_world
from tests.telephony.sip_support import loopback_namespace

from sparklecomm.app import build_app
from sparklecomm.audit.store import Actor
from sparklecomm.telephony.pbx.locations import SqlLocationStore
from sparklecomm.telephony.sip.message import SipRequest, build_response
from sparklecomm.telephony.sip.parser import parse_datagram

pytestmark = pytest.mark.timeout(60)


def _next_register(carrier: socket.socket) -> tuple[SipRequest, tuple[str, int]]:
    data, source = carrier.recvfrom(65535)
    request = parse_datagram(data)
    assert isinstance(request, SipRequest) and request.method == "REGISTER", data
    return request, source


def test_serve_keeps_registrations_in_sql_and_registers_trunks(
    sqlite_url: str, tmp_path: Path
) -> None:
    with loopback_namespace():
        world = make_world(
            sqlite_url,
            tmp_path,
            sip_enabled=True,
            sip_host="127.0.0.1",
            sip_port=0,
            sip_transports=["UDP"],
        )
        services = world.services
        try:
            assert isinstance(services.extra["sip"].locations, SqlLocationStore)
            carrier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            carrier.bind(("127.0.0.1", 0))
            carrier.settimeout(10)
            port = carrier.getsockname()[1]
            services.extra["pbx"].do_create_trunk(
                world.tenant_id,
                Actor.cli(),
                {
                    "name": "carrier",
                    "host": "127.0.0.1",
                    "port": port,
                    "register": True,
                    "username": "acme",
                    "password": "trunk-pass-123",
                },
            )
            with TestClient(build_app(services)) as client:
                assert client.get("/api/v1/health").status_code == 200
                request, source = _next_register(carrier)  # sent at start
                assert "acme@" in str(request.to.uri)
                ok = build_response(request, 200)
                ok.headers.add("Contact", f"{request.headers.get('Contact')};expires=600")
                ok.headers.add("Expires", "600")
                carrier.sendto(ok.to_bytes(), source)
                time.sleep(0.5)  # the server takes the answer before shutting down
            unregister, _ = _next_register(carrier)  # sent at shutdown
            text = unregister.to_bytes().decode().lower()
            assert "expires: 0" in text or "expires=0" in text, text
            carrier.close()
        finally:
            services.db.dispose()
