"""Call recordings: where they are stored, which calls the organisation records, how long it
keeps them, and who may listen.

The media recorder (:mod:`sparklecomm.telephony.media.recorder`) writes the audio; this
service owns everything around it. The B2BUA asks :meth:`RecordingService.recording_wanted`
when a call is answered, calls :meth:`~RecordingService.begin_recording` for the row and the
file's place, reports pauses for privacy, and :meth:`~RecordingService.finish_recording` when
the call ends. Each step is one transaction with its event (``recording.started``,
``recording.paused``, ``recording.resumed``, ``recording.stopped``).

Files: ``<folder>/<tenant_id>/<id>.wav`` (8 kHz, 16-bit, stereo: the caller on the left
channel, the agent and the other parties on the right). While the call lasts the recorder
writes ``<folder>/<tenant_id>/.<id>.wav.part``, a valid WAV at every flush, and renames it when
the call ends. A node that dies mid-call leaves the partial file and a row still
"recording": :meth:`~RecordingService.recover_interrupted` (any node, from the housekeeping
task) turns it into a playable "interrupted" recording once the file has not changed for a
minute. With several nodes the folder must be shared (NFS, a mounted volume): the node that
serves a download is not necessarily the one that recorded the call.
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from sparklecomm.audit.store import Actor, write_audit_txn
from sparklecomm.core.clock import Clock
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from sparklecomm.core.events import NewEvent
from sparklecomm.core.ids import new_id
from sparklecomm.store.db import Database, Tx
from sparklecomm.store.listing import MAX_LIST, newest_first
from sparklecomm.store.models import CallRecording, RecordingPolicy
from sparklecomm.telephony.extensions import Extension

log = structlog.get_logger(__name__)

STATUSES = ("recording", "complete", "interrupted", "failed")
#: A partial file unchanged for this long belongs to a call no node is recording any more.
STALE_SECONDS = 60.0
MAX_RETENTION_DAYS = 3650
#: 8 kHz × 2 channels × 2 bytes: what a second of recording takes on disk (115 MB an hour).
BYTES_PER_SECOND = 8000 * 2 * 2
#: Who started a recording the policy asked for (else the id of the user who started it).
POLICY = "policy"
#: The audit log's name for the retention purge.
RETENTION = Actor(id=None, name="retention")
#: What may name a folder under the recordings directory (tenant ids are 32 hex digits).
FOLDER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
PURGE_BATCH = 200


def recording_payload(r: CallRecording) -> dict[str, Any]:
    """A recording as the API, the command line and the events show it (never the audio:
    ``GET /api/v1/recordings/{id}/audio``; never the file's name)."""
    return {
        "id": r.id,
        "call_id": r.call_id,
        "interaction_id": r.interaction_id,
        "queue_id": r.queue_id,
        "agent_id": r.agent_id,
        "caller": r.caller,
        "dialled": r.dialled,
        "started_by": r.started_by,
        "started_at": r.started_at.isoformat(),
        "ended_at": r.ended_at.isoformat() if r.ended_at is not None else None,
        "seconds": r.seconds,
        "paused_seconds": r.paused_seconds,
        "pauses": [list(p) for p in (r.pauses or [])],
        "status": r.status,
        "bytes": r.bytes,
    }


def policy_payload(tenant_id: str, row: RecordingPolicy | None) -> dict[str, Any]:
    """The organisation's policy; without a row: record nothing, keep forever."""
    if row is None:
        return {
            "all_calls": False,
            "queues": [],
            "extensions": [],
            "retention_days": 0,
            "updated_at": None,
        }
    return {
        "all_calls": bool(row.all_calls),
        "queues": list(row.queues or []),
        "extensions": list(row.extensions or []),
        "retention_days": row.retention_days,
        "updated_at": row.updated_at.isoformat(),
    }


def _text(value: str, max_length: int) -> str:
    """Text from a caller's SIP headers, made safe to store: no control characters."""
    return CONTROL_RE.sub("", value or "").strip()[:max_length]


# -- WAV files left by a node that died --------------------------------------------------------
def repair_wav(path: Path) -> tuple[int, float]:
    """Make the WAV file at ``path`` consistent with its length: truncate to whole frames and
    write the RIFF and data sizes into the header (a recorder that died wrote only the sizes
    of its last flush). Returns (bytes, seconds of audio). Raises InvalidInput when the file
    has no usable WAV header."""
    with open(path, "r+b") as f:
        head = f.read(4096)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise InvalidInput(f"{path.name} is not a WAV file", field="file")
        pos, rate, align, data_at = 12, 0, 0, -1
        while pos + 8 <= len(head):
            chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
            if chunk == b"fmt " and pos + 24 <= len(head):
                rate = struct.unpack_from("<I", head, pos + 12)[0]
                align = struct.unpack_from("<H", head, pos + 20)[0]
            if chunk == b"data":
                data_at = pos + 8
                break
            pos += 8 + size + (size & 1)
        if data_at < 0 or rate <= 0 or align <= 0:
            raise InvalidInput(f"{path.name} has no audio format or data chunk", field="file")
        length = os.fstat(f.fileno()).st_size
        frames = max(0, length - data_at) // align
        data = frames * align
        f.truncate(data_at + data)
        f.seek(4)
        f.write(struct.pack("<I", data_at + data - 8))
        f.seek(data_at - 4)
        f.write(struct.pack("<I", data))
        f.flush()
        os.fsync(f.fileno())
    return data_at + data, round(frames / rate, 2)


class RecordingService:
    """Stores, governs and serves the organisations' call recordings."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        folder: Path,
        *,
        queue_ids: Callable[[str], Iterable[str]] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.clock = clock
        # ``<folder>/<tenant_id>/<id>.wav``; shared by every node of a cluster.
        self.folder = folder
        # The routing queues of a tenant, to check the policy's queues (None: not checked).
        self.queue_ids = queue_ids
        # Files' modification times are the file system's wall-clock times, not the
        # service clock's (a fake one in tests): staleness is measured against this.
        self.wall_clock = wall_clock

    # -- files ---------------------------------------------------------------------------------
    def tenant_folder(self, tenant_id: str) -> Path:
        if not FOLDER_RE.match(tenant_id):
            raise InvalidInput(f"{tenant_id!r} is not an organisation id", field="tenant_id")
        return self.folder / tenant_id

    def _paths(self, tenant_id: str, name: str) -> tuple[Path, Path]:
        """The final file and the recorder's partial file of a recording."""
        folder = self.tenant_folder(tenant_id)
        return folder / name, folder / f".{name}.part"

    def _remove(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:  # the row says what happened; the file is only disk space
            log.error("recording_file_not_removed", path=str(path), error=str(error))

    # -- the policy ----------------------------------------------------------------------------
    def policy(self, tenant_id: str) -> dict[str, Any]:
        with self.db.read() as s:
            return policy_payload(tenant_id, s.get(RecordingPolicy, tenant_id))

    def recording_wanted_sync(
        self, tenant_id: str, *, queue_id: str | None, extensions: Sequence[str]
    ) -> bool:
        with self.db.read() as s:
            row = s.get(RecordingPolicy, tenant_id)
            if row is None:
                return False
            if row.all_calls:
                return True
            if queue_id is not None and queue_id in (row.queues or []):
                return True
            wanted = set(row.extensions or [])
            return any(e in wanted for e in extensions)

    def do_set_policy(
        self,
        tenant_id: str,
        actor: Actor,
        all_calls: bool,
        queues: Sequence[str],
        extensions: Sequence[str],
        retention_days: int,
    ) -> dict[str, Any]:
        """Replace the organisation's policy (audited, event ``recording.policy_changed``).
        Every queue and extension must exist; a change applies to calls answered from now
        on, and the retention to every ended recording at the next purge."""
        if isinstance(retention_days, bool) or not isinstance(retention_days, int):
            raise InvalidInput("retention_days must be a whole number", field="retention_days")
        if not 0 <= retention_days <= MAX_RETENTION_DAYS:
            raise InvalidInput(
                f"retention_days must be 0 (keep forever) to {MAX_RETENTION_DAYS}, "
                f"not {retention_days}",
                field="retention_days",
            )
        wanted_queues = sorted({q.strip() for q in queues if q.strip()})
        wanted_numbers = sorted({n.strip() for n in extensions if n.strip()})
        if self.queue_ids is not None and wanted_queues:
            known = set(self.queue_ids(tenant_id))
            for q in wanted_queues:
                if q not in known:
                    raise InvalidInput(
                        f"no queue {q!r} here (queues: {', '.join(sorted(known)) or 'none'})",
                        field="queues",
                    )

        def do(tx: Tx) -> dict[str, Any]:
            s = tx.session
            if wanted_numbers:
                known = set(
                    s.scalars(select(Extension.number).where(Extension.tenant_id == tenant_id))
                )
                for n in wanted_numbers:
                    if n not in known:
                        raise InvalidInput(f"no extension {n} here", field="extensions")
            row = s.get(RecordingPolicy, tenant_id)
            if row is None:
                row = RecordingPolicy(tenant_id=tenant_id)
                s.add(row)
            row.all_calls = bool(all_calls)
            row.queues = wanted_queues
            row.extensions = wanted_numbers
            row.retention_days = retention_days
            row.updated_at = tx.clock.now()
            s.flush()
            payload = policy_payload(tenant_id, row)
            write_audit_txn(
                s,
                tx.clock,
                tenant_id=tenant_id,
                actor=actor,
                action="recording.policy_changed",
                target_type="recording_policy",
                target_id=None,
                details=payload,
            )
            tx.emit(tenant_id, NewEvent("recording.policy_changed", {"policy": payload}))
            return payload

        with self.db.write() as tx:
            return do(tx)

    # -- the B2BUA's protocol ------------------------------------------------------------------
    async def recording_wanted(
        self, tenant_id: str, *, queue_id: str | None, extensions: Sequence[str]
    ) -> bool:
        """Does the organisation's policy record this call: every call, a call of one of
        its queues, or a call with one of its extensions on it?"""
        return await run_in_threadpool(
            lambda: self.recording_wanted_sync(
                tenant_id, queue_id=queue_id, extensions=list(extensions)
            )
        )

    def begin_recording_sync(
        self,
        tenant_id: str,
        *,
        call_id: str,
        caller: str,
        dialled: str,
        interaction_id: str | None,
        queue_id: str | None,
        agent_id: str | None,
        started_by: str,
    ) -> tuple[str, Path]:
        started_by = (started_by or "").strip()
        if not started_by or len(started_by) > 32:
            raise InvalidInput(
                "started_by must be 'policy' or the id of a user", field="started_by"
            )
        folder = self.tenant_folder(tenant_id)
        recording_id = new_id()
        name = f"{recording_id}.wav"
        folder.mkdir(parents=True, exist_ok=True)

        with self.db.write() as tx:
            row = CallRecording(
                id=recording_id,
                tenant_id=tenant_id,
                call_id=_text(call_id, 300),
                interaction_id=interaction_id or None,
                queue_id=queue_id or None,
                agent_id=agent_id or None,
                caller=_text(caller, 100) or "anonymous",
                dialled=_text(dialled, 100),
                started_by=started_by,
                started_at=tx.clock.now(),
                ended_at=None,
                seconds=0.0,
                paused_seconds=0.0,
                pauses=[],
                status="recording",
                file=name,
                bytes=0,
            )
            tx.session.add(row)
            tx.session.flush()
            tx.emit(tenant_id, NewEvent("recording.started", {"recording": recording_payload(row)}))
        log.info("recording_started", recording_id=recording_id, call_id=call_id)
        return recording_id, folder / name

    async def begin_recording(self, tenant_id: str, **facts: Any) -> tuple[str, Path]:
        """A new recording of a call (the facts of
        :class:`~sparklecomm.telephony.call_recording.RecordingStore`): its row (status
        "recording") and the event ``recording.started`` in one transaction, the tenant's
        folder created. Returns the recording's id and the final path of its file (the
        recorder writes ``.<name>.part`` beside it and renames it at the end)."""
        return await run_in_threadpool(partial(self.begin_recording_sync, tenant_id, **facts))

    def _live(self, s: Session, tenant_id: str, recording_id: str) -> CallRecording:
        row = s.get(CallRecording, recording_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no recording {recording_id!r} here", field="id")
        if row.status != "recording":
            raise Conflict(f"recording {recording_id!r} has ended ({row.status})", field="id")
        return row

    def pause_sync(
        self, tenant_id: str, recording_id: str, *, offset: float, by: str, paused: bool
    ) -> None:
        """Pause (``paused``) or resume: the open span is kept in ``pauses`` (``[start,
        None]`` while paused; the recorder writes silence meanwhile) so that a listing shows
        a paused recording; the recorder's final figures replace them at the end."""
        offset = round(max(0.0, float(offset)), 2)
        kind = "recording.paused" if paused else "recording.resumed"
        with self.db.write() as tx:
            row = self._live(tx.session, tenant_id, recording_id)
            pauses = [list(p) for p in (row.pauses or [])]
            is_open = bool(pauses) and pauses[-1][1] is None
            if paused and not is_open:
                pauses.append([offset, None])
            elif not paused and is_open:
                pauses[-1][1] = offset
            row.pauses = pauses
            tx.session.flush()
            payload = {**recording_payload(row), "offset": offset, "by": by}
            tx.emit(tenant_id, NewEvent(kind, {"recording": payload}))

    async def recording_paused(
        self, tenant_id: str, recording_id: str, *, offset: float, by: str
    ) -> None:
        """Recording paused ``offset`` seconds into the call (for privacy: a card number
        read out), by ``by`` (a user id, or "policy"); event ``recording.paused``."""
        await run_in_threadpool(
            lambda: self.pause_sync(tenant_id, recording_id, offset=offset, by=by, paused=True)
        )

    async def recording_resumed(
        self, tenant_id: str, recording_id: str, *, offset: float, by: str
    ) -> None:
        """Recording resumed; event ``recording.resumed``."""
        await run_in_threadpool(
            lambda: self.pause_sync(tenant_id, recording_id, offset=offset, by=by, paused=False)
        )

    def finish_recording_sync(
        self,
        tenant_id: str,
        recording_id: str,
        *,
        seconds: float,
        paused_seconds: float,
        pauses: Sequence[tuple[float, float]],
        size: int,
        ok: bool,
    ) -> None:
        with self.db.write() as tx:
            row = tx.session.get(CallRecording, recording_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no recording {recording_id!r} here", field="id")
            if row.status not in ("recording", "interrupted"):
                # Finished already (a repeated call): the first figures stand.
                raise Conflict(f"recording {recording_id!r} has ended ({row.status})", field="id")
            if row.status == "interrupted" and not ok:
                # This node stalled for a minute and another one recovered the file (so the
                # recorder's own rename failed): the recovered audio stays.
                log.warning("recording_finished_after_recovery", recording_id=recording_id)
                return
            # A recording another node declared interrupted (this node stalled for a minute)
            # still gets this node's exact figures.
            row.status = "complete" if ok else "failed"
            row.ended_at = tx.clock.now()
            row.seconds = round(max(0.0, float(seconds)), 2) if ok else 0.0
            row.paused_seconds = round(max(0.0, float(paused_seconds)), 2)
            row.pauses = [[round(float(a), 2), round(float(b), 2)] for a, b in pauses]
            row.bytes = max(0, int(size)) if ok else 0
            tx.session.flush()
            name = row.file
            tx.emit(tenant_id, NewEvent("recording.stopped", {"recording": recording_payload(row)}))
        if not ok:
            for path in self._paths(tenant_id, name):
                self._remove(path)
        log.info("recording_stopped", recording_id=recording_id, ok=ok, seconds=seconds)

    async def finish_recording(self, tenant_id: str, recording_id: str, **result: Any) -> None:
        """The call ended: status "complete" with the recorder's figures (the file is in
        place), or "failed" (``ok`` False: the recorder could not write; whatever it left is
        removed); event ``recording.stopped``."""
        await run_in_threadpool(
            partial(self.finish_recording_sync, tenant_id, recording_id, **result)
        )

    # -- reading -------------------------------------------------------------------------------
    def _get(
        self, s: Session, tenant_id: str, recording_id: str, owner: str | None
    ) -> CallRecording:
        row = s.get(CallRecording, recording_id.strip())
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no recording {recording_id!r} here", field="id")
        if owner is not None and row.agent_id != owner:
            raise PermissionDenied(
                f"recording {recording_id!r} is of another agent's call", field="id"
            )
        return row

    def recordings(
        self,
        tenant_id: str,
        *,
        agent_id: str | None = None,
        queue_id: str | None = None,
        interaction_id: str | None = None,
        call_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """The organisation's recordings, newest first, narrowed by the filters (``since``
        inclusive, ``until`` exclusive, on the start time). ``owner``: only that agent's
        recordings (asking for another agent's is refused)."""
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
                    "agents see the recordings of their own calls only", field="agent_id"
                )
            agent_id = owner
        query: Select[CallRecording] = select(CallRecording).where(
            CallRecording.tenant_id == tenant_id
        )
        query = newest_first(
            query,
            when=CallRecording.started_at,
            key=CallRecording.id,
            equal=(
                (CallRecording.agent_id, agent_id),
                (CallRecording.queue_id, queue_id),
                (CallRecording.interaction_id, interaction_id),
                (CallRecording.call_id, call_id),
            ),
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        with self.db.read() as s:
            return [recording_payload(r) for r in s.scalars(query)]

    def recording(
        self, tenant_id: str, recording_id: str, owner: str | None = None
    ) -> dict[str, Any]:
        with self.db.read() as s:
            return recording_payload(self._get(s, tenant_id, recording_id, owner))

    def audio_path(
        self, tenant_id: str, recording_id: str, owner: str | None = None
    ) -> tuple[dict[str, Any], Path]:
        """A recording and its file, for download: only a complete or interrupted one (409
        while still recording; 404 for a failed one or a missing file)."""
        with self.db.read() as s:
            row = self._get(s, tenant_id, recording_id, owner)
            payload, name = recording_payload(row), row.file
        if payload["status"] == "recording":
            raise Conflict(
                f"recording {recording_id!r} is still in progress: its audio is available "
                "when the call ends",
                field="id",
            )
        if payload["status"] == "failed":
            raise NotFound(f"recording {recording_id!r} failed: there is no audio", field="id")
        path, _ = self._paths(tenant_id, name)
        if not path.is_file():
            raise NotFound(f"the audio of recording {recording_id!r} is missing", field="id")
        return payload, path

    # -- deleting ------------------------------------------------------------------------------
    def _delete_txn(self, tx: Tx, row: CallRecording, actor: Actor | None) -> str:
        payload = recording_payload(row)
        tx.session.delete(row)
        if actor is not None:
            write_audit_txn(
                tx.session,
                tx.clock,
                tenant_id=row.tenant_id,
                actor=actor,
                action="recording.deleted",
                target_type="recording",
                target_id=row.id,
                details={
                    "call_id": row.call_id,
                    "caller": row.caller,
                    "agent_id": row.agent_id,
                    "started_at": payload["started_at"],
                },
            )
        tx.emit(row.tenant_id, NewEvent("recording.deleted", {"recording": payload}))
        return row.file

    def do_delete(self, tenant_id: str, actor: Actor, recording_id: str) -> None:
        """Delete a recording: its row (audited, event ``recording.deleted``), then its
        file. A recording still in progress cannot be deleted (409): stop it first."""
        with self.db.write() as tx:
            row = self._get(tx.session, tenant_id, recording_id, None)
            if row.status == "recording":
                raise Conflict(
                    f"recording {recording_id!r} is still in progress; stop it first",
                    field="id",
                )
            name = self._delete_txn(tx, row, actor)
        for path in self._paths(tenant_id, name):
            self._remove(path)

    def purge_expired(self, now: datetime) -> int:
        """Delete the ended recordings older than their organisation's ``retention_days``
        (rows, events ``recording.deleted``, one audit entry per organisation, then files).
        Returns how many were deleted."""
        with self.db.read() as s:
            policies = [
                (p.tenant_id, p.retention_days)
                for p in s.scalars(
                    select(RecordingPolicy).where(RecordingPolicy.retention_days > 0)
                )
            ]
        total = 0
        for tenant_id, days in policies:
            cutoff = now - timedelta(days=days)
            removed = 0
            while True:
                with self.db.write() as tx:
                    rows = list(
                        tx.session.scalars(
                            select(CallRecording)
                            .where(
                                CallRecording.tenant_id == tenant_id,
                                CallRecording.status != "recording",
                                CallRecording.ended_at < cutoff,
                            )
                            .order_by(CallRecording.ended_at)
                            .limit(PURGE_BATCH)
                        )
                    )
                    names = [self._delete_txn(tx, row, None) for row in rows]
                    if rows:
                        write_audit_txn(
                            tx.session,
                            tx.clock,
                            tenant_id=tenant_id,
                            actor=RETENTION,
                            action="recording.purged",
                            target_type="recording",
                            target_id=None,
                            details={"count": len(rows), "retention_days": days},
                        )
                for name in names:
                    for path in self._paths(tenant_id, name):
                        self._remove(path)
                removed += len(rows)
                if len(rows) < PURGE_BATCH:
                    break
            if removed:
                log.info("recordings_purged", tenant_id=tenant_id, removed=removed, days=days)
            total += removed
        return total

    # -- recordings a dead node left behind ----------------------------------------------------
    def recover_interrupted(self) -> int:
        """Close the recordings left "recording" by a node that died mid-call. A partial
        file unchanged for :data:`STALE_SECONDS` is repaired (header sizes from its length,
        whole frames) and renamed into place: status "interrupted", its length from the
        audio it holds. Without a partial file the recording is "failed". A live recording
        of another node (its file still growing, or a row too young to have a
        file yet) is left alone, so every node may run this on the shared folder. Returns
        how many were closed."""
        stale = timedelta(seconds=STALE_SECONDS)
        with self.db.read() as s:
            candidates = [
                (r.tenant_id, r.id, r.file)
                for r in s.scalars(
                    select(CallRecording).where(
                        CallRecording.status == "recording",
                        CallRecording.started_at < self.clock.now() - stale,
                    )
                )
            ]
        closed = 0
        for tenant_id, recording_id, name in candidates:
            try:
                if self._recover_one(tenant_id, recording_id, name):
                    closed += 1
            except Exception:  # one bad file must not stop the others
                log.exception("recording_not_recovered", recording_id=recording_id)
        return closed

    def _recover_one(self, tenant_id: str, recording_id: str, name: str) -> bool:
        path, partial = self._paths(tenant_id, name)
        size, seconds, status = 0, 0.0, "failed"
        try:
            age = self.wall_clock() - partial.stat().st_mtime
        except FileNotFoundError:
            age = None
        if age is not None and age < STALE_SECONDS:
            # Still being written (a paused span is silence in the file, so it grows then
            # too): a live call on some node.
            return False
        if age is not None:
            # Claim the file: of several nodes recovering at once, one rename wins.
            claimed = partial.with_name(f"{partial.name}.{new_id()[:8]}")
            try:
                os.replace(partial, claimed)
            except FileNotFoundError:
                return False  # another node got there first
            try:
                size, seconds = repair_wav(claimed)
                os.replace(claimed, path)
                status = "interrupted"
            except InvalidInput as error:
                log.error("recording_unreadable", recording_id=recording_id, error=str(error))
                self._remove(claimed)
        elif path.is_file():
            # Renamed into place, but the row was never closed (the node died in between).
            try:
                size, seconds = repair_wav(path)
                status = "interrupted"
            except InvalidInput:
                self._remove(path)
        with self.db.write() as tx:
            # Locked (PostgreSQL): of two nodes closing it at once, the second sees it closed.
            row = tx.session.scalar(
                select(CallRecording)
                .where(CallRecording.id == recording_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if row is None or row.status != "recording":
                return False
            # A pause still open when the node died has no end: only whole spans stay.
            pauses = [list(p) for p in (row.pauses or []) if p[1] is not None]
            row.status = status
            row.ended_at = tx.clock.now()
            row.seconds = seconds
            row.bytes = size
            row.pauses = pauses
            row.paused_seconds = round(sum(b - a for a, b in pauses), 2)
            tx.session.flush()
            tx.emit(tenant_id, NewEvent("recording.stopped", {"recording": recording_payload(row)}))
        log.warning(
            "recording_recovered", recording_id=recording_id, status=status, seconds=seconds
        )
        return True
