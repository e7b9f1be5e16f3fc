"""HTTP routes of quality assurance, under ``/api/v1/quality``: scorecards, evaluations and
trends.

Administrators write scorecards; supervisors review agents' calls; agents evaluate their own
calls, read the reviews of their calls once submitted and acknowledge them. Scores are
computed by the server: a client sends answers, never a score.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from sparklecomm.api.deps import MAX_OFFSET, Admin, CurrentPrincipal, ServicesDep
from sparklecomm.container import Services
from sparklecomm.core.errors import Unavailable
from sparklecomm.quality.service import MAX_MONTHS, QualityService
from sparklecomm.store.listing import MAX_LIST

router = APIRouter(prefix="/api/v1/quality", tags=["quality"])
ScorecardId = Annotated[str, Path(min_length=1, max_length=32, description="A scorecard's id")]
EvaluationId = Annotated[str, Path(min_length=1, max_length=32, description="An evaluation's id")]


def quality(svc: Services) -> QualityService:
    service: QualityService | None = svc.extra.get("quality")
    if service is None:
        raise Unavailable("Quality assurance is not set up here.")
    return service


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CriterionIn(Strict):
    id: str | None = Field(default=None, max_length=40, description="Stable id (c1, c2 ...)")
    section: str = Field(default="General", max_length=60, description="e.g. Etiquette")
    label: str = Field(max_length=200, description="What is scored")
    guidance: str = Field(default="", max_length=1000, description="How to score it")
    weight: int = Field(default=1, description="1 to 10")
    scale: str = Field(default="1-5", max_length=8, description="'yes_no' or e.g. '1-5'")
    critical: bool = Field(default=False, description="At the bottom of its scale: score 0")


class ScorecardIn(Strict):
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=2000)
    criteria: list[CriterionIn] = Field(max_length=100)


class ScorecardPatch(Strict):
    name: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    criteria: list[CriterionIn] | None = Field(default=None, max_length=100)


class AnswerIn(Strict):
    value: int | None = Field(default=None, description="On the criterion's scale; null: N/A")
    comment: str = Field(default="", max_length=1000)


class EvaluationIn(Strict):
    scorecard_id: str = Field(max_length=32)
    kind: Literal["review", "self"] = "review"
    agent_id: str | None = Field(default=None, max_length=32)
    recording_id: str | None = Field(default=None, max_length=32)
    interaction_id: str | None = Field(default=None, max_length=64)
    call_id: str | None = Field(default=None, max_length=300)
    answers: dict[str, AnswerIn] = Field(default_factory=dict, max_length=100)
    comment: str = Field(default="", max_length=4000)


class EvaluationPatch(Strict):
    answers: dict[str, AnswerIn] | None = Field(default=None, max_length=100)
    comment: str | None = Field(default=None, max_length=4000)


class AcknowledgeIn(Strict):
    comment: str = Field(default="", max_length=4000, description="The agent's answer")


def _criteria(items: list[CriterionIn] | None) -> list[dict[str, Any]] | None:
    if items is None:
        return None
    return [c.model_dump(exclude_none=True) for c in items]


def _answers(items: dict[str, AnswerIn] | None) -> dict[str, Any] | None:
    if items is None:
        return None
    return {k: v.model_dump() for k, v in items.items()}


# -- scorecards --------------------------------------------------------------------------------
@router.get("/scorecards")
def list_scorecards(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    include_retired: Annotated[
        bool, Query(description="Also archived and replaced versions")
    ] = False,
) -> list[dict[str, Any]]:
    """The current scorecards by name: ``id``, ``family_id``, ``version``, ``name``,
    ``description``, ``criteria`` (``id``, ``section``, ``label``, ``guidance``, ``weight``,
    ``scale``, ``critical``), ``active``, ``archived``. Agents see the current ones and
    those of their own evaluations."""
    return quality(svc).scorecards(principal.tenant_id, principal, include_retired=include_retired)


@router.get("/scorecards/{scorecard_id}")
def get_scorecard(
    scorecard_id: ScorecardId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """One scorecard version (retired ones too); 404 unknown."""
    return quality(svc).scorecard(principal.tenant_id, principal, scorecard_id)


@router.post("/scorecards", status_code=201)
def create_scorecard(body: ScorecardIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    """A new scorecard (version 1); 422 naming the criterion at fault (``criteria[2].weight``),
    409 for a name in use. Event ``quality.scorecard_changed``."""
    return quality(svc).do_create_scorecard(
        principal.tenant_id,
        principal,
        name=body.name,
        description=body.description,
        criteria=_criteria(body.criteria),
    )


@router.patch("/scorecards/{scorecard_id}")
def update_scorecard(
    scorecard_id: ScorecardId, body: ScorecardPatch, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    """Change the current version: in place while no evaluation uses it, else a new version
    (the answer's ``id`` and ``version`` say which). 409 for a retired version."""
    return quality(svc).do_update_scorecard(
        principal.tenant_id,
        principal,
        scorecard_id,
        name=body.name,
        description=body.description,
        criteria=_criteria(body.criteria),
    )


@router.post("/scorecards/{scorecard_id}/archive")
def archive_scorecard(
    scorecard_id: ScorecardId, principal: Admin, svc: ServicesDep
) -> dict[str, Any]:
    """Retire a scorecard: no new evaluations on it; nothing is deleted."""
    return quality(svc).do_archive_scorecard(principal.tenant_id, principal, scorecard_id)


# -- evaluations -------------------------------------------------------------------------------
@router.get("/evaluations")
def list_evaluations(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    agent_id: Annotated[str | None, Query(max_length=32)] = None,
    evaluator_id: Annotated[str | None, Query(max_length=32)] = None,
    kind: Annotated[Literal["review", "self"] | None, Query()] = None,
    status: Annotated[Literal["draft", "submitted", "acknowledged"] | None, Query()] = None,
    recording_id: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """Evaluations, newest first. Supervisors see every review and submitted
    self-evaluation; agents their own self-evaluations and the submitted reviews of their
    calls (403 for another ``agent_id``)."""
    return quality(svc).evaluations(
        principal.tenant_id,
        principal,
        agent_id=agent_id,
        evaluator_id=evaluator_id,
        kind=kind,
        status=status,
        recording_id=recording_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


@router.get("/evaluations/{evaluation_id}")
def get_evaluation(
    evaluation_id: EvaluationId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """One evaluation: its answers, ``score`` (0–100, null when nothing applied),
    ``section_scores``, ``failed_critical``, comments and status."""
    return quality(svc).evaluation(principal.tenant_id, principal, evaluation_id)


@router.post("/evaluations", status_code=201)
def create_evaluation(
    body: EvaluationIn, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """A draft: a review (supervisors) or a self-evaluation of your own call (``kind``
    "self", with its ``recording_id`` or ``interaction_id``). A recording gives the agent,
    interaction and call."""
    return quality(svc).do_create_evaluation(
        principal.tenant_id,
        principal,
        scorecard_id=body.scorecard_id,
        kind=body.kind,
        agent_id=body.agent_id,
        recording_id=body.recording_id,
        interaction_id=body.interaction_id,
        call_id=body.call_id,
        answers=_answers(body.answers),
        comment=body.comment,
    )


@router.patch("/evaluations/{evaluation_id}")
def update_evaluation(
    evaluation_id: EvaluationId,
    body: EvaluationPatch,
    principal: CurrentPrincipal,
    svc: ServicesDep,
) -> dict[str, Any]:
    """Change a draft (its evaluator): ``answers`` replace those given so far; 409 once
    submitted."""
    return quality(svc).do_update_evaluation(
        principal.tenant_id,
        principal,
        evaluation_id,
        answers=_answers(body.answers),
        comment=body.comment,
    )


@router.delete("/evaluations/{evaluation_id}", status_code=204)
def delete_evaluation(
    evaluation_id: EvaluationId, principal: CurrentPrincipal, svc: ServicesDep
) -> Response:
    """Discard a draft (its evaluator); 409 once submitted."""
    quality(svc).do_delete_draft(principal.tenant_id, principal, evaluation_id)
    return Response(status_code=204)


@router.post("/evaluations/{evaluation_id}/submit")
def submit_evaluation(
    evaluation_id: EvaluationId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """Submit a draft: 422 naming an unanswered criterion (``answers.<id>``); immutable
    afterwards. Event ``quality.evaluation_submitted``."""
    return quality(svc).do_submit_evaluation(principal.tenant_id, principal, evaluation_id)


@router.post("/evaluations/{evaluation_id}/acknowledge")
def acknowledge_evaluation(
    evaluation_id: EvaluationId,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    body: AcknowledgeIn | None = None,
) -> dict[str, Any]:
    """The evaluated agent has read a submitted review, with an optional ``comment``.
    Event ``quality.evaluation_acknowledged``."""
    return quality(svc).do_acknowledge_evaluation(
        principal.tenant_id, principal, evaluation_id, body.comment if body else ""
    )


# -- trends ------------------------------------------------------------------------------------
@router.get("/trends")
def trends(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    agent_id: Annotated[
        str | None, Query(max_length=32, description="One agent (supervisors); else the team")
    ] = None,
    months: Annotated[int, Query(ge=1, le=MAX_MONTHS)] = 6,
    timezone: Annotated[str, Query(max_length=64, description="IANA zone of the months")] = "UTC",
) -> dict[str, Any]:
    """Month by month, oldest first: for ``review`` and ``self`` the ``average``, ``count``,
    ``sections`` and ``change`` from the month before; ``self_gap`` (self minus review).
    Agents get their own."""
    return quality(svc).trends(
        principal.tenant_id, principal, agent_id=agent_id, months=months, timezone=timezone
    )
