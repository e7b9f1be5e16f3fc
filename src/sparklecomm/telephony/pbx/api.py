"""HTTP routes of the PBX: extensions, DIDs, business hours, ring groups, voice menus (IVR),
trunks, call settings, blocked numbers, dial rules and voicemail, under
``/api/v1/telephony``.

Supervisors read, administrators change. Every change is audited and appears on the event
stream (``pbx.did.created`` ...). A trunk's password is write-only. Voicemail is for
everyone: supervisors and administrators reach every box of the organisation, other users
the boxes of their own extensions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from sparklecomm.api.deps import Admin, CurrentPrincipal, ServicesDep, Supervisor
from sparklecomm.auth.service import Principal
from sparklecomm.container import Services
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, Unavailable
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.call_directory import CallDirectory, check_reached, may_hang_up
from sparklecomm.telephony.call_recording import control_recording
from sparklecomm.telephony.calls import OriginateRefused
from sparklecomm.telephony.extensions import ExtensionService, extension_payload
from sparklecomm.telephony.pbx.dialplan import (
    DEFAULT_INVALID_PROMPT,
    DIALLABLE_RE,
    normalise_number,
)
from sparklecomm.telephony.pbx.service import (
    PbxService,
    blocked_payload,
    did_payload,
    hours_payload,
    ivr_menu_payload,
    ring_group_payload,
    trunk_payload,
)

#: The download's media type (8 kHz mono 16-bit PCM in a WAV file).
WAV = "audio/wav"

router = APIRouter(prefix="/api/v1/telephony", tags=["telephony"])
Number = Annotated[str, Path(min_length=1, max_length=40, description="A phone number")]
Name = Annotated[str, Path(min_length=1, max_length=60)]
CallId = Annotated[str, Path(min_length=1, max_length=64, description="A call's id")]
Scalar = str | int | float | bool


def pbx(svc: Services) -> PbxService:
    service: PbxService = svc.extra["pbx"]
    return service


def extensions(svc: Services) -> ExtensionService:
    service: ExtensionService = svc.extra["extensions"]
    return service


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- extensions ------------------------------------------------------------------------------
class ExtensionIn(Strict):
    number: str = Field(max_length=15, description="2-15 digits; the SIP login")
    password: str = Field(max_length=128, description="SIP password (at least 10 characters)")
    display_name: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=32)


class ExtensionPatch(Strict):
    display_name: str = Field(max_length=200)


class PasswordIn(Strict):
    password: str = Field(max_length=128)


@router.get("/extensions")
def list_extensions(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    """The organisation's extensions (never their credentials)."""
    return [extension_payload(e) for e in extensions(svc).list(principal.tenant_id)]


@router.post("/extensions", status_code=201)
def create_extension(body: ExtensionIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    ext = extensions(svc).do_create(
        principal.tenant_id,
        principal.actor,
        number=body.number,
        password=body.password,
        display_name=body.display_name,
        user_id=body.user_id,
    )
    pbx(svc).invalidate(principal.tenant_id)
    return extension_payload(ext)


@router.patch("/extensions/{number}")
def update_extension(
    number: Number, body: ExtensionPatch, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    ext = pbx(svc).do_update_extension(
        principal.tenant_id, principal.actor, number, body.display_name
    )
    return extension_payload(ext)


@router.delete("/extensions/{number}", status_code=204)
def delete_extension(number: Number, principal: Admin, svc: ServicesDep) -> Response:
    """Refused (409) while a DID, a ring group or a voice menu points at the extension."""
    pbx(svc).do_delete_extension(principal.tenant_id, principal.actor, number)
    return Response(status_code=204)


@router.put("/extensions/{number}/password", status_code=204)
def set_extension_password(
    number: Number, body: PasswordIn, principal: Admin, svc: ServicesDep
) -> Response:
    ext = pbx(svc).extension(principal.tenant_id, number)  # 404 unless it is ours
    extensions(svc).do_set_password(ext.number, body.password, principal.actor)
    return Response(status_code=204)


# -- call settings ---------------------------------------------------------------------------
class FollowMeStepIn(Strict):
    targets: list[str] = Field(max_length=10, description="Extensions or external numbers")
    ring_seconds: float = Field(default=20.0, description="5-300")


class CallSettingsIn(Strict):
    """Only the fields sent change; ``null`` clears a forward."""

    dnd: bool | None = None
    forward_always: str | None = Field(default=None, max_length=40)
    forward_busy: str | None = Field(default=None, max_length=40)
    forward_no_answer: str | None = Field(default=None, max_length=40)
    ring_seconds: float | None = Field(default=None, description="Own ring time, 5-300 s")
    follow_me: list[FollowMeStepIn] | None = Field(default=None, max_length=10)
    auto_answer: bool | None = Field(
        default=None,
        description="The phones answer by themselves when rung for their agent (queue calls, "
        "consultations, callbacks, click-to-dial): for agents on a headset",
    )


@router.get("/extensions/{number}/call-settings")
def get_call_settings(number: Number, principal: Supervisor, svc: ServicesDep) -> dict[str, Any]:
    return pbx(svc).call_settings(principal.tenant_id, number)


@router.put("/extensions/{number}/call-settings")
def set_call_settings(
    number: Number, body: CallSettingsIn, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    """DND, forwarding (unconditional, busy, no answer), the follow-me sequence and
    auto-answer for the agent's calls."""
    values = body.model_dump(exclude_unset=True)
    for flag in ("dnd", "auto_answer"):
        if values.get(flag) is None:
            values.pop(flag, None)
    if values.get("ring_seconds") is None:
        values.pop("ring_seconds", None)
    return pbx(svc).do_set_call_settings(principal.tenant_id, principal.actor, number, values)


# -- DIDs ------------------------------------------------------------------------------------
class DidIn(Strict):
    number: str = Field(max_length=40, description="The inbound number, e.g. +4930123456")
    destination: str = Field(
        max_length=120,
        description="extension:1001, ring_group:sales, queue:support, ivr:main (a voice "
        "menu), voicemail:1001 (an extension's voicemail box) or reject",
    )
    attributes: dict[str, Scalar] = Field(
        default_factory=dict, description="Interaction attributes for the ACD (campaign ...)"
    )
    description: str = Field(default="", max_length=200)
    hours: str | None = Field(
        default=None, max_length=50, description="Business hours (by name) the DID follows"
    )
    closed_destination: str | None = Field(
        default=None,
        max_length=120,
        description="Where calls go while the business hours are closed (same forms as "
        "destination); unset: the caller gets 480 (closed)",
    )


class DidPatch(Strict):
    destination: str | None = Field(default=None, max_length=120)
    attributes: dict[str, Scalar] | None = None
    description: str | None = Field(default=None, max_length=200)
    hours: str | None = Field(default=None, max_length=50, description='"" stops following')
    closed_destination: str | None = Field(
        default=None, max_length=120, description='"": the caller gets 480 while closed'
    )


@router.get("/dids")
def list_dids(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    return [did_payload(d) for d in pbx(svc).dids(principal.tenant_id)]


@router.post("/dids", status_code=201)
def create_did(body: DidIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    did = pbx(svc).do_create_did(
        principal.tenant_id,
        principal.actor,
        number=body.number,
        destination=body.destination,
        attributes=body.attributes,
        description=body.description,
        hours=body.hours,
        closed_destination=body.closed_destination,
    )
    return did_payload(did)


@router.patch("/dids/{number}")
def update_did(
    number: Number, body: DidPatch, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    did = pbx(svc).do_update_did(
        principal.tenant_id,
        principal.actor,
        number,
        destination=body.destination,
        attributes=body.attributes,
        description=body.description,
        hours=body.hours,
        closed_destination=body.closed_destination,
    )
    return did_payload(did)


@router.delete("/dids/{number}", status_code=204)
def delete_did(number: Number, principal: Admin, svc: ServicesDep) -> Response:
    pbx(svc).do_delete_did(principal.tenant_id, principal.actor, number)
    return Response(status_code=204)


# -- business hours --------------------------------------------------------------------------
class BusinessHoursBody(Strict):
    timezone: str = Field(max_length=64, description="IANA time zone, e.g. Europe/Berlin")
    weekly: dict[str, Any] = Field(
        description='Opening ranges per day (mon … sun), e.g. {"mon": ["08:00-18:00"]}; a day '
        "left out is closed; an end not after the start runs past midnight"
    )
    exceptions: list[dict[str, Any]] = Field(
        default_factory=list,
        description='Dated exceptions: {"date": "2026-12-25", "name": "Christmas"} (closed) '
        'or with "hours": ["09:00-12:00"]',
    )
    description: str = Field(default="", max_length=200)


class BusinessHoursIn(BusinessHoursBody):
    name: str = Field(max_length=50)


class BusinessHoursPatch(Strict):
    timezone: str | None = Field(default=None, max_length=64)
    weekly: dict[str, Any] | None = None
    exceptions: list[dict[str, Any]] | None = None
    description: str | None = Field(default=None, max_length=200)


@router.get("/business-hours")
def list_business_hours(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    """Every business hours of the organisation, with ``open_now`` and ``next_change``."""
    now = svc.clock.now()
    return [hours_payload(h, now) for h in pbx(svc).business_hours(principal.tenant_id)]


@router.post("/business-hours", status_code=201)
def create_business_hours(
    body: BusinessHoursIn, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    row = pbx(svc).do_create_business_hours(
        principal.tenant_id, principal.actor, **body.model_dump()
    )
    return hours_payload(row, svc.clock.now())


@router.get("/business-hours/{name}")
def get_business_hours(name: Name, principal: Supervisor, svc: ServicesDep) -> dict[str, Any]:
    row = pbx(svc).get_business_hours(principal.tenant_id, name)
    return hours_payload(row, svc.clock.now())


@router.patch("/business-hours/{name}")
def update_business_hours(
    name: Name, body: BusinessHoursPatch, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    row = pbx(svc).do_update_business_hours(
        principal.tenant_id, principal.actor, name, **body.model_dump()
    )
    return hours_payload(row, svc.clock.now())


@router.delete("/business-hours/{name}", status_code=204)
def delete_business_hours(name: Name, principal: Admin, svc: ServicesDep) -> Response:
    pbx(svc).do_delete_business_hours(principal.tenant_id, principal.actor, name)
    return Response(status_code=204)


# -- ring groups -----------------------------------------------------------------------------
class RingGroupBody(Strict):
    members: list[str] = Field(max_length=50, description="Extension numbers, in order")
    mode: Literal["simultaneous", "sequential"] = "simultaneous"
    ring_seconds: float = Field(default=20.0, description="Per step: 5-300 s")
    fallback: str = Field(
        default="reject", max_length=120, description="extension:N, ring_group:NAME or reject"
    )


class RingGroupIn(RingGroupBody):
    name: str = Field(max_length=50)


@router.get("/ring-groups")
def list_ring_groups(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    return [ring_group_payload(g) for g in pbx(svc).ring_groups(principal.tenant_id)]


@router.post("/ring-groups", status_code=201)
def create_ring_group(body: RingGroupIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    group = pbx(svc).do_save_ring_group(
        principal.tenant_id, principal.actor, **body.model_dump(), create=True
    )
    return ring_group_payload(group)


@router.put("/ring-groups/{name}")
def replace_ring_group(
    name: Name, body: RingGroupBody, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    group = pbx(svc).do_save_ring_group(
        principal.tenant_id, principal.actor, name=name, **body.model_dump(), create=False
    )
    return ring_group_payload(group)


@router.delete("/ring-groups/{name}", status_code=204)
def delete_ring_group(name: Name, principal: Admin, svc: ServicesDep) -> Response:
    pbx(svc).do_delete_ring_group(principal.tenant_id, principal.actor, name)
    return Response(status_code=204)


# -- voice menus (IVR) -----------------------------------------------------------------------
class IvrMenuBody(Strict):
    prompt: str = Field(max_length=1000, description="What the caller hears (spoken), 1-1000")
    options: dict[str, str] = Field(
        description='Key → destination: {"1": "queue:sales", "2": "ivr:billing"}; keys 0-9, * '
        "and #; destinations extension:N, ring_group:NAME, queue:ID, ivr:NAME, "
        "voicemail:N, number:N, reject"
    )
    timeout_seconds: float = Field(default=5.0, description="Wait for a key, 1-60 s")
    attempts: int = Field(default=3, description="Times the menu is played at most, 1-10")
    invalid_prompt: str = Field(
        default=DEFAULT_INVALID_PROMPT,
        max_length=1000,
        description="Spoken after a wrong key or none, before the menu again",
    )
    default: str = Field(
        default="reject",
        max_length=120,
        description="Where a caller goes who pressed no valid key after the last attempt",
    )


class IvrMenuIn(IvrMenuBody):
    name: str = Field(max_length=50)


@router.get("/ivr-menus")
def list_ivr_menus(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    """The organisation's voice menus."""
    return [ivr_menu_payload(m) for m in pbx(svc).ivr_menus(principal.tenant_id)]


@router.post("/ivr-menus", status_code=201)
def create_ivr_menu(body: IvrMenuIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    """Create a voice menu (409 when the name is taken)."""
    menu = pbx(svc).do_save_ivr_menu(
        principal.tenant_id, principal.actor, **body.model_dump(), create=True
    )
    return ivr_menu_payload(menu)


@router.get("/ivr-menus/{name}")
def get_ivr_menu(name: Name, principal: Supervisor, svc: ServicesDep) -> dict[str, Any]:
    return ivr_menu_payload(pbx(svc).ivr_menu(principal.tenant_id, name))


@router.put("/ivr-menus/{name}")
def put_ivr_menu(
    name: Name, body: IvrMenuBody, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    """Create the voice menu ``name`` or replace all its settings."""
    menu = pbx(svc).do_save_ivr_menu(
        principal.tenant_id, principal.actor, name=name, **body.model_dump(), create=None
    )
    return ivr_menu_payload(menu)


@router.delete("/ivr-menus/{name}", status_code=204)
def delete_ivr_menu(name: Name, principal: Admin, svc: ServicesDep) -> Response:
    """Refused (409) while a DID or another voice menu leads to it."""
    pbx(svc).do_delete_ivr_menu(principal.tenant_id, principal.actor, name)
    return Response(status_code=204)


# -- trunks ----------------------------------------------------------------------------------
class TrunkPatch(Strict):
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    transport: Literal["UDP", "TCP", "TLS"] | None = None
    username: str | None = Field(default=None, max_length=100)
    password: str | None = Field(
        default=None, max_length=128, description="Write-only: never returned"
    )
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    register_: bool | None = Field(
        default=None, alias="register", description="REGISTER with the carrier"
    )
    allowed_sources: list[str] | None = Field(
        default=None, max_length=20, description="IP addresses inbound calls may come from"
    )
    caller_id: str | None = Field(default=None, max_length=40)
    max_channels: int | None = Field(default=None, ge=0, le=10_000, description="0: no limit")


class TrunkIn(TrunkPatch):
    name: str = Field(max_length=50)
    host: str = Field(max_length=255)


@router.get("/trunks")
def list_trunks(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    """Carrier trunks; ``password_set`` tells whether a password is stored."""
    return [trunk_payload(t) for t in pbx(svc).trunks(principal.tenant_id)]


@router.post("/trunks", status_code=201)
def create_trunk(body: TrunkIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True, by_alias=True)
    trunk = pbx(svc).do_create_trunk(principal.tenant_id, principal.actor, values)
    return trunk_payload(trunk)


@router.patch("/trunks/{name}")
def update_trunk(
    name: Name, body: TrunkPatch, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True, by_alias=True)
    for key in ("host", "port", "transport", "register", "max_channels"):
        if key in values and values[key] is None:
            del values[key]
    trunk = pbx(svc).do_update_trunk(principal.tenant_id, principal.actor, name, values)
    return trunk_payload(trunk)


@router.delete("/trunks/{name}", status_code=204)
def delete_trunk(name: Name, principal: Admin, svc: ServicesDep) -> Response:
    pbx(svc).do_delete_trunk(principal.tenant_id, principal.actor, name)
    return Response(status_code=204)


# -- blocked numbers -------------------------------------------------------------------------
class BlockedIn(Strict):
    pattern: str = Field(
        max_length=40, description="A number, a prefix ending in '*' (+1900*) or 'anonymous'"
    )
    note: str = Field(default="", max_length=200)


@router.get("/blocked-numbers")
def list_blocked(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    return [blocked_payload(b) for b in pbx(svc).blocked(principal.tenant_id)]


@router.post("/blocked-numbers", status_code=201)
def block_number(body: BlockedIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    row = pbx(svc).do_block(principal.tenant_id, principal.actor, body.pattern, body.note)
    return blocked_payload(row)


@router.delete("/blocked-numbers/{pattern}", status_code=204)
def unblock_number(
    pattern: Annotated[str, Path(min_length=1, max_length=40, description="Pattern or id")],
    principal: Admin,
    svc: ServicesDep,
) -> Response:
    pbx(svc).do_unblock(principal.tenant_id, principal.actor, pattern)
    return Response(status_code=204)


# -- dial rules ------------------------------------------------------------------------------
class DialRuleIn(Strict):
    name: str = Field(max_length=50)
    prefix: str = Field(
        max_length=32, description="Numbers starting with this; '' matches every number"
    )
    action: Literal["allow", "deny"] = "allow"
    trunk: str | None = Field(default=None, max_length=50, description="Trunk name (allow)")
    emergency: bool = Field(default=False, description="An exact emergency number (112)")
    strip: int = Field(default=0, ge=0, le=10, description="Digits removed from the front")
    prepend: str = Field(default="", max_length=16, description="Digits put in front")


@router.get("/dial-rules")
def list_dial_rules(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    """Outbound rules: the longest matching prefix decides; no rule, no outbound call."""
    return pbx(svc).dial_rules(principal.tenant_id)


@router.post("/dial-rules", status_code=201)
def create_dial_rule(body: DialRuleIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    return pbx(svc).do_create_dial_rule(principal.tenant_id, principal.actor, **body.model_dump())


@router.delete("/dial-rules/{name}", status_code=204)
def delete_dial_rule(name: Name, principal: Admin, svc: ServicesDep) -> Response:
    pbx(svc).do_delete_dial_rule(principal.tenant_id, principal.actor, name)
    return Response(status_code=204)


# -- voicemail -------------------------------------------------------------------------------
MessageId = Annotated[str, Path(min_length=1, max_length=32, description="A message's id")]


def _owner(principal: Principal) -> str | None:
    """Whose boxes the principal reaches: None for supervisors and administrators (every
    box of the organisation), else their own user id (the boxes of their extensions)."""
    return None if principal.has_role("supervisor") else principal.user_id


@router.get("/voicemail")
def list_voicemail(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    box: Annotated[
        str | None,
        Query(max_length=15, description="Only this box (an extension's number)"),
    ] = None,
) -> list[dict[str, Any]]:
    """Voicemail messages, newest first: ``id``, ``box``, ``caller``, ``caller_name``,
    ``seconds``, ``created_at``, ``heard`` (and ``heard_at``). Supervisors and
    administrators see every box of the organisation; other users the boxes of the
    extensions that are theirs (403 for another ``box``)."""
    return pbx(svc).voicemails(principal.tenant_id, box=box, user_id=_owner(principal))


@router.get(
    "/voicemail/{message_id}/audio",
    response_class=Response,
    responses={200: {"content": {WAV: {}}, "description": "The recording (WAV)"}},
)
def voicemail_audio(
    message_id: MessageId, principal: CurrentPrincipal, svc: ServicesDep
) -> Response:
    """Download a message's recording (8 kHz mono WAV). 404 for an unknown id, 403 for a
    message in someone else's box."""
    message, audio = pbx(svc).voicemail_audio(
        principal.tenant_id, message_id, user_id=_owner(principal)
    )
    name = f"voicemail-{message['box']}-{message['id']}.wav"
    return Response(
        content=audio,
        media_type=WAV,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/voicemail/{message_id}/heard")
def mark_voicemail_heard(
    message_id: MessageId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """Mark a message heard (it stays until deleted)."""
    return pbx(svc).do_mark_heard(principal.tenant_id, message_id, user_id=_owner(principal))


@router.delete("/voicemail/{message_id}", status_code=204)
def delete_voicemail(
    message_id: MessageId, principal: CurrentPrincipal, svc: ServicesDep
) -> Response:
    """Delete a message and its recording."""
    pbx(svc).do_delete_voicemail(
        principal.tenant_id, principal.actor, message_id, user_id=_owner(principal)
    )
    return Response(status_code=204)


# -- calls placed by the platform (click-to-dial) ---------------------------------------------
class CallIn(Strict):
    to: str = Field(
        min_length=1,
        max_length=40,
        description="An extension of the organisation or an external number (+4930...)",
    )
    queue_id: str | None = Field(
        default=None,
        max_length=64,
        description="For a logged-in agent: the queue the call is reported under (its "
        "wrap-up applies). Default: the agent's first voice queue",
    )
    customer_id: str | None = Field(
        default=None, max_length=100, description="The customer called, for their history"
    )


@router.post("/calls", status_code=202)
async def place_call(body: CallIn, principal: CurrentPrincipal, svc: ServicesDep) -> dict[str, Any]:
    """Click-to-dial: ring the signed-in user's phones (the extensions whose ``user_id`` is
    theirs); when one answers, dial ``to`` as that extension would (the dial plan's rules,
    an external number only through a dial rule's trunk). 202 with the call's id once the
    phones ring; what happens next comes as ``call.*`` events (``originated: true``).
    For a logged-in agent the call is an outbound interaction (``interaction_id``): they
    are busy until it ends and wrap up after it; 409 when they have an offer ringing or are
    on a call already. 422 (field ``to``) when the dial plan refuses the number, 409
    without a registered phone, 503 when this node runs no SIP server."""
    number = normalise_number(body.to)
    if not DIALLABLE_RE.match(number):
        raise InvalidInput(
            "to must be an extension or a phone number (digits, a leading +, * and #).",
            field="to",
        )
    phones = svc.extra.get("agent_phones")
    if phones is None:
        raise Unavailable("Calls cannot be placed: the SIP server is not running here.")
    outbound = svc.extra.get("outbound_calls")
    interaction_id: str | None = None
    try:
        if outbound is not None:
            call, interaction_id = await outbound.place(
                principal.tenant_id,
                principal.user_id,
                number,
                queue_id=body.queue_id,
                customer_id=body.customer_id,
            )
        else:
            call = await phones.place_call(principal.tenant_id, principal.user_id, number)
    except OriginateRefused as refused:
        if refused.kind == "dial_plan":
            raise InvalidInput(
                f"{number} cannot be dialled: {refused.reason} ({refused.status}).", field="to"
            ) from None
        if refused.kind == "no_phone":
            raise Conflict(
                "You have no registered phone: register a phone on your extension first.",
                field="to",
            ) from None
        raise Unavailable(f"Calls cannot be placed: {refused.reason}.") from None
    return {
        "call_id": call.id,
        "to": number,
        "state": "ringing_agent",
        "interaction_id": interaction_id,
    }


@router.delete("/calls/{call_id}", status_code=204)
async def cancel_call(call_id: CallId, principal: CurrentPrincipal, svc: ServicesDep) -> Response:
    """Hang up a call the platform placed for you (while your phone or the number rings, or
    during the conversation); supervisors may hang up anyone's. A placed call that was an
    outbound interaction then completes (wrap-up follows). With several nodes (Redis), any
    node hangs up a call another node placed: the request goes to that node. 404 for a call
    no node holds for you (ended already, or someone else's); 503 without a SIP server (on
    a single node), or when the node holding the call does not answer."""
    phones: SipAgentPhones | None = svc.extra.get("agent_phones")
    directory: CallDirectory | None = svc.extra.get("call_directory")
    if phones is None and directory is None:
        raise Unavailable("No calls here: the SIP server is not running on this node.")
    supervisor = principal.has_role("supervisor")
    call = phones.manager.calls.get(call_id) if phones is not None else None
    if phones is not None and call is not None:  # held here: decided here
        if not may_hang_up(call, principal.tenant_id, principal.user_id, supervisor):
            raise _no_call(call_id)
        phones.hang_up(call, "cancelled")
        return Response(status_code=204)
    if directory is None:
        raise _no_call(call_id)
    outcome = await directory.hang_up(
        call_id, tenant_id=principal.tenant_id, user_id=principal.user_id, supervisor=supervisor
    )
    if outcome == "hung_up":
        return Response(status_code=204)
    check_reached(outcome, call_id)
    raise _no_call(call_id)


def _no_call(call_id: str) -> NotFound:
    return NotFound(f"No call {call_id!r} placed for you is in progress.", field="call_id")


# -- recording a call going on ------------------------------------------------------------------
class RecordingActionIn(Strict):
    action: Literal["start", "pause", "resume", "stop"] = Field(
        description="start recording, pause it (the paused span is silence in the file), "
        "resume it, or stop it"
    )


@router.get("/calls/{call_id}/recording")
async def call_recording_state(
    call_id: CallId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """Whether a call going on is being recorded: ``state`` is ``off``, ``recording`` or
    ``paused``, with the ``recording_id`` and the ``seconds`` recorded so far. For the
    agent on the call (or the user of one of its extensions) and supervisors; 404
    otherwise."""
    return await control_recording(
        svc.extra,
        call_id,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        supervisor=principal.has_role("supervisor"),
        action="state",
    )


@router.post("/calls/{call_id}/recording")
async def control_call_recording(
    call_id: CallId, body: RecordingActionIn, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """Start, pause, resume or stop recording an answered call going on (whatever the
    company's recording rules said). The agent on the call, the user of one of its
    extensions, or a supervisor. Answers the new state (see the GET). Pausing a paused
    recording or starting a running one changes nothing; 409 to pause or stop a call that
    is not recorded, or to record one that is not answered yet or whose media does not
    pass through the platform; with several nodes, any node takes the request."""
    return await control_recording(
        svc.extra,
        call_id,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        supervisor=principal.has_role("supervisor"),
        action=body.action,
    )
