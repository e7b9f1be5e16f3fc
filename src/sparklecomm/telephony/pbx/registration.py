"""Registering a trunk with its carrier (RFC 3261 §10.2 as a client), kept fresh.

Many carriers only deliver inbound calls to a PBX that registers: :class:`TrunkRegistration`
sends REGISTER for the trunk's username, answers the carrier's digest challenge (401 or 407,
once per attempt), and refreshes before the granted time runs out (:func:`refresh_delay`).
A refused or unanswered registration is retried with a growing pause (30 s doubling to
15 min, :func:`retry_delay`). ``stop()`` unregisters (``Expires: 0``).

It runs on the SIP server's transaction layer (``host.transactions``, with its scheduler),
so every timer is injectable in tests. :class:`TrunkRegistrations` keeps one per trunk that
has ``register`` set, in step with the database: a trunk added, changed or removed through
the API or the CLI registers, re-registers or unregisters without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from sparklecomm.telephony.sip.digest import answer_challenge
from sparklecomm.telephony.sip.fields import Address
from sparklecomm.telephony.sip.headers import Headers
from sparklecomm.telephony.sip.message import SipRequest, SipResponse
from sparklecomm.telephony.sip.timers import TimerHandle
from sparklecomm.telephony.sip.transaction import TransactionLayer
from sparklecomm.telephony.sip.transport import Peer, new_branch
from sparklecomm.telephony.sip.uri import SipUri, format_host

log = structlog.get_logger(__name__)

DEFAULT_EXPIRES = 3600
FIRST_RETRY = 30.0
MAX_RETRY = 900.0


def refresh_delay(granted: int) -> float:
    """When to re-register after being granted ``granted`` seconds: a minute early for
    long registrations, at 80 % for short ones, never sooner than after 1 s."""
    if granted >= 300:
        return float(granted - 60)
    return max(1.0, granted * 0.8)


def retry_delay(failures: int) -> float:
    """Pause after the ``failures``-th failed attempt in a row (1, 2, ...)."""
    return float(min(MAX_RETRY, FIRST_RETRY * 2.0 ** max(0, failures - 1)))


class RegistrationHost(Protocol):
    """What a registration needs of the SIP server (:class:`~sparklecomm.telephony.SipServer`)."""

    transactions: TransactionLayer

    def local_address(self, peer: Peer) -> tuple[str, int]: ...


class TrunkRegistration:
    """Keeps one trunk registered with its carrier."""

    def __init__(
        self,
        host: RegistrationHost,
        *,
        name: str,
        registrar: str,
        port: int = 5060,
        transport: str = "UDP",
        username: str,
        password: str,
        domain: str | None = None,
        expires: int = DEFAULT_EXPIRES,
        on_change: Callable[[TrunkRegistration], None] | None = None,
    ) -> None:
        self.host = host
        self.name = name
        self.peer = Peer(transport.upper(), registrar, port)
        self.domain = domain or registrar
        self.username = username
        self.password = password
        self.expires = expires
        self.on_change = on_change
        self.call_id = f"{secrets.token_hex(12)}@sparklecomm"
        self.from_tag = secrets.token_hex(8)
        self.cseq = 0
        self.state = "idle"  # idle | registering | registered | failed | stopped
        self.granted = 0
        self.registrations = 0
        self.failures = 0
        self.last_status: int | None = None
        self._timer: TimerHandle | None = None

    # -- control --------------------------------------------------------------------------
    def start(self) -> None:
        self.state = "registering"
        self._send(self.expires)

    def stop(self) -> None:
        """Cancel refreshes and unregister (best effort: the answer is not awaited)."""
        self._cancel_timer()
        if self.state == "registered":
            self._send(0)
        self.state = "stopped"

    # -- requests -------------------------------------------------------------------------
    def _request(self, expires: int) -> SipRequest:
        host, port = self.host.local_address(self.peer)
        self.cseq += 1
        aor = SipUri.build(self.domain, user=self.username)
        transport = "" if self.peer.transport == "UDP" else f";transport={self.peer.transport}"
        headers = Headers()
        headers.add(
            "Via",
            f"SIP/2.0/{self.peer.transport} {format_host(host)}:{port};branch={new_branch()};rport",
        )
        headers.add("Max-Forwards", "70")
        headers.add("From", str(Address(aor).with_tag(self.from_tag)))
        headers.add("To", str(Address(aor)))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        headers.add(
            "Contact", f"<sip:{self.username}@{format_host(host)}:{port}{transport.lower()}>"
        )
        headers.add("Expires", str(expires))
        headers.add("User-Agent", "SparkleComm")
        uri = SipUri.build(
            self.domain, port=self.peer.port if self.domain == self.peer.host else None
        )
        return SipRequest("REGISTER", uri, headers)

    def _send(self, expires: int, authorization: tuple[str, str] | None = None) -> None:
        request = self._request(expires)
        if authorization is not None:
            request.headers.add(*authorization)
        authenticated = authorization is not None
        self.host.transactions.send_request(
            request,
            self.peer,
            lambda response: self._on_response(request, expires, authenticated, response),
        )

    # -- responses ------------------------------------------------------------------------
    def _on_response(
        self, request: SipRequest, expires: int, authenticated: bool, response: SipResponse
    ) -> None:
        if response.status < 200:
            return
        self.last_status = response.status
        if self.state == "stopped":
            return
        if response.status in (401, 407) and not authenticated:
            proxy = response.status == 407
            challenges = response.proxy_authenticate if proxy else response.www_authenticate
            if challenges:
                credentials = answer_challenge(
                    challenges[0],
                    method="REGISTER",
                    uri=str(request.uri),
                    username=self.username,
                    password=self.password,
                )
                header = "Proxy-Authorization" if proxy else "Authorization"
                self._send(expires, (header, str(credentials)))
                return
        if response.status == 423 and response.headers.get("Min-Expires"):
            try:
                self.expires = int(response.headers.get("Min-Expires") or "")
            except ValueError:
                pass
            else:
                self._send(self.expires)
                return
        if 200 <= response.status < 300:
            self.granted = self._granted(response, expires)
            self.failures = 0
            self.registrations += 1
            self.state = "registered"
            log.info("trunk_registered", trunk=self.name, seconds=self.granted)
            self._schedule(refresh_delay(self.granted))
        else:
            self.failures += 1
            self.state = "failed"
            pause = retry_delay(self.failures)
            log.warning(
                "trunk_registration_failed",
                trunk=self.name,
                status=response.status,
                reason=response.reason,
                retry_in=pause,
            )
            self._schedule(pause)
        if self.on_change is not None:
            self.on_change(self)

    def _granted(self, response: SipResponse, asked: int) -> int:
        """The time the carrier granted: our contact's ``expires``, else Expires, else ours."""
        for contact in response.contacts:
            value = contact.params.get("expires")
            user = contact.uri.user if isinstance(contact.uri, SipUri) else None
            if value is not None and value.isdigit() and user == self.username:
                return int(value)
        return response.expires if response.expires is not None else asked

    def _schedule(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self.host.transactions.scheduler.call_later(delay, self._refresh)

    def _refresh(self) -> None:
        self._timer = None
        if self.state != "stopped":
            self._send(self.expires)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass(frozen=True)
class TrunkLogin:
    """What a trunk's registration depends on; a change of any of it re-registers."""

    trunk_id: str
    name: str
    registrar: str
    port: int
    transport: str
    username: str
    password: str


def trunk_logins(pbx: Any) -> dict[str, TrunkLogin]:
    """The trunks that must register (``pbx``: a
    :class:`~sparklecomm.telephony.pbx.service.PbxService`), by trunk id. Trunks without a
    username or password are left out, with a warning."""
    from sqlalchemy import select

    from sparklecomm.telephony.pbx.models import Trunk

    with pbx.db.read() as s:
        trunks = list(s.scalars(select(Trunk).where(Trunk.register.is_(True))))
    out: dict[str, TrunkLogin] = {}
    for trunk in trunks:
        password = pbx.trunk_password(trunk.id)
        if not trunk.username or not password:
            log.warning("trunk_registration_skipped", trunk=trunk.name, reason="no credentials")
            continue
        out[trunk.id] = TrunkLogin(
            trunk.id, trunk.name, trunk.host, trunk.port, trunk.transport, trunk.username, password
        )
    return out


def _registration(host: RegistrationHost, login: TrunkLogin) -> TrunkRegistration:
    return TrunkRegistration(
        host,
        name=login.name,
        registrar=login.registrar,
        port=login.port,
        transport=login.transport,
        username=login.username,
        password=login.password,
    )


def start_trunk_registrations(host: RegistrationHost, pbx: Any) -> list[TrunkRegistration]:
    """Start a registration for every trunk with ``register`` set, once (see
    :class:`TrunkRegistrations` for the kind that follows changes). Stop them with
    ``stop()``."""
    started = [_registration(host, login) for login in trunk_logins(pbx).values()]
    for registration in started:
        registration.start()
    return started


class TrunkRegistrations:
    """The registrations of every trunk with ``register`` set, kept in step with the
    database: re-read every ``interval`` seconds (changes made by the CLI or another node)
    and at once when :meth:`changed` is called (changes made through this process's API).
    A new trunk starts registering, a removed one (or one whose ``register`` was turned off)
    unregisters, and a changed host, port, transport, username or password unregisters
    the old registration and registers the new one."""

    def __init__(self, host: RegistrationHost, pbx: Any, *, interval: float = 30.0) -> None:
        self.host = host
        self.pbx = pbx
        self.interval = interval
        self.running: dict[str, tuple[TrunkLogin, TrunkRegistration]] = {}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def apply(self, wanted: dict[str, TrunkLogin]) -> None:
        """Make the running registrations match ``wanted`` (on the SIP server's loop)."""
        for trunk_id, (login, registration) in list(self.running.items()):
            if wanted.get(trunk_id) != login:
                registration.stop()
                del self.running[trunk_id]
                log.info("trunk_registration_stopped", trunk=login.name)
        for trunk_id, login in wanted.items():
            if trunk_id not in self.running:
                registration = _registration(self.host, login)
                registration.start()
                self.running[trunk_id] = (login, registration)

    async def start(self) -> None:
        """Register the trunks now, then follow changes in the background."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.apply(await asyncio.to_thread(trunk_logins, self.pbx))
        self._task = self._loop.create_task(self._follow())

    def changed(self) -> None:
        """A trunk was created, changed or deleted: re-read soon. Safe from any thread."""
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _follow(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose a
                # cancellation that meets a wake-up, and stop() would wait for ever.
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                self.apply(await asyncio.to_thread(trunk_logins, self.pbx))
            except Exception:  # the database may be briefly away: keep what runs, retry later
                log.exception("trunk_registrations_not_refreshed")

    async def stop(self) -> None:
        """Stop following and unregister every trunk (while the transport is still open)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.apply({})
