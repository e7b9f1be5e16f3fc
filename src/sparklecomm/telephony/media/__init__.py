"""Media: the RTP relay that anchors every call's media, and waiting media (a player and a
DTMF receiver for a caller the platform talks to), call recording (a stereo WAV fed by the
relay's tap); later: mixing. See ``docs/telephony.md`` (Media relay)."""

from sparklecomm.telephony.media.player import DtmfReceiver, Playlist, Program, RtpPlayer
from sparklecomm.telephony.media.ports import PortAllocator, PortRangeExhausted
from sparklecomm.telephony.media.recorder import CallRecorder, RecordingResult
from sparklecomm.telephony.media.relay import MediaRelay, RelayConfig, RelayLeg, RelaySession
from sparklecomm.telephony.media.rtp import (
    G711Stream,
    RtpHeader,
    RtpParseError,
    build_rtp_packet,
    parse_rtp_header,
)

__all__ = [
    "CallRecorder",
    "DtmfReceiver",
    "G711Stream",
    "MediaRelay",
    "Playlist",
    "PortAllocator",
    "PortRangeExhausted",
    "Program",
    "RecordingResult",
    "RelayConfig",
    "RelayLeg",
    "RelaySession",
    "RtpHeader",
    "RtpParseError",
    "RtpPlayer",
    "build_rtp_packet",
    "parse_rtp_header",
]
