"""HTTP routes of satisfaction surveys.

Signed in, under ``/api/v1``: the answers (``GET /surveys``), a survey link for an
interaction (``GET /interactions/{id}/survey-link``), an answer given elsewhere (``POST
/interactions/{id}/survey``).

Public, for customers (who are not users): the survey page ``/survey/{token}`` and
``POST /api/v1/surveys/{token}``. They take no session and no CSRF token (the signed link is
the credential: it names one interaction and can answer it once), and they never depend on
the signed-in principal, so a customer who happens to be signed in is treated the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sparklecomm.api.deps import MAX_OFFSET, CurrentPrincipal, ServicesDep, Supervisor
from sparklecomm.container import Services
from sparklecomm.core.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from sparklecomm.store.listing import MAX_LIST
from sparklecomm.surveys.links import MAX_TOKEN, SurveyLinkExpired
from sparklecomm.surveys.service import (
    CHANNELS,
    MAX_COMMENT,
    MAX_SCALE,
    MIN_SCALE,
    SurveyService,
)

router = APIRouter(prefix="/api/v1", tags=["surveys"])
pages = APIRouter(include_in_schema=False)
InteractionId = Annotated[str, Path(min_length=1, max_length=64, description="An interaction")]
Token = Annotated[str, Path(min_length=1, max_length=MAX_TOKEN, description="A survey link")]
#: The survey page holds a credential in its address: it is neither cached nor sent on as a
#: referrer, and it is never framed.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def surveys(svc: Services) -> SurveyService:
    service: SurveyService | None = svc.extra.get("surveys")
    if service is None:
        raise Unavailable("Surveys are not set up here.")
    return service


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinkAnswerIn(Strict):
    score: int = Field(description="1 to the link's max_score")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


class AnswerIn(Strict):
    score: int = Field(description="1 to max_score")
    max_score: int = Field(default=5, ge=MIN_SCALE, le=MAX_SCALE, description="The scale")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)
    queue_id: str | None = Field(
        default=None,
        max_length=64,
        description="Only for an interaction routing no longer knows (else routing's)",
    )
    agent_id: str | None = Field(
        default=None,
        max_length=32,
        description="Only for an interaction routing no longer knows (else routing's)",
    )
    channel: str | None = Field(
        default=None,
        description=f"Only for an interaction routing no longer knows: {', '.join(CHANNELS)}",
    )


@router.get("/surveys")
def list_answers(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    queue_id: Annotated[str | None, Query(max_length=64)] = None,
    agent_id: Annotated[str | None, Query(max_length=32, description="The agent's user id")] = None,
    since: Annotated[datetime | None, Query(description="Answered at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Answered before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """Survey answers, newest first: ``id``, ``interaction_id``, ``queue_id``, ``agent_id``,
    ``channel``, ``score``, ``max_score``, ``comment``, ``source`` (phone, web, api),
    ``answered_at``. Supervisors see every answer; agents the answers about their own
    interactions (403 for another ``agent_id``)."""
    return surveys(svc).answers(
        principal.tenant_id,
        queue_id=queue_id,
        agent_id=agent_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        owner=None if principal.has_role("supervisor") else principal.user_id,
    )


@router.get("/interactions/{interaction_id}/survey-link")
def survey_link(
    interaction_id: InteractionId, request: Request, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """A link to send the customer (in the chat, in the e-mail reply) to rate the
    interaction: ``{url, expires_at, max_score}``. For the agent on the interaction or a
    supervisor, once an agent has it: connected, wrapping up or completed (404 unknown,
    409 still waiting or already rated). The scale is the queue's survey scale (5 points
    by default)."""
    service = surveys(svc)
    facts = service.interaction_facts(principal.tenant_id, interaction_id)
    if not principal.has_role("supervisor") and principal.user_id not in facts["agents"]:
        raise PermissionDenied(
            f"interaction {interaction_id!r} is another agent's", field="interaction_id"
        )
    max_score = service.queue_scale(principal.tenant_id, facts["queue_id"])
    token, expires_at = service.link_for(
        principal.tenant_id,
        interaction_id=interaction_id,
        queue_id=facts["queue_id"],
        agent_id=facts["agent_id"],
        channel=facts["channel"],
        max_score=max_score,
    )
    base = str(request.base_url).rstrip("/")
    return {
        "url": f"{base}/survey/{token}",
        "expires_at": expires_at.isoformat(),
        "max_score": max_score,
    }


@router.post("/interactions/{interaction_id}/survey", status_code=201)
def record_answer(
    interaction_id: InteractionId, body: AnswerIn, principal: Supervisor, svc: ServicesDep
) -> dict[str, Any]:
    """Record an answer the customer gave elsewhere (a survey tool, a call back), source
    ``api``; event ``survey.answered``. Queue, agent and channel are routing's for an
    interaction it knows (connected or completed); the body's are used only for one it no
    longer knows. 409 when the interaction is rated already, 422 naming the field for a
    score outside 1..max_score."""
    service = surveys(svc)
    try:
        facts = service.interaction_facts(principal.tenant_id, interaction_id)
    except NotFound:
        if body.channel is None:
            raise NotFound(
                f"routing does not know interaction {interaction_id!r}: give its channel "
                "(and its queue_id and agent_id) to record the answer",
                field="channel",
            ) from None
        facts = {"queue_id": body.queue_id, "agent_id": body.agent_id, "channel": body.channel}
    return service.do_answer(
        principal.tenant_id,
        interaction_id=interaction_id,
        queue_id=facts["queue_id"],
        agent_id=facts["agent_id"],
        channel=facts["channel"],
        score=body.score,
        max_score=body.max_score,
        source="api",
        comment=body.comment,
    )


@router.post("/surveys/{token}", status_code=201, responses={410: {"description": "Expired"}})
def answer_by_link(token: Token, body: LinkAnswerIn, svc: ServicesDep) -> dict[str, Any]:
    """The customer's answer through a survey link (no sign-in: the link is the
    credential), source ``web``. 404 for a link that is not one of ours, 410 for an
    expired one, 409 when the interaction is rated already, 422 for a score outside the
    link's scale. Returns the answer (score, scale, comment, time)."""
    answer = surveys(svc).answer_by_link(token, body.score, body.comment)
    # The customer learns what they said, not who handled them or our ids.
    return {k: answer[k] for k in ("score", "max_score", "comment", "answered_at")}


# -- the customer's page -----------------------------------------------------------------------
def _page(request: Request, status: int, **ctx: Any) -> HTMLResponse:
    from sparklecomm.web.pages import templates

    defaults: dict[str, Any] = {
        "state": "ask",
        "token": "",
        "max_score": 0,
        "answer": None,
        "error": None,
        "score": None,
        "comment": "",
        "max_comment": MAX_COMMENT,
    }
    return templates.TemplateResponse(
        request,
        "survey.html",
        {"principal": None, **defaults, **ctx},
        status_code=status,
        headers=PRIVATE_HEADERS,
    )


def _sentence(text: str) -> str:
    """An error's detail as a sentence for the page: capital first, full stop last."""
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else f"{text}."


def _broken_link(request: Request, error: DomainError) -> HTMLResponse:
    state = "expired" if isinstance(error, SurveyLinkExpired) else "invalid"
    return _page(request, error.status, state=state, error=error.detail)


@pages.get("/survey/{token}", response_class=HTMLResponse)
def survey_page(
    token: Token, request: Request, svc: ServicesDep, sent: Annotated[int, Query()] = 0
) -> Response:
    """The question, the scale 1..N, an optional comment; "thank you" once answered (``sent``:
    just now, from the form). Works without JavaScript (a plain form posting here); with it,
    the answer goes to the API."""
    try:
        link, answer = surveys(svc).open_link(token)
    except (NotFound, SurveyLinkExpired) as error:
        return _broken_link(request, error)
    if answer is not None:
        state = "thanks" if sent else "answered"
        return _page(request, 200, state=state, answer=answer, max_score=link.max_score)
    return _page(request, 200, token=token, max_score=link.max_score)


@pages.post("/survey/{token}", response_class=HTMLResponse)
def survey_form(
    token: Token,
    request: Request,
    svc: ServicesDep,
    score: Annotated[str, Form(max_length=3)] = "",
    comment: Annotated[str, Form(max_length=MAX_COMMENT * 2)] = "",
) -> Response:
    """The survey page's form without JavaScript: on to the thank-you page (a redirect, so
    reloading it sends nothing twice), or the form again with what was wrong (422), or a
    polite word when it was answered already (409)."""
    service = surveys(svc)
    try:
        link, _ = service.open_link(token)
    except (NotFound, SurveyLinkExpired) as error:
        return _broken_link(request, error)
    chosen = int(score) if score.isdigit() else None
    try:
        if chosen is None:
            raise InvalidInput("Choose a score first.", field="score")
        service.answer_by_link(token, chosen, comment or None)
    except InvalidInput as error:
        return _page(
            request,
            422,
            token=token,
            max_score=link.max_score,
            error=error.detail[0].upper()
            + error.detail[1:]
            + ("" if error.detail.endswith(".") else "."),
            score=chosen,
            comment=comment,
        )
    except Conflict:
        existing = service.answer(link.tenant_id, link.interaction_id)
        return _page(request, 409, state="answered", answer=existing, max_score=link.max_score)
    return RedirectResponse(f"/survey/{token}?sent=1", status_code=303, headers=PRIVATE_HEADERS)
