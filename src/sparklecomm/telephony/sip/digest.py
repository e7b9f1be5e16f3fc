"""Digest authentication for a SIP server (RFC 2617, RFC 7616, RFC 8760; RFC 3261 §22).

The server challenges with one ``WWW-Authenticate`` per algorithm it offers (SHA-256 first,
then MD5 for older phones, RFC 8760 §2.4), always with ``qop="auth"``. Nonces are stateless
and signed: ``base64(issued-at, random, HMAC(secret, ...))``, so any process sharing the
secret can verify them and a forged or altered nonce is refused. A nonce older than
``nonce_ttl`` earns a new challenge with ``stale=true`` (the phone retries without asking
its user). Replays are refused: each nonce's ``nc`` must strictly increase.

Passwords are never stored: a :class:`CredentialStore` returns HA1 =
``H(username:realm:password)`` for the algorithm asked (:func:`compute_ha1`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sparklecomm.core.clock import Clock
from sparklecomm.telephony.sip.errors import SipParseError
from sparklecomm.telephony.sip.fields import Challenge, Credentials
from sparklecomm.telephony.sip.message import SipRequest
from sparklecomm.telephony.sip.uri import parse_uri

ALGORITHMS: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256"}
"""Supported digest algorithms (RFC 7616 names) and their hashlib names."""

_NC_RE = re.compile(r"[0-9a-fA-F]{8}")


def digest_hash(algorithm: str, text: str) -> str:
    """H(text) in lower-case hex for a digest algorithm name."""
    name = ALGORITHMS[algorithm.upper()]
    return hashlib.new(name, text.encode("utf-8")).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """HA1 = H(username:realm:password): what a credential store keeps instead of a
    password."""
    return digest_hash(algorithm, f"{username}:{realm}:{password}")


def compute_response(
    ha1: str,
    algorithm: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    nc: str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
) -> str:
    """The ``response`` value (qop=auth, or the RFC 2069 form without qop)."""
    ha2 = digest_hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return digest_hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    return digest_hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


class CredentialStore(Protocol):
    """Where the registrar finds SIP credentials: HA1 per user, realm and algorithm."""

    async def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """HA1 for that user (``None`` if unknown)."""
        ...


class InMemoryCredentialStore:
    """A credential store in a dict, for tests and the development server.

    :meth:`add_user` hashes the password for every algorithm and keeps only the hashes.
    """

    def __init__(self) -> None:
        self._ha1: dict[tuple[str, str, str], str] = {}

    def add_user(
        self,
        username: str,
        password: str,
        realm: str,
        algorithms: Sequence[str] = ("MD5", "SHA-256"),
    ) -> None:
        for algorithm in algorithms:
            self._ha1[(username, realm, algorithm.upper())] = compute_ha1(
                username, realm, password, algorithm
            )

    def set_ha1(self, username: str, realm: str, algorithm: str, ha1: str) -> None:
        self._ha1[(username, realm, algorithm.upper())] = ha1

    async def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        return self._ha1.get((username, realm, algorithm.upper()))


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of checking a request's credentials.

    ``username`` is set when they are valid. Otherwise ``challenges`` are the
    WWW-Authenticate values to send with a 401 (``stale`` ones when the nonce only aged),
    or ``forbidden`` says the request must get a 403 (a replayed nonce count, RFC 7616
    §3.4: "the server should reject").
    """

    username: str | None = None
    challenges: tuple[Challenge, ...] = ()
    reason: str = ""
    forbidden: bool = False

    @property
    def ok(self) -> bool:
        return self.username is not None


class DigestAuthenticator:
    """Issues and checks digest challenges for one realm."""

    def __init__(
        self,
        realm: str,
        store: CredentialStore,
        clock: Clock,
        *,
        secret: bytes | None = None,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        nonce_ttl: float = 300.0,
        max_tracked_nonces: int = 100_000,
    ) -> None:
        unknown = [a for a in algorithms if a.upper() not in ALGORITHMS]
        if unknown or not algorithms:
            raise ValueError(f"unsupported digest algorithms: {unknown or 'none given'}")
        self.realm = realm
        self.store = store
        self.clock = clock
        self.algorithms = tuple(a.upper() for a in algorithms)
        self.nonce_ttl = nonce_ttl
        self._secret = secret or secrets.token_bytes(32)
        self._opaque = secrets.token_hex(8)
        # nonce -> highest nc seen; pruned once the nonce has expired.
        self._nc_seen: dict[str, int] = {}
        self._max_tracked = max_tracked_nonces

    # ---- nonces --------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def new_nonce(self) -> str:
        head = struct.pack(">d", self._now()) + secrets.token_bytes(12)
        mac = hmac.new(self._secret, head, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(head + mac).decode("ascii").rstrip("=")

    def _nonce_issued_at(self, nonce: str) -> float | None:
        """When the nonce was issued, or ``None`` if we did not issue it."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return None
        if len(raw) != 36:
            return None
        head, mac = raw[:20], raw[20:]
        expected = hmac.new(self._secret, head, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            return None
        issued: float = struct.unpack(">d", head[:8])[0]
        return issued

    def challenges(self, *, stale: bool = False) -> tuple[Challenge, ...]:
        """One challenge per algorithm, preferred first, sharing one nonce."""
        nonce = self.new_nonce()
        result = []
        for algorithm in self.algorithms:
            params: list[tuple[str, str | int]] = [
                ("realm", self.realm),
                ("nonce", nonce),
                ("opaque", self._opaque),
                ("algorithm", algorithm),
                ("qop", "auth"),
            ]
            if stale:
                params.append(("stale", "true"))
            result.append(Challenge.build("Digest", params))
        return tuple(result)

    # ---- verification ----------------------------------------------------------------

    async def check(self, request: SipRequest, *, proxy: bool = False) -> AuthResult:
        """Verify the request's Authorization (Proxy-Authorization when ``proxy``)."""
        credentials = request.proxy_authorization if proxy else request.authorization
        mine = [c for c in credentials if c.is_digest and c.realm == self.realm]
        if not mine:
            return AuthResult(challenges=self.challenges(), reason="no credentials")
        creds = mine[0]
        return await self._check_one(request, creds)

    async def _check_one(self, request: SipRequest, creds: Credentials) -> AuthResult:
        algorithm = (creds.algorithm or "MD5").upper()
        username, nonce, response = creds.username, creds.nonce, creds.response
        if algorithm not in self.algorithms:
            return AuthResult(challenges=self.challenges(), reason="algorithm not offered")
        if username is None or nonce is None or response is None or creds.uri is None:
            return AuthResult(challenges=self.challenges(), reason="incomplete credentials")
        issued = self._nonce_issued_at(nonce)
        if issued is None:
            return AuthResult(challenges=self.challenges(), reason="unknown nonce")
        if creds.qop != "auth" or creds.nc is None or creds.cnonce is None:
            return AuthResult(challenges=self.challenges(), reason="qop=auth required")
        if _NC_RE.fullmatch(creds.nc) is None:
            return AuthResult(challenges=self.challenges(), reason="bad nc")
        if not _same_uri(creds.uri, request):
            return AuthResult(challenges=self.challenges(), reason="digest uri mismatch")
        if creds.opaque is not None and creds.opaque != self._opaque:
            return AuthResult(challenges=self.challenges(), reason="opaque mismatch")
        ha1 = await self.store.ha1(username, self.realm, algorithm)
        if ha1 is None:
            return AuthResult(challenges=self.challenges(), reason="unknown user")
        expected = compute_response(
            ha1,
            algorithm,
            request.method,
            creds.uri,
            nonce,
            nc=creds.nc,
            cnonce=creds.cnonce,
            qop="auth",
        )
        if not hmac.compare_digest(expected, response.lower()):
            return AuthResult(challenges=self.challenges(), reason="wrong password")
        now = self._now()
        if now - issued > self.nonce_ttl:
            # Right password, old nonce: let the phone retry at once (RFC 2617 §3.2.1).
            return AuthResult(challenges=self.challenges(stale=True), reason="stale nonce")
        nc = int(creds.nc, 16)
        if nc <= self._nc_seen.get(nonce, 0):
            return AuthResult(reason="replayed nonce count", forbidden=True)
        if not self._remember(nonce, nc, now):
            # Too many live nonces to track replays: refuse rather than forget one.
            return AuthResult(reason="nonce table full", forbidden=True)
        return AuthResult(username=username)

    def _remember(self, nonce: str, nc: int, now: float) -> bool:
        if nonce not in self._nc_seen and len(self._nc_seen) >= self._max_tracked:
            self._prune(now)
            if len(self._nc_seen) >= self._max_tracked:
                return False
        self._nc_seen[nonce] = nc
        return True

    def _prune(self, now: float) -> None:
        for nonce in list(self._nc_seen):
            issued = self._nonce_issued_at(nonce)
            if issued is None or now - issued > self.nonce_ttl:
                del self._nc_seen[nonce]


def _same_uri(digest_uri: str, request: SipRequest) -> bool:
    """Whether the digest ``uri`` names the Request-URI (RFC 2617 §3.2.2.5)."""
    if digest_uri == str(request.uri):
        return True
    try:
        parsed = parse_uri(digest_uri)
    except SipParseError:
        return False
    return parsed.equivalent(request.uri)


def answer_challenge(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> Credentials:
    """The Authorization value a client sends in reply to ``challenge`` (qop=auth when
    offered); for registering to trunks, and for tests."""
    algorithm = (challenge.algorithm or "MD5").upper()
    realm = challenge.realm or ""
    nonce = challenge.nonce or ""
    ha1 = compute_ha1(username, realm, password, algorithm)
    params: list[tuple[str, str | int]] = [
        ("username", username),
        ("realm", realm),
        ("nonce", nonce),
        ("uri", uri),
        ("algorithm", algorithm),
    ]
    if "auth" in challenge.qop_options:
        cnonce = cnonce or secrets.token_hex(8)
        nc_text = f"{nc:08x}"
        response = compute_response(
            ha1, algorithm, method, uri, nonce, nc=nc_text, cnonce=cnonce, qop="auth"
        )
        params += [("qop", "auth"), ("nc", nc_text), ("cnonce", cnonce)]
    else:
        response = compute_response(ha1, algorithm, method, uri, nonce)
    params.append(("response", response))
    if challenge.opaque is not None:
        params.append(("opaque", challenge.opaque))
    return Credentials.build("Digest", params)
