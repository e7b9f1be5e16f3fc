"""Quality assurance: the organisation's scorecards and the evaluations scored on them.

Who does what:

* administrators write scorecards; a scorecard already used by an evaluation is never
  changed in place: saving it writes a new version (same ``family_id``, ``version`` + 1) and
  retires the old one, so every evaluation keeps the meaning it was scored with. Archiving
  retires a scorecard without deleting it;
* supervisors (and administrators) review agents' calls: a draft, edited until it is
  submitted, then immutable;
* agents evaluate their own calls ("self" evaluations), see the reviews of their calls once
  submitted, and acknowledge them with an optional comment: the feedback loop;
* everyone sees trends month by month (agents their own, supervisors any agent's or the
  whole team's), reviews and self-evaluations apart.

Scores are computed here from the answers (:mod:`sparklecomm.quality.scoring`), never taken
from a client. Each change is one transaction with its audit entry and, for submissions,
acknowledgements and scorecard changes, its event. The events carry no scores or comments:
the event stream is the whole organisation's, and an agent's feedback is theirs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sparklecomm.audit.store import write_audit_txn
from sparklecomm.auth.service import Principal
from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sparklecomm.core.events import NewEvent
from sparklecomm.core.hours import check_timezone
from sparklecomm.core.ids import new_id
from sparklecomm.quality import scoring
from sparklecomm.store.db import Database, Tx
from sparklecomm.store.listing import MAX_LIST, newest_first
from sparklecomm.store.models import QualityEvaluation, QualityScorecard, User

if TYPE_CHECKING:
    from sparklecomm.telephony.recordings import RecordingService

KINDS = ("review", "self")
STATUSES = ("draft", "submitted", "acknowledged")
MAX_NAME = 100
MAX_DESCRIPTION = 2000
MAX_COMMENT = 4000
MAX_MONTHS = 24


def scorecard_payload(row: QualityScorecard) -> dict[str, Any]:
    return {
        "id": row.id,
        "family_id": row.family_id,
        "version": row.version,
        "name": row.name,
        "description": row.description,
        "criteria": list(row.criteria or []),
        "active": bool(row.active),
        "archived": bool(row.archived),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def evaluation_payload(row: QualityEvaluation, card: QualityScorecard) -> dict[str, Any]:
    """An evaluation as the API shows it, with its scorecard's name and version."""
    return {
        "id": row.id,
        "scorecard_id": row.scorecard_id,
        "scorecard": {"id": card.id, "name": card.name, "version": card.version},
        "agent_id": row.agent_id,
        "evaluator_id": row.evaluator_id,
        "kind": row.kind,
        "interaction_id": row.interaction_id,
        "recording_id": row.recording_id,
        "call_id": row.call_id,
        "answers": dict(row.answers or {}),
        "score": row.score,
        "section_scores": dict(row.section_scores or {}),
        "failed_critical": [
            c["id"]
            for c in card.criteria or []
            if c["critical"]
            and (row.answers or {}).get(c["id"], {}).get("value")
            == scoring.scale_bounds(c["scale"])[0]
        ],
        "comment": row.comment,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "submitted_at": row.submitted_at.isoformat() if row.submitted_at else None,
        "acknowledged_at": row.acknowledged_at.isoformat() if row.acknowledged_at else None,
        "agent_comment": row.agent_comment,
    }


def event_payload(row: QualityEvaluation) -> dict[str, Any]:
    """What the organisation's event stream says about an evaluation: who and which state,
    never the score or the comments (every user of the organisation reads the stream)."""
    return {
        "id": row.id,
        "agent_id": row.agent_id,
        "evaluator_id": row.evaluator_id,
        "kind": row.kind,
        "status": row.status,
        "scorecard_id": row.scorecard_id,
        "recording_id": row.recording_id,
    }


def _text(value: Any, name: str, max_length: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", field=name)
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{name} must not be empty", field=name)
    if len(text) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    return text


def _aware(name: str, moment: datetime | None) -> None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone (e.g. Z or +01:00)", field=name)


def month_starts(now: datetime, months: int, zone: ZoneInfo) -> list[datetime]:
    """The first instants of the last ``months`` calendar months in ``zone``, oldest first,
    the current month last (a month starts at local midnight of its first day)."""
    local = now.astimezone(zone)
    year, month = local.year, local.month
    starts: list[datetime] = []
    for _ in range(months):
        starts.append(datetime(year, month, 1, tzinfo=zone))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return starts[::-1]


class QualityService:
    """Scorecards, evaluations and trends of the organisations."""

    def __init__(
        self, db: Database, clock: Clock, recordings: RecordingService | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        # The RecordingService (None: call recording not set up): an evaluation of a
        # recording takes its agent, interaction and call from it.
        self.recordings = recordings

    # -- scorecards ----------------------------------------------------------------------------
    def _card(self, s: Session, tenant_id: str, scorecard_id: str) -> QualityScorecard:
        row = s.get(QualityScorecard, (scorecard_id or "").strip())
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no scorecard {scorecard_id!r} here", field="scorecard_id")
        return row

    def _agent_scorecard_ids(self, s: Session, tenant_id: str, user_id: str) -> set[str]:
        return set(
            s.scalars(
                select(QualityEvaluation.scorecard_id).where(
                    QualityEvaluation.tenant_id == tenant_id,
                    (QualityEvaluation.agent_id == user_id)
                    | (QualityEvaluation.evaluator_id == user_id),
                )
            )
        )

    def scorecards(
        self, tenant_id: str, principal: Principal, *, include_retired: bool = False
    ) -> list[dict[str, Any]]:
        """The current scorecards by name (``include_retired``: every version, archived or
        replaced, too). Agents see the current ones (to evaluate themselves) and those their
        evaluations were scored on."""
        with self.db.read() as s:
            query = select(QualityScorecard).where(QualityScorecard.tenant_id == tenant_id)
            rows = list(
                s.scalars(query.order_by(QualityScorecard.name, QualityScorecard.version.desc()))
            )
            mine = (
                set()
                if principal.has_role("supervisor")
                else self._agent_scorecard_ids(s, tenant_id, principal.user_id)
            )
            out = []
            for row in rows:
                if not (row.active or include_retired):
                    continue
                if not principal.has_role("supervisor") and not (row.active or row.id in mine):
                    continue
                out.append(scorecard_payload(row))
            return out

    def scorecard(self, tenant_id: str, principal: Principal, scorecard_id: str) -> dict[str, Any]:
        with self.db.read() as s:
            row = self._card(s, tenant_id, scorecard_id)
            if not (principal.has_role("supervisor") or row.active) and row.id not in (
                self._agent_scorecard_ids(s, tenant_id, principal.user_id)
            ):
                raise PermissionDenied(
                    "agents see the current scorecards and those of their own evaluations",
                    field="scorecard_id",
                )
            return scorecard_payload(row)

    def _check_name(self, s: Session, tenant_id: str, name: str, family_id: str | None) -> None:
        query = select(QualityScorecard.family_id).where(
            QualityScorecard.tenant_id == tenant_id,
            QualityScorecard.active.is_(True),
            QualityScorecard.name == name,
        )
        for other in s.scalars(query):
            if other != family_id:
                raise Conflict(f"a scorecard named {name!r} exists already", field="name")

    @contextmanager
    def _name_race(self, name: str) -> Iterator[None]:
        """The check of :meth:`_check_name` lost a race with another administrator's save:
        the database's unique index refused the second scorecard of that name."""
        try:
            yield
        except IntegrityError:
            raise Conflict(
                f"a scorecard named {name.strip()!r} exists already", field="name"
            ) from None

    def _scorecard_changed(
        self, tx: Tx, tenant_id: str, principal: Principal, row: QualityScorecard, change: str
    ) -> dict[str, Any]:
        payload = scorecard_payload(row)
        write_audit_txn(
            tx.session,
            tx.clock,
            tenant_id=tenant_id,
            actor=principal.actor,
            action=f"quality.scorecard_{change}",
            target_type="quality_scorecard",
            target_id=row.id,
            details={"name": row.name, "version": row.version, "family_id": row.family_id},
        )
        tx.emit(
            tenant_id,
            NewEvent("quality.scorecard_changed", {"change": change, "scorecard": payload}),
        )
        return payload

    def do_create_scorecard(
        self,
        tenant_id: str,
        principal: Principal,
        *,
        name: str,
        description: str = "",
        criteria: Any,
    ) -> dict[str, Any]:
        """A new scorecard, version 1 (audited, event ``quality.scorecard_changed`` with
        ``change`` "created"); 409 when a current scorecard has the name already."""
        name = _text(name, "name", MAX_NAME, required=True)
        description = _text(description, "description", MAX_DESCRIPTION)
        checked = scoring.check_criteria(criteria)
        with self._name_race(name), self.db.write() as tx:
            self._check_name(tx.session, tenant_id, name, None)
            now = tx.clock.now()
            card_id = new_id()
            row = QualityScorecard(
                id=card_id,
                tenant_id=tenant_id,
                family_id=card_id,
                version=1,
                name=name,
                description=description,
                criteria=checked,
                active=True,
                archived=False,
                created_at=now,
                updated_at=now,
            )
            tx.session.add(row)
            tx.session.flush()
            return self._scorecard_changed(tx, tenant_id, principal, row, "created")

    def do_update_scorecard(
        self,
        tenant_id: str,
        principal: Principal,
        scorecard_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        criteria: Any = None,
    ) -> dict[str, Any]:
        """Change the current version of a scorecard (what is not given stays). Unused, it
        changes in place ("updated"); used by any evaluation, a new version replaces it
        ("versioned": the old one stays, retired, for its evaluations). Returns the
        scorecard as it is now; 409 for a retired version."""
        with self._name_race(name or ""), self.db.write() as tx:
            s = tx.session
            row = self._card(s, tenant_id, scorecard_id)
            if not row.active:
                current = s.scalar(
                    select(QualityScorecard).where(
                        QualityScorecard.tenant_id == tenant_id,
                        QualityScorecard.family_id == row.family_id,
                        QualityScorecard.active.is_(True),
                    )
                )
                hint = (
                    f"; edit the current version {current.version} ({current.id})"
                    if current is not None
                    else " (archived)"
                )
                raise Conflict(
                    f"scorecard {row.name!r} version {row.version} is retired{hint}",
                    field="scorecard_id",
                )
            new_name = row.name if name is None else _text(name, "name", MAX_NAME, required=True)
            new_description = (
                row.description
                if description is None
                else _text(description, "description", MAX_DESCRIPTION)
            )
            new_criteria = (
                list(row.criteria) if criteria is None else scoring.check_criteria(criteria)
            )
            self._check_name(s, tenant_id, new_name, row.family_id)
            used = s.scalar(
                select(QualityEvaluation.id)
                .where(QualityEvaluation.scorecard_id == row.id)
                .limit(1)
            )
            now = tx.clock.now()
            if used is None:
                row.name, row.description, row.criteria = new_name, new_description, new_criteria
                row.updated_at = now
                s.flush()
                return self._scorecard_changed(tx, tenant_id, principal, row, "updated")
            row.active = False
            row.updated_at = now
            s.flush()  # the old version retired before the new one is current
            newer = QualityScorecard(
                id=new_id(),
                tenant_id=tenant_id,
                family_id=row.family_id,
                version=row.version + 1,
                name=new_name,
                description=new_description,
                criteria=new_criteria,
                active=True,
                archived=False,
                created_at=now,
                updated_at=now,
            )
            s.add(newer)
            s.flush()
            return self._scorecard_changed(tx, tenant_id, principal, newer, "versioned")

    def do_archive_scorecard(
        self, tenant_id: str, principal: Principal, scorecard_id: str
    ) -> dict[str, Any]:
        """Retire a scorecard: no new evaluations on it; its evaluations stay as they are
        (drafts on it may still be finished). Scorecards are never deleted."""
        with self.db.write() as tx:
            row = self._card(tx.session, tenant_id, scorecard_id)
            if not row.active:
                raise Conflict(
                    f"scorecard {row.name!r} version {row.version} is retired already",
                    field="scorecard_id",
                )
            row.active = False
            row.archived = True
            row.updated_at = tx.clock.now()
            tx.session.flush()
            return self._scorecard_changed(tx, tenant_id, principal, row, "archived")

    # -- evaluations ---------------------------------------------------------------------------
    def _payloads(self, s: Session, rows: list[QualityEvaluation]) -> list[dict[str, Any]]:
        cards: dict[str, QualityScorecard] = {}
        out = []
        for row in rows:
            card = cards.get(row.scorecard_id)
            if card is None:
                card = cards[row.scorecard_id] = s.get_one(QualityScorecard, row.scorecard_id)
            out.append(evaluation_payload(row, card))
        return out

    def _visible(self, row: QualityEvaluation, principal: Principal) -> bool:
        """Supervisors see every evaluation but other people's unsubmitted self-evaluations;
        an agent sees what they wrote and the submitted reviews of their calls."""
        if row.evaluator_id == principal.user_id:
            return True
        if principal.has_role("supervisor"):
            return not (row.kind == "self" and row.status == "draft")
        return row.agent_id == principal.user_id and row.status != "draft"

    def _evaluation(
        self, s: Session, tenant_id: str, principal: Principal, evaluation_id: str
    ) -> QualityEvaluation:
        row = s.get(QualityEvaluation, (evaluation_id or "").strip())
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no evaluation {evaluation_id!r} here", field="id")
        if not self._visible(row, principal):
            if row.agent_id == principal.user_id or principal.has_role("supervisor"):
                raise NotFound(f"no evaluation {evaluation_id!r} here", field="id")
            raise PermissionDenied(
                f"evaluation {evaluation_id!r} is of another agent's call", field="id"
            )
        return row

    def evaluation(
        self, tenant_id: str, principal: Principal, evaluation_id: str
    ) -> dict[str, Any]:
        with self.db.read() as s:
            row = self._evaluation(s, tenant_id, principal, evaluation_id)
            return self._payloads(s, [row])[0]

    def evaluations(
        self,
        tenant_id: str,
        principal: Principal,
        *,
        agent_id: str | None = None,
        evaluator_id: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        recording_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Evaluations the principal may see, newest first, narrowed by the filters
        (``since`` inclusive and ``until`` exclusive on the creation time). Agents asking
        for another agent's are refused (403)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be 1 to {MAX_LIST}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must not be negative", field="offset")
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
        _aware("since", since)
        _aware("until", until)
        if since is not None and until is not None and until <= since:
            raise InvalidInput("until must be after since", field="until")
        query: Select[Any] = select(QualityEvaluation).where(
            QualityEvaluation.tenant_id == tenant_id
        )
        me = principal.user_id
        if principal.has_role("supervisor"):
            query = query.where(
                (QualityEvaluation.kind != "self")
                | (QualityEvaluation.status != "draft")
                | (QualityEvaluation.evaluator_id == me)
            )
        else:
            if agent_id is not None and agent_id != me:
                raise PermissionDenied(
                    "agents see the evaluations of their own calls only", field="agent_id"
                )
            query = query.where(
                (QualityEvaluation.evaluator_id == me)
                | ((QualityEvaluation.agent_id == me) & (QualityEvaluation.status != "draft"))
            )
        query = newest_first(
            query,
            when=QualityEvaluation.created_at,
            key=QualityEvaluation.id,
            equal=(
                (QualityEvaluation.agent_id, agent_id),
                (QualityEvaluation.evaluator_id, evaluator_id),
                (QualityEvaluation.kind, kind),
                (QualityEvaluation.status, status),
                (QualityEvaluation.recording_id, recording_id),
            ),
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        with self.db.read() as s:
            return self._payloads(s, list(s.scalars(query)))

    def _audit(
        self, tx: Tx, tenant_id: str, principal: Principal, action: str, row: QualityEvaluation
    ) -> None:
        write_audit_txn(
            tx.session,
            tx.clock,
            tenant_id=tenant_id,
            actor=principal.actor,
            action=f"quality.evaluation_{action}",
            target_type="quality_evaluation",
            target_id=row.id,
            details={
                "agent_id": row.agent_id,
                "kind": row.kind,
                "scorecard_id": row.scorecard_id,
                "status": row.status,
                "score": row.score,
            },
        )

    def _rescore(self, row: QualityEvaluation, card: QualityScorecard, answers: Any) -> None:
        checked = scoring.check_answers(card.criteria, answers, complete=False)
        result = scoring.score(card.criteria, checked)
        row.answers = checked
        row.score = result.score
        row.section_scores = result.sections

    def do_create_evaluation(
        self,
        tenant_id: str,
        principal: Principal,
        *,
        scorecard_id: str,
        kind: str = "review",
        agent_id: str | None = None,
        recording_id: str | None = None,
        interaction_id: str | None = None,
        call_id: str | None = None,
        answers: Any = None,
        comment: str = "",
    ) -> dict[str, Any]:
        """A draft evaluation on a current scorecard. A review (supervisors) of an agent
        of the organisation; a self-evaluation (anyone) of the principal's own call, which
        names its recording or interaction. With ``recording_id`` the recording must exist
        here (an agent's: their own call) and gives the agent, interaction and call."""
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
        if kind == "review" and not principal.has_role("supervisor"):
            raise PermissionDenied(
                "reviews are written by supervisors; evaluate yourself with kind 'self'",
                field="kind",
            )
        comment = _text(comment, "comment", MAX_COMMENT)
        interaction_id = (interaction_id or "").strip() or None
        call_id = (call_id or "").strip() or None
        recording_id = (recording_id or "").strip() or None
        if kind == "self":
            if agent_id is not None and agent_id != principal.user_id:
                raise PermissionDenied(
                    "a self-evaluation is of your own call: leave agent_id out", field="agent_id"
                )
            agent_id = principal.user_id
            if recording_id is None and interaction_id is None:
                raise InvalidInput(
                    "a self-evaluation names the call: its recording_id or interaction_id",
                    field="recording_id",
                )
        if recording_id is not None:
            if self.recordings is None:
                raise InvalidInput(
                    "call recording is not set up here: leave recording_id out",
                    field="recording_id",
                )
            owner = principal.user_id if kind == "self" else None
            recording = self.recordings.recording(tenant_id, recording_id, owner)
            if recording["agent_id"] is not None:
                if agent_id is not None and agent_id != recording["agent_id"]:
                    raise InvalidInput(
                        f"recording {recording_id!r} is of another agent's call",
                        field="agent_id",
                    )
                agent_id = recording["agent_id"]
            interaction_id = interaction_id or recording["interaction_id"]
            call_id = call_id or recording["call_id"]
        if not agent_id:
            raise InvalidInput("which agent is evaluated? agent_id is missing", field="agent_id")
        with self.db.write() as tx:
            s = tx.session
            agent = s.get(User, agent_id)
            if agent is None or agent.tenant_id != tenant_id:
                raise InvalidInput(f"no user {agent_id!r} here", field="agent_id")
            card = self._card(s, tenant_id, scorecard_id)
            if not card.active:
                raise Conflict(
                    f"scorecard {card.name!r} version {card.version} is retired: use its "
                    "current version",
                    field="scorecard_id",
                )
            now = tx.clock.now()
            row = QualityEvaluation(
                id=new_id(),
                tenant_id=tenant_id,
                scorecard_id=card.id,
                agent_id=agent_id,
                evaluator_id=principal.user_id,
                kind=kind,
                interaction_id=interaction_id,
                recording_id=recording_id,
                call_id=call_id,
                comment=comment,
                status="draft",
                created_at=now,
                updated_at=now,
                submitted_at=None,
                acknowledged_at=None,
                agent_comment="",
            )
            self._rescore(row, card, answers)
            s.add(row)
            s.flush()
            self._audit(tx, tenant_id, principal, "created", row)
            return evaluation_payload(row, card)

    def _draft_of(
        self, s: Session, tenant_id: str, principal: Principal, evaluation_id: str
    ) -> tuple[QualityEvaluation, QualityScorecard]:
        row = self._evaluation(s, tenant_id, principal, evaluation_id)
        if row.evaluator_id != principal.user_id:
            raise PermissionDenied(
                "only the evaluator changes or submits an evaluation", field="id"
            )
        if row.status != "draft":
            raise Conflict(
                f"evaluation {evaluation_id!r} is {row.status}: it can no longer be changed",
                field="id",
            )
        return row, s.get_one(QualityScorecard, row.scorecard_id)

    def do_update_evaluation(
        self,
        tenant_id: str,
        principal: Principal,
        evaluation_id: str,
        *,
        answers: Any = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Change a draft (its evaluator only): ``answers`` replace the answers given so
        far; 409 once submitted."""
        with self.db.write() as tx:
            row, card = self._draft_of(tx.session, tenant_id, principal, evaluation_id)
            if answers is not None:
                self._rescore(row, card, answers)
            if comment is not None:
                row.comment = _text(comment, "comment", MAX_COMMENT)
            row.updated_at = tx.clock.now()
            tx.session.flush()
            self._audit(tx, tenant_id, principal, "changed", row)
            return evaluation_payload(row, card)

    def do_submit_evaluation(
        self, tenant_id: str, principal: Principal, evaluation_id: str
    ) -> dict[str, Any]:
        """Submit a draft: every criterion answered (or marked not applicable), the score
        final; the evaluation is immutable from now on. Event
        ``quality.evaluation_submitted``."""
        with self.db.write() as tx:
            row, card = self._draft_of(tx.session, tenant_id, principal, evaluation_id)
            checked = scoring.check_answers(card.criteria, row.answers, complete=True)
            result = scoring.score(card.criteria, checked)
            row.score, row.section_scores = result.score, result.sections
            row.status = "submitted"
            row.submitted_at = row.updated_at = tx.clock.now()
            tx.session.flush()
            self._audit(tx, tenant_id, principal, "submitted", row)
            tx.emit(
                tenant_id,
                NewEvent("quality.evaluation_submitted", {"evaluation": event_payload(row)}),
            )
            return evaluation_payload(row, card)

    def do_acknowledge_evaluation(
        self, tenant_id: str, principal: Principal, evaluation_id: str, comment: str = ""
    ) -> dict[str, Any]:
        """The agent has read a submitted review of their call, and may answer it. Event
        ``quality.evaluation_acknowledged``."""
        comment = _text(comment, "comment", MAX_COMMENT)
        with self.db.write() as tx:
            row = self._evaluation(tx.session, tenant_id, principal, evaluation_id)
            if row.agent_id != principal.user_id:
                raise PermissionDenied(
                    "only the evaluated agent acknowledges an evaluation", field="id"
                )
            if row.kind != "review":
                raise Conflict("a self-evaluation needs no acknowledgement", field="id")
            if row.status != "submitted":
                raise Conflict(f"evaluation {evaluation_id!r} is {row.status}", field="id")
            row.status = "acknowledged"
            row.acknowledged_at = row.updated_at = tx.clock.now()
            row.agent_comment = comment
            tx.session.flush()
            self._audit(tx, tenant_id, principal, "acknowledged", row)
            tx.emit(
                tenant_id,
                NewEvent("quality.evaluation_acknowledged", {"evaluation": event_payload(row)}),
            )
            return evaluation_payload(row, tx.session.get_one(QualityScorecard, row.scorecard_id))

    def do_delete_draft(self, tenant_id: str, principal: Principal, evaluation_id: str) -> None:
        """Discard a draft (its evaluator only); submitted evaluations stay (409)."""
        with self.db.write() as tx:
            row, _ = self._draft_of(tx.session, tenant_id, principal, evaluation_id)
            self._audit(tx, tenant_id, principal, "discarded", row)
            tx.session.delete(row)

    # -- trends --------------------------------------------------------------------------------
    def trends(
        self,
        tenant_id: str,
        principal: Principal,
        *,
        agent_id: str | None = None,
        months: int = 6,
        timezone: str = "UTC",
    ) -> dict[str, Any]:
        """Month by month over the last ``months`` calendar months (the current one last,
        months in ``timezone``): per kind (review, self) the average score, the number of
        scored evaluations, the section averages and the change from the month before; and
        the gap between self and review averages. Counts submitted and acknowledged
        evaluations by the month they were submitted. An agent's own (agents), any agent's
        or the whole team's (``agent_id`` left out) for supervisors."""
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 24:
            raise InvalidInput(f"months must be 1 to {MAX_MONTHS}", field="months")
        zone = ZoneInfo(check_timezone(timezone))
        if not principal.has_role("supervisor"):
            if agent_id is not None and agent_id != principal.user_id:
                raise PermissionDenied("agents see their own trends only", field="agent_id")
            agent_id = principal.user_id
        starts = month_starts(self.clock.now(), months, zone)
        labels = [f"{m.year:04d}-{m.month:02d}" for m in starts]
        query = select(
            QualityEvaluation.kind,
            QualityEvaluation.score,
            QualityEvaluation.section_scores,
            QualityEvaluation.submitted_at,
        ).where(
            QualityEvaluation.tenant_id == tenant_id,
            QualityEvaluation.status.in_(("submitted", "acknowledged")),
            QualityEvaluation.submitted_at >= starts[0].astimezone(UTC),
        )
        if agent_id is not None:
            query = query.where(QualityEvaluation.agent_id == agent_id)
        buckets: dict[tuple[str, str], list[tuple[float, Mapping[str, Any]]]] = {}
        with self.db.read() as s:
            for kind, value, sections, submitted in s.execute(query):
                if value is None or submitted is None:
                    continue  # nothing applicable was answered: no score to average
                local = submitted.astimezone(zone)
                label = f"{local.year:04d}-{local.month:02d}"
                buckets.setdefault((label, kind), []).append((value, sections or {}))
        rows: list[dict[str, Any]] = []
        previous: dict[str, float | None] = {k: None for k in KINDS}
        for label in labels:
            row: dict[str, Any] = {"month": label}
            for kind in KINDS:
                scored = buckets.get((label, kind), [])
                average = round(sum(v for v, _ in scored) / len(scored), 1) if scored else None
                per_section: dict[str, list[float]] = {}
                for _, sections in scored:
                    for name, part in sections.items():
                        if part is not None:
                            per_section.setdefault(name, []).append(part)
                before = previous[kind]
                row[kind] = {
                    "average": average,
                    "count": len(scored),
                    "sections": {
                        n: round(sum(v) / len(v), 1) for n, v in sorted(per_section.items())
                    },
                    "change": (
                        round(average - before, 1)
                        if average is not None and before is not None
                        else None
                    ),
                }
                if average is not None:
                    previous[kind] = average
            review, own = row["review"]["average"], row["self"]["average"]
            row["self_gap"] = (
                round(own - review, 1) if own is not None and review is not None else None
            )
            rows.append(row)
        return {"agent_id": agent_id, "timezone": zone.key, "months": rows}
