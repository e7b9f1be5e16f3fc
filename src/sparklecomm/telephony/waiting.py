"""What a caller hears while waiting in a voice queue: music on hold, announcements of their
place in line and expected wait, and a key to press to be called back.

A queue whose :class:`~sparklecomm.acd.model.WaitingMedia` has ``music_on_hold`` gets early
media instead of ringback (:meth:`CallManager.early_media`: a 183 with the platform's own SDP
answer; the caller is not answered, so not charged, until an agent answers). The platform
then talks to the relay's caller leg itself (:meth:`RelaySession.attach`):

* it plays music on hold (G.711, 20 ms packets,
  :class:`~sparklecomm.telephony.media.player.RtpPlayer`);
* as the caller joins, and every ``announce_every_seconds``, it says the caller's place in
  line and expected wait, read from routing at that moment (spoken by espeak-ng,
  :class:`~sparklecomm.telephony.media.audio.PromptVoice`; without it, music only);
* it listens for the keypad (RFC 4733 telephone-events): the ``callback_key`` turns the
  call into a queued callback to the caller's number, keeping their place in line; the
  caller hears a confirmation, the call is answered and hung up.

When an agent answers (or a diverted call's target sends its own early media, or the call
ends) :meth:`Waiting.stop` detaches the platform and the relay's legs ``a`` and ``b`` talk as
for every call. See docs/telephony.md "While callers wait".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import structlog

from sparklecomm.telephony.media.audio import (
    SAMPLE_RATE,
    PromptVoice,
    announcement_text,
    decode,
    default_music,
    encode,
)
from sparklecomm.telephony.media.player import DtmfReceiver, Playlist, RtpPlayer
from sparklecomm.telephony.media.rtp import RtpParseError, parse_rtp_header

if TYPE_CHECKING:
    from sparklecomm.acd.model import WaitingMedia
    from sparklecomm.telephony import sdp as sdplib
    from sparklecomm.telephony.calls import Call, CallManager
    from sparklecomm.telephony.pbx.routes import IvrMenu

log = structlog.get_logger("sparklecomm.telephony.waiting")

SILENCE = {"PCMU": 0xFF, "PCMA": 0xD5}
"""The G.711 byte of a zero sample."""
CODECS = {"0": "PCMU", "8": "PCMA"}

CALLBACK_CONFIRMATION = (
    "Thank you. We will call you back on the number you are calling from, and you keep "
    "your place in line. Goodbye."
)
CALLBACK_REFUSED = "Sorry, we cannot call you back right now. Please stay on the line."
END_OF_MESSAGE_KEY = "#"
"""The key that ends a voicemail message (hanging up does too)."""


def tone(seconds: float = 0.5, frequency: float = 1000.0) -> np.ndarray:
    """The tone after a voicemail greeting: a sine at -12 dBFS with 10 ms fades."""
    n = int(SAMPLE_RATE * seconds)
    wave = np.sin(2 * np.pi * frequency * np.arange(n) / SAMPLE_RATE) * 8000
    fade = min(80, n // 2)
    ramp = np.linspace(0.0, 1.0, fade)
    wave[:fade] *= ramp
    wave[n - fade :] *= ramp[::-1]
    return wave.astype(np.int16)


class WaitingQueue(Protocol):
    """What the waiting room asks of routing
    (:class:`~sparklecomm.telephony.voice_queue.VoiceQueue`)."""

    async def place_in_line(self, call_id: str) -> tuple[int | None, float | None]: ...

    async def request_callback(self, call_id: str, phone: str) -> bool: ...


class WaitingRoom:
    """Music, prompts and the callers hearing them, for one :class:`CallManager`."""

    def __init__(
        self,
        manager: CallManager,
        *,
        voice: PromptVoice | None = None,
        music: np.ndarray | None = None,
        first_announcement: float = 1.0,
        hangup_pause: float = 0.5,
    ) -> None:
        self.manager = manager
        self.voice = voice
        self._music_pcm = music
        self._music: dict[str, bytes] = {}
        self._prompts: OrderedDict[tuple[str, str], bytes | None] = OrderedDict()
        self.first_announcement = first_announcement
        """Seconds of music before the first announcement (routing has placed the call)."""
        self.hangup_pause = hangup_pause
        """Seconds after the callback confirmation before the call is hung up."""
        self.waiting: dict[str, Waiting] = {}
        """Calls hearing the platform now, by call id."""

    def music(self, codec: str) -> bytes:
        """The music on hold, encoded for ``codec`` (once per codec)."""
        encoded = self._music.get(codec)
        if encoded is None:
            pcm = self._music_pcm if self._music_pcm is not None else default_music()
            encoded = self._music[codec] = encode(codec, pcm)
        return encoded

    async def prompt(self, text: str, codec: str) -> bytes | None:
        """``text`` spoken and encoded for ``codec`` (``None``: no voice to speak it)."""
        key = (text, codec)
        if key in self._prompts:
            self._prompts.move_to_end(key)
            return self._prompts[key]
        if self.voice is None:
            return None
        pcm = await self.voice.speak(text)
        encoded = None if pcm is None else encode(codec, pcm)
        self._prompts[key] = encoded
        if len(self._prompts) > 256:
            self._prompts.popitem(last=False)
        return encoded

    def start(
        self,
        call: Call,
        answer: sdplib.SessionDescription,
        config: WaitingMedia,
        queue: WaitingQueue,
    ) -> Waiting | None:
        """Start playing to ``call``'s caller, whose offer ``answer`` (the 183's) answered:
        music, and the announcements and callback key of the queue's ``config``."""
        waiting = self.attach(call, answer)
        if waiting is not None:
            waiting.enter_queue(config, queue)
        return waiting

    def attach(self, call: Call, answer: sdplib.SessionDescription) -> Waiting | None:
        """Take over the caller's media (playing nothing yet): ``answer`` is the platform's
        SDP answer to the caller (its codec and telephone-event payload types)."""
        audio = answer.audio()
        if call.media is None or call.ended or call.waiting is not None or audio is None:
            return None
        codec = CODECS.get(audio.formats[0]) if audio.formats else None
        if codec is None:
            return None
        events = [int(f) for f in audio.formats[1:] if f.isdigit()]
        waiting = Waiting(self, call, codec, int(audio.formats[0]), events[0] if events else None)
        call.waiting = waiting
        self.waiting[call.id] = waiting
        waiting.begin()
        return waiting


class Waiting:
    """One caller hearing the platform (see the module docstring)."""

    def __init__(
        self,
        room: WaitingRoom,
        call: Call,
        codec: str,
        payload_type: int,
        event_type: int | None,
    ) -> None:
        self.room = room
        self.call = call
        self.config: WaitingMedia | None = None
        self.queue: WaitingQueue | None = None
        self.codec = codec
        self.media = call.media
        self.player: RtpPlayer | None = None
        self.dtmf = DtmfReceiver(event_type, self._digit) if event_type is not None else None
        self.payload_type = payload_type
        self.stopped = False
        self.callback_requested = False
        self.digits: list[str] = []
        """Keys the caller pressed (for the log and tests)."""
        self.announcements = 0
        """Announcements played so far."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._announcing: asyncio.Task[None] | None = None
        self._key: asyncio.Future[str] | None = None
        """Set while a menu waits for a key."""
        self._recording: bytearray | None = None
        """The caller's audio payloads while a message is recorded."""
        self._recorded: asyncio.Future[None] | None = None
        """Done when the message ends (``#``, the caller gone)."""
        self.menus = 0
        """Menu prompts played so far."""

    def begin(self) -> None:
        send = self.media.attach("a", self._received)
        self.player = RtpPlayer(send, payload_type=self.payload_type)

    def enter_queue(self, config: WaitingMedia, queue: WaitingQueue) -> None:
        """The caller waits in a queue now: music, and with ``config.music_on_hold`` its
        announcements and callback key (a caller the platform answered for a menu hears
        music in any queue: their phone plays no ringback once answered)."""
        self.config = config
        self.queue = queue
        self.hold()
        if config.music_on_hold and (
            config.announce_position or config.announce_wait or config.callback_key
        ):
            self._announcing = self._spawn(self._announce(config, queue))

    def _stop_announcing(self) -> None:
        if self._announcing is not None:
            self._announcing.cancel()
            self._announcing = None

    def hold(self) -> None:
        """Music only (no announcements): while what the caller chose rings."""
        self._stop_announcing()
        self._play()

    async def menu(self, menu: IvrMenu) -> str | None:
        """Play ``menu`` and return the valid key the caller pressed, or ``None`` after its
        last attempt without one (a wrong key or silence plays its invalid prompt)."""
        self._stop_announcing()
        self.config = None  # no callback key inside a menu
        loop = asyncio.get_running_loop()
        for attempt in range(menu.attempts):
            if self.stopped:
                return None
            # Keys count from the start of the attempt: one pressed during the invalid
            # prompt (or the menu's prompt) is taken at once.
            key_pressed: asyncio.Future[str] = loop.create_future()
            self._key = key_pressed
            try:
                if attempt:
                    invalid = await self.room.prompt(menu.invalid_prompt, self.codec)
                    if invalid is not None and not key_pressed.done():
                        self._play(invalid, music=False)
                        await asyncio.wait({key_pressed}, timeout=len(invalid) / SAMPLE_RATE)
                clip = await self.room.prompt(menu.prompt, self.codec)
                seconds = 0.0
                if clip is not None and not self.stopped and not key_pressed.done():
                    self.menus += 1
                    self._play(clip, music=False)
                    seconds = len(clip) / SAMPLE_RATE
                done, _ = await asyncio.wait({key_pressed}, timeout=seconds + menu.timeout_seconds)
            finally:
                self._key = None
            if not done:
                continue
            key = key_pressed.result()
            if key in menu.keys:
                self._play(music=False)  # the prompt stops at the key
                return key
        return None

    async def say(self, text: str) -> None:
        """Speak ``text`` (no music after it) and return once it has been played."""
        clip = await self.room.prompt(text, self.codec)
        if clip is not None and not self.stopped:
            self._play(clip, music=False)
            await asyncio.sleep(len(clip) / SAMPLE_RATE)

    async def record_message(self, greeting: str, max_seconds: float) -> np.ndarray:
        """Voicemail: speak ``greeting``, play the tone, then record what the caller says
        until ``#``, hanging up or ``max_seconds``; the recording (8 kHz int16, empty when
        the caller left before the tone)."""
        self._stop_announcing()
        self.config = None  # no callback key here; ``#`` ends the message
        await self.say(greeting)
        beep = encode(self.codec, tone())
        if self.stopped:
            return np.zeros(0, dtype=np.int16)
        self._play(beep, music=False)
        await asyncio.sleep(len(beep) / SAMPLE_RATE)
        if self.stopped:
            return np.zeros(0, dtype=np.int16)
        self._recording = bytearray()
        self._recorded = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(max_seconds):
                await self._recorded
        except TimeoutError:
            pass
        data = bytes(self._recording)
        self._recording = None
        self._recorded = None
        return decode(self.codec, data) if data else np.zeros(0, dtype=np.int16)

    def _play(self, *clips: bytes, music: bool = True) -> None:
        """Play ``clips``, then the music on hold (or, without ``music``, nothing)."""
        if self.player is None or self.stopped:
            return
        loop = self.room.music(self.codec) if music else None
        self.player.play(Playlist(clips, loop, silence=SILENCE[self.codec]))

    def _received(self, packet: bytes) -> None:
        if self.dtmf is not None:
            self.dtmf.feed(packet)
        recording = self._recording
        if recording is not None and len(packet) > 12 and packet[1] & 0x7F == self.payload_type:
            try:
                header = parse_rtp_header(packet)
            except RtpParseError:
                return
            start = header.payload_offset
            recording += packet[start : start + header.payload_length]

    def _digit(self, digit: str) -> None:
        self.digits.append(digit)
        log.info("voice.waiting_key", call=self.call.id, key=digit)
        if self._key is not None:
            if not self._key.done():
                self._key.set_result(digit)
            return
        if self._recorded is not None:
            if digit == END_OF_MESSAGE_KEY and not self._recorded.done():
                self._recorded.set_result(None)
            return
        config, queue = self.config, self.queue
        if (
            config is not None
            and queue is not None
            and digit == config.callback_key
            and not self.callback_requested
            and not self.stopped
        ):
            self.callback_requested = True
            self._spawn(self._callback(queue))

    async def _announce(self, config: WaitingMedia, queue: WaitingQueue) -> None:
        await asyncio.sleep(self.room.first_announcement)
        while not self.stopped:
            position, wait = await queue.place_in_line(self.call.id)
            if position is None:  # being offered, connected or gone: no announcement
                text = ""
            else:
                text = announcement_text(
                    position=position if config.announce_position else None,
                    wait_seconds=wait if config.announce_wait else None,
                    callback_key=config.callback_key,
                )
            if text and not self.callback_requested:
                clip = await self.room.prompt(text, self.codec)
                if clip is not None and not self.stopped and not self.callback_requested:
                    self.announcements += 1
                    self._play(clip)
            if config.announce_every_seconds is None:
                return
            await asyncio.sleep(config.announce_every_seconds)

    async def _callback(self, queue: WaitingQueue) -> None:
        call = self.call
        done = await queue.request_callback(call.id, call.caller)
        if self.stopped:
            return
        if not done:
            self.callback_requested = False
            clip = await self.room.prompt(CALLBACK_REFUSED, self.codec)
            if clip is not None:
                self._play(clip)
            return
        manager = self.room.manager
        manager.answer_waiting(call)
        clip = await self.room.prompt(CALLBACK_CONFIRMATION, self.codec)
        seconds = 0.0
        if clip is not None and not self.stopped:
            self._play(clip, music=False)
            seconds = len(clip) / SAMPLE_RATE
        await asyncio.sleep(seconds + self.room.hangup_pause)
        manager.end_call(call, "callback_requested")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("voice.waiting_failed", call=self.call.id, error=repr(task.exception()))

    def stop(self) -> None:
        """Stop playing and listening; the relay's legs ``a`` and ``b`` talk again (unless
        ``b`` talks to ``c``: a consultation, which the caller of this method ends)."""
        if self.stopped:
            return
        self.stopped = True
        self.room.waiting.pop(self.call.id, None)
        if self._key is not None and not self._key.done():
            self._key.set_result("")  # a menu waiting for a key gives up at once
        if self._recorded is not None and not self._recorded.done():
            self._recorded.set_result(None)  # the message ends with the call
        current = asyncio.current_task() if _loop_running() else None
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if self.player is not None:
            self.player.stop()
        media = self.media
        if not getattr(media, "closed", False):
            with contextlib.suppress(Exception):
                media.detach("a")
                if media.connected("b") is None:  # (while consulting, b talks to c)
                    media.connect("a", "b")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
