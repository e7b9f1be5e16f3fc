"""What the dial plan decides for one call: the contract between the PBX and the B2BUA.

The B2BUA (call control, :mod:`sparklecomm.telephony.calls`) builds a :class:`CallRequest`
for each new INVITE and asks the PBX (:class:`Router`) where the call goes. The answer is a
:class:`Route`: a :class:`Hunt` (ring extensions or external numbers, step by step), a
:class:`ToQueue` (the ACD takes over), a :class:`ToIvr` (a voice menu the platform plays,
whose answer gives the next route), a :class:`ToVoicemail` (the platform takes a message)
or a :class:`Reject`. Pure data; no I/O here.

A :class:`Hunt` is a find-me/follow-me sequence. Its steps are tried in order; each step
rings all its targets at once (simultaneous ring group) and gives up after ``ring_seconds``.
A step is skipped when every target in it is busy, unregistered or in do-not-disturb; a
sequential ring group is simply one step per member. When the last step fails the call gets
``final`` (for example ``Reject(480, "Temporarily Unavailable")``, or a voicemail box).
Forwarding (unconditional, busy, no answer) and DND are resolved by the PBX into these steps:
the B2BUA only rings what it is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CallRequest:
    """A new call as the B2BUA sees it, after digest authentication (if any)."""

    dialled: str
    """User part of the Request-URI (``1002``, ``+4930123456``, ``*97``)."""
    caller: str
    """User part of the From URI as sent."""
    caller_name: str | None
    """Display name of the From header as sent."""
    source: str
    """``host:port`` the INVITE came from (for logs, blocking and rate limits)."""
    extension: str | None = None
    """The authenticated calling extension (its number), or ``None`` when unauthenticated."""
    tenant_id: str | None = None
    """The calling extension's tenant, or the trunk's, when known."""
    trunk_id: str | None = None
    """Set when the INVITE came from a configured carrier trunk (matched by source)."""
    call_id: str = ""
    """SIP Call-ID of the caller's leg (for logs)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to ring: an extension's registered phones or an external number."""

    extension: str | None = None
    """Ring every registered contact of this extension."""
    external: str | None = None
    """Dial this number out through ``trunk_id`` (E.164 or what the carrier expects)."""
    trunk_id: str | None = None
    caller_id: str | None = None
    """Number presented to the called party (a DID of the tenant for external calls)."""
    caller_name: str | None = None


@dataclass(frozen=True, slots=True)
class HuntStep:
    targets: tuple[Target, ...]
    ring_seconds: float = 20.0
    when: str = "always"
    """``always``; ``busy`` — try this step only when the last unconditional step ended busy
    (every phone answered 486/600, or the extension is already on a call through us);
    ``no_answer`` — only when it rang out, nobody was registered, or the phones refused in
    another way (the usual PBX meaning of "unavailable"). When one of the two is taken the
    other is skipped."""


@dataclass(frozen=True, slots=True)
class Reject:
    status: int
    """SIP status for the caller: 403 (blocked / toll fraud), 404 (no such number),
    480 (nobody available), 486 (busy), 503 (trunk down) ..."""
    reason: str
    """Reason phrase, also logged with the source."""


@dataclass(frozen=True, slots=True)
class Hunt:
    tenant_id: str
    steps: tuple[HuntStep, ...]
    final: Reject | ToVoicemail = field(
        default_factory=lambda: Reject(480, "Temporarily Unavailable")
    )
    """What the caller gets when no step answered: a refusal, or a voicemail box (an
    extension forwarding to its voicemail, a ring group's fallback)."""
    description: str = ""
    """What the plan is, in words, for logs and the call's events (``ring group sales``)."""


@dataclass(frozen=True, slots=True)
class ToQueue:
    """Hand the call to the ACD: it becomes an interaction of ``queue_id``."""

    tenant_id: str
    queue_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    """Interaction attributes: at least ``dnis`` (the dialled number) and ``ani``."""
    priority: int = 0


@dataclass(frozen=True, slots=True)
class IvrMenu:
    """A voice menu (IVR) as the B2BUA plays it: ``prompt`` is spoken, the caller presses
    one of ``keys`` within ``timeout_seconds``; a wrong key or no key plays
    ``invalid_prompt`` and the menu again, at most ``attempts`` times in all. Where each key
    (or, after the last attempt, no valid key) leads is the dial plan's business
    (:meth:`Router.ivr_choice`)."""

    name: str
    prompt: str
    keys: tuple[str, ...]
    """The keys that lead somewhere (``"1"``, ``"2"``, ``"0"``, ``"*"`` ...)."""
    timeout_seconds: float = 5.0
    attempts: int = 3
    invalid_prompt: str = "Sorry, that is not a valid choice."


@dataclass(frozen=True, slots=True)
class ToIvr:
    """Answer the call and play ``menu``; the caller's choice gives the next route."""

    tenant_id: str
    menu: IvrMenu
    attributes: dict[str, str] = field(default_factory=dict)
    """What the call carries so far (``dnis``, ``ani``, the DID's attributes, ``ivr``: the
    choices made, e.g. ``main:2 billing:1``): passed back with the choice."""


@dataclass(frozen=True, slots=True)
class ToVoicemail:
    """Answer the call and take a message for ``box`` (an extension's voicemail box): the
    platform speaks ``greeting``, plays a tone and records until the caller hangs up,
    presses ``#`` or ``max_seconds`` have passed; the recording is given to the B2BUA's
    :class:`VoicemailStore`."""

    tenant_id: str
    box: str
    greeting: str
    max_seconds: float = 120.0


class VoicemailStore(Protocol):
    """Where the B2BUA leaves the messages it recorded (the PBX's voicemail service)."""

    async def leave_message(
        self,
        route: ToVoicemail,
        *,
        caller: str,
        caller_name: str | None,
        call_id: str,
        wav: bytes,
        seconds: float,
    ) -> str:
        """Store a message (``wav``: 8 kHz mono 16-bit WAV); its id."""
        ...


Route = Hunt | ToQueue | Reject | ToIvr | ToVoicemail


class Router(Protocol):
    """Implemented by the PBX service; the B2BUA calls it once per new INVITE."""

    async def route(self, request: CallRequest) -> Route: ...

    # Optional (the B2BUA checks with getattr): where an IVR caller's choice leads.
    # async def ivr_choice(self, route: ToIvr, key: str | None, request: CallRequest) -> Route
    #   ``key`` None: no valid key after the menu's last attempt (its default).
