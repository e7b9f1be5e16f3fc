"""Call recording: the node that holds a call's media records it.

A call's RTP flows through this node's relay (:mod:`sparklecomm.telephony.media.relay`), so
the node that holds the call is the one that can record it: the relay session's
:meth:`~sparklecomm.telephony.media.relay.RelaySession.tap` hands every packet the phones
send to a :class:`~sparklecomm.telephony.media.recorder.CallRecorder`, which writes a
stereo WAV: the customer on the left channel, the agent (and a consulted colleague) on the
right. The call's signalling and forwarding are untouched: a recording is a listener.

When a recording starts:

* **by the company's rules**, as soon as a call is answered by a person (an agent of a queue,
  an extension, the party a placed call dialled): the recording policy of the organisation
  (record all calls, the calls of some queues, the calls of some extensions) is asked once
  per call (``recording_wanted``); callers talking to a voice menu or leaving a voicemail
  are not recorded by it (voicemail is a recording of its own);
* **on demand**, by an agent on the call or a supervisor (:meth:`CallRecordings.act`).

A recording can be paused and resumed (an agent taking a card number): the paused span is
silence in the file and its offsets are kept. It stops on demand or when the call ends; the
file is complete when ``recording.stopped`` is on the event stream. Where recordings are
kept, listed and served is the store's business
(:class:`~sparklecomm.telephony.recordings.RecordingService`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

from sparklecomm.core.errors import Conflict, InvalidInput, NotFound, Unavailable
from sparklecomm.telephony.calls import Call
from sparklecomm.telephony.sdp import is_secure

if TYPE_CHECKING:
    from sparklecomm.telephony.media.recorder import CallRecorder

log = structlog.get_logger("sparklecomm.telephony.call_recording")

RecordingAction = Literal["start", "pause", "resume", "stop"]
ACTIONS: tuple[RecordingAction, ...] = ("start", "pause", "resume", "stop")
POLICY = "policy"
KEEPALIVE_SECONDS = 20.0
"""How often the partial file of every recording going on is touched: the recovery of
interrupted recordings (any node's housekeeping) takes a partial file unchanged for a
minute for one a dead node left, and a call on hold may send no audio for longer."""
"""``started_by`` of a recording the company's rules started."""


class RecordingStore(Protocol):
    """Where recordings are kept (:class:`~sparklecomm.telephony.recordings.RecordingService`)."""

    async def recording_wanted(
        self, tenant_id: str, *, queue_id: str | None, extensions: Sequence[str]
    ) -> bool: ...

    async def begin_recording(
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
    ) -> tuple[str, Path]: ...

    async def recording_paused(
        self, tenant_id: str, recording_id: str, *, offset: float, by: str
    ) -> None: ...

    async def recording_resumed(
        self, tenant_id: str, recording_id: str, *, offset: float, by: str
    ) -> None: ...

    async def finish_recording(
        self,
        tenant_id: str,
        recording_id: str,
        *,
        seconds: float,
        paused_seconds: float,
        pauses: Sequence[tuple[float, float]],
        size: int,
        ok: bool,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What routing knows of a call: its interaction, queue and connected agent."""

    interaction_id: str | None = None
    queue_id: str | None = None
    agent_id: str | None = None


Describe = Callable[[Call], CallFacts]
NumbersOfUser = Callable[[str, str], Awaitable[Sequence[str]]]
"""``(tenant_id, user_id)`` → the user's extension numbers."""
RecorderFactory = Callable[[Path], "CallRecorder"]


@dataclass(eq=False, slots=True)
class ActiveRecording:
    recording_id: str
    tenant_id: str
    call: Call
    media: Any
    recorder: CallRecorder
    started_by: str

    def state(self) -> dict[str, Any]:
        return {
            "call_id": self.call.id,
            "recording_id": self.recording_id,
            "state": "paused" if self.recorder.paused else "recording",
            "seconds": round(self.recorder.seconds, 2),
            "started_by": self.started_by,
        }


def _placed_legs(feed: Callable[[str, bytes], None]) -> Callable[[str, bytes], None]:
    """For a call the platform placed, leg ``a`` is the agent's phone and ``b`` the
    customer: swapped, so that the customer is on the left channel as for calls that come
    in."""
    names = {"a": "b", "b": "a"}

    def swapped(leg: str, packet: bytes) -> None:
        feed(names.get(leg, leg), packet)

    return swapped


class CallRecordings:
    """The recordings of this node's calls (see the module docstring)."""

    def __init__(
        self,
        store: RecordingStore,
        *,
        describe: Describe | None = None,
        recorder: RecorderFactory | None = None,
        numbers_of_user: NumbersOfUser | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.describe: Describe = describe or (lambda call: CallFacts())
        self.numbers_of_user = numbers_of_user
        """A user's extension numbers: an agent may control the recording of a call of
        their own extension (``None``: only calls routing says are theirs)."""
        if recorder is None:
            from sparklecomm.telephony.media.recorder import CallRecorder

            def recorder(path: Path) -> CallRecorder:
                return CallRecorder(path, clock=clock)

        self._recorder: RecorderFactory = recorder
        self.active: dict[str, ActiveRecording] = {}
        self._starting: dict[str, asyncio.Future[ActiveRecording | None]] = {}
        self._asked: set[str] = set()
        """Calls whose policy was asked already (once per call)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keepalive: asyncio.Task[None] | None = None

    # ---- hooks of the B2BUA -----------------------------------------------------------------

    def call_answered(self, call: Call) -> None:
        """A person answered ``call`` (first time, or another agent after a transfer):
        record it when the company's rules say so (asked once per call)."""
        if call.id in self._asked or call.id in self.active or call.tenant_id is None:
            return
        self._asked.add(call.id)
        self._spawn(self._by_policy(call))

    def call_ended(self, call: Call) -> None:
        """``call`` ended: its recording (if any) is finished and stored."""
        self._asked.discard(call.id)
        active = self.active.pop(call.id, None)
        if active is not None:
            self._untap(active)
            self._spawn(self._finish(active, by="call_ended"))

    async def close(self) -> None:
        """Finish every recording (the node stops): the files are complete, not salvaged."""
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        for active in list(self.active.values()):
            self.active.pop(active.call.id, None)
            self._untap(active)
            self._spawn(self._finish(active, by="shutdown"))
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ---- on demand --------------------------------------------------------------------------

    async def may_control(
        self, call: Call | None, tenant_id: str, user_id: str, supervisor: bool
    ) -> bool:
        """Whether the user may start, pause, resume or stop the recording of ``call``: a
        call going on in their organisation, and for anyone but a supervisor one they are
        on (the agent routing connected, the agent a placed call is for, or the call of one
        of their extensions)."""
        if call is None or call.ended or call.tenant_id != tenant_id:
            return False
        if supervisor:
            return True
        facts = self.describe(call)
        if facts.agent_id == user_id:
            return True
        if call.placed is not None and call.placed.agent_id == user_id:
            return call.transferred_to is None
        if self.numbers_of_user is None:
            return False
        mine = set(await self.numbers_of_user(tenant_id, user_id))
        return bool(mine.intersection(self._extensions(call)))

    async def control(
        self, call: Call | None, *, tenant_id: str, user_id: str, supervisor: bool, action: str
    ) -> dict[str, Any] | None:
        """:meth:`act` for a user, after :meth:`may_control` (``None``: not theirs, or no
        such call; a :class:`Conflict` when the action cannot be done now)."""
        if call is None or not await self.may_control(call, tenant_id, user_id, supervisor):
            return None
        if action == "state":
            return self.state(call.id)
        return await self.act(call, action, user_id)

    def state(self, call_id: str) -> dict[str, Any]:
        """The recording state of a call of this node."""
        active = self.active.get(call_id)
        if active is None:
            return {"call_id": call_id, "recording_id": None, "state": "off"}
        return active.state()

    async def act(self, call: Call, action: str, by: str) -> dict[str, Any]:
        """Start, pause, resume or stop the recording of ``call`` for user ``by`` (the
        caller of this method checked that they may). Pausing a paused recording, resuming
        a running one, or starting one already running changes nothing; stopping or pausing
        a call that is not recorded is a :class:`Conflict`."""
        if action not in ACTIONS:
            raise InvalidInput(
                f"action must be one of {', '.join(ACTIONS)}, not {action!r}", field="action"
            )
        if action == "start":
            await self.start(call, by)
            return self.state(call.id)
        active = self.active.get(call.id)
        if active is None:
            raise Conflict(f"Call {call.id!r} is not being recorded.", field="call_id")
        recorder = active.recorder
        if action == "pause" and not recorder.paused:
            recorder.pause()
            await self.store.recording_paused(
                active.tenant_id, active.recording_id, offset=round(recorder.seconds, 3), by=by
            )
        elif action == "resume" and recorder.paused:
            recorder.resume()
            await self.store.recording_resumed(
                active.tenant_id, active.recording_id, offset=round(recorder.seconds, 3), by=by
            )
        elif action == "stop":
            self.active.pop(call.id, None)
            self._untap(active)
            state = active.state() | {"state": "stopped"}
            await self._finish(active, by=by)
            return state
        return active.state()

    async def start(self, call: Call, by: str) -> ActiveRecording:
        """Record ``call`` from now on (the running recording when there is one). A call
        that is over, not answered yet, or whose media does not pass through this node
        cannot be recorded: :class:`Conflict`."""
        running = self.active.get(call.id)
        if running is not None:
            return running
        pending = self._starting.get(call.id)
        if pending is not None:  # the rules are starting it right now
            started = await asyncio.shield(pending)
            if started is not None:
                return started
        self._check_recordable(call)
        future: asyncio.Future[ActiveRecording | None] = asyncio.get_running_loop().create_future()
        self._starting[call.id] = future
        try:
            active = await self._begin(call, by)
        except BaseException:
            future.set_result(None)
            raise
        finally:
            self._starting.pop(call.id, None)
        future.set_result(active)
        return active

    # ---- inside -----------------------------------------------------------------------------

    @staticmethod
    def _check_recordable(call: Call) -> None:
        if call.ended or call.tenant_id is None:
            raise Conflict(f"Call {call.id!r} is over.", field="call_id")
        if not call.answered:
            raise Conflict(
                f"Call {call.id!r} is not answered yet: nothing to record.", field="call_id"
            )
        if call.media is None or not hasattr(call.media, "tap"):
            raise Conflict(
                f"The media of call {call.id!r} does not pass through this platform "
                "(no media relay): it cannot be recorded.",
                field="call_id",
            )
        if _encrypted(call):
            raise Conflict(
                f"Call {call.id!r} is encrypted end to end (SRTP between the phones): the "
                "platform has no keys to record it.",
                field="call_id",
            )

    async def _by_policy(self, call: Call) -> None:
        assert call.tenant_id is not None
        facts = self.describe(call)
        extensions = [number for number in self._extensions(call) if number]
        try:
            wanted = await self.store.recording_wanted(
                call.tenant_id, queue_id=facts.queue_id, extensions=extensions
            )
        except Exception:
            log.exception("recording.policy_unreadable", call=call.id)
            return
        if not wanted or call.ended or call.id in self.active:
            return
        try:
            await self.start(call, POLICY)
        except Conflict as refused:
            log.info("recording.not_started", call=call.id, reason=str(refused))
        except Exception:
            log.exception("recording.not_started", call=call.id)

    @staticmethod
    def _extensions(call: Call) -> list[str]:
        """The extensions taking part: the caller's number (an extension calling) and the
        answered leg's extension (or, for a placed call, the agent's)."""
        numbers = [call.caller]
        b = call.legs.get("b")
        if b is not None and b.extension:
            numbers.append(b.extension)
        if call.placed is not None:
            numbers.append(call.placed.extension)
        return numbers

    async def _begin(self, call: Call, by: str) -> ActiveRecording:
        assert call.tenant_id is not None
        facts = self.describe(call)
        agent_id = facts.agent_id
        if agent_id is None and call.placed is not None:
            agent_id = call.placed.agent_id
        recording_id, path = await self.store.begin_recording(
            call.tenant_id,
            call_id=call.id,
            caller=call.caller,
            dialled=call.dialled,
            interaction_id=facts.interaction_id,
            queue_id=facts.queue_id,
            agent_id=agent_id,
            started_by=by,
        )
        media = call.media
        if call.ended or media is None:  # hung up while the row was written
            await self.store.finish_recording(
                call.tenant_id,
                recording_id,
                seconds=0.0,
                paused_seconds=0.0,
                pauses=(),
                size=0,
                ok=False,
            )
            raise Conflict(f"Call {call.id!r} ended before its recording began.", field="call_id")
        recorder = self._recorder(path)
        active = ActiveRecording(recording_id, call.tenant_id, call, media, recorder, by)
        feed = recorder.feed if call.placed is None else _placed_legs(recorder.feed)
        media.tap(feed)
        self.active[call.id] = active
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive())
        log.info("recording.started", call=call.id, recording=recording_id, by=by)
        return active

    async def _keep_alive(self) -> None:
        """Touch the partial files of the recordings going on (see :data:`KEEPALIVE_SECONDS`)
        until none is left."""
        while self.active:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            partials = [getattr(a.recorder, "partial", None) for a in self.active.values()]
            await asyncio.to_thread(_touch, [p for p in partials if isinstance(p, Path)])

    @staticmethod
    def _untap(active: ActiveRecording) -> None:
        try:
            active.media.tap(None)
        except Exception:  # a closed session forwards nothing any more anyway
            log.debug("recording.untap_failed", call=active.call.id)

    async def _finish(self, active: ActiveRecording, *, by: str) -> None:
        ok, seconds, paused, size = True, 0.0, 0.0, 0
        pauses: tuple[tuple[float, float], ...] = ()
        try:
            result = await asyncio.to_thread(active.recorder.close)
            seconds, paused, size = result.seconds, result.paused_seconds, result.bytes
            pauses = result.pauses
        except Exception:
            log.exception("recording.not_written", call=active.call.id)
            ok = False
            try:
                active.recorder.abort()
            except Exception:
                log.debug("recording.abort_failed", call=active.call.id)
        try:
            await self.store.finish_recording(
                active.tenant_id,
                active.recording_id,
                seconds=seconds,
                paused_seconds=paused,
                pauses=pauses,
                size=size,
                ok=ok,
            )
        except Exception:
            # The file is in place; start-up housekeeping marks the row (recovered).
            log.exception("recording.not_stored", call=active.call.id)
        log.info("recording.stopped", call=active.call.id, recording=active.recording_id, by=by)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("recording.task_failed", error=repr(task.exception()))


def _encrypted(call: Call) -> bool:
    """Whether the phones of ``call`` talk SRTP (passed through with their own keys)."""
    for leg in call.legs.values():
        audio = leg.remote_sdp.audio() if leg.remote_sdp is not None else None
        if audio is not None and is_secure(audio):
            return True
    return False


def _touch(paths: Sequence[Path]) -> None:
    for path in paths:
        try:
            os.utime(path)
        except OSError:  # closed meanwhile, or the disk is gone: the recorder reports that
            continue


async def control_recording(
    extra: Mapping[str, Any],
    call_id: str,
    *,
    tenant_id: str,
    user_id: str,
    supervisor: bool,
    action: str,
) -> dict[str, Any]:
    """The API's way to a call's recording (``action``: start, pause, resume, stop or
    ``state``): on this node when it holds the call, else through the call directory (with
    several nodes) on the node that does. 404 for a call no node holds for this user, 409
    when the action cannot be done now, 503 when recording is off here or the other node
    does not answer. ``extra``: the services' ``extra`` (``agent_phones``,
    ``call_directory``)."""
    from sparklecomm.telephony.call_directory import check_reached

    if action not in (*ACTIONS, "state"):
        raise InvalidInput(
            f"action must be one of {', '.join(ACTIONS)}, not {action!r}", field="action"
        )
    phones = extra.get("agent_phones")
    directory = extra.get("call_directory")
    manager = phones.manager if phones is not None else None
    call = manager.calls.get(call_id) if manager is not None else None
    missing = NotFound(f"No call {call_id!r} of yours is going on.", field="call_id")
    if call is not None and manager is not None:
        recordings: CallRecordings | None = manager.recordings
        if recordings is None:
            raise Unavailable("Calls are not recorded on this node (no recording store).")
        state = await recordings.control(
            call, tenant_id=tenant_id, user_id=user_id, supervisor=supervisor, action=action
        )
        if state is None:
            raise missing
        return state
    if directory is None:
        raise missing
    answer = await directory.recording(
        call_id, tenant_id=tenant_id, user_id=user_id, supervisor=supervisor, action=action
    )
    if isinstance(answer, str):
        check_reached(answer, call_id)
        raise missing
    status = answer.get("status")
    if status == "ok" and isinstance(answer.get("state"), dict):
        return dict(answer["state"])
    if status == "refused":
        detail = str(answer.get("detail") or "The recording cannot be changed now.")
        if answer.get("code") == 422:
            raise InvalidInput(detail, field="action")
        raise Conflict(detail, field="call_id")
    if status == "unavailable":
        raise Unavailable("Calls are not recorded on the node holding this call.")
    raise missing
