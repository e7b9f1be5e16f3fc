"""The composition root: every service is built here, from settings, and nowhere else.

Tests call :func:`build_services` with a :class:`~sparklecomm.core.clock.FakeClock` and a
temporary database, then :func:`build_app`, and get the whole server in-process.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from sparklecomm import __version__
from sparklecomm.acd.api import routing_state
from sparklecomm.acd.service import AcdService
from sparklecomm.api import problems
from sparklecomm.auth.passwords import Passwords
from sparklecomm.auth.service import AuthService, Principal, user_payload
from sparklecomm.bus.base import EventBus, InProcessBus
from sparklecomm.container import Services
from sparklecomm.core.clock import Clock, SystemClock
from sparklecomm.core.errors import InvalidInput
from sparklecomm.customers.service import CustomerService
from sparklecomm.events.stream import EventStream
from sparklecomm.logging import RequestIdMiddleware
from sparklecomm.settings import Settings
from sparklecomm.stats.service import StatsService
from sparklecomm.store.db import Database
from sparklecomm.telephony import SipServer, SipServerConfig
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.call_directory import CallDirectory, SharedBus
from sparklecomm.telephony.call_recording import CallRecordings
from sparklecomm.telephony.extensions import ExtensionService
from sparklecomm.telephony.media.audio import PromptVoice, load_wav
from sparklecomm.telephony.outbound import OutboundCalls
from sparklecomm.telephony.pbx.registration import TrunkRegistrations
from sparklecomm.telephony.voice_queue import VoiceQueue
from sparklecomm.telephony.waiting import WaitingRoom

if TYPE_CHECKING:
    from sparklecomm.surveys.service import SurveyService
    from sparklecomm.telephony.recordings import RecordingService
from sparklecomm.web import STATIC_DIR

log = structlog.get_logger(__name__)


def build_bus(settings: Settings) -> EventBus:
    if settings.redis_url:
        from sparklecomm.bus.redis import RedisBus

        return RedisBus(settings.redis_url)
    return InProcessBus()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    passwords: Passwords | None = None,
    bus: EventBus | None = None,
) -> Services:
    """Build every service of one process from ``settings``."""
    clock = clock or SystemClock()
    bus = bus or build_bus(settings)
    db = Database(settings.effective_database_url, clock, publisher=bus.publish)
    auth = AuthService(
        db,
        passwords or Passwords(),
        session_ttl=timedelta(hours=settings.session_ttl_hours),
        max_failures=settings.login_max_failures,
        lockout=timedelta(seconds=settings.login_lockout_seconds),
    )
    services = Services(
        settings=settings,
        clock=clock,
        db=db,
        bus=bus,
        auth=auth,
        events=EventStream(db, bus),
    )
    services.state_providers["me"] = lambda p: {
        "user_id": p.user_id,
        "username": p.username,
        "role": p.role,
    }
    services.state_providers["users"] = lambda p: _users_state(auth, p)
    acd = AcdService(
        db,
        clock,
        snapshot_every=settings.routing_snapshot_every,
        freshness_seconds=settings.routing_freshness_seconds,
        max_attempts=settings.routing_max_attempts,
    )
    services.extra["acd"] = acd
    services.state_providers["routing"] = lambda p: routing_state(acd, p)
    extensions = ExtensionService(db, settings.sip_realm)
    services.extra["extensions"] = extensions
    from sparklecomm.telephony.pbx.service import PbxService

    services.extra["pbx"] = pbx = PbxService(
        db,
        clock,
        extensions,
        secret=settings.effective_secret_key,
        queue_ids=lambda tenant_id: acd.read(tenant_id, lambda engine: engine.queue_ids()),
        queue_hours=lambda tenant_id: acd.read(tenant_id, _queue_hours),
        voicemail_dir=settings.data_dir / "voicemail",
    )
    from sparklecomm.telephony.recordings import RecordingService

    # Call recordings: the policy, the rows and the files (shared by the nodes of a cluster).
    services.extra["recordings"] = RecordingService(
        db,
        clock,
        settings.data_dir / "recordings",
        queue_ids=lambda tenant_id: acd.read(tenant_id, lambda engine: engine.queue_ids()),
    )
    from sparklecomm.quality.service import QualityService

    # Quality assurance: scorecards and evaluations (of recordings, among other calls).
    services.extra["quality"] = QualityService(db, clock, services.extra["recordings"])
    # Queues may follow the organisation's business hours: the engine keeps them in step.
    acd.hours_source = pbx.hours_specs
    pbx.hours_listeners.append(acd.hours_changed)
    if settings.sip_enabled:
        services.extra["sip"] = build_sip_server(settings, clock, extensions)
    services.extra["customers"] = customers = CustomerService(db, clock)
    customers.code_listeners.append(acd.codes_changed)
    services.extra["stats"] = StatsService(db, clock, acd)
    from sparklecomm.surveys.service import SurveyService

    # Satisfaction surveys: answers from the phone, survey links and the API. The links are
    # signed with a key derived from the platform's secret (read when the first is made).
    services.extra["surveys"] = SurveyService(db, clock, settings.effective_secret_key, acd=acd)
    return services


def _queue_hours(engine: Any) -> dict[str, str | None]:
    return {q: engine.queue_config(q).hours for q in engine.queue_ids()}


def _users_state(auth: AuthService, principal: Principal) -> dict[str, Any] | None:
    if not principal.has_role("supervisor"):
        return None
    return {u.id: user_payload(u) for u in auth.users_of_tenant(principal.tenant_id)}


def build_sip_server(settings: Settings, clock: Clock, extensions: ExtensionService) -> SipServer:
    """The SIP registrar and B2BUA: extensions' credentials and registrations in SQL (so every
    node sees every phone and registrations survive a restart), media anchored by the RTP
    relay, call events on the tenants' streams."""
    from starlette.concurrency import run_in_threadpool

    from sparklecomm.core.events import NewEvent
    from sparklecomm.telephony.media.relay import MediaRelay, RelayConfig
    from sparklecomm.telephony.pbx.locations import SqlLocationStore
    from sparklecomm.telephony.server import primary_address, tls_options

    config = SipServerConfig(
        host=settings.sip_host or settings.host,
        port=settings.sip_port,
        realm=settings.sip_realm,
        digest_algorithms=tuple(settings.sip_digest_algorithms),
        **tls_options(settings),  # transports (TLS added with a certificate) and tls_*
    )
    locations = SqlLocationStore(extensions.db)
    # Nonces are signed with a key derived from the platform's secret, so every node of a
    # cluster verifies the others' nonces.
    secret = hashlib.sha256(b"sip-nonce:" + settings.effective_secret_key().encode()).digest()
    db = extensions.db

    async def emit(tenant_id: str, kind: str, data: dict[str, Any]) -> None:
        """Call events on the tenant's event stream (one small write per event)."""

        def write() -> None:
            with db.write() as tx:
                tx.emit(tenant_id, NewEvent(kind, data))

        await run_in_threadpool(write)

    # The relay binds where SIP does and puts that address in SDP (a concrete one when SIP
    # listens on every interface). The PBX's router, guard and trunks are added at start.
    wildcard = config.host in ("0.0.0.0", "::")  # noqa: S104
    relay: MediaRelay | None = None
    try:
        relay = MediaRelay(
            RelayConfig(host=config.host, advertise=primary_address() if wildcard else None)
        )
    except InvalidInput as error:  # a host name: calls still work, SDP passed through
        log.warning("media_relay_disabled", host=config.host, error=str(error))
    return SipServer(
        config,
        clock=clock,
        credentials=extensions,
        locations=locations,
        secret=secret,
        relay=relay,
        emit=emit,
        tenant_of=extensions.tenant_of,
    )


class Health(BaseModel):
    status: str
    version: str
    database: str


def _music_on_hold(path: Path | None) -> np.ndarray | None:
    """The operator's music on hold (``None``: the built-in music). An unreadable file is
    logged and the built-in music plays instead: callers still wait with music."""
    if path is None:
        return None
    try:
        return load_wav(path)
    except InvalidInput as error:
        log.error("music_on_hold_unreadable", file=str(path), error=str(error))
        return None


async def _sip_housekeeping(sip: SipServer, interval: float = 300.0) -> None:
    """Delete expired phone registrations now and then. Lookups already ignore them; this
    keeps the table (shared by every node) from growing with phones that went away."""
    purge = getattr(sip.locations, "purge_expired", None)
    if purge is None:
        return
    while True:
        try:
            removed = await asyncio.to_thread(purge, sip.clock.now())
            if removed:
                log.info("sip_registrations_expired", removed=removed)
        except Exception:  # the database may be briefly away: try again next time
            log.exception("sip_registrations_not_purged")
        await asyncio.sleep(interval)


async def _recording_housekeeping(recordings: Any, clock: Clock, interval: float = 3600.0) -> None:
    """At start and then hourly: close the recordings a dead node left behind (any node may:
    a recording still being written is left alone) and delete those past the
    organisation's retention."""
    while True:
        try:
            recovered = await asyncio.to_thread(recordings.recover_interrupted)
            if recovered:
                log.warning("recordings_recovered", recovered=recovered)
            purged = await asyncio.to_thread(recordings.purge_expired, clock.now())
            if purged:
                log.info("recordings_purged", removed=purged)
        except Exception:  # the database or the shared folder may be briefly away
            log.exception("recording_housekeeping_failed")
        await asyncio.sleep(interval)


def build_app(services: Services) -> FastAPI:
    """The ASGI application: HTTP API, WebSocket, web pages and static files."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.bus.start()
        acd: AcdService = services.extra["acd"]
        await acd.start()
        acd.follow(services.bus)  # other nodes' routing decisions (with the Redis bus)
        # With several nodes, a placed call can be hung up through any of them: each node
        # records its calls in Redis and hangs them up for the others (even a node without
        # SIP forwards hang-ups).
        directory: CallDirectory | None = None
        if isinstance(services.bus, SharedBus):
            directory = CallDirectory(services.bus)
            await directory.start()
            services.extra["call_directory"] = directory
        recording_housekeeping: asyncio.Task[None] | None = None
        if services.extra.get("recordings") is not None:
            recording_housekeeping = asyncio.get_running_loop().create_task(
                _recording_housekeeping(services.extra["recordings"], services.clock)
            )
        sip: SipServer | None = services.extra.get("sip")
        trunk_registrations: TrunkRegistrations | None = None
        housekeeping: asyncio.Task[None] | None = None
        if sip is not None:
            if services.extra.get("pbx") is not None:
                sip.calls.use_pbx(services.extra["pbx"])  # DIDs, ring groups, trunks, fraud
                sip.calls.voicemail = services.extra["pbx"]  # messages left in the boxes
            # Calls sent to a queue become ACD interactions; offers ring the agents' phones.
            # Every node hears every callback offer: with the Redis bus, the nodes claim each
            # one there and only the winner rings (docs/telephony.md "Queued callbacks").
            phones = SipAgentPhones(sip.calls, services.extra["extensions"].numbers_of_user)
            phones.attach(VoiceQueue(acd, phones, claim=getattr(services.bus, "claim", None)))
            # Queues with music on hold: early media, announcements, the callback key.
            phones.waiting_room = WaitingRoom(
                sip.calls,
                voice=PromptVoice(services.settings.data_dir / "prompts"),
                music=_music_on_hold(services.settings.music_on_hold),
            )
            services.extra["agent_phones"] = phones
            # Queues with a post-call survey keep the caller when the agent hangs up.
            surveys: SurveyService | None = services.extra.get("surveys")
            phones.surveys = surveys
            store: RecordingService | None = services.extra.get("recordings")
            if store is not None:  # answered calls, by the company's rules or on demand
                sip.calls.recordings = CallRecordings(
                    store,
                    describe=phones.call_facts,
                    numbers_of_user=services.extra["extensions"].numbers_of_user,
                )
            if directory is not None:
                directory.serve(phones)
            # Agents' click-to-dial calls are outbound interactions (busy while on them).
            services.extra["outbound_calls"] = OutboundCalls(acd, phones)
            try:
                await sip.start()
                if services.extra.get("pbx") is not None:
                    # Trunks that must register with their carrier (refreshed, retried, and
                    # following trunks added, changed or removed while we run).
                    pbx = services.extra["pbx"]
                    trunk_registrations = TrunkRegistrations(sip, pbx)
                    try:
                        await trunk_registrations.start()
                        pbx.trunk_listeners.append(trunk_registrations.changed)
                    except Exception:  # calls still work; the log says why trunks are down
                        log.exception("trunk_registrations_not_started")
                        trunk_registrations = None
                housekeeping = asyncio.get_running_loop().create_task(_sip_housekeeping(sip))
                log.info(
                    "sip_listening",
                    host=sip.config.host,
                    port=sip.port,
                    transports=list(sip.config.transports),
                )
            except OSError as exc:
                # The web platform still runs; the operator sees why phones cannot register.
                log.error(
                    "sip_not_started",
                    host=sip.config.host,
                    port=sip.config.port,
                    error=str(exc),
                    hint="choose another SIP port (serve --sip-port, or SPARKLECOMM_SIP_PORT; "
                    "0 picks a free one) or set SPARKLECOMM_SIP_ENABLED=false",
                )
                services.extra.pop("sip")
                sip = None
                if directory is not None:
                    directory.serve(None)
                # No SIP here: leave the callbacks (and placed calls) to the nodes that can
                # ring phones.
                await services.extra.pop("outbound_calls").aclose()
                await services.extra.pop("agent_phones").close()
        try:
            yield
        finally:
            if recording_housekeeping is not None:
                recording_housekeeping.cancel()
            if housekeeping is not None:
                housekeeping.cancel()
            if trunk_registrations is not None:
                services.extra["pbx"].trunk_listeners.remove(trunk_registrations.changed)
                await trunk_registrations.stop()  # unregisters while the transport is open
            if sip is not None:
                await sip.stop()
                if sip.calls.recordings is not None:  # finished, not left to be salvaged
                    await sip.calls.recordings.close()
            if "outbound_calls" in services.extra:
                await services.extra.pop("outbound_calls").aclose()
            if "agent_phones" in services.extra:
                await services.extra.pop("agent_phones").close()
            if directory is not None:
                services.extra.pop("call_directory", None)
                await directory.stop()
            acd.unfollow()
            await acd.stop()
            await services.bus.stop()

    app = FastAPI(
        title="SparkleComm",
        version=__version__,
        description="Contact center and unified communications: HTTP API. "
        "Errors are RFC 9457 problem documents.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    problems.install(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/api/v1/health", response_model=Health, tags=["health"])
    def health() -> Health:
        """Liveness and database reachability; needs no sign-in."""
        with services.db.read() as s:
            s.connection().exec_driver_sql("SELECT 1")
        return Health(status="ok", version=__version__, database=services.db.engine.dialect.name)

    from sparklecomm.acd.api import router as acd_router
    from sparklecomm.audit.api import router as audit_router
    from sparklecomm.auth.api import router as auth_router
    from sparklecomm.customers.api import router as customers_router
    from sparklecomm.events.api import router as events_router
    from sparklecomm.stats.api import router as stats_router
    from sparklecomm.web.pages import router as pages_router

    app.include_router(auth_router)
    app.include_router(audit_router)
    app.include_router(events_router)
    app.include_router(acd_router)
    app.include_router(customers_router)
    app.include_router(stats_router)
    from sparklecomm.telephony.pbx.api import router as pbx_router

    app.include_router(pbx_router)
    from sparklecomm.telephony.recordings_api import router as recordings_router

    app.include_router(recordings_router)
    from sparklecomm.surveys.api import pages as survey_pages
    from sparklecomm.surveys.api import router as surveys_router

    app.include_router(surveys_router)
    app.include_router(survey_pages)  # public: customers answer by link, without signing in
    from sparklecomm.quality.api import router as quality_router

    app.include_router(quality_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
