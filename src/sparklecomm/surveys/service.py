"""Customer satisfaction surveys (CSAT): the answers, the links that ask for them, who reads
them.

An answer is a score from 1 to ``max_score`` (a scale of 2 to 10 points) about one
interaction, with an optional comment. It comes from one of three places (``source``):

* ``phone``: the caller pressed a key after the agent hung up (the voice queue calls
  :meth:`SurveyService.survey_answered`);
* ``web``: the customer opened a survey link (chats, e-mails: customers are not users, the
  signed link is their credential, :mod:`sparklecomm.surveys.links`);
* ``api``: a supervisor or an integration records an answer given elsewhere.

Each answer is one row and the event ``survey.answered`` (the answer itself, flat, so the
KPIs and the agent's day see its queue and agent) in one transaction. An interaction is
rated once: a second answer is a Conflict, whichever way it comes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sparklecomm.core.events import NewEvent
from sparklecomm.core.ids import new_id
from sparklecomm.store.db import Database
from sparklecomm.store.listing import MAX_LIST, newest_first
from sparklecomm.store.models import EventRecord, SurveyResponse
from sparklecomm.surveys.links import LinkSigner, SurveyLink

if TYPE_CHECKING:
    from sparklecomm.acd.service import AcdService

log = structlog.get_logger(__name__)

SOURCES = ("phone", "web", "api")
#: The channels of routing's interactions (``sparklecomm.acd.model.Channel``).
CHANNELS = ("voice", "chat", "email", "callback", "task")
MIN_SCALE, MAX_SCALE = 2, 10
DEFAULT_MAX_SCORE = 5
MAX_COMMENT = 1000
#: How long a survey link stays good: long enough for an e-mail read after a weekend.
DEFAULT_LINK_TTL = timedelta(days=7)
#: Control characters other than line breaks and tabs have no place in a comment.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def response_payload(r: SurveyResponse) -> dict[str, Any]:
    """An answer as the API, the event ``survey.answered`` and the KPIs see it."""
    return {
        "id": r.id,
        "interaction_id": r.interaction_id,
        "queue_id": r.queue_id,
        "agent_id": r.agent_id,
        "channel": r.channel,
        "score": r.score,
        "max_score": r.max_score,
        "comment": r.comment,
        "source": r.source,
        "answered_at": r.answered_at.isoformat(),
    }


def _whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number, not {value!r}", field=field)
    return int(value)


def check_scale(max_score: Any) -> int:
    """``max_score`` if it is a scale the platform asks on (2 to 10 points)."""
    scale = _whole(max_score, "max_score")
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise InvalidInput(
            f"max_score must be {MIN_SCALE} to {MAX_SCALE}, not {scale}", field="max_score"
        )
    return scale


def check_answer(score: Any, max_score: Any, comment: str | None) -> tuple[int, int, str | None]:
    """The score, scale and comment of an answer, checked (InvalidInput naming the field):
    a score of 1 to ``max_score``; a comment of at most 1000 characters (an empty one is
    none)."""
    scale = check_scale(max_score)
    points = _whole(score, "score")
    if not 1 <= points <= scale:
        raise InvalidInput(f"score must be 1 to {scale}, not {points}", field="score")
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidInput("comment must be a text", field="comment")
        comment = CONTROL_RE.sub("", comment).strip()
        if len(comment) > MAX_COMMENT:
            raise InvalidInput(
                f"comment must be at most {MAX_COMMENT} characters, not {len(comment)}",
                field="comment",
            )
        comment = comment or None
    return points, scale, comment


def _check_id(value: Any, field: str, max_length: int, *, optional: bool) -> str | None:
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise InvalidInput(f"{field} is required", field=field)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidInput(f"{field} must be a text of 1 to {max_length} characters", field=field)
    return value.strip()


class SurveyService:
    """Stores the organisations' survey answers and signs the links that ask for them."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        secret: str | Callable[[], str],
        *,
        acd: AcdService | None = None,
        link_ttl: timedelta = DEFAULT_LINK_TTL,
    ) -> None:
        self.db = db
        self.clock = clock
        self.links = LinkSigner(secret)
        # Routing, to find out who handled an interaction still in it (None: only the
        # completions on the event stream are read).
        self.acd = acd
        self.link_ttl = link_ttl

    # -- answering -----------------------------------------------------------------------------
    def do_answer(
        self,
        tenant_id: str,
        *,
        interaction_id: str,
        queue_id: str | None,
        agent_id: str | None,
        channel: str,
        score: int,
        max_score: int,
        source: str,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Store an answer: its row and the event ``survey.answered`` in one transaction.
        Conflict when the interaction has an answer already; InvalidInput naming the field
        for a score outside 1..max_score, a scale outside 2..10, an unknown channel or
        source, a comment over 1000 characters."""
        interaction_id = _check_id(interaction_id, "interaction_id", 64, optional=False) or ""
        queue_id = _check_id(queue_id, "queue_id", 64, optional=True)
        agent_id = _check_id(agent_id, "agent_id", 32, optional=True)
        if channel not in CHANNELS:
            raise InvalidInput(
                f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}", field="channel"
            )
        if source not in SOURCES:
            raise InvalidInput(
                f"source must be one of {', '.join(SOURCES)}, not {source!r}", field="source"
            )
        score, max_score, comment = check_answer(score, max_score, comment)
        already = Conflict(
            f"interaction {interaction_id!r} has been rated already: one answer per interaction",
            field="interaction_id",
        )
        try:
            with self.db.write() as tx:
                s = tx.session
                if self._answer_of(s, tenant_id, interaction_id) is not None:
                    raise already
                row = SurveyResponse(
                    id=new_id(),
                    tenant_id=tenant_id,
                    interaction_id=interaction_id,
                    queue_id=queue_id,
                    agent_id=agent_id,
                    channel=channel,
                    score=score,
                    max_score=max_score,
                    comment=comment,
                    source=source,
                    answered_at=tx.clock.now(),
                )
                s.add(row)
                s.flush()  # two answers at once: the unique constraint refuses the second
                # Every signed-in user of the organisation hears the event stream: the
                # customer's words stay in GET /surveys (agents: their own answers only).
                payload = response_payload(row)
                heard = {k: v for k, v in payload.items() if k != "comment"}
                heard["has_comment"] = payload["comment"] is not None
                tx.emit(tenant_id, NewEvent("survey.answered", heard))
        except IntegrityError:
            raise already from None
        log.info(
            "survey_answered",
            interaction_id=interaction_id,
            score=score,
            max_score=max_score,
            source=source,
        )
        return payload

    async def survey_answered(self, tenant_id: str, **answer: Any) -> dict[str, Any]:
        """The phone flow's protocol (:class:`~sparklecomm.telephony.agent_phones.
        SurveyAnswers`): :meth:`do_answer` off the event loop."""
        result: dict[str, Any] = await run_in_threadpool(
            partial(self.do_answer, tenant_id, **answer)
        )
        return result

    # -- links ---------------------------------------------------------------------------------
    def link_for(
        self,
        tenant_id: str,
        *,
        interaction_id: str,
        queue_id: str | None,
        agent_id: str | None,
        channel: str,
        max_score: int = DEFAULT_MAX_SCORE,
    ) -> tuple[str, datetime]:
        """A signed token asking the customer to rate the interaction on a scale of 1 to
        ``max_score``, and when it stops working. Conflict when the interaction is rated
        already (a link would only lead to "thank you, we have your answer")."""
        max_score = check_scale(max_score)
        with self.db.read() as s:
            if self._answer_of(s, tenant_id, interaction_id) is not None:
                raise Conflict(
                    f"interaction {interaction_id!r} has been rated already",
                    field="interaction_id",
                )
        expires_at = (self.clock.now() + self.link_ttl).replace(microsecond=0)
        link = SurveyLink(
            tenant_id=tenant_id,
            interaction_id=interaction_id,
            queue_id=queue_id,
            agent_id=agent_id,
            channel=channel,
            max_score=max_score,
            expires_at=expires_at,
        )
        return self.links.sign(link), expires_at

    def open_link(self, token: str) -> tuple[SurveyLink, dict[str, Any] | None]:
        """What a link asks (NotFound when forged, SurveyLinkExpired when old) and the
        answer already given to it, if any."""
        link = self.links.verify(token, self.clock.now())
        with self.db.read() as s:
            row = self._answer_of(s, link.tenant_id, link.interaction_id)
            return link, (response_payload(row) if row is not None else None)

    def answer_by_link(self, token: str, score: Any, comment: str | None) -> dict[str, Any]:
        """The customer's answer through a link (source ``web``): the scale, interaction,
        queue and agent are the link's, never the customer's to choose."""
        link = self.links.verify(token, self.clock.now())
        return self.do_answer(
            link.tenant_id,
            interaction_id=link.interaction_id,
            queue_id=link.queue_id,
            agent_id=link.agent_id,
            channel=link.channel,
            score=score,
            max_score=link.max_score,
            source="web",
            comment=comment,
        )

    # -- what routing knows of an interaction --------------------------------------------------
    def interaction_facts(self, tenant_id: str, interaction_id: str) -> dict[str, Any]:
        """Queue, agent and channel of an interaction a customer may be asked about: one
        connected to an agent (routing's view), or one completed (its agent wrapping up or
        done: the ``interaction.completed`` event, read by the indexed interaction id).
        NotFound otherwise; Conflict while it still waits for an agent."""
        if self.acd is not None:
            try:
                snapshot = self.acd.read(
                    tenant_id, lambda e: e.interaction_snapshot(interaction_id)
                )
            except NotFound:
                snapshot = None
            if snapshot is not None:
                if snapshot.state != "active":
                    raise Conflict(
                        f"interaction {interaction_id!r} has not been answered yet "
                        f"({snapshot.state}): there is nothing to rate",
                        field="interaction_id",
                    )
                return {
                    "interaction_id": interaction_id,
                    "queue_id": snapshot.queue_id,
                    "agent_id": snapshot.agent_id,
                    "agents": [snapshot.agent_id, *snapshot.participants],
                    "channel": snapshot.channel,
                    "state": "active",
                }
        from sparklecomm.customers.store import payload_key  # the events' interaction index

        with self.db.read() as s:
            event = s.scalars(
                select(EventRecord)
                .where(
                    EventRecord.tenant_id == tenant_id,
                    payload_key(s, "interaction_id") == interaction_id,
                    EventRecord.type == "interaction.completed",
                )
                .order_by(EventRecord.id.desc())
                .limit(1)
            ).first()
            payload = dict(event.payload) if event is not None else None
        if payload is None:
            raise NotFound(
                f"no interaction {interaction_id!r} answered by an agent here",
                field="interaction_id",
            )
        return {
            "interaction_id": interaction_id,
            "queue_id": payload.get("queue_id"),
            "agent_id": payload.get("agent_id"),
            "agents": [payload.get("agent_id")],
            "channel": payload.get("original_channel") or payload.get("channel") or "voice",
            "state": "completed",
        }

    def queue_scale(self, tenant_id: str, queue_id: str | None) -> int:
        """The scale the queue asks on (its post-call survey's ``max_score`` where routing
        has one), else :data:`DEFAULT_MAX_SCORE`."""
        if self.acd is None or queue_id is None:
            return DEFAULT_MAX_SCORE

        def scale(engine: Any) -> Any:
            if queue_id not in engine.queue_ids():
                return None
            return getattr(
                getattr(engine.queue_config(queue_id), "survey", None), "max_score", None
            )

        found = self.acd.read(tenant_id, scale)
        return (
            found
            if isinstance(found, int) and MIN_SCALE <= found <= MAX_SCALE
            else (DEFAULT_MAX_SCORE)
        )

    # -- reading -------------------------------------------------------------------------------
    @staticmethod
    def _answer_of(s: Any, tenant_id: str, interaction_id: str) -> SurveyResponse | None:
        return s.scalars(  # type: ignore[no-any-return]
            select(SurveyResponse).where(
                SurveyResponse.tenant_id == tenant_id,
                SurveyResponse.interaction_id == interaction_id,
            )
        ).first()

    def answer(self, tenant_id: str, interaction_id: str) -> dict[str, Any] | None:
        """The answer about one interaction, or None."""
        with self.db.read() as s:
            row = self._answer_of(s, tenant_id, interaction_id)
            return response_payload(row) if row is not None else None

    def answers(
        self,
        tenant_id: str,
        *,
        queue_id: str | None = None,
        agent_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """The organisation's answers, newest first, narrowed by the filters (``since``
        inclusive, ``until`` exclusive, on the time of the answer). ``owner``: only the
        answers about that agent's interactions (asking for another agent's is refused)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be 1 to {MAX_LIST}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must not be negative", field="offset")
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput(f"{name} needs a time zone (e.g. Z or +01:00)", field=name)
        if since is not None and until is not None and until <= since:
            raise InvalidInput("until must be after since", field="until")
        if owner is not None:
            if agent_id is not None and agent_id != owner:
                raise PermissionDenied(
                    "agents see the answers about their own interactions only",
                    field="agent_id",
                )
            agent_id = owner
        query: Select[SurveyResponse] = select(SurveyResponse).where(
            SurveyResponse.tenant_id == tenant_id
        )
        query = newest_first(
            query,
            when=SurveyResponse.answered_at,
            key=SurveyResponse.id,
            equal=((SurveyResponse.queue_id, queue_id), (SurveyResponse.agent_id, agent_id)),
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        with self.db.read() as s:
            return [response_payload(r) for r in s.scalars(query)]
