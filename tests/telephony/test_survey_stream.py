"""Which stream the platform plays the post-call survey on: the codec the agent used, and
the RFC 4733 payload types the caller may send (pure)."""

from __future__ import annotations

from sparklecomm.telephony import sdp
from sparklecomm.telephony.calls import Call, Leg, _caller_stream


def description(formats: str, extra: str = "") -> sdp.SessionDescription:
    return sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio 4000 RTP/AVP {formats}\r\n{extra}"
    )


def a_call(caller: sdp.SessionDescription | None) -> Call:
    call = Call(None, "c1", "1001", "5550100", "127.0.0.1:5071")  # type: ignore[arg-type]
    leg = Leg.__new__(Leg)
    leg.remote_sdp = caller
    call.legs["a"] = leg
    return call


def formats(found: sdp.SessionDescription | None) -> list[str]:
    assert found is not None
    audio = found.audio()
    assert audio is not None
    return list(audio.formats)


def test_the_agents_codec_first_then_the_telephone_events_of_both_sides() -> None:
    caller = description("0 8 96", "a=rtpmap:96 telephone-event/8000\r\n")
    agent = description("8 101", "a=rtpmap:101 telephone-event/8000\r\n")
    assert formats(_caller_stream(a_call(caller), agent)) == ["8", "101", "96"]


def test_an_agent_without_telephone_event_leaves_the_callers() -> None:
    caller = description("0 8 101", "a=rtpmap:101 telephone-event/8000\r\n")
    assert formats(_caller_stream(a_call(caller), description("0"))) == ["0", "101"]


def test_the_platforms_own_early_answer_wins() -> None:
    call = a_call(description("0 8 101"))
    call.early_answer = description("8 101").to_bytes()
    assert formats(_caller_stream(call, description("0"))) == ["8", "101"]


def test_without_the_callers_description_the_agents_is_used() -> None:
    agent = description("0")
    assert _caller_stream(a_call(None), agent) is agent
