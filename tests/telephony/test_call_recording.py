"""CallRecordings' decisions, with stand-ins for the relay session, the recorder and the
store (unit tests; the real parts are in test_call_recording_sipp.py and test_recordings*)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sparklecomm.core.errors import Conflict, InvalidInput
from sparklecomm.telephony.call_recording import CallFacts, CallRecordings
from sparklecomm.telephony.calls import Call, Placement
from sparklecomm.telephony.pbx.routes import Hunt

TENANT = "t1"


class Media:
    """A relay session: only its tap."""

    def __init__(self) -> None:
        self.listener: Callable[[str, bytes], None] | None = None
        self.taps = 0

    def tap(self, listener: Callable[[str, bytes], None] | None) -> None:
        self.listener = listener
        self.taps += 1


@dataclass
class Result:
    path: Path
    seconds: float
    paused_seconds: float
    pauses: tuple[tuple[float, float], ...]
    bytes: int
    packets: int


@dataclass
class Recorder:
    """A recorder: remembers what it was fed; its timeline is the test's ``now``."""

    path: Path
    now: list[float]
    fed: list[tuple[str, bytes]] = field(default_factory=list)
    paused: bool = False
    closed: int = 0
    fail: bool = False
    aborted: bool = False

    @property
    def seconds(self) -> float:
        return self.now[0]

    def feed(self, leg: str, packet: bytes) -> None:
        self.fed.append((leg, packet))

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def close(self) -> Result:
        self.closed += 1
        if self.fail:
            raise OSError("disk full")
        return Result(self.path, self.now[0], 0.0, (), 1234, len(self.fed))

    def abort(self) -> None:
        self.aborted = True


class Store:
    def __init__(self, *, wanted: bool = True) -> None:
        self.wanted = wanted
        self.asked = 0
        self.begun: list[dict[str, Any]] = []
        self.marks: list[tuple[str, float, str]] = []
        self.finished: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None

    async def recording_wanted(
        self, tenant_id: str, *, queue_id: str | None, extensions: Sequence[str]
    ) -> bool:
        self.asked += 1
        self.extensions = list(extensions)
        return self.wanted

    async def begin_recording(self, tenant_id: str, **facts: Any) -> tuple[str, Path]:
        if self.gate is not None:
            await self.gate.wait()
        self.begun.append(facts)
        return f"r{len(self.begun)}", Path(f"/nowhere/r{len(self.begun)}.wav")

    async def recording_paused(self, tenant_id: str, rid: str, *, offset: float, by: str) -> None:
        self.marks.append(("paused", offset, by))

    async def recording_resumed(self, tenant_id: str, rid: str, *, offset: float, by: str) -> None:
        self.marks.append(("resumed", offset, by))

    async def finish_recording(self, tenant_id: str, rid: str, **result: Any) -> None:
        self.finished.append({"id": rid, **result})


class Setup:
    def __init__(self, store: Store, facts: CallFacts | None = None, **options: Any) -> None:
        self.store = store
        self.now = [0.0]
        self.recorders: list[Recorder] = []

        def recorder(path: Path) -> Recorder:
            made = Recorder(path, self.now)
            self.recorders.append(made)
            return made

        self.recordings = CallRecordings(
            store,
            describe=lambda call: facts or CallFacts(),
            recorder=recorder,  # type: ignore[arg-type]
            **options,
        )


def a_call(*, answered: bool = True, placed: Placement | None = None) -> Call:
    call = Call(None, "c1", "1001", "5550100", "127.0.0.1:5071")  # type: ignore[arg-type]
    call.tenant_id = TENANT
    call.media = Media()
    call.answered_at = 1.0 if answered else None
    call.placed = placed
    return call


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_rules_are_asked_once_per_call_and_record_it() -> None:
    store = Store()
    setup = Setup(store, CallFacts("i1", "support", "ana"))
    call = a_call()
    setup.recordings.call_answered(call)
    setup.recordings.call_answered(call)  # a transfer: asked once only
    await settle()
    assert store.asked == 1 and store.extensions == ["1001"]
    assert store.begun == [
        {
            "call_id": "c1",
            "caller": "1001",
            "dialled": "5550100",
            "interaction_id": "i1",
            "queue_id": "support",
            "agent_id": "ana",
            "started_by": "policy",
        }
    ]
    assert setup.recordings.state("c1")["state"] == "recording"
    call.media.listener("a", b"packet")
    assert setup.recorders[0].fed == [("a", b"packet")]
    setup.now[0] = 12.5
    call.ended = True
    setup.recordings.call_ended(call)
    assert call.media.listener is None  # untapped at once
    await settle()
    await asyncio.sleep(0.05)  # the file is closed in a thread
    assert store.finished == [
        {
            "id": "r1",
            "seconds": 12.5,
            "paused_seconds": 0.0,
            "pauses": (),
            "size": 1234,
            "ok": True,
        }
    ]
    assert setup.recordings.state("c1") == {"call_id": "c1", "recording_id": None, "state": "off"}


async def test_rules_that_say_no_record_nothing_until_someone_asks() -> None:
    store = Store(wanted=False)
    setup = Setup(store)
    call = a_call()
    setup.recordings.call_answered(call)
    await settle()
    assert store.asked == 1 and not store.begun
    state = await setup.recordings.act(call, "start", "ana")
    assert state["state"] == "recording" and store.begun[0]["started_by"] == "ana"
    again = await setup.recordings.act(call, "start", "bob")  # already running: unchanged
    assert again["recording_id"] == state["recording_id"] and len(store.begun) == 1


async def test_pause_and_resume_are_told_to_the_store_once_each() -> None:
    store = Store()
    setup = Setup(store)
    call = a_call()
    await setup.recordings.act(call, "start", "ana")
    setup.now[0] = 4.0
    assert (await setup.recordings.act(call, "pause", "ana"))["state"] == "paused"
    assert (await setup.recordings.act(call, "pause", "ana"))["state"] == "paused"
    setup.now[0] = 9.0
    assert (await setup.recordings.act(call, "resume", "ana"))["state"] == "recording"
    assert (await setup.recordings.act(call, "resume", "ana"))["state"] == "recording"
    assert store.marks == [("paused", 4.0, "ana"), ("resumed", 9.0, "ana")]
    stopped = await setup.recordings.act(call, "stop", "ana")
    assert stopped["state"] == "stopped" and len(store.finished) == 1
    assert call.media.listener is None
    with pytest.raises(Conflict, match="not being recorded"):
        await setup.recordings.act(call, "pause", "ana")


async def test_what_cannot_be_recorded_is_refused_with_the_reason() -> None:
    setup = Setup(Store())
    with pytest.raises(Conflict, match="not answered yet"):
        await setup.recordings.act(a_call(answered=False), "start", "ana")
    over = a_call()
    over.ended = True
    with pytest.raises(Conflict, match="is over"):
        await setup.recordings.act(over, "start", "ana")
    no_relay = a_call()
    no_relay.media = None
    with pytest.raises(Conflict, match="no media relay"):
        await setup.recordings.act(no_relay, "start", "ana")
    with pytest.raises(InvalidInput, match="action must be one of"):
        await setup.recordings.act(a_call(), "erase", "ana")
    assert not setup.store.begun


async def test_a_call_that_ends_while_its_recording_begins_is_stored_as_failed() -> None:
    store = Store()
    store.gate = asyncio.Event()
    setup = Setup(store)
    call = a_call()
    starting = asyncio.ensure_future(setup.recordings.act(call, "start", "ana"))
    await settle()
    call.ended = True
    call.media = None
    store.gate.set()
    with pytest.raises(Conflict, match="ended before"):
        await starting
    assert store.finished == [
        {"id": "r1", "seconds": 0.0, "paused_seconds": 0.0, "pauses": (), "size": 0, "ok": False}
    ]
    assert not setup.recorders and not setup.recordings.active


async def test_the_rules_and_a_user_starting_together_make_one_recording() -> None:
    store = Store()
    store.gate = asyncio.Event()
    setup = Setup(store)
    call = a_call()
    setup.recordings.call_answered(call)
    await settle()
    by_hand = asyncio.ensure_future(setup.recordings.act(call, "start", "ana"))
    await settle()
    store.gate.set()
    state = await by_hand
    await settle()
    assert len(store.begun) == 1 and state["recording_id"] == "r1"
    assert store.begun[0]["started_by"] == "policy"


async def test_a_recorder_that_cannot_write_is_stored_as_failed() -> None:
    store = Store()
    setup = Setup(store)
    call = a_call()
    await setup.recordings.act(call, "start", "ana")
    setup.recorders[0].fail = True
    await setup.recordings.act(call, "stop", "ana")
    assert store.finished[0]["ok"] is False and setup.recorders[0].aborted


async def test_a_placed_call_records_the_customer_on_the_left() -> None:
    """For a call the platform places, leg ``a`` is the agent's phone: its packets go to the
    recorder as the right channel's (``b``), the customer's (leg ``b``) as the left's."""
    setup = Setup(Store())
    placed = Placement("2001", "5550199", Hunt(TENANT, ()), agent_id="ana")
    call = a_call(placed=placed)
    await setup.recordings.act(call, "start", "ana")
    call.media.listener("a", b"agent")
    call.media.listener("b", b"customer")
    call.media.listener("c", b"colleague")
    assert setup.recorders[0].fed == [("b", b"agent"), ("a", b"customer"), ("c", b"colleague")]
    assert setup.store.begun[0]["agent_id"] == "ana"


async def test_who_may_control_a_recording() -> None:
    async def numbers(tenant_id: str, user_id: str) -> list[str]:
        return {"cara": ["1001"], "dan": ["2002"]}.get(user_id, [])

    setup = Setup(Store(), CallFacts("i1", "support", "ana"), numbers_of_user=numbers)
    may = setup.recordings.may_control
    call = a_call()
    assert await may(call, TENANT, "ana", False)  # the agent routing connected
    assert await may(call, TENANT, "cara", False)  # the caller's extension is hers
    assert not await may(call, TENANT, "dan", False)
    assert await may(call, TENANT, "dan", True)  # a supervisor
    assert not await may(call, "other-tenant", "ana", True)
    assert not await may(None, TENANT, "ana", True)
    assert (
        await setup.recordings.control(
            call, tenant_id=TENANT, user_id="dan", supervisor=False, action="start"
        )
        is None
    )
    assert not setup.store.begun
    state = await setup.recordings.control(
        call, tenant_id=TENANT, user_id="ana", supervisor=False, action="state"
    )
    assert state == {"call_id": "c1", "recording_id": None, "state": "off"}


async def test_closing_finishes_every_recording() -> None:
    store = Store()
    setup = Setup(store)
    call = a_call()
    await setup.recordings.act(call, "start", "ana")
    await setup.recordings.close()
    assert len(store.finished) == 1 and store.finished[0]["ok"] is True
    assert setup.recorders[0].closed == 1 and not setup.recordings.active


async def test_the_partial_files_of_recordings_going_on_are_kept_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call on hold may send no audio for minutes: its partial file is touched anyway, so
    that no node's housekeeping takes it for one a dead node left."""
    import os

    from sparklecomm.telephony import call_recording

    monkeypatch.setattr(call_recording, "KEEPALIVE_SECONDS", 0.02)
    setup = Setup(Store())
    call = a_call()
    await setup.recordings.act(call, "start", "ana")
    partial = tmp_path / ".r1.wav.part"
    partial.write_bytes(b"RIFF")
    os.utime(partial, (1_000_000, 1_000_000))
    setup.recorders[0].partial = partial  # type: ignore[attr-defined]
    for _ in range(100):
        await asyncio.sleep(0.02)
        if partial.stat().st_mtime > 1_000_000:
            break
    assert partial.stat().st_mtime > 1_000_000
    await setup.recordings.act(call, "stop", "ana")
    await asyncio.sleep(0.1)
    assert setup.recordings._keepalive is not None and setup.recordings._keepalive.done()


async def test_a_call_encrypted_between_the_phones_is_not_recorded() -> None:
    """SRTP passes through with keys only the phones know: recording it would store noise."""
    from sparklecomm.telephony import sdp
    from sparklecomm.telephony.calls import Leg

    call = a_call()
    offer = sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    )
    leg = Leg.__new__(Leg)
    leg.remote_sdp = offer
    call.legs["a"] = leg
    setup = Setup(Store())
    with pytest.raises(Conflict, match="encrypted end to end"):
        await setup.recordings.act(call, "start", "ana")
    assert not setup.store.begun
