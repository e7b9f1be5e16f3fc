"""The PBX service: configuration in SQL (check → one transaction → events), the
:class:`~sparklecomm.telephony.pbx.routes.Router` the B2BUA asks for every new call, and the
:class:`~sparklecomm.telephony.pbx.routes.VoicemailStore` it leaves messages with.

Routing reads a per-tenant :class:`~sparklecomm.telephony.pbx.dialplan.PbxConfig` snapshot,
cached in memory: a change made through this service drops its tenant's snapshot at once;
changes made by another process (the CLI, another node) are seen within ``cache_ttl``
seconds. SQL runs in the thread pool, never on the event loop.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from sparklecomm.audit.store import Actor, write_audit_txn
from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from sparklecomm.core.events import NewEvent
from sparklecomm.core.hours import (
    BusinessHours,
    check_timezone,
    exceptions_payload,
    parse_exceptions,
    parse_weekly,
    spec_of,
    weekly_payload,
)
from sparklecomm.core.ids import new_id
from sparklecomm.core.validation import check_name
from sparklecomm.store.db import Database, Tx
from sparklecomm.store.models import User
from sparklecomm.telephony.extensions import Extension, ExtensionService, extension_payload
from sparklecomm.telephony.pbx.crypto import SecretBox
from sparklecomm.telephony.pbx.dialplan import (
    AUTH_REQUIRED,
    DEFAULT_INVALID_PROMPT,
    DESTINATION_KINDS,
    DIALLABLE_RE,
    DTMF_KEYS,
    FALLBACK_KINDS,
    IVR_DESTINATION_KINDS,
    RING_MODES,
    RULE_ACTIONS,
    VOICEMAIL_KEYWORD,
    CallSettings,
    Destination,
    DialRule,
    DidConfig,
    FollowMeStep,
    IvrMenuConfig,
    PbxConfig,
    RingGroupConfig,
    TrunkConfig,
    decide,
    divert,
    divert_problem,
    ivr_choice,
    normalise_number,
)
from sparklecomm.telephony.pbx.fraud import FraudGuard
from sparklecomm.telephony.pbx.models import (
    BlockedNumber,
    BusinessHoursRow,
    CallSettingsRow,
    DialRuleRow,
    Did,
    IvrMenuRow,
    RingGroup,
    Trunk,
    VoicemailRow,
)
from sparklecomm.telephony.pbx.routes import CallRequest, Reject, Route, ToIvr, ToVoicemail

log = structlog.get_logger(__name__)

DID_RE = re.compile(r"^\+?[0-9]{3,20}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
QUEUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
ATTRIBUTE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
PATTERN_RE = re.compile(r"^\+?[0-9]{1,32}\*?$|^\+?\*$")
PREFIX_RE = re.compile(r"^\+?[0-9*#]{0,31}$")
PREPEND_RE = re.compile(r"^\+?[0-9]{0,15}$")
TRANSPORTS = ("UDP", "TCP", "TLS")
RESERVED_ATTRIBUTES = ("dnis", "ani")
MAX_ATTRIBUTES = 20
MAX_MEMBERS = 50
MAX_FOLLOW_ME = 10
MIN_RING, MAX_RING = 5.0, 300.0
MAX_PROMPT = 1000
MIN_IVR_TIMEOUT, MAX_IVR_TIMEOUT = 1.0, 60.0
MAX_IVR_ATTEMPTS = 10
#: Numbers this short are extensions: a voice menu's ``number:`` must then exist.
SHORT_NUMBER = 6
#: What may name a folder under the voicemail directory (tenant ids are 32 hex digits).
FOLDER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# -- public forms -------------------------------------------------------------------------
def did_payload(d: Did) -> dict[str, Any]:
    closed = (
        Destination(d.closed_destination_kind, d.closed_destination).describe()
        if d.closed_destination_kind
        else None
    )
    return {
        "id": d.id,
        "number": d.number,
        "destination": Destination(d.destination_kind, d.destination).describe(),
        "attributes": dict(d.attributes or {}),
        "description": d.description,
        "hours": d.hours,
        "closed_destination": closed,
    }


def hours_of(row: BusinessHoursRow) -> BusinessHours:
    """The pure timetable of a stored row (checked when it was written)."""
    return BusinessHours(
        row.name,
        row.timezone,
        parse_weekly(row.weekly or {}),
        parse_exceptions(row.exceptions or []),
    )


def hours_payload(row: BusinessHoursRow, at: datetime | None = None) -> dict[str, Any]:
    """A business hours' configuration; with ``at``, also whether it is open then and when
    that changes next."""
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "timezone": row.timezone,
        "weekly": dict(row.weekly or {}),
        "exceptions": list(row.exceptions or []),
        "description": row.description,
    }
    if at is not None:
        hours = hours_of(row)
        change = hours.next_change(at)
        out["open_now"] = hours.is_open(at)
        out["next_change"] = change.isoformat() if change is not None else None
    return out


def ring_group_payload(g: RingGroup) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "members": list(g.members or []),
        "mode": g.mode,
        "ring_seconds": g.ring_seconds,
        "fallback": Destination(g.fallback_kind, g.fallback).describe(),
    }


def ivr_menu_payload(m: IvrMenuRow) -> dict[str, Any]:
    """A voice menu as the API and the command line show it (keys in keypad order)."""
    options = dict(m.options or {})
    return {
        "id": m.id,
        "name": m.name,
        "prompt": m.prompt,
        "options": {k: options[k] for k in sorted(options, key=DTMF_KEYS.find)},
        "timeout_seconds": m.timeout_seconds,
        "attempts": m.attempts,
        "invalid_prompt": m.invalid_prompt,
        "default": m.default_destination,
    }


def trunk_payload(t: Trunk) -> dict[str, Any]:
    """Never the password: only whether one is set."""
    return {
        "id": t.id,
        "name": t.name,
        "host": t.host,
        "port": t.port,
        "transport": t.transport,
        "username": t.username,
        "password_set": t.password_encrypted is not None,
        "register": t.register,
        "allowed_sources": list(t.allowed_sources or []),
        "caller_id": t.caller_id,
        "max_channels": t.max_channels,
    }


def call_settings_payload(number: str, row: CallSettingsRow | None) -> dict[str, Any]:
    if row is None:
        return {
            "extension": number,
            "dnd": False,
            "forward_always": None,
            "forward_busy": None,
            "forward_no_answer": None,
            "ring_seconds": 20.0,
            "follow_me": [],
            "auto_answer": False,
        }
    return {
        "extension": number,
        "dnd": row.dnd,
        "forward_always": row.forward_always,
        "forward_busy": row.forward_busy,
        "forward_no_answer": row.forward_no_answer,
        "ring_seconds": row.ring_seconds,
        "follow_me": list(row.follow_me or []),
        "auto_answer": bool(row.auto_answer),
    }


def voicemail_payload(v: VoicemailRow) -> dict[str, Any]:
    """A voicemail message as the API, the command line and the events show it (never the
    recording itself: ``GET /telephony/voicemail/{id}/audio``)."""
    return {
        "id": v.id,
        "box": v.box,
        "caller": v.caller,
        "caller_name": v.caller_name,
        "seconds": v.seconds,
        "created_at": v.created_at.isoformat(),
        "heard": v.heard_at is not None,
        "heard_at": v.heard_at.isoformat() if v.heard_at is not None else None,
    }


def blocked_payload(b: BlockedNumber) -> dict[str, Any]:
    return {"id": b.id, "pattern": b.pattern, "note": b.note}


def dial_rule_payload(r: DialRuleRow, trunk_names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "prefix": r.prefix,
        "action": r.action,
        "trunk": trunk_names.get(r.trunk_id or "") if r.trunk_id else None,
        "emergency": r.emergency,
        "strip": r.strip,
        "prepend": r.prepend,
    }


# -- checks -------------------------------------------------------------------------------
def parse_destination(text: str, field: str, kinds: tuple[str, ...]) -> Destination:
    """``extension:1001``, ``ring_group:sales`` (or ``ring-group:``), ``queue:support``,
    ``ivr:main`` (a voice menu), ``voicemail:1001`` (an extension's voicemail box),
    ``number:+4930…`` (voice menus only), ``reject``."""
    text = text.strip()
    kind, _, value = text.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    value = value.strip()
    if kind not in kinds:
        raise InvalidInput(
            f"{field} must be one of {', '.join(k + ':…' if k != 'reject' else k for k in kinds)}"
            f"; got {text!r}",
            field=field,
        )
    if kind == "reject":
        if value:
            raise InvalidInput("'reject' takes no value", field=field)
        return Destination("reject")
    if not value:
        raise InvalidInput(f"{kind} needs a value, as in {kind}:NAME", field=field)
    if kind == "queue" and not QUEUE_RE.match(value):
        raise InvalidInput(f"{value!r} is not a queue id", field=field)
    if kind == "ivr":
        return Destination(kind, check_name_id(value, field))
    if kind == "number":
        return Destination(kind, check_dial_target(value, field))
    if kind == "voicemail":
        box = normalise_number(value)
        if not box.isdigit():
            raise InvalidInput(
                f"{value!r} is not a voicemail box: a box is an extension's number, as in "
                "voicemail:1002",
                field=field,
            )
        return Destination(kind, box)
    return Destination(kind, normalise_number(value) if kind == "extension" else value)


def check_ring_seconds(value: float, field: str) -> float:
    if not MIN_RING <= value <= MAX_RING:
        raise InvalidInput(f"{field} must be {MIN_RING:g}-{MAX_RING:g} seconds", field=field)
    return float(value)


def check_name_id(value: str, field: str) -> str:
    value = value.strip().lower()
    if not NAME_RE.match(value):
        raise InvalidInput(
            f"{field} {value!r} must be 1-50 of a-z, 0-9, '-' and '_' (starting with a letter "
            "or digit)",
            field=field,
        )
    return value


def check_attributes(attributes: dict[str, Any], field: str) -> dict[str, str]:
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(f"at most {MAX_ATTRIBUTES} attributes", field=field)
    out: dict[str, str] = {}
    for key, value in attributes.items():
        if not ATTRIBUTE_RE.match(key):
            raise InvalidInput(
                f"attribute name {key!r} must be lower-case letters, digits and '_'",
                field=f"{field}.{key}",
            )
        if key in RESERVED_ATTRIBUTES:
            raise InvalidInput(f"{key!r} is set by the PBX from the call", field=f"{field}.{key}")
        if (
            not isinstance(value, str | int | float | bool)
            or len(str(value)) > 200
            or CONTROL_RE.search(str(value))
        ):
            raise InvalidInput(
                f"attribute {key!r} must be a text of at most 200 characters (no control "
                "characters)",
                field=f"{field}.{key}",
            )
        out[key] = str(value)
    return out


CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_prompt(value: Any, field: str) -> str:
    """Text to be spoken: 1-1000 characters; line breaks and runs of spaces become one
    space."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a text", field=field)
    text = " ".join(value.split())
    if not text:
        raise InvalidInput(f"{field} must not be empty", field=field)
    return check_text(text, field, MAX_PROMPT)


def check_text(value: str, field: str, max_length: int = 200) -> str:
    """Free text (descriptions, notes): bounded, without control characters (PostgreSQL
    refuses NUL in text)."""
    if len(value) > max_length:
        raise InvalidInput(f"{field} has at most {max_length} characters", field=field)
    if CONTROL_RE.search(value):
        raise InvalidInput(f"{field} contains control characters", field=field)
    return value


def check_dial_target(value: str, field: str) -> str:
    number = normalise_number(value)
    if not DIALLABLE_RE.match(number):
        raise InvalidInput(f"{value!r} is not an extension or a phone number", field=field)
    return number


@dataclass
class _Directory:
    """Platform-wide lookups: which tenant an extension or a trunk belongs to."""

    loaded_at: float
    extension_tenant: dict[str, str] = field(default_factory=dict)
    trunk_tenant: dict[str, str] = field(default_factory=dict)
    trusted: dict[str, str] = field(default_factory=dict)
    call_trunks: dict[str, Any] = field(default_factory=dict)


class PbxService:
    """DIDs, ring groups, voice menus, trunks, call settings, blocked numbers, dial rules;
    the router."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        extensions: ExtensionService,
        *,
        secret: str | Callable[[], str],
        guard: FraudGuard | None = None,
        cache_ttl: float = 10.0,
        voicemail_dir: Path | None = None,
        queue_ids: Callable[[str], Iterable[str]] | None = None,
        queue_hours: Callable[[str], Mapping[str, str | None]] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.extensions = extensions
        self._secret = secret
        self._box: SecretBox | None = None
        self.guard = guard or FraudGuard(clock)
        self.cache_ttl = cache_ttl
        # Where the recordings of voicemail messages go (``<dir>/<tenant_id>/<id>.wav``);
        # None: messages cannot be left (``leave_message`` answers Unavailable).
        self.voicemail_dir = voicemail_dir
        # The routing queues of a tenant, to check a DID's queue (None: not checked, as for a
        # PBX without the routing service).
        self.queue_ids = queue_ids
        # Queue → the business hours it follows (None: not checked): hours a queue follows
        # cannot be deleted.
        self.queue_hours = queue_hours
        self._configs: dict[str, tuple[float, PbxConfig]] = {}
        self._directory: _Directory | None = None
        # Bumped by every invalidation: a snapshot loaded while a change committed is not
        # cached (it may predate the change).
        self._generation = 0
        # Called after a trunk is created, changed or deleted (the SIP side re-reads which
        # trunks must register): see TrunkRegistrations.changed.
        self.trunk_listeners: list[Callable[[], None]] = []
        # Called with the tenant after its business hours changed (the routing engine keeps
        # a copy for the queues that follow them: AcdService.hours_changed).
        self.hours_listeners: list[Callable[[str], None]] = []

    @property
    def box(self) -> SecretBox:
        """Encrypts trunk passwords; built on first use (the key may be generated then)."""
        if self._box is None:
            secret = self._secret if isinstance(self._secret, str) else self._secret()
            self._box = SecretBox(secret)
        return self._box

    # -- cache --------------------------------------------------------------------------
    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget cached configuration (one tenant's, or all)."""
        self._generation += 1
        if tenant_id is None:
            self._configs.clear()
        else:
            self._configs.pop(tenant_id, None)
        self._directory = None

    def _fresh(self, loaded_at: float) -> bool:
        return self.clock.monotonic() - loaded_at < self.cache_ttl

    def directory(self) -> _Directory:
        d = self._directory
        if d is not None and self._fresh(d.loaded_at):
            return d
        generation = self._generation
        d = _Directory(loaded_at=self.clock.monotonic())
        with self.db.read() as s:
            for number, tenant_id in s.execute(select(Extension.number, Extension.tenant_id)):
                d.extension_tenant[number] = tenant_id
            for trunk in s.scalars(select(Trunk)):
                d.trunk_tenant[trunk.id] = trunk.tenant_id
                d.call_trunks[trunk.id] = self._call_trunk(trunk)
                for host in trunk.allowed_sources or []:
                    d.trusted[host] = trunk.id
        self.guard.set_trusted(d.trusted)
        if generation == self._generation:
            self._directory = d
        return d

    def _call_trunk(self, trunk: Trunk) -> Any:
        from sparklecomm.telephony.calls import Trunk as CallTrunk

        password = None
        if trunk.password_encrypted is not None:
            try:
                password = self.box.decrypt(trunk.password_encrypted)
            except ValueError:
                log.error("trunk_password_unreadable", trunk=trunk.name, hint="set it again")
        return CallTrunk(
            host=trunk.host,
            port=trunk.port,
            transport=trunk.transport,
            username=trunk.username,
            password=password,
        )

    def config(self, tenant_id: str) -> PbxConfig:
        """The tenant's dial-plan snapshot (cached)."""
        cached = self._configs.get(tenant_id)
        if cached is not None and self._fresh(cached[0]):
            return cached[1]
        generation, loaded_at = self._generation, self.clock.monotonic()
        with self.db.read() as s:
            config = self._load_config(s, tenant_id)
        if generation == self._generation:
            self._configs[tenant_id] = (loaded_at, config)
        return config

    def _load_config(self, s: Session, tenant_id: str) -> PbxConfig:
        exts = {
            e.number: e.display_name
            for e in s.scalars(select(Extension).where(Extension.tenant_id == tenant_id))
        }
        owners = {
            number: name
            for number, name in s.execute(
                select(Extension.number, User.display_name)
                .join(User, User.id == Extension.user_id)
                .where(Extension.tenant_id == tenant_id, User.tenant_id == tenant_id)
            )
        }
        settings = {
            r.extension: CallSettings(
                dnd=r.dnd,
                forward_always=r.forward_always,
                forward_busy=r.forward_busy,
                forward_no_answer=r.forward_no_answer,
                ring_seconds=r.ring_seconds,
                follow_me=tuple(
                    FollowMeStep(tuple(step["targets"]), float(step["ring_seconds"]))
                    for step in r.follow_me or []
                ),
                auto_answer=bool(r.auto_answer),
            )
            for r in s.scalars(
                select(CallSettingsRow).where(CallSettingsRow.tenant_id == tenant_id)
            )
        }
        hours = {
            row.name: hours_of(row)
            for row in s.scalars(
                select(BusinessHoursRow).where(BusinessHoursRow.tenant_id == tenant_id)
            )
        }
        dids = {
            d.number: DidConfig(
                d.number,
                Destination(d.destination_kind, d.destination),
                dict(d.attributes or {}),
                hours=hours.get(d.hours) if d.hours else None,
                closed=(
                    Destination(d.closed_destination_kind, d.closed_destination)
                    if d.closed_destination_kind
                    else None
                ),
            )
            for d in s.scalars(select(Did).where(Did.tenant_id == tenant_id).order_by(Did.number))
        }
        groups = {
            g.name: RingGroupConfig(
                g.name,
                tuple(g.members or []),
                g.mode,
                g.ring_seconds,
                Destination(g.fallback_kind, g.fallback),
            )
            for g in s.scalars(select(RingGroup).where(RingGroup.tenant_id == tenant_id))
        }
        menus = {
            m.name: IvrMenuConfig(
                name=m.name,
                prompt=m.prompt,
                options={k: Destination.of(v) for k, v in (m.options or {}).items()},
                timeout_seconds=m.timeout_seconds,
                attempts=m.attempts,
                invalid_prompt=m.invalid_prompt,
                default=Destination.of(m.default_destination),
            )
            for m in s.scalars(select(IvrMenuRow).where(IvrMenuRow.tenant_id == tenant_id))
        }
        trunks = {
            t.id: TrunkConfig(t.id, t.name, t.caller_id)
            for t in s.scalars(select(Trunk).where(Trunk.tenant_id == tenant_id))
        }
        rules = tuple(
            DialRule(
                prefix=r.prefix,
                action=r.action,
                trunk_id=r.trunk_id,
                emergency=r.emergency,
                strip=r.strip,
                prepend=r.prepend,
                name=r.name,
            )
            for r in s.scalars(select(DialRuleRow).where(DialRuleRow.tenant_id == tenant_id))
        )
        blocked = tuple(
            b.pattern
            for b in s.scalars(select(BlockedNumber).where(BlockedNumber.tenant_id == tenant_id))
        )
        return PbxConfig(
            tenant_id=tenant_id,
            extensions=exts,
            owners=owners,
            settings=settings,
            dids=dids,
            ring_groups=groups,
            menus=menus,
            trunks=trunks,
            dial_rules=rules,
            blocked=blocked,
            default_caller_id=next(iter(dids), None),
        )

    # -- routing ------------------------------------------------------------------------
    def _tenant_of(self, request: CallRequest) -> str | Reject:
        directory = self.directory()
        if request.trunk_id is not None:
            tenant = directory.trunk_tenant.get(request.trunk_id)
            if tenant is None:
                return Reject(403, "Forbidden (unknown trunk)")
        elif request.extension is not None:
            tenant = directory.extension_tenant.get(request.extension)
            if tenant is None:
                return AUTH_REQUIRED
        else:
            return AUTH_REQUIRED
        if request.tenant_id is not None and request.tenant_id != tenant:
            return Reject(403, "Forbidden (wrong organisation)")
        return tenant

    def route_sync(self, request: CallRequest) -> Route:
        tenant = self._tenant_of(request)
        route = (
            tenant
            if isinstance(tenant, Reject)
            else decide(self.config(tenant), request, self.clock.now())
        )
        if isinstance(route, Reject):
            if route.status == 403:
                self.guard.refuse(
                    "dial_plan",
                    request.source,
                    status=route.status,
                    detail=route.reason,
                    dialled=request.dialled,
                    caller=request.caller,
                    extension=request.extension,
                    trunk_id=request.trunk_id,
                    call_id=request.call_id,
                )
            else:
                log.info(
                    "pbx_call_rejected",
                    status=route.status,
                    reason=route.reason,
                    dialled=request.dialled,
                    source=request.source,
                    call_id=request.call_id,
                )
        else:
            log.info(
                "pbx_call_routed",
                route=type(route).__name__,
                dialled=request.dialled,
                extension=request.extension,
                trunk_id=request.trunk_id,
                call_id=request.call_id,
            )
        return route

    async def route(self, request: CallRequest) -> Route:
        """The :class:`~sparklecomm.telephony.pbx.routes.Router` protocol."""
        return await run_in_threadpool(self.route_sync, request)

    def divert_sync(self, tenant_id: str, target: str, request: CallRequest) -> Route:
        route = divert(self.config(tenant_id), target, request, self.clock.now())
        log.info(
            "pbx_call_diverted",
            route=type(route).__name__,
            target=target,
            status=route.status if isinstance(route, Reject) else None,
            reason=route.reason if isinstance(route, Reject) else None,
            call_id=request.call_id,
        )
        return route

    def divert_problem(self, tenant_id: str, target: str) -> str | None:
        """What is wrong with ``target`` as a voice queue's ``divert_to`` (None: fine)."""
        return divert_problem(self.config(tenant_id), target)

    async def divert(self, tenant_id: str, target: str, request: CallRequest) -> Route:
        """Where a queue's waiting caller goes when the queue diverts it to ``target`` (the
        B2BUA's ``router.divert``; :func:`~sparklecomm.telephony.pbx.dialplan.divert`)."""
        return await run_in_threadpool(self.divert_sync, tenant_id, target, request)

    def ivr_choice_sync(self, route: ToIvr, key: str | None, request: CallRequest) -> Route:
        result = ivr_choice(self.config(route.tenant_id), route, key, request, self.clock.now())
        log.info(
            "pbx_ivr_choice",
            menu=route.menu.name,
            key=key,
            route=type(result).__name__,
            status=result.status if isinstance(result, Reject) else None,
            reason=result.reason if isinstance(result, Reject) else None,
            call_id=request.call_id,
        )
        return result

    async def ivr_choice(self, route: ToIvr, key: str | None, request: CallRequest) -> Route:
        """Where a voice menu's caller goes after pressing ``key`` (None: no valid key after
        the last attempt: the menu's default); the B2BUA's ``router.ivr_choice``
        (:func:`~sparklecomm.telephony.pbx.dialplan.ivr_choice`)."""
        return await run_in_threadpool(self.ivr_choice_sync, route, key, request)

    def auto_answer_sync(self, extension: str) -> bool:
        tenant_id = self.directory().extension_tenant.get(extension)
        if tenant_id is None:
            return False
        settings = self.config(tenant_id).settings.get(extension)
        return settings is not None and settings.auto_answer

    async def auto_answer(self, extension: str) -> bool:
        """Whether the extension's phones answer by themselves when rung for their agent
        (its call settings' ``auto_answer``; the B2BUA's ``router.auto_answer``)."""
        return await run_in_threadpool(self.auto_answer_sync, extension)

    def trusted_source(self, host: str) -> str | None:
        """The trunk id whose allowed sources include ``host`` (``host[:port]``), or None."""
        self.directory()
        return self.guard.trusted_source(host)

    async def tenant_of(self, extension: str) -> str | None:
        """The tenant of an extension (the B2BUA's ``tenant_of``)."""
        directory = await run_in_threadpool(self.directory)
        return directory.extension_tenant.get(extension)

    def call_trunk(self, trunk_id: str) -> Any:
        """The B2BUA's ``trunks`` lookup: a :class:`sparklecomm.telephony.calls.Trunk` (host,
        port, transport, credentials in clear) or ``None``. Cached with the directory."""
        return self.directory().call_trunks.get(trunk_id)

    def sip_options(self) -> dict[str, Any]:
        """Keyword arguments wiring the PBX into :class:`~sparklecomm.telephony.SipServer`:
        ``SipServer(config, ..., **pbx.sip_options())``."""
        return {
            "router": self,
            "guard": self.guard,
            "trusted_source": self.trusted_source,
            "trunks": self.call_trunk,
            "tenant_of": self.tenant_of,
        }

    def trunk_password(self, trunk_id: str) -> str | None:
        """The trunk's password in clear, for answering the carrier's digest challenge."""
        with self.db.read() as s:
            trunk = s.get(Trunk, trunk_id)
        if trunk is None or trunk.password_encrypted is None:
            return None
        return self.box.decrypt(trunk.password_encrypted)

    # -- shared write helpers -------------------------------------------------------------
    def _record(
        self,
        tx: Tx,
        tenant_id: str,
        actor: Actor,
        action: str,
        target_id: str | None,
        payload: dict[str, Any],
        *,
        event_prefix: str = "pbx.",
    ) -> None:
        kind = action.split(".", 1)[0]
        write_audit_txn(
            tx.session,
            tx.clock,
            tenant_id=tenant_id,
            actor=actor,
            action=f"{event_prefix}{action}",
            target_type=kind,
            target_id=target_id,
            details=payload,
        )
        tx.emit(tenant_id, NewEvent(f"{event_prefix}{action}", {kind: payload}))

    def _write(self, tenant_id: str, fn: Callable[[Tx], Any]) -> Any:
        with self.db.write() as tx:
            result = fn(tx)
        self.invalidate(tenant_id)
        return result

    @staticmethod
    def _extension_numbers(s: Session, tenant_id: str) -> set[str]:
        return set(s.scalars(select(Extension.number).where(Extension.tenant_id == tenant_id)))

    def _check_destination(self, s: Session, tenant_id: str, dest: Destination, field: str) -> None:
        if dest.kind == "extension" and dest.value not in self._extension_numbers(s, tenant_id):
            raise InvalidInput(f"no extension {dest.value} here", field=field)
        if dest.kind == "ring_group" and not s.scalar(
            select(RingGroup.id).where(
                RingGroup.tenant_id == tenant_id, RingGroup.name == dest.value
            )
        ):
            raise InvalidInput(f"no ring group {dest.value!r} here", field=field)
        if dest.kind == "ivr" and self._menu_row(s, tenant_id, dest.value) is None:
            raise InvalidInput(f"no voice menu {dest.value!r} here", field=field)
        if dest.kind == "voicemail" and dest.value not in self._extension_numbers(s, tenant_id):
            raise InvalidInput(
                f"no voicemail box {dest.value} here (a box is an extension's number)",
                field=field,
            )
        if (
            dest.kind == "number"
            and dest.value.isdigit()
            and len(dest.value) <= SHORT_NUMBER
            and dest.value not in self._extension_numbers(s, tenant_id)
        ):
            # Short numbers are extensions: a typo must not turn into an outbound call.
            raise InvalidInput(f"no extension {dest.value} here", field=field)
        if dest.kind == "queue" and self.queue_ids is not None:
            known = set(self.queue_ids(tenant_id))
            if dest.value not in known:
                raise InvalidInput(
                    f"no queue {dest.value!r} here (queues: {', '.join(sorted(known)) or 'none'})",
                    field=field,
                )

    @staticmethod
    def _did_to(s: Session, tenant_id: str, kind: str, value: str) -> Did | None:
        """A DID of the tenant whose destination (open or closed) is ``kind:value``."""
        return s.scalars(
            select(Did).where(
                Did.tenant_id == tenant_id,
                or_(
                    (Did.destination_kind == kind) & (Did.destination == value),
                    (Did.closed_destination_kind == kind) & (Did.closed_destination == value),
                ),
            )
        ).first()

    @staticmethod
    def _menu_to(
        s: Session, tenant_id: str, kind: str, value: str
    ) -> tuple[IvrMenuRow, str] | None:
        """A voice menu of the tenant with a key (or its default, ``"default"``) leading to
        ``kind:value``, and which."""
        target = Destination(kind, value).describe()
        query = select(IvrMenuRow).where(IvrMenuRow.tenant_id == tenant_id)
        for menu in s.scalars(query.order_by(IvrMenuRow.name)):
            for key, dest in sorted((menu.options or {}).items()):
                if dest == target:
                    return menu, f"key {key}"
            if menu.default_destination == target:
                return menu, "default"
        return None

    def _check_did_hours(
        self, s: Session, tenant_id: str, hours: str | None, closed: Destination | None
    ) -> None:
        if closed is not None:
            self._check_destination(s, tenant_id, closed, "closed_destination")
            if not hours:
                raise InvalidInput(
                    "closed_destination needs business hours (hours) to know when it is closed",
                    field="closed_destination",
                )
        if hours and self._hours_row(s, tenant_id, hours) is None:
            raise InvalidInput(f"no business hours {hours!r} here", field="hours")

    # -- DIDs ---------------------------------------------------------------------------
    def dids(self, tenant_id: str) -> list[Did]:
        with self.db.read() as s:
            return list(
                s.scalars(select(Did).where(Did.tenant_id == tenant_id).order_by(Did.number))
            )

    def _get_did(self, s: Session, tenant_id: str, number: str) -> Did:
        did = s.scalar(
            select(Did).where(Did.tenant_id == tenant_id, Did.number == normalise_number(number))
        )
        if did is None:
            raise NotFound(f"no DID {number} here", field="number")
        return did

    def do_create_did(
        self,
        tenant_id: str,
        actor: Actor,
        *,
        number: str,
        destination: str,
        attributes: dict[str, Any] | None = None,
        description: str = "",
        hours: str | None = None,
        closed_destination: str | None = None,
    ) -> Did:
        given, number = number, normalise_number(number)
        if not DID_RE.match(number):
            raise InvalidInput(
                f"number {given!r} must be 3-20 digits, optionally after a '+'", field="number"
            )
        dest = parse_destination(destination, "destination", DESTINATION_KINDS)
        attrs = check_attributes(attributes or {}, "attributes")
        check_text(description, "description")
        hours_name = check_name_id(hours, "hours") if hours else None
        closed = (
            parse_destination(closed_destination, "closed_destination", DESTINATION_KINDS)
            if closed_destination
            else None
        )

        def do(tx: Tx) -> Did:
            s = tx.session
            if s.scalar(select(Did.id).where(Did.number == number)):
                raise Conflict(f"the number {number} is in use already", field="number")
            self._check_destination(s, tenant_id, dest, "destination")
            self._check_did_hours(s, tenant_id, hours_name, closed)
            did = Did(
                id=new_id(),
                tenant_id=tenant_id,
                number=number,
                destination_kind=dest.kind,
                destination=dest.value,
                attributes=attrs,
                description=description,
                created_at=tx.clock.now(),
                hours=hours_name,
                closed_destination_kind=closed.kind if closed else None,
                closed_destination=closed.value if closed else "",
            )
            s.add(did)
            s.flush()
            self._record(tx, tenant_id, actor, "did.created", did.id, did_payload(did))
            return did

        result: Did = self._write(tenant_id, do)
        return result

    def do_update_did(
        self,
        tenant_id: str,
        actor: Actor,
        number: str,
        *,
        destination: str | None = None,
        attributes: dict[str, Any] | None = None,
        description: str | None = None,
        hours: str | None = None,
        closed_destination: str | None = None,
    ) -> Did:
        """Change what is given; ``hours=""`` / ``closed_destination=""`` clear them
        (clearing the hours also clears the closed destination)."""
        dest = (
            parse_destination(destination, "destination", DESTINATION_KINDS)
            if destination is not None
            else None
        )
        attrs = check_attributes(attributes, "attributes") if attributes is not None else None
        if description is not None:
            check_text(description, "description")
        hours_name = check_name_id(hours, "hours") if hours else hours
        closed = (
            parse_destination(closed_destination, "closed_destination", DESTINATION_KINDS)
            if closed_destination
            else None
        )

        def do(tx: Tx) -> Did:
            did = self._get_did(tx.session, tenant_id, number)
            if dest is not None:
                self._check_destination(tx.session, tenant_id, dest, "destination")
                did.destination_kind, did.destination = dest.kind, dest.value
            if attrs is not None:
                did.attributes = attrs
            if description is not None:
                did.description = description
            if hours_name is not None:
                did.hours = hours_name or None
                if not hours_name and closed_destination is None:
                    # No business hours, never closed: the closed destination goes too.
                    did.closed_destination_kind, did.closed_destination = None, ""
            if closed_destination is not None:
                did.closed_destination_kind = closed.kind if closed else None
                did.closed_destination = closed.value if closed else ""
            current_closed = (
                Destination(did.closed_destination_kind, did.closed_destination)
                if did.closed_destination_kind
                else None
            )
            self._check_did_hours(tx.session, tenant_id, did.hours, current_closed)
            tx.session.flush()
            self._record(tx, tenant_id, actor, "did.updated", did.id, did_payload(did))
            return did

        result: Did = self._write(tenant_id, do)
        return result

    def do_delete_did(self, tenant_id: str, actor: Actor, number: str) -> None:
        def do(tx: Tx) -> None:
            did = self._get_did(tx.session, tenant_id, number)
            payload = did_payload(did)
            tx.session.delete(did)
            self._record(tx, tenant_id, actor, "did.deleted", did.id, payload)

        self._write(tenant_id, do)

    # -- business hours -------------------------------------------------------------------
    @staticmethod
    def _hours_row(s: Session, tenant_id: str, name: str) -> BusinessHoursRow | None:
        return s.scalar(
            select(BusinessHoursRow).where(
                BusinessHoursRow.tenant_id == tenant_id, BusinessHoursRow.name == name
            )
        )

    def _get_hours(self, s: Session, tenant_id: str, name: str) -> BusinessHoursRow:
        row = self._hours_row(s, tenant_id, name.strip().lower())
        if row is None:
            raise NotFound(f"no business hours {name!r} here", field="name")
        return row

    def business_hours(self, tenant_id: str) -> list[BusinessHoursRow]:
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(BusinessHoursRow)
                    .where(BusinessHoursRow.tenant_id == tenant_id)
                    .order_by(BusinessHoursRow.name)
                )
            )

    def get_business_hours(self, tenant_id: str, name: str) -> BusinessHoursRow:
        with self.db.read() as s:
            return self._get_hours(s, tenant_id, name)

    @staticmethod
    def _checked_hours(
        timezone: Any, weekly: Any, exceptions: Any
    ) -> tuple[str, dict[str, list[str]], list[dict[str, Any]]]:
        """Checked and in canonical form (sorted ranges ``HH:MM-HH:MM``, sorted dates)."""
        zone = check_timezone(timezone)
        week = weekly_payload(parse_weekly(weekly))
        dated = exceptions_payload(parse_exceptions(exceptions))
        return zone, week, dated

    def hours_specs(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        """Every business hours of the tenant in their JSON form (name → timezone, weekly,
        exceptions), as the routing engine takes them."""
        return {row.name: spec_of(hours_of(row)) for row in self.business_hours(tenant_id)}

    def _hours_changed(self, tenant_id: str) -> None:
        for listener in self.hours_listeners:
            try:
                listener(tenant_id)
            except Exception:  # the change is committed; routing catches up on next build
                log.exception("hours_listener_failed", tenant_id=tenant_id)

    def do_create_business_hours(
        self,
        tenant_id: str,
        actor: Actor,
        *,
        name: str,
        timezone: str,
        weekly: dict[str, Any],
        exceptions: list[dict[str, Any]] | None = None,
        description: str = "",
    ) -> BusinessHoursRow:
        name = check_name_id(name, "name")
        zone, week, dated = self._checked_hours(timezone, weekly, exceptions or [])
        check_text(description, "description")

        def do(tx: Tx) -> BusinessHoursRow:
            s = tx.session
            if self._hours_row(s, tenant_id, name) is not None:
                raise Conflict(f"business hours {name!r} exist already", field="name")
            row = BusinessHoursRow(
                id=new_id(),
                tenant_id=tenant_id,
                name=name,
                timezone=zone,
                weekly=week,
                exceptions=dated,
                description=description,
                created_at=tx.clock.now(),
            )
            s.add(row)
            s.flush()
            self._record(tx, tenant_id, actor, "hours.created", row.id, hours_payload(row))
            return row

        result: BusinessHoursRow = self._write(tenant_id, do)
        self._hours_changed(tenant_id)
        return result

    def do_update_business_hours(
        self,
        tenant_id: str,
        actor: Actor,
        name: str,
        *,
        timezone: str | None = None,
        weekly: dict[str, Any] | None = None,
        exceptions: list[dict[str, Any]] | None = None,
        description: str | None = None,
    ) -> BusinessHoursRow:
        """Change what is given (``weekly`` and ``exceptions`` are replaced whole)."""
        if description is not None:
            check_text(description, "description")

        def do(tx: Tx) -> BusinessHoursRow:
            row = self._get_hours(tx.session, tenant_id, name)
            zone, week, dated = self._checked_hours(
                row.timezone if timezone is None else timezone,
                row.weekly if weekly is None else weekly,
                row.exceptions if exceptions is None else exceptions,
            )
            row.timezone, row.weekly, row.exceptions = zone, week, dated
            if description is not None:
                row.description = description
            tx.session.flush()
            self._record(tx, tenant_id, actor, "hours.updated", row.id, hours_payload(row))
            return row

        result: BusinessHoursRow = self._write(tenant_id, do)
        self._hours_changed(tenant_id)
        return result

    def do_delete_business_hours(self, tenant_id: str, actor: Actor, name: str) -> None:
        """Refused while a DID or a queue follows them."""
        if self.queue_hours is not None:
            for queue_id, followed in sorted(self.queue_hours(tenant_id).items()):
                if followed == name:
                    raise Conflict(
                        f"queue {queue_id!r} follows business hours {name!r}", field="name"
                    )

        def do(tx: Tx) -> None:
            s = tx.session
            row = self._get_hours(s, tenant_id, name)
            did = s.scalars(
                select(Did).where(Did.tenant_id == tenant_id, Did.hours == row.name)
            ).first()
            if did is not None:
                raise Conflict(
                    f"DID {did.number} follows business hours {row.name!r}", field="name"
                )
            payload = hours_payload(row)
            s.delete(row)
            self._record(tx, tenant_id, actor, "hours.deleted", row.id, payload)

        self._write(tenant_id, do)
        self._hours_changed(tenant_id)

    # -- ring groups ----------------------------------------------------------------------
    def ring_groups(self, tenant_id: str) -> list[RingGroup]:
        with self.db.read() as s:
            query = select(RingGroup).where(RingGroup.tenant_id == tenant_id)
            return list(s.scalars(query.order_by(RingGroup.name)))

    def do_save_ring_group(
        self,
        tenant_id: str,
        actor: Actor,
        *,
        name: str,
        members: list[str],
        mode: str = "simultaneous",
        ring_seconds: float = 20.0,
        fallback: str = "reject",
        create: bool = True,
    ) -> RingGroup:
        """Create a ring group (``create``) or replace an existing one's settings."""
        name = check_name_id(name, "name")
        if mode not in RING_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(RING_MODES)}", field="mode")
        ring_seconds = check_ring_seconds(ring_seconds, "ring_seconds")
        clean = [normalise_number(m) for m in members]
        if not 1 <= len(clean) <= MAX_MEMBERS:
            raise InvalidInput(f"a ring group has 1-{MAX_MEMBERS} members", field="members")
        if len(set(clean)) != len(clean):
            raise InvalidInput("an extension is listed twice", field="members")
        dest = parse_destination(fallback, "fallback", FALLBACK_KINDS)
        if dest.kind == "ring_group" and dest.value == name:
            raise InvalidInput("a ring group cannot fall back to itself", field="fallback")

        def do(tx: Tx) -> RingGroup:
            s = tx.session
            known = self._extension_numbers(s, tenant_id)
            missing = [m for m in clean if m not in known]
            if missing:
                raise InvalidInput(f"no extension {missing[0]} here", field="members")
            self._check_destination(s, tenant_id, dest, "fallback")
            group = s.scalar(
                select(RingGroup).where(RingGroup.tenant_id == tenant_id, RingGroup.name == name)
            )
            if create and group is not None:
                raise Conflict(f"ring group {name!r} exists already", field="name")
            if not create and group is None:
                raise NotFound(f"no ring group {name!r} here", field="name")
            if group is None:
                group = RingGroup(id=new_id(), tenant_id=tenant_id, name=name)
                group.created_at = tx.clock.now()
                s.add(group)
            group.members, group.mode, group.ring_seconds = clean, mode, ring_seconds
            group.fallback_kind, group.fallback = dest.kind, dest.value
            s.flush()
            action = "ring_group.created" if create else "ring_group.updated"
            self._record(tx, tenant_id, actor, action, group.id, ring_group_payload(group))
            return group

        result: RingGroup = self._write(tenant_id, do)
        return result

    def do_delete_ring_group(self, tenant_id: str, actor: Actor, name: str) -> None:
        name = name.strip().lower()

        def do(tx: Tx) -> None:
            s = tx.session
            group = s.scalar(
                select(RingGroup).where(RingGroup.tenant_id == tenant_id, RingGroup.name == name)
            )
            if group is None:
                raise NotFound(f"no ring group {name!r} here", field="name")
            did = self._did_to(s, tenant_id, "ring_group", name)
            if did is not None:
                raise Conflict(f"DID {did.number} goes to ring group {name!r}", field="name")
            for other in s.scalars(
                select(RingGroup).where(
                    RingGroup.tenant_id == tenant_id,
                    RingGroup.fallback_kind == "ring_group",
                    RingGroup.fallback == name,
                )
            ):
                raise Conflict(f"ring group {other.name!r} falls back to it", field="name")
            used = self._menu_to(s, tenant_id, "ring_group", name)
            if used is not None:
                raise Conflict(
                    f"voice menu {used[0].name!r} leads to ring group {name!r} ({used[1]})",
                    field="name",
                )
            payload = ring_group_payload(group)
            s.delete(group)
            self._record(tx, tenant_id, actor, "ring_group.deleted", group.id, payload)

        self._write(tenant_id, do)

    # -- voice menus (IVR) ----------------------------------------------------------------
    @staticmethod
    def _menu_row(s: Session, tenant_id: str, name: str) -> IvrMenuRow | None:
        return s.scalar(
            select(IvrMenuRow).where(IvrMenuRow.tenant_id == tenant_id, IvrMenuRow.name == name)
        )

    def ivr_menus(self, tenant_id: str) -> list[IvrMenuRow]:
        with self.db.read() as s:
            query = select(IvrMenuRow).where(IvrMenuRow.tenant_id == tenant_id)
            return list(s.scalars(query.order_by(IvrMenuRow.name)))

    def ivr_menu(self, tenant_id: str, name: str) -> IvrMenuRow:
        with self.db.read() as s:
            menu = self._menu_row(s, tenant_id, name.strip().lower())
            if menu is None:
                raise NotFound(f"no voice menu {name!r} here", field="name")
            return menu

    @staticmethod
    def _checked_menu_destination(text: Any, field: str, name: str) -> Destination:
        if not isinstance(text, str):
            raise InvalidInput(f"{field} must be a destination such as queue:sales", field=field)
        dest = parse_destination(text, field, IVR_DESTINATION_KINDS)
        if dest.kind == "ivr" and dest.value == name:
            raise InvalidInput(f"voice menu {name!r} cannot lead to itself", field=field)
        return dest

    def do_save_ivr_menu(
        self,
        tenant_id: str,
        actor: Actor,
        *,
        name: str,
        prompt: str,
        options: Mapping[str, str],
        timeout_seconds: float = 5.0,
        attempts: int = 3,
        invalid_prompt: str = DEFAULT_INVALID_PROMPT,
        default: str = "reject",
        create: bool | None = None,
    ) -> IvrMenuRow:
        """Create a voice menu or replace an existing one's settings (``create`` True: it
        must be new; False: it must exist; None: either)."""
        name = check_name_id(name, "name")
        spoken = check_prompt(prompt, "prompt")
        invalid = check_prompt(invalid_prompt, "invalid_prompt")
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float):
            raise InvalidInput(
                "timeout_seconds must be a number of seconds", field="timeout_seconds"
            )
        if not MIN_IVR_TIMEOUT <= timeout_seconds <= MAX_IVR_TIMEOUT:
            raise InvalidInput(
                f"timeout_seconds must be {MIN_IVR_TIMEOUT:g}-{MAX_IVR_TIMEOUT:g} seconds",
                field="timeout_seconds",
            )
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise InvalidInput("attempts must be a whole number", field="attempts")
        if not 1 <= attempts <= MAX_IVR_ATTEMPTS:
            raise InvalidInput(f"attempts must be 1-{MAX_IVR_ATTEMPTS}", field="attempts")
        if not options:
            raise InvalidInput(
                'a voice menu needs at least one key, e.g. {"1": "queue:sales"}',
                field="options",
            )
        dests: dict[str, Destination] = {}
        for raw_key, text in options.items():
            key = str(raw_key).strip()
            if len(key) != 1 or key not in DTMF_KEYS:
                raise InvalidInput(
                    f"key {raw_key!r} must be one key of the keypad: 0-9, * or #",
                    field=f"options.{raw_key}",
                )
            if key in dests:
                raise InvalidInput(f"key {key} is given twice", field=f"options.{raw_key}")
            dests[key] = self._checked_menu_destination(text, f"options.{key}", name)
        fallback = self._checked_menu_destination(default, "default", name)

        def do(tx: Tx) -> IvrMenuRow:
            s = tx.session
            for key, dest in dests.items():
                self._check_destination(s, tenant_id, dest, f"options.{key}")
            self._check_destination(s, tenant_id, fallback, "default")
            menu = self._menu_row(s, tenant_id, name)
            if create is True and menu is not None:
                raise Conflict(f"voice menu {name!r} exists already", field="name")
            if create is False and menu is None:
                raise NotFound(f"no voice menu {name!r} here", field="name")
            action = "ivr_menu.updated"
            now = tx.clock.now()
            if menu is None:
                action = "ivr_menu.created"
                menu = IvrMenuRow(id=new_id(), tenant_id=tenant_id, name=name, created_at=now)
                s.add(menu)
            menu.prompt, menu.invalid_prompt = spoken, invalid
            menu.options = {k: d.describe() for k, d in sorted(dests.items())}
            menu.timeout_seconds, menu.attempts = float(timeout_seconds), attempts
            menu.default_destination = fallback.describe()
            menu.updated_at = now
            s.flush()
            self._record(tx, tenant_id, actor, action, menu.id, ivr_menu_payload(menu))
            return menu

        result: IvrMenuRow = self._write(tenant_id, do)
        return result

    def do_delete_ivr_menu(self, tenant_id: str, actor: Actor, name: str) -> None:
        """Refused while a DID or another voice menu leads to it."""
        name = name.strip().lower()

        def do(tx: Tx) -> None:
            s = tx.session
            menu = self._menu_row(s, tenant_id, name)
            if menu is None:
                raise NotFound(f"no voice menu {name!r} here", field="name")
            did = self._did_to(s, tenant_id, "ivr", name)
            if did is not None:
                raise Conflict(f"DID {did.number} goes to voice menu {name!r}", field="name")
            used = self._menu_to(s, tenant_id, "ivr", name)
            if used is not None:
                raise Conflict(f"voice menu {used[0].name!r} leads to it ({used[1]})", field="name")
            payload = ivr_menu_payload(menu)
            s.delete(menu)
            self._record(tx, tenant_id, actor, "ivr_menu.deleted", menu.id, payload)

        self._write(tenant_id, do)

    # -- trunks -------------------------------------------------------------------------
    def trunks(self, tenant_id: str) -> list[Trunk]:
        with self.db.read() as s:
            query = select(Trunk).where(Trunk.tenant_id == tenant_id)
            return list(s.scalars(query.order_by(Trunk.name)))

    @staticmethod
    def _check_sources(sources: Iterable[str]) -> list[str]:
        out: list[str] = []
        for raw in sources:
            try:
                out.append(str(ipaddress.ip_address(raw.strip())))
            except ValueError:
                raise InvalidInput(
                    f"{raw!r} is not an IP address", field="allowed_sources"
                ) from None
        if len(out) > 20:
            raise InvalidInput("a trunk has at most 20 source addresses", field="allowed_sources")
        return sorted(set(out))

    def _check_trunk_fields(self, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "host" in values:
            host = str(values["host"]).strip()
            if not HOST_RE.match(host):
                try:
                    host = str(ipaddress.ip_address(host))
                except ValueError:
                    raise InvalidInput(
                        f"host {host!r} is not a host name or IP address", field="host"
                    ) from None
            out["host"] = host
        if "port" in values:
            port = values["port"]
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise InvalidInput("port must be 1-65535", field="port")
            out["port"] = port
        if "transport" in values:
            transport = str(values["transport"]).upper()
            if transport not in TRANSPORTS:
                raise InvalidInput(
                    f"transport must be one of {', '.join(TRANSPORTS)}", field="transport"
                )
            out["transport"] = transport
        if "username" in values:
            username = values["username"]
            if username is not None and not 1 <= len(str(username).strip()) <= 100:
                raise InvalidInput("username must be 1-100 characters", field="username")
            if username is not None:
                check_text(str(username), "username", 100)
            out["username"] = str(username).strip() if username is not None else None
        if "password" in values:
            password = values["password"]
            if password is not None and not 1 <= len(password) <= 128:
                raise InvalidInput("password must be 1-128 characters", field="password")
            if password is not None and "\x00" in password:
                raise InvalidInput("password contains a NUL character", field="password")
            out["password_encrypted"] = self.box.encrypt(password) if password else None
        if "register" in values:
            out["register"] = bool(values["register"])
        if "allowed_sources" in values:
            out["allowed_sources"] = self._check_sources(values["allowed_sources"] or [])
        if "caller_id" in values:
            caller_id = values["caller_id"]
            if caller_id is not None:
                caller_id = normalise_number(caller_id)
                if not DID_RE.match(caller_id):
                    raise InvalidInput(
                        f"caller_id {caller_id!r} must be 3-20 digits, optionally after '+'",
                        field="caller_id",
                    )
            out["caller_id"] = caller_id
        if "max_channels" in values:
            channels = values["max_channels"]
            if not isinstance(channels, int) or not 0 <= channels <= 10_000:
                raise InvalidInput(
                    "max_channels must be 0 (no limit) to 10000", field="max_channels"
                )
            out["max_channels"] = channels
        return out

    def _check_trunk_consistency(self, s: Session, trunk: Trunk) -> None:
        if trunk.register and not (trunk.username and trunk.password_encrypted):
            raise InvalidInput(
                "registering with the carrier needs a username and a password",
                field="register",
            )
        for other in s.scalars(select(Trunk).where(Trunk.id != trunk.id)):
            shared = set(other.allowed_sources or []) & set(trunk.allowed_sources or [])
            if shared:
                raise Conflict(
                    f"{sorted(shared)[0]} already identifies another trunk",
                    field="allowed_sources",
                )

    def do_create_trunk(self, tenant_id: str, actor: Actor, values: dict[str, Any]) -> Trunk:
        name = check_name_id(str(values.get("name", "")), "name")
        if "host" not in values:
            raise InvalidInput("host is required", field="host")
        checked = self._check_trunk_fields(
            {"port": 5060, "transport": "UDP", "max_channels": 0, **values}
        )

        def do(tx: Tx) -> Trunk:
            s = tx.session
            if s.scalar(select(Trunk.id).where(Trunk.tenant_id == tenant_id, Trunk.name == name)):
                raise Conflict(f"trunk {name!r} exists already", field="name")
            trunk = Trunk(
                id=new_id(),
                tenant_id=tenant_id,
                name=name,
                register=False,
                allowed_sources=[],
                created_at=tx.clock.now(),
            )
            for key, value in checked.items():
                setattr(trunk, key, value)
            self._check_trunk_consistency(s, trunk)
            s.add(trunk)
            s.flush()
            self._record(tx, tenant_id, actor, "trunk.created", trunk.id, trunk_payload(trunk))
            return trunk

        result: Trunk = self._write(tenant_id, do)
        self._trunks_changed()
        return result

    def _get_trunk(self, s: Session, tenant_id: str, name: str) -> Trunk:
        trunk = s.scalar(
            select(Trunk).where(Trunk.tenant_id == tenant_id, Trunk.name == name.strip().lower())
        )
        if trunk is None:
            raise NotFound(f"no trunk {name!r} here", field="name")
        return trunk

    def do_update_trunk(
        self, tenant_id: str, actor: Actor, name: str, values: dict[str, Any]
    ) -> Trunk:
        checked = self._check_trunk_fields(values)

        def do(tx: Tx) -> Trunk:
            trunk = self._get_trunk(tx.session, tenant_id, name)
            for key, value in checked.items():
                setattr(trunk, key, value)
            self._check_trunk_consistency(tx.session, trunk)
            tx.session.flush()
            self._record(tx, tenant_id, actor, "trunk.updated", trunk.id, trunk_payload(trunk))
            return trunk

        result: Trunk = self._write(tenant_id, do)
        self._trunks_changed()
        return result

    def do_delete_trunk(self, tenant_id: str, actor: Actor, name: str) -> None:
        def do(tx: Tx) -> None:
            s = tx.session
            trunk = self._get_trunk(s, tenant_id, name)
            rule = s.scalar(
                select(DialRuleRow).where(
                    DialRuleRow.tenant_id == tenant_id, DialRuleRow.trunk_id == trunk.id
                )
            )
            if rule is not None:
                raise Conflict(f"dial rule {rule.name!r} uses trunk {trunk.name!r}", field="name")
            payload = trunk_payload(trunk)
            s.delete(trunk)
            self._record(tx, tenant_id, actor, "trunk.deleted", trunk.id, payload)

        self._write(tenant_id, do)
        self._trunks_changed()

    def _trunks_changed(self) -> None:
        for listener in self.trunk_listeners:
            listener()

    # -- call settings ------------------------------------------------------------------
    def _own_extension(self, s: Session, tenant_id: str, number: str) -> Extension:
        ext = s.scalar(
            select(Extension).where(
                Extension.tenant_id == tenant_id, Extension.number == number.strip()
            )
        )
        if ext is None:
            raise NotFound(f"no extension {number} here", field="number")
        return ext

    def call_settings(self, tenant_id: str, number: str) -> dict[str, Any]:
        with self.db.read() as s:
            ext = self._own_extension(s, tenant_id, number)
            row = s.get(CallSettingsRow, ext.number)
            return call_settings_payload(ext.number, row)

    def do_set_call_settings(
        self, tenant_id: str, actor: Actor, number: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Change the fields given (others keep their values)."""
        checked: dict[str, Any] = {}
        for key in ("forward_always", "forward_busy", "forward_no_answer"):
            if key in values:
                value = values[key]
                if isinstance(value, str) and value.strip().lower() == VOICEMAIL_KEYWORD:
                    checked[key] = VOICEMAIL_KEYWORD  # the extension's own voicemail box
                    continue
                checked[key] = check_dial_target(value, key) if value else None
                if checked[key] == number.strip():
                    raise InvalidInput("an extension cannot forward to itself", field=key)
        for flag in ("dnd", "auto_answer"):
            if flag in values:
                checked[flag] = bool(values[flag])
        if "ring_seconds" in values:
            checked["ring_seconds"] = check_ring_seconds(values["ring_seconds"], "ring_seconds")
        if "follow_me" in values:
            steps = values["follow_me"] or []
            if len(steps) > MAX_FOLLOW_ME:
                raise InvalidInput(f"at most {MAX_FOLLOW_ME} steps", field="follow_me")
            clean: list[dict[str, Any]] = []
            for i, step in enumerate(steps):
                targets = step.get("targets") or []
                if not 1 <= len(targets) <= 10:
                    raise InvalidInput("1-10 targets", field=f"follow_me.{i}.targets")
                clean.append(
                    {
                        "targets": [
                            check_dial_target(t, f"follow_me.{i}.targets") for t in targets
                        ],
                        "ring_seconds": check_ring_seconds(
                            float(step.get("ring_seconds", 20.0)), f"follow_me.{i}.ring_seconds"
                        ),
                    }
                )
            checked["follow_me"] = clean

        def do(tx: Tx) -> dict[str, Any]:
            s = tx.session
            ext = self._own_extension(s, tenant_id, number)
            known = self._extension_numbers(s, tenant_id)
            for key in ("forward_always", "forward_busy", "forward_no_answer"):
                target = checked.get(key)
                # Short numbers are extensions: a typo must not turn into an outbound call.
                if target and target.isdigit() and len(target) <= 6 and target not in known:
                    raise InvalidInput(f"no extension {target} here", field=key)
            row = s.get(CallSettingsRow, ext.number)
            if row is None:
                row = CallSettingsRow(
                    extension=ext.number,
                    tenant_id=tenant_id,
                    dnd=False,
                    ring_seconds=20.0,
                    follow_me=[],
                )
                s.add(row)
            for key, value in checked.items():
                setattr(row, key, value)
            row.updated_at = tx.clock.now()
            s.flush()
            payload = call_settings_payload(ext.number, row)
            self._record(tx, tenant_id, actor, "call_settings.updated", ext.id, payload)
            return payload

        result: dict[str, Any] = self._write(tenant_id, do)
        return result

    # -- blocked numbers ----------------------------------------------------------------
    def blocked(self, tenant_id: str) -> list[BlockedNumber]:
        with self.db.read() as s:
            query = select(BlockedNumber).where(BlockedNumber.tenant_id == tenant_id)
            return list(s.scalars(query.order_by(BlockedNumber.pattern)))

    def do_block(self, tenant_id: str, actor: Actor, pattern: str, note: str = "") -> BlockedNumber:
        given, pattern = pattern, normalise_number(pattern).lower()
        if pattern != "anonymous" and not PATTERN_RE.match(pattern):
            raise InvalidInput(
                f"pattern {given!r} must be a number, a prefix ending in '*' (+1900*), "
                "or 'anonymous'",
                field="pattern",
            )
        check_text(note, "note")

        def do(tx: Tx) -> BlockedNumber:
            s = tx.session
            if s.scalar(
                select(BlockedNumber.id).where(
                    BlockedNumber.tenant_id == tenant_id, BlockedNumber.pattern == pattern
                )
            ):
                raise Conflict(f"{pattern} is blocked already", field="pattern")
            row = BlockedNumber(
                id=new_id(),
                tenant_id=tenant_id,
                pattern=pattern,
                note=note,
                created_at=tx.clock.now(),
            )
            s.add(row)
            s.flush()
            self._record(
                tx, tenant_id, actor, "blocked_number.created", row.id, blocked_payload(row)
            )
            return row

        result: BlockedNumber = self._write(tenant_id, do)
        return result

    def do_unblock(self, tenant_id: str, actor: Actor, pattern_or_id: str) -> None:
        key = pattern_or_id.strip()

        def do(tx: Tx) -> None:
            s = tx.session
            row = s.scalar(
                select(BlockedNumber).where(
                    BlockedNumber.tenant_id == tenant_id,
                    (BlockedNumber.id == key)
                    | (BlockedNumber.pattern == normalise_number(key).lower()),
                )
            )
            if row is None:
                raise NotFound(f"{key} is not blocked", field="pattern")
            payload = blocked_payload(row)
            s.delete(row)
            self._record(tx, tenant_id, actor, "blocked_number.deleted", row.id, payload)

        self._write(tenant_id, do)

    # -- dial rules ---------------------------------------------------------------------
    def dial_rules(self, tenant_id: str) -> list[dict[str, Any]]:
        with self.db.read() as s:
            names = {
                t.id: t.name for t in s.scalars(select(Trunk).where(Trunk.tenant_id == tenant_id))
            }
            query = select(DialRuleRow).where(DialRuleRow.tenant_id == tenant_id)
            rows = s.scalars(query.order_by(DialRuleRow.prefix, DialRuleRow.name))
            return [dial_rule_payload(r, names) for r in rows]

    def do_create_dial_rule(
        self,
        tenant_id: str,
        actor: Actor,
        *,
        name: str,
        prefix: str,
        action: str = "allow",
        trunk: str | None = None,
        emergency: bool = False,
        strip: int = 0,
        prepend: str = "",
    ) -> dict[str, Any]:
        name = check_name_id(name, "name")
        prefix = normalise_number(prefix)
        if not PREFIX_RE.match(prefix):
            raise InvalidInput(
                f"prefix {prefix!r} must be digits (and * #), optionally after '+'; empty "
                "matches every number",
                field="prefix",
            )
        if action not in RULE_ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(RULE_ACTIONS)}", field="action")
        if action == "allow" and not trunk:
            raise InvalidInput("an allow rule names the trunk calls go out on", field="trunk")
        if emergency and (action != "allow" or not prefix):
            raise InvalidInput(
                "an emergency rule allows one exact number (like 112)",
                field="emergency",
            )
        if not 0 <= strip <= 10:
            raise InvalidInput("strip must be 0-10 digits", field="strip")
        if not PREPEND_RE.match(prepend):
            raise InvalidInput(f"prepend {prepend!r} must be digits", field="prepend")

        def do(tx: Tx) -> dict[str, Any]:
            s = tx.session
            if s.scalar(
                select(DialRuleRow.id).where(
                    DialRuleRow.tenant_id == tenant_id, DialRuleRow.name == name
                )
            ):
                raise Conflict(f"dial rule {name!r} exists already", field="name")
            trunk_row = None
            if trunk:
                trunk_row = s.scalar(
                    select(Trunk).where(
                        Trunk.tenant_id == tenant_id, Trunk.name == trunk.strip().lower()
                    )
                )
                if trunk_row is None:
                    raise InvalidInput(f"no trunk {trunk!r} here", field="trunk")
            row = DialRuleRow(
                id=new_id(),
                tenant_id=tenant_id,
                name=name,
                prefix=prefix,
                action=action,
                trunk_id=trunk_row.id if trunk_row else None,
                emergency=emergency,
                strip=strip,
                prepend=prepend,
                created_at=tx.clock.now(),
            )
            s.add(row)
            s.flush()
            names = {trunk_row.id: trunk_row.name} if trunk_row else {}
            payload = dial_rule_payload(row, names)
            self._record(tx, tenant_id, actor, "dial_rule.created", row.id, payload)
            return payload

        result: dict[str, Any] = self._write(tenant_id, do)
        return result

    def do_delete_dial_rule(self, tenant_id: str, actor: Actor, name: str) -> None:
        def do(tx: Tx) -> None:
            s = tx.session
            row = s.scalar(
                select(DialRuleRow).where(
                    DialRuleRow.tenant_id == tenant_id, DialRuleRow.name == name.strip().lower()
                )
            )
            if row is None:
                raise NotFound(f"no dial rule {name!r} here", field="name")
            payload = dial_rule_payload(row, {})
            s.delete(row)
            self._record(tx, tenant_id, actor, "dial_rule.deleted", row.id, payload)

        self._write(tenant_id, do)

    # -- extensions (beside ExtensionService, which owns their credentials) -------------------
    def extension(self, tenant_id: str, number: str) -> Extension:
        with self.db.read() as s:
            return self._own_extension(s, tenant_id, number)

    def do_update_extension(
        self, tenant_id: str, actor: Actor, number: str, display_name: str
    ) -> Extension:
        name = check_text(check_name(display_name, "display_name"), "display_name")

        def do(tx: Tx) -> Extension:
            ext = self._own_extension(tx.session, tenant_id, number)
            ext.display_name = name
            tx.session.flush()
            payload = extension_payload(ext)
            write_audit_txn(
                tx.session,
                tx.clock,
                tenant_id=tenant_id,
                actor=actor,
                action="extension.updated",
                target_type="extension",
                target_id=ext.id,
                details={"number": ext.number, "display_name": name},
            )
            tx.emit(tenant_id, NewEvent("extension.updated", {"extension": payload}))
            return ext

        result: Extension = self._write(tenant_id, do)
        return result

    def do_delete_extension(self, tenant_id: str, actor: Actor, number: str) -> None:
        """Delete an extension and its call settings; refused while a DID, a ring group or a
        voice menu points at it or at its voicemail box. Messages left in its box stay (an
        administrator can still list, download and delete them)."""

        def do(tx: Tx) -> None:
            s = tx.session
            ext = self._own_extension(s, tenant_id, number)
            did = self._did_to(s, tenant_id, "extension", ext.number)
            if did is not None:
                raise Conflict(f"DID {did.number} goes to extension {ext.number}", field="number")
            did = self._did_to(s, tenant_id, "voicemail", ext.number)
            if did is not None:
                raise Conflict(
                    f"DID {did.number} goes to the voicemail box of extension {ext.number}",
                    field="number",
                )
            for group in s.scalars(select(RingGroup).where(RingGroup.tenant_id == tenant_id)):
                if ext.number in (group.members or []) or (
                    group.fallback_kind in ("extension", "voicemail")
                    and group.fallback == ext.number
                ):
                    raise Conflict(
                        f"ring group {group.name!r} rings extension {ext.number} (or falls "
                        "back to its voicemail)",
                        field="number",
                    )
            used = self._menu_to(s, tenant_id, "extension", ext.number)
            if used is not None:
                raise Conflict(
                    f"voice menu {used[0].name!r} leads to extension {ext.number} ({used[1]})",
                    field="number",
                )
            used = self._menu_to(s, tenant_id, "voicemail", ext.number)
            if used is not None:
                raise Conflict(
                    f"voice menu {used[0].name!r} leads to the voicemail box of extension "
                    f"{ext.number} ({used[1]})",
                    field="number",
                )
            s.execute(delete(CallSettingsRow).where(CallSettingsRow.extension == ext.number))
            payload = extension_payload(ext)
            s.delete(ext)
            write_audit_txn(
                tx.session,
                tx.clock,
                tenant_id=tenant_id,
                actor=actor,
                action="extension.deleted",
                target_type="extension",
                target_id=ext.id,
                details={"number": ext.number},
            )
            tx.emit(tenant_id, NewEvent("extension.deleted", {"extension": payload}))

        self._write(tenant_id, do)

    # -- voicemail ----------------------------------------------------------------------------
    def _voicemail_folder(self, tenant_id: str) -> Path:
        if self.voicemail_dir is None:
            raise Unavailable("Voicemail is not set up here (no directory for the recordings).")
        if not FOLDER_RE.match(tenant_id):
            raise InvalidInput(f"{tenant_id!r} is not an organisation id", field="tenant_id")
        return self.voicemail_dir / tenant_id

    def leave_message_sync(
        self,
        route: ToVoicemail,
        *,
        caller: str,
        caller_name: str | None,
        call_id: str,
        wav: bytes,
        seconds: float,
    ) -> str:
        """Store a message: the recording first (a temporary file renamed into place), then
        its row and the event ``voicemail.left`` in one transaction; when the row cannot be
        written the recording is removed again, so nothing is left half written. The id of
        the message."""
        if len(wav) < 44 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
            raise InvalidInput("the recording is not a WAV file", field="wav")
        box = normalise_number(route.box)
        if not box.isdigit() or len(box) > 15:
            raise InvalidInput(f"{route.box!r} is not a voicemail box", field="box")
        folder = self._voicemail_folder(route.tenant_id)
        message_id = new_id()
        name = f"{message_id}.wav"
        folder.mkdir(parents=True, exist_ok=True)
        path, partial = folder / name, folder / f".{name}.part"
        try:
            with open(partial, "wb") as out:
                out.write(wav)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

        def do(tx: Tx) -> dict[str, Any]:
            row = VoicemailRow(
                id=message_id,
                tenant_id=route.tenant_id,
                box=box,
                caller=_header_text(caller, 100) or "anonymous",
                caller_name=_header_text(caller_name or "", 200) or None,
                call_id=_header_text(call_id, 300),
                seconds=round(max(0.0, float(seconds)), 2),
                created_at=tx.clock.now(),
                heard_at=None,
                file=name,
            )
            tx.session.add(row)
            tx.session.flush()
            payload = voicemail_payload(row)
            tx.emit(route.tenant_id, NewEvent("voicemail.left", {"voicemail": payload}))
            return payload

        try:
            with self.db.write() as tx:
                payload = do(tx)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        log.info(
            "voicemail_left",
            box=box,
            message_id=message_id,
            seconds=payload["seconds"],
            call_id=call_id,
        )
        return message_id

    async def leave_message(
        self,
        route: ToVoicemail,
        *,
        caller: str,
        caller_name: str | None,
        call_id: str,
        wav: bytes,
        seconds: float,
    ) -> str:
        """The :class:`~sparklecomm.telephony.pbx.routes.VoicemailStore` protocol: the
        B2BUA's ``voicemail``; the file and SQL work run in the thread pool."""
        return await run_in_threadpool(
            lambda: self.leave_message_sync(
                route,
                caller=caller,
                caller_name=caller_name,
                call_id=call_id,
                wav=wav,
                seconds=seconds,
            )
        )

    @staticmethod
    def _boxes_of(s: Session, tenant_id: str, user_id: str) -> set[str]:
        query = select(Extension.number).where(
            Extension.tenant_id == tenant_id, Extension.user_id == user_id
        )
        return set(s.scalars(query))

    def _message(
        self, s: Session, tenant_id: str, message_id: str, user_id: str | None
    ) -> VoicemailRow:
        row = s.get(VoicemailRow, message_id.strip())
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no voicemail message {message_id!r} here", field="id")
        if user_id is not None and row.box not in self._boxes_of(s, tenant_id, user_id):
            raise PermissionDenied(
                f"voicemail message {message_id!r} is in box {row.box}, which is not yours",
                field="id",
            )
        return row

    def voicemails(
        self, tenant_id: str, *, box: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The messages of the organisation (of ``box`` only, when given), newest first.
        ``user_id``: only the boxes of that person's extensions (asking for another box is
        refused); None: every box."""
        wanted = normalise_number(box) if box else None
        with self.db.read() as s:
            query = select(VoicemailRow).where(VoicemailRow.tenant_id == tenant_id)
            if user_id is not None:
                mine = self._boxes_of(s, tenant_id, user_id)
                if wanted is not None and wanted not in mine:
                    raise PermissionDenied(
                        f"voicemail box {wanted} is not yours (yours: "
                        f"{', '.join(sorted(mine)) or 'none'})",
                        field="box",
                    )
                query = query.where(VoicemailRow.box.in_(sorted(mine)))
            if wanted is not None:
                query = query.where(VoicemailRow.box == wanted)
            query = query.order_by(VoicemailRow.created_at.desc(), VoicemailRow.id)
            return [voicemail_payload(v) for v in s.scalars(query)]

    def voicemail_audio(
        self, tenant_id: str, message_id: str, *, user_id: str | None = None
    ) -> tuple[dict[str, Any], bytes]:
        """A message and its recording (WAV bytes); ``user_id`` as for :meth:`voicemails`."""
        with self.db.read() as s:
            row = self._message(s, tenant_id, message_id, user_id)
            payload, name = voicemail_payload(row), row.file
        path = self._voicemail_folder(tenant_id) / name
        try:
            return payload, path.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"the recording of voicemail message {message_id!r} is missing", field="id"
            ) from None

    def do_mark_heard(
        self, tenant_id: str, message_id: str, *, user_id: str | None = None
    ) -> dict[str, Any]:
        """Mark a message heard (once: a message heard already keeps its time); event
        ``voicemail.heard``."""

        def do(tx: Tx) -> dict[str, Any]:
            row = self._message(tx.session, tenant_id, message_id, user_id)
            if row.heard_at is None:
                row.heard_at = tx.clock.now()
                tx.session.flush()
                payload = voicemail_payload(row)
                tx.emit(tenant_id, NewEvent("voicemail.heard", {"voicemail": payload}))
            return voicemail_payload(row)

        with self.db.write() as tx:
            return do(tx)

    def do_delete_voicemail(
        self, tenant_id: str, actor: Actor, message_id: str, *, user_id: str | None = None
    ) -> None:
        """Delete a message: its row (audited, event ``voicemail.deleted``), then its
        recording."""

        def do(tx: Tx) -> str:
            row = self._message(tx.session, tenant_id, message_id, user_id)
            payload = voicemail_payload(row)
            tx.session.delete(row)
            write_audit_txn(
                tx.session,
                tx.clock,
                tenant_id=tenant_id,
                actor=actor,
                action="voicemail.deleted",
                target_type="voicemail",
                target_id=row.id,
                details={"box": row.box, "caller": row.caller, "seconds": row.seconds},
            )
            tx.emit(tenant_id, NewEvent("voicemail.deleted", {"voicemail": payload}))
            return row.file

        with self.db.write() as tx:
            name = do(tx)
        if self.voicemail_dir is not None:
            path = self._voicemail_folder(tenant_id) / name
            try:
                path.unlink(missing_ok=True)
            except OSError as error:  # the row is gone; the file is only disk space now
                log.error("voicemail_file_not_removed", path=str(path), error=str(error))


def _header_text(value: str, max_length: int) -> str:
    """Text taken from a caller's SIP headers, made safe to store: no control characters,
    at most ``max_length`` characters."""
    return CONTROL_RE.sub("", value).strip()[:max_length]
