"""The registrar (RFC 3261 §10.3): REGISTER with digest authentication, bindings kept in a
:class:`~sparklecomm.telephony.sip.location.LocationStore`.

Processing follows §10.3's steps: the Request-URI must name one of our domains; the
request must authenticate (401 with challenges, 403 for a replay); the authenticated user
must be allowed to change the address-of-record (by default: its user part is the
username); then ``Contact: *`` or each Contact is applied with its expiry (the ``expires``
parameter, else the Expires header, else the default), where an expiry below the minimum is
refused with 423 and Min-Expires and one above the maximum is shortened. An update of an
existing binding from the same Call-ID must carry a higher CSeq, or the whole request fails
and nothing changes. The 200 OK lists every current binding with its remaining time.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog

from sparklecomm.core.clock import Clock
from sparklecomm.telephony.sip.digest import DigestAuthenticator
from sparklecomm.telephony.sip.errors import SipParseError
from sparklecomm.telephony.sip.fields import Address
from sparklecomm.telephony.sip.location import Binding, LocationStore
from sparklecomm.telephony.sip.message import SipRequest, SipResponse, build_response
from sparklecomm.telephony.sip.uri import SipUri, Uri, normalize_host, parse_uri

log = structlog.get_logger("sparklecomm.sip.registrar")


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    """Limits on registrations."""

    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    max_bindings: int = 10
    """Contacts per address-of-record."""
    domains: frozenset[str] = frozenset()
    """Domains we are the registrar for; empty accepts any (a single-tenant server)."""


def canonical_aor(uri: Uri) -> str | None:
    """``sip:user@domain`` (§10.3 step 5), or ``None`` for a URI that cannot be one.

    ``sips:user@domain`` is the same address-of-record (RFC 5630: the two schemes name
    one resource); how a phone must be reached (TLS) is kept with each binding: its
    Contact (``sips:``, ``;transport=tls``) and ``source`` (``TLS:host:port``)."""
    if not isinstance(uri, SipUri) or uri.user is None:
        return None
    return f"sip:{uri.user}@{normalize_host(uri.host)}"


def default_authorization(username: str, aor: str) -> bool:
    """A user may register only their own address-of-record."""
    user = aor.split(":", 1)[1].rsplit("@", 1)[0]
    return user == username


def _same_contact(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return parse_uri(a).equivalent(parse_uri(b))
    except SipParseError:
        return False


class _Abort(Exception):
    def __init__(self, response: SipResponse) -> None:
        super().__init__(response.status)
        self.response = response


class Registrar:
    """Answers REGISTER requests; see the module docstring for the rules."""

    def __init__(
        self,
        store: LocationStore,
        authenticator: DigestAuthenticator | None,
        clock: Clock,
        *,
        policy: RegistrarPolicy | None = None,
        authorize: Callable[[str, str], bool] = default_authorization,
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self.clock = clock
        self.policy = policy or RegistrarPolicy()
        self.authorize = authorize
        # Serialises read-modify-write of bindings (one registrar per process).
        self._lock = asyncio.Lock()

    async def lookup(self, aor: str) -> list[Binding]:
        """The live bindings of an address-of-record, best ``q`` first."""
        now = self.clock.now()
        live = [b for b in await self.store.bindings(aor) if b.expires_at > now]
        return sorted(live, key=lambda b: -(b.q if b.q is not None else 1.0))

    async def handle(self, request: SipRequest, source: str | None = None) -> SipResponse:
        """The final response to a REGISTER (never raises for a bad request)."""
        policy = self.policy
        uri = request.uri
        if policy.domains and (
            not isinstance(uri, SipUri) or normalize_host(uri.host) not in policy.domains
        ):
            return build_response(request, 404, "Not Found - Unknown Domain")
        aor = canonical_aor(request.to.uri)
        if aor is None:
            return build_response(request, 404, "Not Found - Bad Address-of-Record")
        if policy.domains and aor.rsplit("@", 1)[1] not in policy.domains:
            return build_response(request, 404, "Not Found - Unknown Domain")
        if self.authenticator is not None:
            result = await self.authenticator.check(request)
            if result.forbidden:
                log.info("sip.register_forbidden", aor=aor, reason=result.reason)
                return build_response(request, 403)
            if not result.ok:
                response = build_response(request, 401)
                for challenge in result.challenges:
                    response.headers.add("WWW-Authenticate", str(challenge))
                if result.reason != "no credentials":
                    log.info("sip.register_challenge", aor=aor, reason=result.reason)
                return response
            assert result.username is not None
            if not self.authorize(result.username, aor):
                log.info("sip.register_not_allowed", aor=aor, username=result.username)
                return build_response(request, 403, "Forbidden - Not Your Address")
        async with self._lock:
            try:
                bindings = await self._apply(request, aor, source)
            except _Abort as abort:
                return abort.response
        return self._ok(request, bindings)

    async def _apply(self, request: SipRequest, aor: str, source: str | None) -> list[Binding]:
        policy = self.policy
        now = self.clock.now()
        current = await self.lookup(aor)
        if request.contact_is_wildcard:
            if request.expires != 0:
                raise _Abort(
                    build_response(request, 400, "Bad Request - Contact * needs Expires 0")
                )
            for binding in current:
                self._check_order(request, binding)
            if current:
                await self.store.replace(aor, [])
                log.info("sip.unregistered_all", aor=aor)
            return []
        if not request.contacts:
            return current  # a query
        updated = list(current)
        user_agent = request.headers.get("User-Agent")
        for contact in request.contacts:
            expires = self._expiry(request, contact)
            uri_text = str(contact.uri)
            index = next(
                (i for i, b in enumerate(updated) if _same_contact(b.contact, uri_text)), None
            )
            if index is not None:
                self._check_order(request, updated[index])
                del updated[index]
            if expires == 0:
                continue
            updated.append(
                Binding(
                    aor=aor,
                    contact=uri_text,
                    expires_at=now + timedelta(seconds=expires),
                    call_id=request.call_id,
                    cseq=request.cseq.number,
                    q=contact.q,
                    source=source,
                    user_agent=user_agent,
                )
            )
        if len(updated) > policy.max_bindings:
            raise _Abort(build_response(request, 403, "Forbidden - Too Many Contacts"))
        if updated != current:
            await self.store.replace(aor, updated)
        log.info("sip.registered", aor=aor, contacts=len(updated))
        return updated

    def _expiry(self, request: SipRequest, contact: Address) -> int:
        policy = self.policy
        if "expires" in contact.params and contact.expires is not None:
            expires = contact.expires
        elif request.expires is not None:
            expires = request.expires
        else:
            expires = policy.default_expires
        if 0 < expires < policy.min_expires:
            response = build_response(request, 423)
            response.headers.add("Min-Expires", str(policy.min_expires))
            raise _Abort(response)
        return min(expires, policy.max_expires)

    @staticmethod
    def _check_order(request: SipRequest, binding: Binding) -> None:
        """§10.3 step 6/7: the same Call-ID must come with a higher CSeq."""
        if binding.call_id == request.call_id and request.cseq.number <= binding.cseq:
            raise _Abort(build_response(request, 400, "Bad Request - CSeq Out of Order"))

    def _ok(self, request: SipRequest, bindings: Sequence[Binding]) -> SipResponse:
        now = self.clock.now()
        response = build_response(request, 200)
        for binding in bindings:
            q = "" if binding.q is None else f";q={binding.q:g}"
            response.headers.add(
                "Contact", f"<{binding.contact}>;expires={binding.remaining(now)}{q}"
            )
        response.headers.add("Date", email.utils.format_datetime(now, usegmt=True))
        return response
