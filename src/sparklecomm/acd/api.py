"""HTTP routes of the routing engine: queues, agents, states and interactions.

Views stay thin: parse, check who may act, call :class:`AcdService.execute` or read a
snapshot. Agents act for themselves; supervisors and admins may act for any agent of their
organisation (and such changes are audited); admins configure queues and agents.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from sparklecomm.acd.model import Channel, Strategy
from sparklecomm.acd.persistence import agent_config_to_dict, queue_config_to_dict
from sparklecomm.acd.service import AcdService, AuditNote
from sparklecomm.acd.views import InteractionSnapshot
from sparklecomm.api.deps import Admin, CurrentPrincipal, ServicesDep, Supervisor
from sparklecomm.auth.service import Principal
from sparklecomm.container import Services
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sparklecomm.core.ids import new_id
from sparklecomm.telephony.agent_phones import SipAgentPhones
from sparklecomm.telephony.call_directory import CallDirectory, check_reached
from sparklecomm.telephony.call_recording import control_recording

router = APIRouter(prefix="/api/v1", tags=["routing"])
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
QueueId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_RE.pattern)]
AnyId = Annotated[str, Path(min_length=1, max_length=64)]
Reason = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


def acd(svc: Services) -> AcdService:
    service: AcdService = svc.extra["acd"]
    return service


# ---- schemas -------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberIn(Strict):
    agent_id: str = Field(min_length=1, max_length=64)
    penalty: int = Field(default=0, ge=0, le=100)
    weight: int = Field(default=1, ge=1, le=100)


class RelaxationIn(Strict):
    after_seconds: float = Field(ge=0, le=86400)
    max_penalty: int | None = Field(default=None, ge=0, le=100)
    lower_levels: int = Field(default=0, ge=0, le=4)
    add_queue_id: str | None = Field(default=None, max_length=64)


class DiversionIn(Strict):
    queue_id: str | None = Field(default=None, max_length=64)
    divert_to: str | None = Field(default=None, max_length=100)


class CallbackPolicyIn(Strict):
    enabled: bool = True
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_delay_seconds: float = Field(default=300, ge=0, le=86400)
    max_delay_seconds: float = Field(default=7 * 86400, ge=0, le=90 * 86400)


class WaitingIn(Strict):
    """What voice callers hear while they wait (docs/telephony.md "While callers wait")."""

    music_on_hold: bool = Field(
        default=False,
        description="Music on hold and spoken announcements (early media) instead of ringback",
    )
    announce_every_seconds: float | None = Field(
        default=60, ge=10, le=3600, description="How often the announcement repeats; null: once"
    )
    announce_position: bool = Field(default=True, description="Say the caller's place in line")
    announce_wait: bool = Field(default=True, description="Say the expected wait")
    callback_key: str | None = Field(
        default=None,
        pattern=r"^[0-9*#]$",
        description="The key a caller presses to be called back, keeping their place in line "
        "(the queue must offer callbacks)",
    )


class SurveyIn(Strict):
    """The post-call survey of voice callers (docs/telephony.md "Post-call survey")."""

    enabled: bool = Field(
        default=False, description="Ask the caller to rate the call when the agent hangs up"
    )
    max_score: int = Field(default=5, ge=2, le=10, description="The scale: 1 to max_score")
    question: str = Field(
        default="", max_length=400, description="What the caller hears; empty: a question "
        "naming the scale"
    )  # fmt: skip
    thanks: str = Field(
        default="Thank you for your feedback. Goodbye.", min_length=1, max_length=200
    )


class PriorityRuleIn(Strict):
    attribute: str = Field(min_length=1, max_length=50)
    value: str | int | float | bool
    boost: int = Field(ge=-10, le=10)


class QueueIn(Strict):
    """A queue's configuration. Omitted fields take the defaults of docs/routing.md."""

    name: str = Field(min_length=1, max_length=100)
    strategy: Strategy = Strategy.LONGEST_IDLE
    channels: list[Channel] | None = None
    members: list[MemberIn] = []
    member_expression: str | None = Field(default=None, max_length=500)
    member_expression_penalty: int = Field(default=0, ge=0, le=100)
    member_expression_weight: int = Field(default=1, ge=1, le=100)
    best_skill: str | None = Field(default=None, max_length=50)
    service_level_seconds: float = Field(default=20, gt=0, le=3600)
    offer_timeout_seconds: float = Field(default=20, gt=0, le=600)
    wrapup_seconds: float | None = Field(
        default=0,
        ge=0,
        le=3600,
        description="After-interaction work in seconds (0: none); null: until the agent ends it",
    )
    reoffer_delay_seconds: float = Field(
        default=10,
        ge=0,
        le=86400,
        description="How long an agent who rejected or missed an interaction is not offered it",
    )
    weight: float = Field(default=0, ge=-1000, le=1000)
    ageing_rate: float = Field(default=1, ge=0, le=100)
    initial_max_penalty: int | None = Field(default=None, ge=0, le=100)
    relaxation: list[RelaxationIn] = []
    max_wait_seconds: float | None = Field(default=None, gt=0, le=86400)
    on_max_wait: DiversionIn | None = None
    max_length: int | None = Field(default=None, ge=1, le=100000)
    on_full: DiversionIn | None = None
    ewt_threshold_seconds: float | None = Field(default=None, gt=0, le=86400)
    on_ewt: DiversionIn | None = None
    max_waiting_per_agent: float | None = Field(default=None, ge=0, le=100000)
    on_ratio: DiversionIn | None = None
    join_when_empty: bool = True
    leave_when_empty: bool = False
    on_empty: DiversionIn | None = None
    hours: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Business hours the queue keeps (GET /telephony/business-hours); while "
        "they are closed, new contacts go on_closed",
    )
    on_closed: DiversionIn | None = None
    default_handle_seconds: float = Field(
        default=180, ge=0, le=86400, description="Handle time assumed for EWT before any is seen"
    )
    callback: CallbackPolicyIn | None = None
    priority_rules: list[PriorityRuleIn] = []
    waiting: WaitingIn | None = None
    survey: SurveyIn | None = None


class QueueCreate(QueueIn):
    id: str | None = Field(
        default=None,
        max_length=64,
        pattern=ID_RE.pattern,
        description="Readable id such as 'support'; generated when omitted",
    )


class QueueUpdate(QueueIn):
    """Everything ``GET /queues/{id}/config`` returns, so a client can change one field and
    send the whole configuration back."""

    id: str | None = Field(
        default=None, max_length=64, description="Must match the path when given (as GET returns)"
    )


class AgentIn(Strict):
    skills: dict[str, int] = Field(default_factory=dict, description="skill -> proficiency 1-5")
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)
    capacity: dict[Channel, int] | None = Field(
        default=None, description="per channel, e.g. {'voice': 1, 'chat': 3}"
    )
    voice_blocks_other_channels: bool = True


class StateIn(Strict):
    state: Literal["available", "break"]
    reason: Reason | None = None


class LogoutIn(Strict):
    reason: Reason = "logout"


class InteractionCreate(Strict):
    queue_id: str = Field(min_length=1, max_length=64)
    channel: Channel = Channel.VOICE
    id: str | None = Field(default=None, max_length=64, pattern=ID_RE.pattern)
    priority: int = Field(default=0, ge=-10, le=10)
    required_skills: str = Field(default="", max_length=500)
    customer_id: str | None = Field(default=None, max_length=100)
    attributes: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class ActAs(Strict):
    agent_id: str | None = Field(
        default=None, max_length=64, description="Default: the signed-in user"
    )


class OutboundIn(ActAs):
    queue_id: str | None = Field(
        default=None,
        max_length=64,
        description="The queue it is reported under (wrap-up too). Default: the agent's "
        "first queue that takes the channel",
    )
    channel: Channel = Channel.VOICE
    id: str | None = Field(default=None, max_length=64, pattern=ID_RE.pattern)
    customer_id: str | None = Field(default=None, max_length=100)
    attributes: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class RejectIn(ActAs):
    reason: Reason = "rejected"


class CompleteIn(ActAs):
    disposition: str | None = Field(default=None, max_length=100)


class TransferIn(ActAs):
    to_agent_id: str | None = Field(default=None, max_length=64)
    to_queue_id: str | None = Field(default=None, max_length=64)
    priority: int | None = Field(default=None, ge=-10, le=10)


class TransferToNumberIn(ActAs):
    to_number: str = Field(
        min_length=1,
        max_length=33,
        pattern=r"^\+?[0-9*#]{1,32}$",
        description="An extension, a ring group's or a DID's number, or an outside number a "
        "dial rule allows: dialled with the agent's extension's rights",
    )


class TargetIn(ActAs):
    target_agent_id: str = Field(min_length=1, max_length=64)


class AbandonIn(Strict):
    reason: Reason = "hangup"


class CallbackIn(Strict):
    phone: str | None = Field(default=None, max_length=40)
    at: str | None = Field(default=None, max_length=40, description="ISO 8601 with offset")


class CallbackFailedIn(ActAs):
    reason: Reason = "no_answer"


class EventsOut(BaseModel):
    events: list[dict[str, Any]]


# ---- helpers -------------------------------------------------------------------------


def _service(svc: Services) -> AcdService:
    return acd(svc)


def _events(events: list[Any]) -> EventsOut:
    return EventsOut(events=[e.to_json() for e in events])


def _jsonable(obj: Any) -> Any:
    data = asdict(obj)
    for key, value in data.items():
        if hasattr(value, "isoformat"):
            data[key] = value.isoformat()
    return data


def _acting_agent(principal: Principal, agent_id: str | None) -> str:
    """Agents act for themselves; supervisors and admins for anyone."""
    target = agent_id or principal.user_id
    if target != principal.user_id and not principal.has_role("supervisor"):
        raise PermissionDenied("agents can act only for themselves")
    return target


def _queue_dict(body: QueueIn, queue_id: str) -> dict[str, Any]:
    data = body.model_dump(exclude_none=True, mode="json")
    data["id"] = queue_id
    data["wrapup_seconds"] = body.wrapup_seconds  # null is meaningful here
    if body.waiting is not None:  # and here (null: announce once, no key)
        data["waiting"] = body.waiting.model_dump(mode="json")
    if body.survey is not None:
        data["survey"] = body.survey.model_dump(mode="json")
    return data


def _on_behalf(
    principal: Principal, agent_id: str, action: str, details: dict[str, Any] | None = None
) -> AuditNote | None:
    """Supervisors acting for another agent leave an audit row (None for oneself)."""
    if agent_id == principal.user_id:
        return None
    return AuditNote(principal.actor, action, "agent", agent_id, details or {})


def _note(
    principal: Principal,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> AuditNote:
    return AuditNote(principal.actor, action, target_type, target_id, details or {})


def routing_state(service: AcdService, principal: Principal) -> dict[str, Any]:
    """The routing part of the real-time initial state: queues, and agents as allowed."""

    def build(e: Any) -> dict[str, Any]:
        queues = {q: _jsonable(e.queue_snapshot(q, limit=0)) for q in e.queue_ids()}
        if principal.has_role("supervisor"):
            agents = {a: _jsonable(e.agent_snapshot(a)) for a in e.agent_ids()}
        elif principal.user_id in e.agent_ids():
            agents = {principal.user_id: _jsonable(e.agent_snapshot(principal.user_id))}
        else:
            agents = {}
        return {"queues": queues, "agents": agents}

    return service.read(principal.tenant_id, build)  # type: ignore[no-any-return]


# ---- queues --------------------------------------------------------------------------


@router.get("/queues")
def list_queues(principal: CurrentPrincipal, svc: ServicesDep) -> list[dict[str, Any]]:
    """Every queue with its live figures (waiting, longest wait, agents by state)."""
    return _service(svc).read(  # type: ignore[no-any-return]
        principal.tenant_id,
        lambda e: [_jsonable(e.queue_snapshot(q, limit=0)) for q in e.queue_ids()],
    )


@router.post("/queues", status_code=201)
def create_queue(body: QueueCreate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    queue_id = body.id or new_id()[:12]
    _check_hours(svc, principal, body.hours)
    _check_divert_targets(svc, principal, body)
    config = _queue_dict(body, queue_id)
    note = _note(principal, "queue.created", "queue", queue_id, {"name": body.name})
    _service(svc).execute(principal.tenant_id, "add_queue", audit=note, config=config)
    return get_queue_config(queue_id, principal, svc)


DIVERSIONS = ("on_max_wait", "on_full", "on_ewt", "on_ratio", "on_empty", "on_closed")


def _check_divert_targets(svc: Services, principal: Principal, body: QueueIn) -> None:
    """A voice queue's ``divert_to`` must be something the PBX can put a caller through to
    (an extension, a ring group, a number a dial rule allows, voicemail): checked by the
    dial plan itself, so a typo is refused now rather than when a caller is sent there."""
    pbx = svc.extra.get("pbx")
    if pbx is None or (body.channels is not None and Channel.VOICE not in body.channels):
        return  # (no channels named: the queue takes every channel, voice included)
    for name in DIVERSIONS:
        rule: DiversionIn | None = getattr(body, name)
        if rule is not None and rule.divert_to:
            problem = pbx.divert_problem(principal.tenant_id, rule.divert_to)
            if problem is not None:
                raise InvalidInput(problem, field=f"{name}.divert_to")


def _check_hours(svc: Services, principal: Principal, hours: str | None) -> None:
    """A queue may follow only business hours that exist; the engine gets them first."""
    pbx = svc.extra.get("pbx")
    if hours is None or pbx is None:
        return
    if hours not in pbx.hours_specs(principal.tenant_id):
        raise InvalidInput(
            f"no business hours {hours!r} here (see /telephony/business-hours)", field="hours"
        )
    _service(svc).sync_business_hours(principal.tenant_id)


@router.get("/queues/{queue_id}")
def get_queue(queue_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep) -> dict[str, Any]:
    """Live view of one queue with its waiting list (position, wait, EWT)."""
    return _service(svc).read(  # type: ignore[no-any-return]
        principal.tenant_id, lambda e: _jsonable(e.queue_snapshot(queue_id))
    )


@router.get("/queues/{queue_id}/config")
def get_queue_config(
    queue_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    return _service(svc).read(  # type: ignore[no-any-return]
        principal.tenant_id, lambda e: queue_config_to_dict(e.queue_config(queue_id))
    )


@router.put("/queues/{queue_id}")
def update_queue(
    queue_id: QueueId, body: QueueUpdate, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    """Replace a queue's configuration (waiting interactions keep their place).

    Accepts exactly what ``GET /queues/{id}/config`` returns (``id`` included, which must be
    this queue's); omitted fields take their defaults.
    """
    if body.id is not None and body.id != queue_id:
        raise InvalidInput(
            f"id {body.id!r} does not match the queue in the path ({queue_id!r})", field="id"
        )
    _check_hours(svc, principal, body.hours)
    _check_divert_targets(svc, principal, body)
    note = _note(principal, "queue.updated", "queue", queue_id, body.model_dump(mode="json"))
    _service(svc).execute(
        principal.tenant_id, "update_queue", audit=note, config=_queue_dict(body, queue_id)
    )
    return get_queue_config(queue_id, principal, svc)


@router.delete("/queues/{queue_id}", status_code=204)
def delete_queue(queue_id: AnyId, principal: Admin, svc: ServicesDep) -> None:
    note = _note(principal, "queue.removed", "queue", queue_id)
    _service(svc).execute(principal.tenant_id, "remove_queue", audit=note, queue_id=queue_id)


def _change_members(
    svc: Services,
    principal: Principal,
    queue_id: str,
    agent_id: str,
    member: dict[str, Any] | None,
) -> None:
    service = _service(svc)
    config = service.read(
        principal.tenant_id, lambda e: queue_config_to_dict(e.queue_config(queue_id))
    )
    before = config.get("members", [])
    members = [m for m in before if m["agent_id"] != agent_id]
    if member is None and len(members) == len(before):
        raise NotFound(
            f"agent {agent_id!r} is not a member of queue {queue_id!r}", field="agent_id"
        )
    if member is not None:
        members.append(member)
    config["members"] = members
    action = "queue.member_set" if member is not None else "queue.member_removed"
    note = _note(principal, action, "queue", queue_id, member or {"agent_id": agent_id})
    service.execute(principal.tenant_id, "update_queue", audit=note, config=config)


@router.put("/queues/{queue_id}/members/{agent_id}")
def set_member(
    queue_id: AnyId, agent_id: AnyId, body: MemberIn, principal: Supervisor, svc: ServicesDep
) -> dict[str, Any]:
    """Add an agent to a queue or change its penalty (supervisors move agents)."""
    if body.agent_id != agent_id:
        raise InvalidInput("agent_id in the body must match the path", field="agent_id")
    _change_members(svc, principal, queue_id, agent_id, body.model_dump())
    return get_queue_config(queue_id, principal, svc)


@router.delete("/queues/{queue_id}/members/{agent_id}", status_code=204)
def remove_member(
    queue_id: AnyId, agent_id: AnyId, principal: Supervisor, svc: ServicesDep
) -> None:
    _change_members(svc, principal, queue_id, agent_id, None)


# ---- agents --------------------------------------------------------------------------


@router.get("/agents")
def list_agents(principal: Supervisor, svc: ServicesDep) -> list[dict[str, Any]]:
    """Every agent with state, time in state, current interactions and load."""
    return _service(svc).read(  # type: ignore[no-any-return]
        principal.tenant_id, lambda e: [_jsonable(e.agent_snapshot(a)) for a in e.agent_ids()]
    )


@router.get("/agents/{agent_id}")
def get_agent(agent_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep) -> dict[str, Any]:
    _acting_agent(principal, agent_id)
    return _service(svc).read(  # type: ignore[no-any-return]
        principal.tenant_id, lambda e: _jsonable(e.agent_snapshot(agent_id))
    )


@router.get("/agents/{agent_id}/config")
def get_agent_config(
    agent_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """An agent's skills, attributes and capacity (the agent itself or a supervisor)."""
    _acting_agent(principal, agent_id)
    return _service(svc).read(  # type: ignore[no-any-return]
        principal.tenant_id, lambda e: agent_config_to_dict(e.agent_config(agent_id))
    )


def _store_agent(
    svc: Services, principal: Principal, agent_id: str, fields: dict[str, Any], merge: bool
) -> dict[str, Any]:
    user = svc.auth.get_user(principal, agent_id)
    service = _service(svc)
    current = service.read(
        principal.tenant_id,
        lambda e: (
            agent_config_to_dict(e.agent_config(agent_id)) if agent_id in e.agent_ids() else None
        ),
    )
    base = current if (merge and current is not None) else {}
    config: dict[str, Any] = {**base, **fields, "id": user.id, "name": user.display_name}
    note = _note(principal, "agent.configured", "agent", agent_id, fields)
    service.execute(
        principal.tenant_id,
        "update_agent" if current is not None else "add_agent",
        audit=note,
        config=config,
    )
    return get_agent_config(agent_id, principal, svc)


@router.put("/agents/{agent_id}")
def configure_agent(
    agent_id: AnyId, body: AgentIn, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    """Make a user routable, or replace its skills, attributes and capacity."""
    return _store_agent(
        svc, principal, agent_id, body.model_dump(exclude_none=True, mode="json"), merge=False
    )


class AgentPatch(Strict):
    skills: dict[str, int] | None = None
    attributes: dict[str, str | int | float | bool] | None = None
    capacity: dict[Channel, int] | None = None
    voice_blocks_other_channels: bool | None = None


@router.patch("/agents/{agent_id}")
def patch_agent(
    agent_id: AnyId, body: AgentPatch, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    """Change only the given parts of an agent's configuration."""
    return _store_agent(
        svc, principal, agent_id, body.model_dump(exclude_none=True, mode="json"), merge=True
    )


def _ensure_agent(svc: Services, principal: Principal, agent_id: str) -> None:
    """A user who logs in to routing for the first time becomes an agent with defaults."""
    service = _service(svc)
    if service.read(principal.tenant_id, lambda e: agent_id in e.agent_ids()):
        return
    user = svc.auth.get_user(principal, agent_id)
    service.execute(
        principal.tenant_id, "add_agent", config={"id": user.id, "name": user.display_name}
    )


@router.post("/agents/{agent_id}/login")
def agent_login(agent_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep) -> EventsOut:
    """Log the agent in to routing (it then goes available or takes a break)."""
    target = _acting_agent(principal, agent_id)
    _ensure_agent(svc, principal, target)
    note = _on_behalf(principal, target, "agent.logged_in_by_supervisor")
    return _events(_service(svc).execute(principal.tenant_id, "login", audit=note, agent_id=target))


class JoinIn(Strict):
    penalty: int = Field(default=0, ge=0, le=100, description="Tier: lower is offered first")
    weight: int = Field(default=1, ge=1, le=100, description="Share for weighted-random")


@router.put("/agents/{agent_id}/queues/{queue_id}")
def agent_join_queue(
    agent_id: AnyId,
    queue_id: AnyId,
    body: JoinIn,
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> EventsOut:
    """The agent joins one queue (agents for themselves, supervisors for anyone)."""
    target = _acting_agent(principal, agent_id)
    note = _on_behalf(principal, target, "agent.queue_joined_by_supervisor", {"queue_id": queue_id})
    return _events(
        _service(svc).execute(
            principal.tenant_id,
            "join_queue",
            audit=note,
            agent_id=target,
            queue_id=queue_id,
            penalty=body.penalty,
            weight=body.weight,
        )
    )


@router.delete("/agents/{agent_id}/queues/{queue_id}")
def agent_leave_queue(
    agent_id: AnyId, queue_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    """The agent leaves one queue; work in progress is not affected."""
    target = _acting_agent(principal, agent_id)
    note = _on_behalf(principal, target, "agent.queue_left_by_supervisor", {"queue_id": queue_id})
    return _events(
        _service(svc).execute(
            principal.tenant_id, "leave_queue", audit=note, agent_id=target, queue_id=queue_id
        )
    )


@router.post("/agents/{agent_id}/logout")
def agent_logout(
    agent_id: AnyId, body: LogoutIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    target = _acting_agent(principal, agent_id)
    note = _on_behalf(principal, target, "agent.logged_out_by_supervisor", {"reason": body.reason})
    return _events(
        _service(svc).execute(
            principal.tenant_id, "logout", audit=note, agent_id=target, reason=body.reason
        )
    )


@router.post("/agents/{agent_id}/state")
def agent_state(
    agent_id: AnyId, body: StateIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    """Go available (ready) or take a break with a reason code (lunch, training, ...)."""
    target = _acting_agent(principal, agent_id)
    note = _on_behalf(
        principal,
        target,
        "agent.state_set_by_supervisor",
        {"state": body.state, "reason": body.reason},
    )
    if body.state == "available":
        current = _service(svc).read(principal.tenant_id, lambda e: e.agent_snapshot(target))
        if current.state == "available":
            return EventsOut(events=[])  # already ready: asking again is not an error
        command, reason = "set_available", body.reason or "ready"
    else:
        if body.reason is None:
            raise InvalidInput("a break needs a reason code, e.g. lunch", field="reason")
        command, reason = "set_break", body.reason
    return _events(
        _service(svc).execute(
            principal.tenant_id, command, audit=note, agent_id=target, reason=reason
        )
    )


# ---- interactions --------------------------------------------------------------------


@router.post("/interactions", status_code=201)
def create_interaction(
    body: InteractionCreate, principal: Supervisor, svc: ServicesDep
) -> dict[str, Any]:
    """Route a new contact (a chat, an e-mail, a CRM task, ...) through a queue."""
    interaction_id = body.id or new_id()
    service = _service(svc)
    events = service.execute(
        principal.tenant_id,
        "create_interaction",
        interaction_id=interaction_id,
        queue_id=body.queue_id,
        channel=body.channel.value,
        priority=body.priority,
        required_skills=body.required_skills,
        customer_id=body.customer_id,
        attributes=body.attributes,
    )
    view = service.read(
        principal.tenant_id, lambda e: _jsonable(e.interaction_snapshot(interaction_id))
    )
    return {"interaction": view, "events": [e.to_json() for e in events]}


@router.post("/interactions/outbound", status_code=201)
def start_outbound(
    body: OutboundIn, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """The agent starts a contact of their own (a call they place, an e-mail they write):
    connected to them at once, so they count as busy and get no offers meanwhile. 409 when
    they are not logged in, have an offer ringing or no room for the channel."""
    agent_id = _acting_agent(principal, body.agent_id)
    interaction_id = body.id or new_id()
    service = _service(svc)
    events = service.execute(
        principal.tenant_id,
        "start_outbound",
        audit=_on_behalf(principal, agent_id, "interaction.outbound_started_for_agent"),
        interaction_id=interaction_id,
        agent_id=agent_id,
        queue_id=body.queue_id,
        channel=body.channel.value,
        customer_id=body.customer_id,
        attributes=body.attributes,
    )
    view = service.read(
        principal.tenant_id, lambda e: _jsonable(e.interaction_snapshot(interaction_id))
    )
    return {"interaction": view, "events": [e.to_json() for e in events]}


@router.get("/interactions/{interaction_id}")
def get_interaction(
    interaction_id: AnyId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """State, position in queue and estimated wait of one interaction."""
    return _service(svc).read(  # type: ignore[no-any-return]
        principal.tenant_id, lambda e: _jsonable(e.interaction_snapshot(interaction_id))
    )


def _act(
    svc: Services,
    principal: Principal,
    command: str,
    interaction_id: str,
    body: ActAs,
    **extra: Any,
) -> EventsOut:
    agent_id = _acting_agent(principal, body.agent_id)
    events = _service(svc).execute(
        principal.tenant_id, command, interaction_id=interaction_id, agent_id=agent_id, **extra
    )
    return _events(events)


@router.post("/interactions/{interaction_id}/accept")
def accept(
    interaction_id: AnyId, body: ActAs, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    """Take the offered interaction. A phone call held by the PBX (it has a ``call_id``) is
    taken by answering the ringing phone, which accepts it: 409 here."""
    snapshot = _service(svc).read(
        principal.tenant_id, lambda e: e.interaction_snapshot(interaction_id)
    )
    if snapshot.channel == "voice" and "call_id" in snapshot.attributes:
        raise Conflict(
            "This call is ringing on your phone: answer it there to take it (the desk cannot "
            "pick up a phone).",
            field="interaction_id",
        )
    return _act(svc, principal, "accept", interaction_id, body)


def _refuse_for_placed_calls(
    svc: Services, principal: Principal, interaction_id: str, what: str
) -> InteractionSnapshot:
    """A call an agent placed (click-to-dial) stays with the agent's phone: the PBX cannot
    move it, so the desk may not transfer, consult or conference it (409). Returns the
    interaction's snapshot."""
    snapshot: InteractionSnapshot = _service(svc).read(
        principal.tenant_id, lambda e: e.interaction_snapshot(interaction_id)
    )
    if snapshot.direction == "outbound" and "call_id" in snapshot.attributes:
        raise Conflict(
            f"A call you placed cannot be {what} from the desk yet: it stays on your phone.",
            field="interaction_id",
        )
    return snapshot


@router.post("/interactions/{interaction_id}/reject")
def reject(
    interaction_id: AnyId, body: RejectIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    return _act(svc, principal, "reject", interaction_id, body, reason=body.reason)


@router.post("/interactions/{interaction_id}/hold")
def hold(
    interaction_id: AnyId, body: ActAs, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    return _act(svc, principal, "hold", interaction_id, body)


@router.post("/interactions/{interaction_id}/resume")
def resume(
    interaction_id: AnyId, body: ActAs, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    return _act(svc, principal, "resume", interaction_id, body)


@router.post("/interactions/{interaction_id}/complete")
def complete(
    interaction_id: AnyId, body: CompleteIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    """End the interaction; the agent goes to wrap-up (after-call work)."""
    return _act(svc, principal, "complete", interaction_id, body, disposition=body.disposition)


@router.post("/interactions/{interaction_id}/wrapup-end")
def end_wrapup(
    interaction_id: AnyId, body: ActAs, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    return _act(svc, principal, "end_wrapup", interaction_id, body)


@router.post("/interactions/{interaction_id}/transfer")
def transfer(
    interaction_id: AnyId, body: TransferIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    """Blind transfer to an agent or a queue (409 for a call the agent placed). To put a
    call through to a number, agents use their phone's own transfer key (docs/telephony.md)."""
    if (body.to_agent_id is None) == (body.to_queue_id is None):
        raise InvalidInput("Give exactly one of to_agent_id and to_queue_id.", field="to")
    _refuse_for_placed_calls(svc, principal, interaction_id, "transferred")
    return _act(
        svc,
        principal,
        "transfer",
        interaction_id,
        body,
        to_agent_id=body.to_agent_id,
        to_queue_id=body.to_queue_id,
        priority=body.priority,
    )


@router.post("/interactions/{interaction_id}/transfer-to-number", status_code=202)
async def transfer_to_number(
    interaction_id: AnyId, body: TransferToNumberIn, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """Put a call through to a number (a colleague's extension, a department's ring group,
    an outside number): the PBX dials it with the agent's extension's rights while the
    agent stays on the line; once it answers, the agent's phone is released and the
    interaction is transferred out of routing (``interaction.transferred``, kind
    ``external``; the agent wraps up). If the number is busy or does not answer, the call
    stays with the agent (``call.transfer_failed`` on the event stream). 202: dialling.
    With several nodes (Redis), any node takes the request: it goes to the node holding
    the call. 409 for chats, e-mails, or a call not connected to the agent's phone; 503
    when the node holding the call does not answer."""
    agent_id = _acting_agent(principal, body.agent_id)
    snapshot: InteractionSnapshot = await run_in_threadpool(
        _service(svc).read,
        principal.tenant_id,
        lambda e: e.interaction_snapshot(interaction_id),
    )
    call_id = snapshot.attributes.get("call_id")
    if snapshot.channel != "voice" or not isinstance(call_id, str):
        raise Conflict(
            "Only a phone call can be put through to a number; use a transfer to an agent or "
            "a queue.",
            field="interaction_id",
        )
    if snapshot.state != "active" or snapshot.agent_id != agent_id:
        raise Conflict(
            f"Interaction {interaction_id!r} is not connected to {agent_id!r}.", field="agent_id"
        )
    phones: SipAgentPhones | None = svc.extra.get("agent_phones")
    directory: CallDirectory | None = svc.extra.get("call_directory")
    if phones is not None and call_id in phones.manager.calls:  # held here: done here
        accepted = phones.transfer_to_number(call_id, agent_id, body.to_number)
    elif directory is not None:  # another node's, or none's
        outcome = await directory.transfer_to_number(
            call_id, tenant_id=principal.tenant_id, agent_id=agent_id, number=body.to_number
        )
        check_reached(outcome, call_id)
        accepted = outcome == "accepted"
    else:
        accepted = False
    if not accepted:
        raise Conflict(
            "The call cannot be put through now: it is not connected to your phone, or a "
            "transfer is already going on.",
            field="interaction_id",
        )
    return {"interaction_id": interaction_id, "call_id": call_id, "to": body.to_number}


class InteractionRecordingIn(ActAs):
    action: Literal["start", "pause", "resume", "stop", "state"] = Field(
        description="start, pause, resume or stop recording the call; ``state`` only reads"
    )


@router.post("/interactions/{interaction_id}/recording")
async def interaction_recording(
    interaction_id: AnyId,
    body: InteractionRecordingIn,
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> dict[str, Any]:
    """The agent desktop's recording button: start, pause (a card number is being given),
    resume or stop recording the phone call of an interaction connected to the agent, or
    read its state (``off``, ``recording``, ``paused``). Same rules as ``POST
    /api/v1/telephony/calls/{call_id}/recording``; 409 for chats, e-mails and interactions
    not connected to the agent."""
    agent_id = _acting_agent(principal, body.agent_id)
    snapshot: InteractionSnapshot = await run_in_threadpool(
        _service(svc).read,
        principal.tenant_id,
        lambda e: e.interaction_snapshot(interaction_id),
    )
    call_id = snapshot.attributes.get("call_id")
    if snapshot.channel != "voice" or not isinstance(call_id, str):
        raise Conflict("Only a phone call can be recorded.", field="interaction_id")
    if snapshot.state != "active" or snapshot.agent_id != agent_id:
        raise Conflict(
            f"Interaction {interaction_id!r} is not connected to {agent_id!r}.", field="agent_id"
        )
    state = await control_recording(
        svc.extra,
        call_id,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        supervisor=principal.has_role("supervisor"),
        action=body.action,
    )
    return {"interaction_id": interaction_id, **state}


@router.post("/interactions/{interaction_id}/consult")
def consult(
    interaction_id: AnyId, body: TargetIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    """Bring another agent in privately. On a call the PBX holds (voice, with a
    ``call_id``) the consulted agent's phones ring first: the consultation is connected
    when one answers (``interaction.consult_connected``); otherwise at once."""
    snapshot = _refuse_for_placed_calls(svc, principal, interaction_id, "consulted on")
    rings = snapshot.channel == "voice" and "call_id" in snapshot.attributes
    return _act(
        svc,
        principal,
        "consult",
        interaction_id,
        body,
        target_agent_id=body.target_agent_id,
        ringing=rings,
    )


@router.post("/interactions/{interaction_id}/end-consult")
def end_consult(
    interaction_id: AnyId, body: TargetIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    """The owner ends a consultation: the consulted agent leaves."""
    return _act(
        svc, principal, "end_consult", interaction_id, body, target_agent_id=body.target_agent_id
    )


@router.post("/interactions/{interaction_id}/conference")
def conference(
    interaction_id: AnyId, body: TargetIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    _refuse_for_placed_calls(svc, principal, interaction_id, "conferenced")
    return _act(
        svc, principal, "conference", interaction_id, body, target_agent_id=body.target_agent_id
    )


class LeaveIn(ActAs):
    reason: Reason = "left"


@router.post("/interactions/{interaction_id}/leave")
def leave(
    interaction_id: AnyId, body: LeaveIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    """A consulted or conference agent leaves (the owner leaving hands the interaction to
    the earliest other participant)."""
    return _act(svc, principal, "leave", interaction_id, body, reason=body.reason)


@router.post("/interactions/{interaction_id}/callback-failed")
def callback_failed(
    interaction_id: AnyId, body: CallbackFailedIn, principal: CurrentPrincipal, svc: ServicesDep
) -> EventsOut:
    return _act(svc, principal, "callback_failed", interaction_id, body, reason=body.reason)


@router.post("/interactions/{interaction_id}/abandon")
def abandon(
    interaction_id: AnyId, body: AbandonIn, principal: Supervisor, svc: ServicesDep
) -> EventsOut:
    """The customer hung up or left (channels and integrations report it)."""
    return _events(
        _service(svc).execute(
            principal.tenant_id, "abandon", interaction_id=interaction_id, reason=body.reason
        )
    )


@router.post("/interactions/{interaction_id}/callback")
def request_callback(
    interaction_id: AnyId, body: CallbackIn, principal: Supervisor, svc: ServicesDep
) -> EventsOut:
    """The waiting customer asks to be called back; the place in line is kept."""
    return _events(
        _service(svc).execute(
            principal.tenant_id,
            "request_callback",
            interaction_id=interaction_id,
            phone=body.phone,
            at=body.at,
        )
    )
