"""Digest authentication (RFC 2617/7616/8760): MD5 and SHA-256, stale nonces, nc replay."""

from __future__ import annotations

import pytest
from tests.telephony.sip_support import request

from sparklecomm.core.clock import FakeClock
from sparklecomm.telephony.sip import SipRequest
from sparklecomm.telephony.sip.digest import (
    DigestAuthenticator,
    InMemoryCredentialStore,
    answer_challenge,
    compute_ha1,
    compute_response,
)

REALM = "sparklecomm"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemoryCredentialStore:
    credentials = InMemoryCredentialStore()
    credentials.add_user("alice", "s3cret", REALM)
    return credentials


@pytest.fixture
def auth(store: InMemoryCredentialStore, clock: FakeClock) -> DigestAuthenticator:
    return DigestAuthenticator(REALM, store, clock, nonce_ttl=60)


def signed(
    auth: DigestAuthenticator,
    algorithm: str = "SHA-256",
    *,
    password: str = "s3cret",  # noqa: S107 - a test fixture
    nc: int = 1,
    challenge_index: int | None = None,
    uri: str = "sip:127.0.0.1",
) -> SipRequest:
    challenges = auth.challenges()
    challenge = next(c for c in challenges if c.algorithm == algorithm)
    creds = answer_challenge(
        challenge, method="REGISTER", uri=uri, username="alice", password=password, nc=nc
    )
    return request("REGISTER", extra=f"Authorization: {creds}\r\n")


def with_nc(original: SipRequest, nc: int) -> SipRequest:
    """The same credentials recomputed with another nonce count (same nonce)."""
    creds = original.authorization[0]
    ha1 = compute_ha1("alice", REALM, "s3cret", creds.algorithm or "MD5")
    nc_text = f"{nc:08x}"
    response = compute_response(
        ha1,
        creds.algorithm or "MD5",
        "REGISTER",
        creds.uri or "",
        creds.nonce or "",
        nc=nc_text,
        cnonce=creds.cnonce,
        qop="auth",
    )
    text = str(creds)
    text = text.replace(f"nc={creds.nc}", f"nc={nc_text}")
    text = text.replace(f'response="{creds.response}"', f'response="{response}"')
    return request("REGISTER", extra=f"Authorization: {text}\r\n")


def test_challenges_offer_sha256_then_md5_with_qop_auth(auth: DigestAuthenticator) -> None:
    challenges = auth.challenges()
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert all(c.qop_options == ["auth"] and c.realm == REALM for c in challenges)
    assert challenges[0].nonce == challenges[1].nonce


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
async def test_valid_credentials_pass(auth: DigestAuthenticator, algorithm: str) -> None:
    result = await auth.check(signed(auth, algorithm))
    assert result.ok and result.username == "alice"


async def test_missing_credentials_get_challenges(auth: DigestAuthenticator) -> None:
    result = await auth.check(request("REGISTER"))
    assert not result.ok and len(result.challenges) == 2 and not result.forbidden


async def test_wrong_password_is_challenged_again(auth: DigestAuthenticator) -> None:
    result = await auth.check(signed(auth, password="guess"))
    assert not result.ok and result.reason == "wrong password"
    assert not any(c.stale for c in result.challenges)


async def test_old_nonce_is_stale(auth: DigestAuthenticator, clock: FakeClock) -> None:
    req = signed(auth, "MD5")
    clock.advance(61)
    result = await auth.check(req)
    assert not result.ok and result.reason == "stale nonce"
    assert all(c.stale for c in result.challenges)


async def test_nonce_count_must_increase(auth: DigestAuthenticator) -> None:
    first = signed(auth, "MD5", nc=1)
    assert (await auth.check(first)).ok
    replay = await auth.check(signed_copy(first))
    assert replay.forbidden and replay.reason == "replayed nonce count"
    assert (await auth.check(with_nc(first, 2))).ok
    assert (await auth.check(with_nc(first, 2))).forbidden


def signed_copy(original: SipRequest) -> SipRequest:
    return request("REGISTER", extra=f"Authorization: {original.authorization[0]}\r\n")


async def test_forged_nonce_is_refused(
    store: InMemoryCredentialStore, clock: FakeClock, auth: DigestAuthenticator
) -> None:
    other = DigestAuthenticator(REALM, store, clock)  # another secret
    result = await auth.check(signed(other, "MD5"))
    assert not result.ok and result.reason == "unknown nonce"


async def test_shared_secret_lets_another_node_verify(
    store: InMemoryCredentialStore, clock: FakeClock
) -> None:
    node_a = DigestAuthenticator(REALM, store, clock, secret=b"k" * 32)
    node_b = DigestAuthenticator(REALM, store, clock, secret=b"k" * 32)
    creds = signed(node_a, "MD5").authorization[0]
    # node_b has its own opaque; a client echoes node_a's, so drop it for this check.
    text = str(creds).replace(f', opaque="{creds.opaque}"', "")
    assert (await node_b.check(request("REGISTER", extra=f"Authorization: {text}\r\n"))).ok


async def test_digest_uri_must_match_request_uri(auth: DigestAuthenticator) -> None:
    result = await auth.check(signed(auth, "MD5", uri="sip:elsewhere.example"))
    assert not result.ok and result.reason == "digest uri mismatch"


async def test_unknown_user(auth: DigestAuthenticator) -> None:
    challenge = auth.challenges()[1]
    creds = answer_challenge(
        challenge, method="REGISTER", uri="sip:127.0.0.1", username="mallory", password="x"
    )
    result = await auth.check(request("REGISTER", extra=f"Authorization: {creds}\r\n"))
    assert not result.ok and result.reason == "unknown user"


def test_store_keeps_hashes_not_passwords(store: InMemoryCredentialStore) -> None:
    kept = repr(vars(store))
    assert "s3cret" not in kept
    assert compute_ha1("alice", REALM, "s3cret", "SHA-256") in kept
    assert len(compute_ha1("alice", REALM, "s3cret", "SHA-256")) == 64


def test_rfc2617_md5_example() -> None:
    # RFC 2617 §3.5 (HTTP, but the computation is the same).
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = compute_response(
        ha1,
        "MD5",
        "GET",
        "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        nc="00000001",
        cnonce="0a4f113b",
        qop="auth",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_sha256_example() -> None:
    # RFC 7616 §3.9.1.
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
    response = compute_response(
        ha1,
        "SHA-256",
        "GET",
        "/dir/index.html",
        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        qop="auth",
    )
    assert response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
