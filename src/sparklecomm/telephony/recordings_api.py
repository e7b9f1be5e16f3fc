"""HTTP routes of call recordings, under ``/api/v1``: ``/recordings`` (list, one, its audio,
delete) and ``/recording-policy``.

Supervisors and administrators reach every recording of the organisation; agents the
recordings of their own calls. Only administrators delete recordings and change the policy
(audited, on the event stream). The audio is served as a file response, so browsers can seek
(HTTP Range requests).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from sparklecomm.api.deps import MAX_OFFSET, Admin, CurrentPrincipal, ServicesDep, Supervisor
from sparklecomm.auth.service import Principal
from sparklecomm.container import Services
from sparklecomm.core.errors import Unavailable
from sparklecomm.store.listing import MAX_LIST
from sparklecomm.telephony.recordings import MAX_RETENTION_DAYS, RecordingService

#: The download's media type (8 kHz stereo 16-bit PCM in a WAV file).
WAV = "audio/wav"

router = APIRouter(prefix="/api/v1", tags=["recordings"])
RecordingId = Annotated[str, Path(min_length=1, max_length=32, description="A recording's id")]


def recordings(svc: Services) -> RecordingService:
    service: RecordingService | None = svc.extra.get("recordings")
    if service is None:
        raise Unavailable("Call recording is not set up here.")
    return service


def _owner(principal: Principal) -> str | None:
    """Whose recordings the principal reaches: None for supervisors and administrators
    (every recording of the organisation), else their own user id (their calls)."""
    return None if principal.has_role("supervisor") else principal.user_id


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyIn(Strict):
    all_calls: bool = Field(description="Record every call of the organisation")
    queues: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=500, description="Record the calls of these queues"
    )
    extensions: list[Annotated[str, Field(max_length=15)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Record the calls with one of these extensions on them",
    )
    retention_days: int = Field(
        ge=0,
        le=MAX_RETENTION_DAYS,
        description="Delete ended recordings after this many days (0: keep forever)",
    )


@router.get("/recordings")
def list_recordings(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    agent_id: Annotated[str | None, Query(max_length=32, description="The agent's user id")] = None,
    queue_id: Annotated[str | None, Query(max_length=64)] = None,
    interaction_id: Annotated[str | None, Query(max_length=64)] = None,
    call_id: Annotated[str | None, Query(max_length=300)] = None,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """Recordings, newest first: ``id``, ``call_id``, ``interaction_id``, ``queue_id``,
    ``agent_id``, ``caller``, ``dialled``, ``started_by`` ("policy" or a user id),
    ``started_at``, ``ended_at``, ``seconds``, ``paused_seconds``, ``pauses`` (``[start,
    end]`` offsets), ``status`` (recording, complete, interrupted, failed), ``bytes``.
    Agents see the recordings of their own calls (403 for another ``agent_id``)."""
    return recordings(svc).recordings(
        principal.tenant_id,
        agent_id=agent_id,
        queue_id=queue_id,
        interaction_id=interaction_id,
        call_id=call_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        owner=_owner(principal),
    )


@router.get("/recordings/{recording_id}")
def get_recording(
    recording_id: RecordingId, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """One recording; 404 unknown, 403 another agent's."""
    return recordings(svc).recording(principal.tenant_id, recording_id, _owner(principal))


@router.get(
    "/recordings/{recording_id}/audio",
    response_class=FileResponse,
    responses={
        200: {"content": {WAV: {}}, "description": "The recording (WAV)"},
        206: {"content": {WAV: {}}, "description": "Part of it (a Range request)"},
    },
)
def recording_audio(
    recording_id: RecordingId, principal: CurrentPrincipal, svc: ServicesDep
) -> FileResponse:
    """The audio (8 kHz stereo WAV: the caller left, the agent right); Range requests are
    answered with 206 so players can seek. 409 while the call is still recorded, 404 for a
    failed recording or a missing file."""
    payload, path = recordings(svc).audio_path(principal.tenant_id, recording_id, _owner(principal))
    stamp = payload["started_at"][:19].replace(":", "").replace("-", "")
    return FileResponse(
        path,
        media_type=WAV,
        filename=f"recording-{stamp}-{payload['id']}.wav",
        content_disposition_type="inline",
    )


@router.delete("/recordings/{recording_id}", status_code=204)
def delete_recording(recording_id: RecordingId, principal: Admin, svc: ServicesDep) -> Response:
    """Delete a recording and its audio (audited); 409 while it is still recording."""
    recordings(svc).do_delete(principal.tenant_id, principal.actor, recording_id)
    return Response(status_code=204)


@router.get("/recording-policy")
def get_policy(principal: Supervisor, svc: ServicesDep) -> dict[str, Any]:
    """Which calls are recorded (``all_calls``, ``queues``, ``extensions``) and how long
    recordings are kept (``retention_days``, 0: forever)."""
    return recordings(svc).policy(principal.tenant_id)


@router.put("/recording-policy")
def put_policy(body: PolicyIn, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    """Replace the policy (422 naming an unknown queue or extension); audited, event
    ``recording.policy_changed``."""
    return recordings(svc).do_set_policy(
        principal.tenant_id,
        principal.actor,
        body.all_calls,
        body.queues,
        body.extensions,
        body.retention_days,
    )
