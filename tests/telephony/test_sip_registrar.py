"""The registrar (RFC 3261 §10.3) on a fake clock: auth, contacts, expiry, `*`, ordering,
persistence across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.telephony.sip_support import request

from sparklecomm.core.clock import FakeClock
from sparklecomm.telephony.sip import SipRequest, SipResponse
from sparklecomm.telephony.sip.digest import (
    DigestAuthenticator,
    InMemoryCredentialStore,
    answer_challenge,
)
from sparklecomm.telephony.sip.location import InMemoryLocationStore, JsonFilePersistence
from sparklecomm.telephony.sip.registrar import Registrar, RegistrarPolicy

REALM = "sparklecomm"
AOR = "sip:alice@127.0.0.1"


class Phone:
    """Sends REGISTERs with the right credentials, as a softphone would."""

    def __init__(self, registrar: Registrar, user: str = "alice", password: str = "pw") -> None:  # noqa: S107
        self.registrar = registrar
        self.user = user
        self.password = password
        self.cseq = 0

    async def register(
        self, headers: str, *, call_id: str = "reg-1@phone", cseq: int | None = None
    ) -> SipResponse:
        self.cseq = cseq if cseq is not None else self.cseq + 1
        to = f"To: <sip:{self.user}@127.0.0.1>\r\n"
        unsigned = self._request(headers, call_id, to, "")
        first = await self.registrar.handle(unsigned)
        if first.status != 401:
            return first
        creds = answer_challenge(
            first.www_authenticate[-1],
            method="REGISTER",
            uri="sip:127.0.0.1",
            username=self.user,
            password=self.password,
        )
        self.cseq += 1
        return await self.registrar.handle(
            self._request(headers, call_id, to, f"Authorization: {creds}\r\n")
        )

    def _request(self, headers: str, call_id: str, to: str, auth: str) -> SipRequest:
        req = request("REGISTER", call_id=call_id, cseq=self.cseq, extra=headers + auth)
        req.headers.set("To", to.split(": ", 1)[1].strip())
        req.headers.set("From", f"<sip:{self.user}@127.0.0.1>;tag=p1")
        return req


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemoryLocationStore:
    return InMemoryLocationStore()


def make_registrar(
    store: InMemoryLocationStore, clock: FakeClock, policy: RegistrarPolicy | None = None
) -> Registrar:
    credentials = InMemoryCredentialStore()
    credentials.add_user("alice", "pw", REALM)
    credentials.add_user("bob", "pw", REALM)
    auth = DigestAuthenticator(REALM, credentials, clock, algorithms=("MD5",))
    return Registrar(store, auth, clock, policy=policy)


@pytest.fixture
def phone(store: InMemoryLocationStore, clock: FakeClock) -> Phone:
    return Phone(make_registrar(store, clock))


def contacts(response: SipResponse) -> dict[str, str | None]:
    return {str(c.uri): c.params.get("expires") for c in response.contacts}


async def test_unauthenticated_register_is_challenged(phone: Phone) -> None:
    response = await phone.registrar.handle(
        request("REGISTER", extra="Contact: <sip:a@1.2.3.4>\r\n")
    )
    assert response.status == 401
    assert response.www_authenticate[0].algorithm == "MD5"
    assert await phone.registrar.lookup(AOR) == []


async def test_register_two_contacts_with_expires_param_and_header(phone: Phone) -> None:
    response = await phone.register(
        "Contact: <sip:alice@10.0.0.1:5060>;expires=120, <sip:alice@10.0.0.2:5062>\r\n"
        "Expires: 300\r\n"
    )
    assert response.status == 200
    assert contacts(response) == {
        "sip:alice@10.0.0.1:5060": "120",
        "sip:alice@10.0.0.2:5062": "300",
    }
    assert "Date" in response.headers


async def test_expired_bindings_disappear(phone: Phone, clock: FakeClock) -> None:
    await phone.register("Contact: <sip:alice@10.0.0.1>;expires=120\r\n")
    clock.advance(100)
    query = await phone.register("")
    assert contacts(query) == {"sip:alice@10.0.0.1": "20"}
    clock.advance(21)
    assert await phone.registrar.lookup(AOR) == []


async def test_too_brief_interval_is_423_with_min_expires(phone: Phone) -> None:
    response = await phone.register("Contact: <sip:alice@10.0.0.1>;expires=10\r\n")
    assert response.status == 423 and response.headers.get("Min-Expires") == "60"
    assert await phone.registrar.lookup(AOR) == []


async def test_long_interval_is_shortened_to_max(phone: Phone) -> None:
    response = await phone.register("Contact: <sip:alice@10.0.0.1>\r\nExpires: 999999\r\n")
    assert contacts(response) == {"sip:alice@10.0.0.1": "7200"}


async def test_default_expiry_without_any_expires(phone: Phone) -> None:
    response = await phone.register("Contact: <sip:alice@10.0.0.1>\r\n")
    assert contacts(response) == {"sip:alice@10.0.0.1": "3600"}


async def test_expires_zero_removes_one_binding(phone: Phone) -> None:
    await phone.register("Contact: <sip:alice@10.0.0.1>, <sip:alice@10.0.0.2>\r\n")
    response = await phone.register("Contact: <sip:alice@10.0.0.1>;expires=0\r\n")
    assert list(contacts(response)) == ["sip:alice@10.0.0.2"]


async def test_wildcard_removes_all(phone: Phone) -> None:
    await phone.register("Contact: <sip:alice@10.0.0.1>, <sip:alice@10.0.0.2>\r\n")
    response = await phone.register("Contact: *\r\nExpires: 0\r\n")
    assert response.status == 200 and response.contacts == ()
    assert await phone.registrar.lookup(AOR) == []


async def test_wildcard_needs_expires_zero(phone: Phone) -> None:
    await phone.register("Contact: <sip:alice@10.0.0.1>\r\n")
    response = await phone.register("Contact: *\r\nExpires: 30\r\n")
    assert response.status == 400
    assert len(await phone.registrar.lookup(AOR)) == 1


async def test_same_call_id_needs_higher_cseq_and_nothing_changes_otherwise(
    phone: Phone,
) -> None:
    await phone.register("Contact: <sip:alice@10.0.0.1>;expires=100\r\n", cseq=10)
    stale = await phone.register(
        "Contact: <sip:alice@10.0.0.1>;expires=0, <sip:alice@10.0.0.9>\r\n", cseq=5
    )
    assert stale.status == 400 and "Out of Order" in stale.reason
    assert [b.contact for b in await phone.registrar.lookup(AOR)] == ["sip:alice@10.0.0.1"]
    # Another Call-ID may replace the binding whatever its CSeq (a rebooted phone).
    fresh = await phone.register(
        "Contact: <sip:alice@10.0.0.1>;expires=200\r\n", call_id="reg-2@phone", cseq=1
    )
    assert contacts(fresh) == {"sip:alice@10.0.0.1": "200"}


async def test_equivalent_contact_uris_are_one_binding(phone: Phone) -> None:
    await phone.register("Contact: <sip:alice@EXAMPLE.com;transport=tcp>\r\n")
    response = await phone.register("Contact: <sip:alice@example.com;transport=TCP>\r\n")
    assert len(response.contacts) == 1


async def test_user_cannot_register_someone_else(
    store: InMemoryLocationStore, clock: FakeClock
) -> None:
    bob = Phone(make_registrar(store, clock), user="bob")
    req_headers = "Contact: <sip:bob@10.0.0.5>\r\n"
    response = await bob.register(req_headers)
    assert response.status == 200
    # bob's credentials, alice's address-of-record
    registrar = bob.registrar
    first = await registrar.handle(request("REGISTER", extra=req_headers))
    creds = answer_challenge(
        first.www_authenticate[0],
        method="REGISTER",
        uri="sip:127.0.0.1",
        username="bob",
        password="pw",
    )
    forged = request("REGISTER", cseq=9, extra=req_headers + f"Authorization: {creds}\r\n")
    forged.headers.set("To", "<sip:alice@127.0.0.1>")
    assert (await registrar.handle(forged)).status == 403
    assert await registrar.lookup(AOR) == []


async def test_unknown_domain_is_404(store: InMemoryLocationStore, clock: FakeClock) -> None:
    registrar = make_registrar(store, clock, RegistrarPolicy(domains=frozenset({"pbx.example"})))
    response = await registrar.handle(request("REGISTER", extra="Contact: <sip:a@1.2.3.4>\r\n"))
    assert response.status == 404


async def test_too_many_contacts_is_refused(store: InMemoryLocationStore, clock: FakeClock) -> None:
    phone = Phone(make_registrar(store, clock, RegistrarPolicy(max_bindings=2)))
    many = ", ".join(f"<sip:alice@10.0.0.{i}>" for i in range(3))
    response = await phone.register(f"Contact: {many}\r\n")
    assert response.status == 403
    assert await phone.registrar.lookup(AOR) == []


async def test_bindings_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "bindings.json"
    phone = Phone(make_registrar(InMemoryLocationStore(JsonFilePersistence(path)), clock))
    await phone.register("Contact: <sip:alice@10.0.0.1>;q=0.5;expires=600\r\n")
    clock.advance(100)
    restarted = make_registrar(InMemoryLocationStore(JsonFilePersistence(path)), clock)
    [binding] = await restarted.lookup(AOR)
    assert binding.contact == "sip:alice@10.0.0.1" and binding.q == 0.5
    assert binding.remaining(clock.now()) == 500
    assert binding.call_id == "reg-1@phone"
