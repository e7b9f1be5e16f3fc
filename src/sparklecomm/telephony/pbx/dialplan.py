"""The dial plan: one tenant's PBX configuration + one call request → a :data:`Route`.

Pure and deterministic (no I/O, no clock: the call's time is an argument): :class:`PbxConfig`
is a snapshot that the :class:`~sparklecomm.telephony.pbx.service.PbxService` reads from SQL
and caches, and :func:`decide` is what it runs for every new INVITE. The rules, in order:

* From a carrier trunk (``trunk_id`` set): a blocked caller gets ``403``; the dialled number
  must be a DID of the trunk's tenant (else ``404``) and the call goes to the DID's
  destination. Queues get the attributes ``dnis``, ``ani`` and the DID's own attributes.
* Unauthenticated and not from a trunk: ``403`` (the B2BUA challenges before routing, so
  this is defence in depth against toll fraud).
* From an authenticated extension: an extension of the same tenant → that extension's hunt
  (DND, forwarding, follow-me resolved into steps); a DID of the tenant → the DID's
  destination; anything else is an outbound call, allowed only by a dial rule of the
  tenant (none by default) and sent through the rule's trunk.
* A DID that follows business hours goes to its *closed* destination while they are closed
  (none set: ``480`` "closed"); queues then also get the attribute ``hours=closed``.
* A DID may lead to a voice menu (``ivr:NAME``): the platform plays it (:class:`ToIvr`) and
  :func:`ivr_choice` decides where the caller's key (or no key) leads; the keys pressed
  travel in the attribute ``ivr`` (``main:2 billing:1``).
* A DID (open or closed), a voice menu's key or default and a queue's diversion may lead to
  an extension's voicemail box (``voicemail:1002``): the platform takes a message
  (:class:`ToVoicemail`, greeting from :func:`voicemail_greeting`).

:func:`divert` decides where a queue sends a waiting caller it diverts (the queue's
``divert_to``: an extension, a ring group, a number or a voicemail box, see
:data:`DIVERT_KINDS`).

Another tenant's extensions, DIDs, ring groups and trunks are never reachable: the snapshot
only holds one tenant's configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sparklecomm.core.hours import BusinessHours
from sparklecomm.telephony.pbx.routes import (
    CallRequest,
    Hunt,
    HuntStep,
    IvrMenu,
    Reject,
    Route,
    Target,
    ToIvr,
    ToQueue,
    ToVoicemail,
)

DESTINATION_KINDS = ("extension", "ring_group", "queue", "ivr", "voicemail", "reject")
#: Where a voice menu's key (or its default) may lead: a DID's destinations and an outside
#: number (``number:+4930…``, dialled through the dial rules).
IVR_DESTINATION_KINDS = (
    "extension",
    "ring_group",
    "queue",
    "ivr",
    "voicemail",
    "number",
    "reject",
)
#: The longest message a caller may leave (seconds).
MAX_MESSAGE_SECONDS = 120.0
#: The keys of a phone's keypad (RFC 4733 events 0-11).
DTMF_KEYS = "0123456789*#"
DEFAULT_INVALID_PROMPT = "Sorry, that is not a valid choice."
FALLBACK_KINDS = ("extension", "ring_group", "voicemail", "reject")
RING_MODES = ("simultaneous", "sequential")
RULE_ACTIONS = ("allow", "deny")
#: How deep forwarding may chain (A forwards to B forwards to C ...) before it is cut off.
MAX_FORWARD_DEPTH = 5
#: A hunt never has more steps than this, whatever the configuration says.
MAX_STEPS = 20
DIALLABLE_RE = re.compile(r"^\+?[0-9*#]{1,32}$")

UNAVAILABLE = Reject(480, "Temporarily Unavailable")
DND_REJECT = Reject(486, "Busy Here (do not disturb)")
OUTBOUND_DENIED = Reject(403, "Outbound calls to this number are not allowed")
AUTH_REQUIRED = Reject(403, "Forbidden (authentication required)")
BLOCKED = Reject(403, "Forbidden (caller blocked)")
NO_SUCH_NUMBER = Reject(404, "Not Found")
DECLINED = Reject(603, "Decline")
CLOSED = Reject(480, "Temporarily Unavailable (closed)")
#: What a queue's ``divert_to`` may name for a voice call: ``extension:1002``,
#: ``ring_group:sales``, ``number:+3222000100`` (or the bare number) — dialled as the queue
#: would dial it — and ``voicemail:BOX`` (the box of an extension: the caller leaves a
#: message).
DIVERT_KINDS = ("extension", "ring_group", "number", "voicemail")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a DID, a ring group's fallback or a voice menu's key goes: ``kind`` and its
    ``value``."""

    kind: str  # extension | ring_group | queue | ivr | voicemail | number | reject
    value: str = ""

    def describe(self) -> str:
        return self.kind if self.kind == "reject" else f"{self.kind}:{self.value}"

    @classmethod
    def of(cls, text: str) -> Destination:
        """The destination of its stored form ``kind:value`` (or ``reject``)."""
        kind, _, value = text.partition(":")
        return cls(kind, value)


@dataclass(frozen=True, slots=True)
class DidConfig:
    number: str
    destination: Destination
    attributes: Mapping[str, str] = field(default_factory=dict)
    hours: BusinessHours | None = None
    """Open: ``destination``; closed: ``closed`` (None: :data:`CLOSED`)."""
    closed: Destination | None = None


@dataclass(frozen=True, slots=True)
class RingGroupConfig:
    name: str
    members: tuple[str, ...]
    mode: str = "simultaneous"
    ring_seconds: float = 20.0
    fallback: Destination = field(default_factory=lambda: Destination("reject"))


@dataclass(frozen=True, slots=True)
class IvrMenuConfig:
    """A voice menu: ``prompt`` is spoken, each key of ``options`` leads to a destination;
    a caller who presses no valid key within ``attempts`` goes to ``default``."""

    name: str
    prompt: str
    options: Mapping[str, Destination]
    timeout_seconds: float = 5.0
    attempts: int = 3
    invalid_prompt: str = DEFAULT_INVALID_PROMPT
    default: Destination = field(default_factory=lambda: Destination("reject"))

    def menu(self) -> IvrMenu:
        """The menu as the platform plays it."""
        return IvrMenu(
            name=self.name,
            prompt=self.prompt,
            keys=tuple(sorted(self.options)),
            timeout_seconds=self.timeout_seconds,
            attempts=self.attempts,
            invalid_prompt=self.invalid_prompt,
        )


@dataclass(frozen=True, slots=True)
class TrunkConfig:
    id: str
    name: str
    caller_id: str | None = None


@dataclass(frozen=True, slots=True)
class FollowMeStep:
    targets: tuple[str, ...]
    """Extension numbers of the tenant or external numbers."""
    ring_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class CallSettings:
    dnd: bool = False
    forward_always: str | None = None
    forward_busy: str | None = None
    forward_no_answer: str | None = None
    ring_seconds: float = 20.0
    """How long the extension's own phones ring (the no-answer timeout)."""
    follow_me: tuple[FollowMeStep, ...] = ()
    auto_answer: bool = False
    """The extension's phones answer by themselves when they ring for their agent (a queue
    call, a consultation, a callback or a click-to-dial): headset agents."""


@dataclass(frozen=True, slots=True)
class DialRule:
    """An outbound rule: numbers starting with ``prefix`` are allowed (through ``trunk_id``)
    or denied. The longest matching prefix wins; at equal length ``deny`` wins. An
    ``emergency`` rule matches the exact number only and wins over everything."""

    prefix: str
    action: str = "allow"
    trunk_id: str | None = None
    emergency: bool = False
    strip: int = 0
    prepend: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class PbxConfig:
    """One tenant's PBX configuration, as the dial plan needs it."""

    tenant_id: str
    extensions: Mapping[str, str] = field(default_factory=dict)
    """Extension number → display name."""
    owners: Mapping[str, str] = field(default_factory=dict)
    """Extension number → the display name of the user it belongs to (when linked): named
    in the voicemail greeting when the extension has no display name of its own."""
    settings: Mapping[str, CallSettings] = field(default_factory=dict)
    dids: Mapping[str, DidConfig] = field(default_factory=dict)
    ring_groups: Mapping[str, RingGroupConfig] = field(default_factory=dict)
    menus: Mapping[str, IvrMenuConfig] = field(default_factory=dict)
    """Voice menus by name."""
    trunks: Mapping[str, TrunkConfig] = field(default_factory=dict)
    dial_rules: tuple[DialRule, ...] = ()
    blocked: tuple[str, ...] = ()
    """Caller patterns: an exact number, a prefix ending in ``*``, or ``anonymous``."""
    default_caller_id: str | None = None
    """The number presented on outbound calls when the trunk names none (a DID)."""


def normalise_number(value: str) -> str:
    """Drop the spaces, dashes, dots and brackets people write numbers with."""
    return re.sub(r"[\s().-]", "", value)


def caller_is_blocked(patterns: tuple[str, ...], caller: str) -> bool:
    number = normalise_number(caller).lower()
    anonymous = number in ("", "anonymous", "unknown", "restricted", "private")
    for raw in patterns:
        pattern = raw.lower()
        if pattern == "anonymous":
            if anonymous:
                return True
        elif pattern.endswith("*"):
            if number and _prefix_hits(number, pattern[:-1]):
                return True
        elif pattern in _number_variants(number):
            return True
    return False


def _prefix_hits(number: str, prefix: str) -> set[str]:
    return {v for v in _number_variants(number) if v.startswith(prefix)}


def _number_variants(number: str) -> set[str]:
    """``+4930…`` and ``4930…`` are the same number as carriers send them."""
    if number.startswith("+"):
        return {number, number[1:]}
    return {number, "+" + number}


def find_did(config: PbxConfig, dialled: str) -> DidConfig | None:
    number = normalise_number(dialled)
    if number in config.dids:
        return config.dids[number]
    for variant in _number_variants(number):
        if variant in config.dids:
            return config.dids[variant]
    return None


def match_rule(rules: tuple[DialRule, ...], number: str) -> DialRule | None:
    """The rule deciding an outbound ``number``, or ``None`` (denied by default)."""
    for rule in rules:
        if rule.emergency and rule.prefix == number:
            return rule
    best: DialRule | None = None
    for rule in rules:
        if rule.emergency or not number.startswith(rule.prefix):
            continue
        if (
            best is None
            or len(rule.prefix) > len(best.prefix)
            or (len(rule.prefix) == len(best.prefix) and rule.action == "deny")
        ):
            best = rule
    return best


Final = Reject | ToVoicemail
"""What a hunt ends with when nobody answered."""
#: In an extension's forwarding (``forward_always``, ``forward_busy``,
#: ``forward_no_answer``): the extension's own voicemail box.
VOICEMAIL_KEYWORD = "voicemail"


def voicemail_greeting(config: PbxConfig, box: str) -> str:
    """What a caller reaching the voicemail box ``box`` hears before the tone: the
    extension's display name, else its user's, else the extension's number."""
    name = (config.extensions.get(box) or "").strip()
    if not name or normalise_number(name) == box:
        name = (config.owners.get(box) or "").strip()
    who = name or f"The person at extension {box}"
    return f"{who} is not available. Please leave a message after the tone."


def voicemail_route(config: PbxConfig, box: str) -> ToVoicemail | Reject:
    """Take a message for the voicemail box ``box`` (an extension's number); ``404`` when
    the organisation has no such extension."""
    box = normalise_number(box)
    if box not in config.extensions:
        return Reject(404, f"Not Found (no voicemail box {box})")
    return ToVoicemail(
        tenant_id=config.tenant_id,
        box=box,
        greeting=voicemail_greeting(config, box),
        max_seconds=MAX_MESSAGE_SECONDS,
    )


class _Planner:
    """Builds the steps of one call; ``visited`` cuts forwarding loops."""

    def __init__(self, config: PbxConfig, request: CallRequest) -> None:
        self.config = config
        self.request = request
        self.visited: set[str] = set()
        self.notes: list[str] = []

    # -- outbound -----------------------------------------------------------------------
    def outbound(self, dialled: str) -> Target | Reject:
        number = normalise_number(dialled)
        if not DIALLABLE_RE.match(number):
            return NO_SUCH_NUMBER
        rule = match_rule(self.config.dial_rules, number)
        if rule is None or rule.action != "allow":
            return OUTBOUND_DENIED
        trunk = self.config.trunks.get(rule.trunk_id or "")
        if trunk is None:
            return Reject(503, "Service Unavailable (no trunk for this number)")
        out = rule.prepend + number[rule.strip :]
        return Target(
            external=out,
            trunk_id=trunk.id,
            caller_id=trunk.caller_id or self.config.default_caller_id,
            caller_name=None,
        )

    # -- targets ------------------------------------------------------------------------
    def target_steps(self, target: str, depth: int) -> tuple[list[HuntStep], Final | None]:
        """Steps for a forwarding/follow-me/fallback target (an extension or a number)."""
        number = normalise_number(target)
        if number in self.config.extensions:
            return self.extension_steps(number, depth + 1)
        if number in self.config.ring_groups:
            return self.ring_group_steps(number, depth + 1)
        external = self.outbound(number)
        if isinstance(external, Reject):
            self.notes.append(f"forward to {number} refused ({external.status})")
            return [], None
        return [HuntStep((external,), 30.0)], None

    def destination_steps(
        self, destination: Destination, depth: int
    ) -> tuple[list[HuntStep], Final | None]:
        if destination.kind == "extension":
            return self.extension_steps(destination.value, depth)
        if destination.kind == "ring_group":
            return self.ring_group_steps(destination.value, depth)
        if destination.kind == "voicemail":
            return [], voicemail_route(self.config, destination.value)
        return [], DECLINED

    def extension_steps(self, number: str, depth: int) -> tuple[list[HuntStep], Final | None]:
        """An extension's hunt, and a final answer overriding the default (DND)."""
        if number not in self.config.extensions:
            return [], None
        if number in self.visited or depth > MAX_FORWARD_DEPTH:
            self.notes.append(f"forwarding loop cut at {number}")
            return [], None
        self.visited.add(number)
        s = self.config.settings.get(number, CallSettings())
        own_box = voicemail_route(self.config, number)
        if s.forward_always == VOICEMAIL_KEYWORD:
            self.notes.append(f"{number} forwards to its voicemail")
            return [], own_box
        if s.forward_always:
            self.notes.append(f"{number} forwards to {s.forward_always}")
            return self.target_steps(s.forward_always, depth)
        if s.dnd:
            if s.forward_busy == VOICEMAIL_KEYWORD:
                self.notes.append(f"{number} in DND, to its voicemail")
                return [], own_box
            if s.forward_busy:
                self.notes.append(f"{number} in DND, forwards to {s.forward_busy}")
                return self.target_steps(s.forward_busy, depth)
            self.notes.append(f"{number} in DND")
            return [], DND_REJECT
        steps = [HuntStep((Target(extension=number),), s.ring_seconds)]
        for fm in s.follow_me:
            targets: list[Target] = []
            for t in fm.targets:
                t = normalise_number(t)
                if t == number:
                    continue
                if t in self.config.extensions:
                    other = self.config.settings.get(t, CallSettings())
                    if not other.dnd and t not in self.visited:
                        targets.append(Target(extension=t))
                else:
                    external = self.outbound(t)
                    if isinstance(external, Target):
                        targets.append(external)
                    else:
                        self.notes.append(f"follow-me to {t} refused ({external.status})")
            if targets:
                steps.append(HuntStep(tuple(targets), fm.ring_seconds))
        # Forwarding to its own voicemail is the hunt's end (busy or not answered alike)
        # rather than more steps.
        final: Final | None = None
        no_answer, busy = s.forward_no_answer, s.forward_busy
        if VOICEMAIL_KEYWORD in (no_answer, busy):
            final = own_box
            no_answer = None if no_answer == VOICEMAIL_KEYWORD else no_answer
            busy = None if busy == VOICEMAIL_KEYWORD else busy
        if no_answer:
            extra, _ = self.target_steps(no_answer, depth)
            steps += _only_when(extra, "no_answer" if busy else "always")
        if busy and busy != no_answer:
            extra, _ = self.target_steps(busy, depth)
            steps += _only_when(extra, "busy" if no_answer else "always")
        return steps, final

    def ring_group_steps(self, name: str, depth: int) -> tuple[list[HuntStep], Final | None]:
        group = self.config.ring_groups.get(name)
        key = f"group:{name}"
        if group is None:
            return [], None
        if key in self.visited or depth > MAX_FORWARD_DEPTH:
            self.notes.append(f"ring group loop cut at {name}")
            return [], None
        self.visited.add(key)
        members = [
            m
            for m in group.members
            if m in self.config.extensions
            and m not in self.visited
            and not self.config.settings.get(m, CallSettings()).dnd
        ]
        targets = [Target(extension=m) for m in members]
        steps: list[HuntStep] = []
        if targets and group.mode == "sequential":
            steps = [HuntStep((t,), group.ring_seconds) for t in targets]
        elif targets:
            steps = [HuntStep(tuple(targets), group.ring_seconds)]
        extra, final = self.destination_steps(group.fallback, depth + 1)
        steps.extend(extra)
        if group.fallback.kind == "reject":
            final = UNAVAILABLE
        return steps, final

    def hunt(self, steps: list[HuntStep], final: Final | None, description: str) -> Route:
        if not steps:
            return final or UNAVAILABLE
        note = "; ".join(self.notes)
        return Hunt(
            tenant_id=self.config.tenant_id,
            steps=tuple(steps[:MAX_STEPS]),
            final=final or UNAVAILABLE,
            description=f"{description} ({note})" if note else description,
        )


def _only_when(steps: list[HuntStep], when: str) -> list[HuntStep]:
    """A forward target's whole hunt (its phone, then its own follow-me) as the alternative
    taken on ``when``: every unconditional step gets the condition, so a busy extension
    never rings the follow-me of its forward-on-no-answer target. (Conditions inside the
    target's hunt keep their own value; they are judged by the first extension's outcome.)"""
    if when == "always":
        return steps
    return [HuntStep(s.targets, s.ring_seconds, when) if s.when == "always" else s for s in steps]


def _to_destination(planner: _Planner, did: DidConfig, ani: str, at: datetime | None) -> Route:
    dest = did.destination
    closed = did.hours is not None and at is not None and not did.hours.is_open(at)
    if closed:
        if did.closed is None:
            return CLOSED
        dest = did.closed
    if dest.kind == "queue":
        attributes = {**did.attributes, "dnis": did.number, "ani": ani}
        if closed:
            attributes["hours"] = "closed"
        return ToQueue(
            tenant_id=planner.config.tenant_id, queue_id=dest.value, attributes=attributes
        )
    if dest.kind == "ivr":
        menu = planner.config.menus.get(dest.value)
        if menu is None:
            return _menu_gone(dest.value)
        attributes = {**did.attributes, "dnis": did.number, "ani": ani}
        if closed:
            attributes["hours"] = "closed"
        return ToIvr(tenant_id=planner.config.tenant_id, menu=menu.menu(), attributes=attributes)
    if dest.kind == "voicemail":
        return voicemail_route(planner.config, dest.value)
    if dest.kind == "reject":
        return DECLINED
    steps, final = planner.destination_steps(dest, 0)
    state = " (closed)" if closed else ""
    return planner.hunt(steps, final, f"DID {did.number}{state} → {dest.describe()}")


def decide(config: PbxConfig, request: CallRequest, at: datetime | None = None) -> Route:
    """Where ``request`` goes, given its tenant's ``config``, at the instant ``at`` (for
    business hours; None: as if open)."""
    if request.tenant_id is not None and request.tenant_id != config.tenant_id:
        return Reject(403, "Forbidden (wrong organisation)")
    planner = _Planner(config, request)
    dialled = normalise_number(request.dialled)
    if request.trunk_id is not None:
        if request.trunk_id not in config.trunks:
            return Reject(403, "Forbidden (unknown trunk)")
        if caller_is_blocked(config.blocked, request.caller):
            return BLOCKED
        did = find_did(config, dialled)
        if did is None:
            return NO_SUCH_NUMBER
        return _to_destination(planner, did, normalise_number(request.caller), at)
    if request.extension is None or request.extension not in config.extensions:
        return AUTH_REQUIRED
    caller = request.extension
    if dialled == caller:
        return Reject(486, "Busy Here (calling yourself)")
    planner.visited.add(caller)  # ringing (or forwarding back to) the caller is a loop
    if dialled in config.extensions:
        steps, final = planner.extension_steps(dialled, 0)
        return planner.hunt(steps, final, f"extension {dialled}")
    did = find_did(config, dialled)
    if did is not None:
        return _to_destination(planner, did, caller, at)
    target = planner.outbound(dialled)
    if isinstance(target, Reject):
        return target
    name = config.extensions.get(caller)
    trunk_name = config.trunks[target.trunk_id or ""].name
    target = Target(
        external=target.external,
        trunk_id=target.trunk_id,
        caller_id=target.caller_id,
        caller_name=name,
    )
    return Hunt(
        tenant_id=config.tenant_id,
        steps=(HuntStep((target,), 120.0),),
        final=UNAVAILABLE,
        description=f"outbound {target.external} via trunk {trunk_name}",
    )


def _number_steps(planner: _Planner, number: str) -> tuple[list[HuntStep], Final | None] | Reject:
    """What dialling ``number`` rings: an extension or ring group of the organisation, else
    the outside number through the trunk a dial rule allows (``Reject`` when none does)."""
    if number in planner.config.extensions or number in planner.config.ring_groups:
        return planner.target_steps(number, -1)
    external = planner.outbound(number)
    if isinstance(external, Reject):
        return external
    return [HuntStep((external,), 120.0)], None


def divert(
    config: PbxConfig, target: str, request: CallRequest, at: datetime | None = None
) -> Route:
    """Where a queue sends a waiting caller that it diverts to ``target`` (its ``divert_to``
    label, see :data:`DIVERT_KINDS`; the caller's original ``request`` gives the number to
    present). The queue is the party forwarding the call, with the organisation's rights:

    * ``extension:N`` rings the extension as a direct call would (DND, forwarding,
      follow-me); ``ring_group:NAME`` rings the group (its fallback included);
    * ``number:N`` (or a bare number): an extension or ring group of that number, a DID of
      the organisation (its destination, another queue included), else an outside number
      through the dial rules (denied unless a rule allows it, as for any outbound call);
    * ``voicemail:BOX``: the caller leaves a message in the extension's box;
    * an unknown kind or target: 480/404.
    """
    kind, colon, value = target.partition(":")
    if not colon:
        kind, value = "number", target
    value = value.strip()
    planner = _Planner(config, request)
    ani = normalise_number(request.caller)
    description = f"diverted to {target}"
    if kind == "voicemail":
        return voicemail_route(config, value)
    if kind == "extension":
        number = normalise_number(value)
        if number not in config.extensions:
            return Reject(404, f"Not Found (no extension {number})")
        steps, final = planner.extension_steps(number, 0)
    elif kind == "ring_group":
        if value not in config.ring_groups:
            return Reject(404, f"Not Found (no ring group {value})")
        steps, final = planner.ring_group_steps(value, 0)
    elif kind == "number":
        number = normalise_number(value)
        did = find_did(config, number)
        if did is not None and number not in config.extensions:
            return _to_destination(planner, did, ani, at)
        found = _number_steps(planner, number)
        if isinstance(found, Reject):
            return found
        steps, final = found
    else:
        return Reject(480, f"Temporarily Unavailable (unknown divert target {target!r})")
    return planner.hunt(steps, final, description)


def divert_problem(config: PbxConfig, target: str) -> str | None:
    """What is wrong with ``target`` as a queue's ``divert_to`` for voice calls, in words for
    the administrator (None: the dial plan can route it). Runs :func:`divert` as a diverted
    call would."""
    kind, colon, _value = target.partition(":")
    if colon and kind not in DIVERT_KINDS:
        return (
            f"unknown target {kind!r}: use extension:NUMBER, ring_group:NAME, number:NUMBER "
            "or voicemail:BOX"
        )
    probe = CallRequest(dialled="", caller="", caller_name=None, source="configuration")
    route = divert(config, target, probe)
    if not isinstance(route, Reject) or route.status == 486:
        return None  # routable (an extension in DND now is still a good target)
    return f"{target} cannot be reached: {route.reason} ({route.status})"


def _menu_gone(name: str) -> Reject:
    return Reject(480, f"Temporarily Unavailable (no voice menu {name})")


def ivr_choice(
    config: PbxConfig,
    route: ToIvr,
    key: str | None,
    request: CallRequest,
    at: datetime | None = None,
) -> Route:
    """Where the caller of a voice menu goes after pressing ``key`` (None: no valid key
    after the menu's last attempt). The menu is read again from ``config`` (it may have
    changed while the caller listened; gone: ``480``). A key the menu does not offer (or
    none) takes its default. The choice is added to the attribute ``ivr`` (``main:2``;
    ``main:-`` for the default), which a queue reached afterwards gets with the call's
    other attributes (``dnis``, ``ani`` ...). An extension or ring group is rung as a DID to
    it would ring it; ``voicemail:N`` takes a message for the box; ``number:N`` goes out
    through the dial rules (``at``: kept for
    symmetry with :func:`decide`; the menu itself does not follow business hours)."""
    del at  # the destinations of a menu do not depend on the time (yet)
    if route.tenant_id != config.tenant_id:
        return Reject(403, "Forbidden (wrong organisation)")
    name = route.menu.name
    menu = config.menus.get(name)
    if menu is None:
        return _menu_gone(name)
    dest = menu.options.get(key) if key is not None else None
    if dest is None:
        dest, label = menu.default, "-"
    else:
        label = key or "-"
    path = f"{route.attributes.get('ivr', '')} {name}:{label}".strip()
    attributes = {**route.attributes, "ivr": path}
    tenant = config.tenant_id
    if dest.kind == "queue":
        return ToQueue(tenant_id=tenant, queue_id=dest.value, attributes=attributes)
    if dest.kind == "ivr":
        other = config.menus.get(dest.value)
        if other is None:
            return _menu_gone(dest.value)
        return ToIvr(tenant_id=tenant, menu=other.menu(), attributes=attributes)
    if dest.kind == "voicemail":
        return voicemail_route(config, dest.value)
    if dest.kind == "reject":
        return DECLINED
    planner = _Planner(config, request)
    if request.extension is not None:
        planner.visited.add(request.extension)  # never ring the caller back
    description = f"voice menu {name} key {label} → {dest.describe()}"
    if dest.kind == "number":
        found = _number_steps(planner, normalise_number(dest.value))
        if isinstance(found, Reject):
            return found
        return planner.hunt(found[0], found[1], description)
    if dest.kind in ("extension", "ring_group"):
        steps, final = planner.destination_steps(dest, 0)
        return planner.hunt(steps, final, description)
    return Reject(480, f"Temporarily Unavailable (unknown destination {dest.describe()!r})")
