"""Recording calls answered through an ACD queue: a SIPp caller and a SIPp agent phone, each
streaming its own tone (``rtp_stream``) through the relay, inside a loopback-only namespace;
the recording is written by the real recorder from the relay's tap.

The store here is a small in-memory one (the protocol the B2BUA calls); the real store,
its API and the end-to-end path through ``serve`` are tested in test_recordings*.py.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.telephony import test_voice_acd_sipp
from tests.telephony.sip_support import wait_until
from tests.telephony.test_voice_acd_sipp import SIPP, Center, caller, login, register, sipp

from sparklecomm.telephony.call_recording import CallRecordings
from sparklecomm.telephony.media.rtp import ulaw_tone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
CALLER_HZ, AGENT_HZ = 440.0, 1000.0

center = test_voice_acd_sipp.center  # the fixture: SIP server, relay, routing, bridge


class Shelf:
    """The recording store of these tests: the policy is "record the support queue"; it
    keeps what the B2BUA tells it."""

    def __init__(self, folder: Path, *, queues: Sequence[str] = ("support",)) -> None:
        self.folder = folder
        self.queues = set(queues)
        self.begun: list[dict[str, Any]] = []
        self.marks: list[tuple[str, float, str]] = []
        self.finished: list[dict[str, Any]] = []

    async def recording_wanted(
        self, tenant_id: str, *, queue_id: str | None, extensions: Sequence[str]
    ) -> bool:
        return queue_id in self.queues

    async def begin_recording(self, tenant_id: str, **facts: Any) -> tuple[str, Path]:
        self.begun.append(facts)
        recording_id = f"r{len(self.begun)}"
        return recording_id, self.folder / f"{recording_id}.wav"

    async def recording_paused(
        self, tenant_id: str, recording_id: str, *, offset: float, by: str
    ) -> None:
        self.marks.append(("paused", offset, by))

    async def recording_resumed(
        self, tenant_id: str, recording_id: str, *, offset: float, by: str
    ) -> None:
        self.marks.append(("resumed", offset, by))

    async def finish_recording(self, tenant_id: str, recording_id: str, **result: Any) -> None:
        self.finished.append({"id": recording_id, **result})


def scenario_with(tmp: Path, name: str, scenario: str, anchor: str, replacement: str) -> Path:
    """``scenario`` of ``sipp/`` with its first ``anchor`` replaced, written to ``tmp``."""
    text = (SIPP / scenario).read_text()
    assert anchor in text, anchor
    path = tmp / name
    path.write_text(text.replace(anchor, replacement, 1))
    return path


def stream(audio: Path) -> str:
    """SIPp's step that starts streaming ``audio`` (µ-law) as RTP, once."""
    return f'<nop><action><exec rtp_stream="{audio},1,0"/></action></nop>'


def record_center(center: Center, folder: Path, **options: Any) -> tuple[CallRecordings, Shelf]:
    shelf = Shelf(folder, **options)
    recordings = CallRecordings(shelf, describe=center.phones.call_facts)
    center.server.calls.recordings = recordings
    return recordings, shelf


def channel_tone(samples: np.ndarray) -> float:
    """The strongest frequency of one channel (Hz)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(float)))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * 8000 / len(samples))


def spoken(samples: np.ndarray) -> float:
    """Seconds of ``samples`` (one channel) that are sound: 20 ms frames with an RMS level
    of a voice, not silence."""
    frames = samples[: len(samples) // 160 * 160].astype(float).reshape(-1, 160)
    return float((np.sqrt((frames**2).mean(axis=1)) > 2000).sum() * 0.02)


def read_stereo(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, dtype="<i2").reshape(-1, 2)


def talking_scenarios(tmp: Path, seconds: float) -> tuple[Path, Path]:
    """SIPp scenarios of the agent's phone (answers, then streams its tone) and of the
    caller (dials, streams its tone once answered, hangs up after ``seconds`` and a bit),
    with their audio, written to ``tmp``."""
    samples = int(8000 * seconds)
    (tmp / "caller.ulaw").write_bytes(ulaw_tone(CALLER_HZ, samples))
    (tmp / "agent.ulaw").write_bytes(ulaw_tone(AGENT_HZ, samples))
    acked = '<recv request="ACK" rtd="true" crlf="true"/>'
    agent = scenario_with(
        tmp, "agent.xml", "call_uas.xml", acked, f"{acked}\n  {stream(tmp / 'agent.ulaw')}"
    )
    talking = f'<pause milliseconds="{int(seconds * 1000) + 700}"/>'
    caller = scenario_with(
        tmp, "caller.xml", "queue_uac_waiting.xml", '<pause milliseconds="500"/>',
        f'{stream(tmp / "caller.ulaw")}\n  {talking}',
    )  # fmt: skip
    return agent, caller


async def talk(center: Center, tmp: Path, *, seconds: float) -> tuple[Any, Any, Any]:
    """A caller through the queue and the agent's phone (2001), each streaming ``seconds``
    of its tone once the call is up; the SIPp tasks and the B2BUA's call once answered."""
    agent_scenario, caller_scenario = talking_scenarios(tmp, seconds)
    agent_phone = asyncio.get_running_loop().create_task(
        sipp("-sf", str(agent_scenario), "-p", "5080", "-mp", "16000", "-m", "1",
             "-timeout", "25s")
    )  # fmt: skip
    await asyncio.sleep(0.3)
    await register(center, "2001", 5080, 5070)
    login(center, center.world.agent_id)
    call = caller(center, caller_scenario)
    try:
        await wait_until(lambda: any(c.answered for c in center.server.calls.calls.values()), 15)
    except AssertionError:
        for task in (call, agent_phone):
            if task.done():
                print(task.result()[1][-3000:])
        raise
    sip_call = next(c for c in center.server.calls.calls.values() if c.answered)
    return call, agent_phone, sip_call


async def finish(call: Any, agent_phone: Any) -> None:
    rc, out = await asyncio.wait_for(call, 40)
    assert rc == 0, out[-3000:]
    rc, out = await asyncio.wait_for(agent_phone, 40)
    assert rc == 0, out[-3000:]


async def test_the_company_rules_record_a_queue_call_caller_left_agent_right(
    center: Center, tmp_path: Path
) -> None:
    """The support queue is recorded: once the agent answers, both parties' audio goes to
    one stereo WAV, the caller on the left, the agent on the right, as long as the call
    talked; the store heard the interaction, queue and agent, and that the rules started it."""
    _, shelf = record_center(center, tmp_path / "recordings")
    call, agent_phone, sip_call = await talk(center, tmp_path, seconds=2.0)
    await finish(call, agent_phone)
    await wait_until(lambda: bool(shelf.finished), 10)
    assert len(shelf.begun) == 1
    begun = shelf.begun[0]
    assert begun["queue_id"] == "support" and begun["agent_id"] == center.world.agent_id
    assert str(begun["interaction_id"]).startswith("call-")
    assert begun["call_id"] == sip_call.id and begun["started_by"] == "policy"
    assert begun["caller"] == "1001"
    done = shelf.finished[0]
    assert done["ok"] is True and done["pauses"] == ()
    path = tmp_path / "recordings" / "r1.wav"
    assert path.exists() and done["size"] == path.stat().st_size
    audio = read_stereo(path)
    assert 2.0 <= done["seconds"] <= 4.0  # the tones, and the call's last moments
    assert abs(len(audio) / 8000 - done["seconds"]) < 0.05
    left, right = audio[:, 0], audio[:, 1]
    assert int(np.abs(left).max()) > 3000 and int(np.abs(right).max()) > 3000
    assert abs(channel_tone(left) - CALLER_HZ) < 15
    assert abs(channel_tone(right) - AGENT_HZ) < 15
    assert 1.8 <= spoken(left) <= 2.1 and 1.8 <= spoken(right) <= 2.1  # 2 s of each voice
    assert not center.server.calls.recordings.active  # type: ignore[union-attr]


async def test_a_paused_span_is_silence_and_a_queue_off_the_rules_is_recorded_on_demand(
    center: Center, tmp_path: Path
) -> None:
    """No rule records the queue: nothing starts by itself. The agent starts recording on
    demand, pauses for a moment (a card number) and resumes: the paused span is silence on
    both channels, its offsets are kept, and the store heard each step."""
    recordings, shelf = record_center(center, tmp_path / "recordings", queues=())
    call, agent_phone, sip_call = await talk(center, tmp_path, seconds=3.0)
    await asyncio.sleep(0.3)
    assert not shelf.begun and not recordings.active  # the rules said no
    agent = center.world.agent_id
    state = await recordings.act(sip_call, "start", agent)
    assert state["state"] == "recording" and state["recording_id"] == "r1"
    await asyncio.sleep(0.5)
    assert (await recordings.act(sip_call, "pause", agent))["state"] == "paused"
    await asyncio.sleep(0.8)
    assert (await recordings.act(sip_call, "resume", agent))["state"] == "recording"
    await finish(call, agent_phone)
    await wait_until(lambda: bool(shelf.finished), 10)
    assert shelf.begun[0]["started_by"] == agent
    assert [m[0] for m in shelf.marks] == ["paused", "resumed"]
    done = shelf.finished[0]
    ((start, end),) = done["pauses"]
    assert 0.3 <= start <= 0.8 and 0.6 <= end - start <= 1.1
    assert abs(done["paused_seconds"] - (end - start)) < 0.01
    audio = read_stereo(tmp_path / "recordings" / "r1.wav")
    quiet = audio[int(start * 8000) + 80 : int(end * 8000) - 80]
    assert len(quiet) > 0.5 * 8000 and not quiet.any()  # exact silence while paused
    before = audio[: int(start * 8000) - 160]
    after = audio[int(end * 8000) + 160 : int(end * 8000) + 4000]
    for spoken in (before, after):
        assert int(np.abs(spoken[:, 0]).max()) > 3000 and int(np.abs(spoken[:, 1]).max()) > 3000
