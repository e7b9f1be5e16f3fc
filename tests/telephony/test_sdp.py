"""SDP parsing and writing (RFC 4566), codec filtering and answers (RFC 3264), hold
detection, and anchoring at the media relay."""

from __future__ import annotations

import pytest

from sparklecomm.telephony import sdp

# RFC 4566 §5 example (the session description of a conference).
RFC4566_EXAMPLE = (
    "v=0\r\n"
    "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
    "s=SDP Seminar\r\n"
    "i=A Seminar on the session description protocol\r\n"
    "u=http://www.example.com/seminars/sdp.pdf\r\n"
    "e=j.doe@example.com (Jane Doe)\r\n"
    "c=IN IP4 224.2.17.12/127\r\n"
    "t=2873397496 2873404696\r\n"
    "a=recvonly\r\n"
    "m=audio 49170 RTP/AVP 0\r\n"
    "m=video 51372 RTP/AVP 99\r\n"
    "a=rtpmap:99 h263-1998/90000\r\n"
)

# RFC 3264 §10.1 first offer (Alice) with telephone-event added as RFC 4733 does.
OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n"
    "s=\r\n"
    "c=IN IP4 host.atlanta.example.com\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 8 97 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:97 iLBC/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "m=video 51372 RTP/AVP 31 32\r\n"
    "a=rtpmap:31 H261/90000\r\n"
    "a=rtpmap:32 MPV/90000\r\n"
)


def test_parses_and_writes_back_the_rfc4566_example() -> None:
    parsed = sdp.parse(RFC4566_EXAMPLE.encode())
    assert [m.kind for m in parsed.media] == ["audio", "video"]
    assert parsed.connection(parsed.media[0]) == "224.2.17.12"
    assert parsed.direction(parsed.media[0]) == "recvonly"  # from the session level
    assert parsed.media[1].rtpmap() == {"99": "h263-1998/90000"}
    assert parsed.to_bytes().decode() == RFC4566_EXAMPLE


def test_filter_keeps_pcmu_pcma_and_telephone_event_and_refuses_video() -> None:
    filtered = sdp.filter_codecs(sdp.parse(OFFER))
    audio, video = filtered.media
    assert audio.formats == ["0", "8", "101"]
    assert not any("iLBC" in value for _, value in audio.lines)
    assert ("a", "fmtp:101 0-15") in audio.lines
    assert video.port == 0  # rejected stream keeps its place (RFC 3264 §6)


def test_no_supported_codec_is_an_error_naming_it() -> None:
    body = OFFER.replace("RTP/AVP 0 8 97 101", "RTP/AVP 97")
    with pytest.raises(sdp.SdpError, match="no supported audio codec"):
        sdp.filter_codecs(sdp.parse(body))


def test_a_static_payload_type_remapped_to_another_codec_is_refused() -> None:
    body = OFFER.replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 G722/8000").replace(
        "RTP/AVP 0 8 97 101", "RTP/AVP 0 97"
    )
    with pytest.raises(sdp.SdpError):
        sdp.filter_codecs(sdp.parse(body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"o=x 1 1 IN IP4 1.2.3.4\r\n", "v=0"),
        (b"v=0\r\nnonsense\r\n", "line 2"),
        (b"v=0\r\ns=x\r\nt=0 0\r\n", "o= line"),
        (b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n", "no c= line"),
        (b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=0 0\r\nm=audio x RTP/AVP 0\r\n", "m="),
        (
            b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n",
            "range",
        ),
        (b"v=0\r\no=x\r\ns=-\r\nt=0 0\r\n", "6 fields"),
        (b"v=0\r\n\xff\r\n", "UTF-8"),
        (b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nc=garbage\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n", "c="),
    ],
)
def test_malformed_sdp_is_rejected_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(sdp.SdpError, match=message):
        sdp.parse(body)


@pytest.mark.parametrize(
    ("change", "held"),
    [
        ("", False),
        ("a=sendonly\r\n", True),
        ("a=inactive\r\n", True),
        ("a=recvonly\r\n", False),
    ],
)
def test_hold_detection_by_direction(change: str, held: bool) -> None:
    body = OFFER.split("m=video")[0] + change
    assert sdp.is_hold(sdp.parse(body)) is held


def test_hold_detection_by_zero_address_and_anchor_keeps_it() -> None:
    body = OFFER.replace("c=IN IP4 host.atlanta.example.com", "c=IN IP4 0.0.0.0")
    parsed = sdp.parse(body)
    assert sdp.is_hold(parsed)
    assert sdp.media_target(parsed) is None
    anchored = sdp.anchor(parsed, "127.0.0.1", 20000)
    assert anchored.connection(anchored.audio()) == "0.0.0.0"
    assert sdp.is_hold(anchored)


def test_anchor_rewrites_connection_port_and_origin() -> None:
    parsed = sdp.parse(OFFER)
    anchored = sdp.anchor(parsed, "192.0.2.10", 20002, origin=("77", 3))
    assert sdp.media_target(anchored) == ("192.0.2.10", 20002)
    assert anchored.origin == "alice 77 3 IN IP4 192.0.2.10"
    assert anchored.media[1].port == 51372  # only the audio stream goes to the relay
    assert sdp.media_target(parsed) == ("host.atlanta.example.com", 49170)  # input untouched


def test_rtcp_attribute_is_read_and_rewritten_to_the_relay() -> None:
    """RFC 3605: a phone whose RTCP is not on RTP port + 1 says so with a=rtcp; the relay
    must send its RTCP there, and the other side must send RTCP to the relay, not around
    it to the phone."""
    audio_only = OFFER.split("m=video")[0]
    plain = sdp.parse(audio_only)
    assert sdp.rtcp_target(plain) is None  # RTP port + 1
    assert (
        "rtcp:" not in sdp.anchor(plain, "192.0.2.10", 20002, rtcp_port=20003).to_bytes().decode()
    )
    with_rtcp = sdp.parse(audio_only + "a=rtcp:53020 IN IP4 host.atlanta.example.com\r\n")
    assert sdp.rtcp_target(with_rtcp) == 53020
    anchored = sdp.anchor(with_rtcp, "192.0.2.10", 20002, rtcp_port=20003)
    audio = anchored.audio()
    assert audio is not None and audio.attributes("rtcp") == ["20003 IN IP4 192.0.2.10"]
    assert sdp.rtcp_target(sdp.parse(anchored.to_bytes())) == 20003
    # Without the relay's port (no relay: the phone's own address stays) it is kept.
    kept = sdp.anchor(with_rtcp, "host.atlanta.example.com", 49170)
    assert kept.audio().attributes("rtcp") == ["53020 IN IP4 host.atlanta.example.com"]  # type: ignore[union-attr]
    # A bare port form, and malformed values (ignored: RTP port + 1 then).
    assert sdp.rtcp_target(sdp.parse(audio_only + "a=rtcp:9\r\n")) == 9
    for bad in ("a=rtcp:\r\n", "a=rtcp:0\r\n", "a=rtcp:70000\r\n", "a=rtcp:x IN IP4 a\r\n"):
        assert sdp.rtcp_target(sdp.parse(audio_only + bad)) is None


def test_answer_picks_the_first_codec_and_mirrors_direction() -> None:
    offer = sdp.parse(OFFER.split("m=video")[0] + "a=sendonly\r\n")
    answer = sdp.answer(offer, "127.0.0.1", 20000, session_id="9")
    audio = answer.audio()
    assert audio is not None and audio.formats == ["0", "101"]
    assert answer.direction(audio) == "recvonly"
    assert sdp.media_target(answer) == ("127.0.0.1", 20000)
    again = sdp.parse(answer.to_bytes())
    assert again.origin.split()[1] == "9"


def test_answer_refuses_other_streams_and_keeps_their_place() -> None:
    answer = sdp.answer(sdp.parse(OFFER), "127.0.0.1", 20000)
    assert [(m.kind, m.port) for m in answer.media] == [("audio", 20000), ("video", 0)]


def test_narrow_keeps_only_the_codec_the_platform_answered_with() -> None:
    """Once the platform answered the caller itself (early media, a voice menu), whoever
    is rung next is offered the answered codec and telephone-event only, with their
    attributes; the address and the other streams are the caller's as they were."""
    offer = sdp.parse(OFFER)
    answer = sdp.answer(offer, "127.0.0.1", 20000)
    narrowed = sdp.narrow(offer, answer)
    audio = narrowed.audio()
    assert audio is not None and audio.formats == ["0", "101"]
    assert audio.rtpmap() == {"0": "pcmu/8000", "101": "telephone-event/8000"}  # (lower-cased)
    assert audio.attributes("fmtp") == ["101 0-15"]
    assert sdp.media_target(narrowed) == sdp.media_target(offer)
    assert [m.kind for m in narrowed.media] == ["audio", "video"]
    original = offer.audio()
    assert original is not None and original.formats == ["0", "8", "97", "101"]  # untouched
