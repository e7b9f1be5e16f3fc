"""SDP (RFC 4566) and the offer/answer rules of RFC 3264 that the B2BUA needs.

Pure code, no I/O. :func:`parse` turns a body into a :class:`SessionDescription` (session
lines and media sections, every line kept in order so that what we do not understand is
passed on untouched); :meth:`SessionDescription.to_bytes` writes it back. On top of that:

* :func:`filter_codecs` keeps only the codecs SparkleComm relays: PCMU (0), PCMA (8) and
  ``telephone-event`` (RFC 4733, any dynamic payload type), over ``RTP/AVP`` or another
  ``RTP/...`` profile; the profile and every other line stay as they are, so an SDES-SRTP
  offer (``RTP/SAVP`` with ``a=crypto``, RFC 4568) passes from phone to phone and the relay
  forwards the encrypted packets unchanged ("SRTP pass-through");
* :func:`anchor` rewrites the connection address and audio port to the media relay's;
* :func:`is_hold` detects a hold: ``a=sendonly``/``a=inactive`` or ``c=IN IP4 0.0.0.0``;
* :func:`answer` builds an RFC 3264 answer to an offer (direction mirrored); SparkleComm
  has no SRTP of its own, so it refuses secure (``SAVP``) streams there.

Malformed input raises :class:`SdpError` (a ``ValueError``) naming the offending line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

STATIC_CODECS = {0: "PCMU/8000", 8: "PCMA/8000"}
"""The static payload types we accept (RFC 3551)."""
TELEPHONE_EVENT = "telephone-event"
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
MAX_SDP_BYTES = 16 * 1024

_MEDIA_RE = re.compile(r"^(\S+) (\d+)(?:/(\d+))? (\S+)((?: \S+)*)$")
_CONN_RE = re.compile(r"^IN (IP4|IP6) (\S+)$")
_RTPMAP_RE = re.compile(r"^(\d+) ([^/\s]+)/(\d+)(?:/\S+)?$")


class SdpError(ValueError):
    """A body that is not acceptable SDP; the message names what was wrong."""


@dataclass(slots=True)
class Media:
    """One ``m=`` section: its media line fields and the lines that follow it."""

    kind: str
    port: int
    proto: str
    formats: list[str]
    lines: list[tuple[str, str]] = field(default_factory=list)
    port_count: int | None = None

    def values(self, letter: str) -> list[str]:
        return [value for key, value in self.lines if key == letter]

    def attributes(self, name: str) -> list[str]:
        """Values of ``a=name:value`` (an empty string for a flag ``a=name``)."""
        found = []
        for key, value in self.lines:
            if key != "a":
                continue
            attr, _, rest = value.partition(":")
            if attr == name:
                found.append(rest)
        return found

    def media_line(self) -> str:
        count = "" if self.port_count is None else f"/{self.port_count}"
        return f"{self.kind} {self.port}{count} {self.proto} {' '.join(self.formats)}".rstrip()

    def rtcp_port(self) -> int | None:
        """The RTCP port of ``a=rtcp:PORT [IN IP4 address]`` (RFC 3605), or None (then RTCP
        is on the RTP port + 1). A malformed value counts as absent. The optional address is
        not used: RTCP goes to the stream's connection address."""
        for value in self.attributes("rtcp"):
            first = value.split(maxsplit=1)[0] if value.strip() else ""
            if first.isdigit() and 1 <= int(first) <= 65535:
                return int(first)
        return None

    def rtpmap(self) -> dict[str, str]:
        """Payload type → ``encoding/clock`` (lower-cased encoding) from ``a=rtpmap``."""
        result: dict[str, str] = {}
        for value in self.attributes("rtpmap"):
            match = _RTPMAP_RE.match(value.strip())
            if match:
                result[match.group(1)] = f"{match.group(2).lower()}/{match.group(3)}"
        return result


@dataclass(slots=True)
class SessionDescription:
    """A parsed SDP body: session-level lines, then the media sections."""

    session: list[tuple[str, str]]
    media: list[Media]

    def session_values(self, letter: str) -> list[str]:
        return [value for key, value in self.session if key == letter]

    @property
    def origin(self) -> str:
        return self.session_values("o")[0]

    def connection(self, media: Media | None = None) -> str | None:
        """The connection address for ``media`` (its own c=, else the session's)."""
        if media is not None:
            own = media.values("c")
            if own:
                return _connection_host(own[0])
        session = self.session_values("c")
        return _connection_host(session[0]) if session else None

    def direction(self, media: Media) -> str:
        """``sendrecv`` unless the media (or, failing that, the session) says otherwise."""
        for lines in (media.lines, self.session):
            for key, value in lines:
                if key == "a" and value in DIRECTIONS:
                    return value
        return "sendrecv"

    def audio(self) -> Media | None:
        """The first audio section with a non-zero port."""
        return next((m for m in self.media if m.kind == "audio" and m.port != 0), None)

    def to_bytes(self) -> bytes:
        lines = [f"{key}={value}" for key, value in self.session]
        for media in self.media:
            lines.append(f"m={media.media_line()}")
            lines.extend(f"{key}={value}" for key, value in media.lines)
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def copy(self) -> SessionDescription:
        return SessionDescription(
            list(self.session),
            [
                Media(m.kind, m.port, m.proto, list(m.formats), list(m.lines), m.port_count)
                for m in self.media
            ],
        )


@functools.lru_cache(maxsize=256)
def _connection_host(value: str) -> str:
    match = _CONN_RE.match(value.strip())
    if match is None:
        raise SdpError(f"bad c= line {value[:60]!r}: expected 'IN IP4 <address>'")
    return match.group(2).split("/", 1)[0]


def parse(body: bytes | str) -> SessionDescription:
    """Parse an SDP body (RFC 4566 §5): ``v=0`` first, then ``o=``, ``s=``, a ``c=`` for
    every media section (at session or media level) and ``t=``."""
    if isinstance(body, bytes):
        if len(body) > MAX_SDP_BYTES:
            raise SdpError(f"SDP body larger than {MAX_SDP_BYTES} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise SdpError(f"SDP is not UTF-8 text (byte {error.start})") from None
    else:
        text = body
    raw_lines = [line.rstrip("\r") for line in text.split("\n")]
    while raw_lines and not raw_lines[-1]:
        raw_lines.pop()
    if not raw_lines:
        raise SdpError("empty SDP body")
    session: list[tuple[str, str]] = []
    media: list[Media] = []
    for number, line in enumerate(raw_lines, 1):
        # <type>=<value>: one lower-case ASCII letter, "=", the rest of the line.
        key = line[:1]
        if line[1:2] != "=" or not "a" <= key <= "z":
            raise SdpError(f"SDP line {number} is not '<letter>=<value>': {line[:60]!r}")
        value = line[2:]
        if number == 1 and (key, value.strip()) != ("v", "0"):
            raise SdpError("SDP must start with v=0")
        if key == "m":
            found = _MEDIA_RE.match(value.strip())
            if found is None:
                raise SdpError(f"bad m= line {value[:60]!r}")
            port = int(found.group(2))
            if port > 65535:
                raise SdpError(f"m= port {port} out of range")
            media.append(
                Media(
                    kind=found.group(1),
                    port=port,
                    port_count=int(found.group(3)) if found.group(3) else None,
                    proto=found.group(4),
                    formats=found.group(5).split(),
                )
            )
        elif media:
            media[-1].lines.append((key, value))
        else:
            session.append((key, value))
    description = SessionDescription(session, media)
    origin: str | None = None
    letters = set()
    for key, value in session:
        letters.add(key)
        if key == "o" and origin is None:
            origin = value
    for letter in ("o", "s", "t"):
        if letter not in letters:
            raise SdpError(f"SDP lacks its {letter}= line")
    if origin is None or len(origin.split()) != 6:
        raise SdpError("bad o= line: expected 6 fields")
    for item in media:
        if description.connection(item) is None and item.port != 0:
            raise SdpError(f"m={item.kind} has no c= line (session or media level)")
    return description


def _allowed_formats(media: Media) -> list[str]:
    rtpmap = media.rtpmap()
    kept = []
    for fmt in media.formats:
        mapped = rtpmap.get(fmt)
        static = fmt in ("0", "8") and (mapped is None or mapped.upper() == STATIC_CODECS[int(fmt)])
        event = mapped is not None and mapped.startswith(TELEPHONE_EVENT + "/")
        if static or event:
            kept.append(fmt)
    return kept


def filter_codecs(sdp: SessionDescription) -> SessionDescription:
    """Keep only PCMU, PCMA and telephone-event in audio sections; other media sections
    are refused (port 0, RFC 3264 §6). Raises :class:`SdpError` when no audio codec we
    support is left (the caller answers 488)."""
    result = sdp.copy()
    usable = False
    transports: list[str] = []  # audio refused for its transport (DTLS-SRTP, ...)
    for media in result.media:
        if media.port == 0:
            continue
        if media.kind != "audio" or not media.proto.upper().startswith("RTP/"):
            if media.kind == "audio":
                transports.append(media.proto)
            media.port = 0
            continue
        kept = _allowed_formats(media)
        if not any(fmt in ("0", "8") for fmt in kept):
            media.port = 0
            continue
        usable = True
        dropped = set(media.formats) - set(kept)
        media.formats = kept
        media.lines = [
            (key, value)
            for key, value in media.lines
            if not (key == "a" and _payload_attribute(value) in dropped)
        ]
    if not usable:
        if transports:
            raise SdpError(f"audio over {transports[0]} is not supported (RTP/AVP, RTP/SAVP)")
        raise SdpError("no supported audio codec offered (PCMU, PCMA)")
    return result


def is_secure(media: Media) -> bool:
    """Whether the stream's profile is a secure one (``RTP/SAVP``, ``RTP/SAVPF``,
    ``UDP/TLS/RTP/SAVP``...): SRTP, whose keys only the two phones know."""
    return "SAVP" in media.proto.upper()


def _payload_attribute(value: str) -> str | None:
    """The payload type an ``a=rtpmap:``/``a=fmtp:``/``a=rtcp-fb:`` line is about."""
    name, _, rest = value.partition(":")
    if name in ("rtpmap", "fmtp", "rtcp-fb"):
        return rest.split(" ", 1)[0]
    return None


def is_hold(sdp: SessionDescription) -> bool:
    """Whether the description puts the audio on hold: sendonly or inactive direction, or
    the RFC 2543 style ``c=IN IP4 0.0.0.0``."""
    media = sdp.audio()
    if media is None:
        return False
    if sdp.connection(media) == "0.0.0.0":  # noqa: S104 - the RFC 2543 hold address
        return True
    return sdp.direction(media) in ("sendonly", "inactive")


def media_target(sdp: SessionDescription) -> tuple[str, int] | None:
    """Where the sender of this description wants audio (address, RTP port), or ``None``
    for no audio or a hold with ``0.0.0.0``."""
    media = sdp.audio()
    if media is None:
        return None
    host = sdp.connection(media)
    if host is None or host in ("0.0.0.0", "::"):  # noqa: S104
        return None
    return host, media.port


def rtcp_target(sdp: SessionDescription) -> int | None:
    """The audio stream's RTCP port when ``a=rtcp`` names one (RFC 3605), else None."""
    media = sdp.audio()
    return media.rtcp_port() if media is not None else None


def anchor(
    sdp: SessionDescription,
    host: str,
    port: int,
    *,
    origin: tuple[str, int] | None = None,
    rtcp_port: int | None = None,
) -> SessionDescription:
    """Point the audio at ``host:port`` (the relay): session and audio c= lines and the
    first audio m= port; a ``0.0.0.0`` hold address is kept as it is. ``origin`` =
    (session id, version) replaces the o= line's id, version and address. ``rtcp_port``
    (the relay's RTCP port) replaces an ``a=rtcp`` line of the audio (RFC 3605), which would
    otherwise send the other side's RTCP around the relay to the phone itself."""
    family = "IP6" if ":" in host else "IP4"
    connection = f"IN {family} {host}"
    held = sdp.connection(sdp.audio()) == "0.0.0.0"  # noqa: S104
    new_origin: str | None = None
    if origin is not None:
        fields = sdp.origin.split()
        fields[1], fields[2] = origin[0], str(origin[1])
        fields[4], fields[5] = family, host
        new_origin = " ".join(fields)
    # One pass building the result (rather than a copy edited line by line): the session
    # lines with c= and o= replaced, then the media, the first audio one re-pointed.
    session = []
    for key, value in sdp.session:
        if key == "c" and not held:
            value = connection
        elif key == "o" and new_origin is not None:
            value = new_origin
        session.append((key, value))
    audio = sdp.audio()
    media = []
    for item in sdp.media:
        if item is audio:
            if held:
                lines = list(item.lines)
            else:
                lines = [(k, connection if k == "c" else v) for k, v in item.lines]
            if rtcp_port is not None:
                rtcp = f"rtcp:{rtcp_port} {connection}"
                lines = [
                    (k, rtcp if k == "a" and (v == "rtcp" or v.startswith("rtcp:")) else v)
                    for k, v in lines
                ]
            media.append(
                Media(item.kind, port, item.proto, list(item.formats), lines, item.port_count)
            )
        else:
            media.append(
                Media(
                    item.kind,
                    item.port,
                    item.proto,
                    list(item.formats),
                    list(item.lines),
                    item.port_count,
                )
            )
    return SessionDescription(session, media)


def narrow(offer: SessionDescription, answer: SessionDescription) -> SessionDescription:
    """``offer`` with its first audio stream narrowed to the formats of ``answer``'s audio
    (and their ``a=rtpmap``/``a=fmtp`` lines): what the platform offers others once it has
    answered the caller itself, so that whoever answers picks the codec already agreed."""
    result = offer.copy()
    audio = result.audio()
    chosen = answer.audio()
    if audio is None or chosen is None:
        return result
    keep = [fmt for fmt in audio.formats if fmt in chosen.formats]
    dropped = set(audio.formats) - set(keep)
    audio.formats = keep
    audio.lines = [
        (key, value)
        for key, value in audio.lines
        if not (key == "a" and _payload_attribute(value) in dropped)
    ]
    return result


def answer(
    offer: SessionDescription, host: str, port: int, *, session_id: str = "1", version: int = 1
) -> SessionDescription:
    """An RFC 3264 §6 answer from SparkleComm itself: the first offered of PCMU/PCMA plus
    telephone-event if offered, the mirrored direction, other streams refused. A secure
    (SRTP) stream is refused too: SparkleComm has no keys to answer ``a=crypto`` with, and
    an ``RTP/SAVP`` answer without one would be invalid (RFC 4568).
    Raises :class:`SdpError` when no codec matches."""
    family = "IP6" if ":" in host else "IP4"
    session = [
        ("v", "0"),
        ("o", f"SparkleComm {session_id} {version} IN {family} {host}"),
        ("s", "SparkleComm"),
        ("c", f"IN {family} {host}"),
        ("t", "0 0"),
    ]
    media_out: list[Media] = []
    chosen = False
    mirror = {"sendonly": "recvonly", "recvonly": "sendonly"}
    secure = False
    for media in offer.media:
        secure = secure or (media.kind == "audio" and media.port != 0 and is_secure(media))
        formats = _allowed_formats(media) if media.kind == "audio" and not is_secure(media) else []
        codec = next((f for f in formats if f in ("0", "8")), None)
        if chosen or media.port == 0 or codec is None:
            media_out.append(Media(media.kind, 0, media.proto, list(media.formats)))
            continue
        chosen = True
        rtpmap = media.rtpmap()
        events = [f for f in formats if f not in ("0", "8")][:1]
        lines = [("a", f"rtpmap:{codec} {STATIC_CODECS[int(codec)]}")]
        for event in events:
            lines.append(("a", f"rtpmap:{event} {TELEPHONE_EVENT}/{rtpmap[event].split('/')[1]}"))
            lines.append(("a", f"fmtp:{event} 0-16"))
        direction = offer.direction(media)
        lines.append(("a", mirror.get(direction, direction)))
        media_out.append(Media("audio", port, media.proto, [codec, *events], lines))
    if not chosen:
        if secure:
            raise SdpError("SRTP (RTP/SAVP) offered: SparkleComm cannot answer it itself")
        raise SdpError("no supported audio codec offered (PCMU, PCMA)")
    return SessionDescription(session, media_out)
