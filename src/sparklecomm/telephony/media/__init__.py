"""Media: the RTP relay that anchors every call's media (later: codecs, DTMF, playback,
recording, mixing). See ``docs/telephony.md`` (Media relay)."""

from sparklecomm.telephony.media.ports import PortAllocator, PortRangeExhausted
from sparklecomm.telephony.media.relay import MediaRelay, RelayConfig, RelayLeg, RelaySession
from sparklecomm.telephony.media.rtp import (
    G711Stream,
    RtpHeader,
    RtpParseError,
    build_rtp_packet,
    parse_rtp_header,
)

__all__ = [
    "G711Stream",
    "MediaRelay",
    "PortAllocator",
    "PortRangeExhausted",
    "RelayConfig",
    "RelayLeg",
    "RelaySession",
    "RtpHeader",
    "RtpParseError",
    "build_rtp_packet",
    "parse_rtp_header",
]
