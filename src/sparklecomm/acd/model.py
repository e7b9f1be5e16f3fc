"""The routing vocabulary: channels, strategies, states, configuration and runtime records.

Configuration objects (:class:`QueueConfig`, :class:`AgentConfig`, :class:`EngineConfig` and
their parts) are frozen; the shell builds them from settings or HTTP input and hands them to
the engine, which checks them with their ``normalized()`` method (turning plain strings into
the enums below and raising :class:`~sparklecomm.core.errors.InvalidInput` with the field at
fault).

Runtime records (:class:`Agent`, :class:`Queue`, :class:`Interaction` and their parts) are the
engine's mutable state. They are plain slotted dataclasses so that ``to_snapshot`` can write
them out completely. Times inside the engine are integer microseconds since :data:`EPOCH`
(exact, cheap to compare, and free of float drift); events and views carry datetimes / ISO
strings and seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sparklecomm.core.errors import InvalidInput

from .expressions import SkillExpression, compile_expression

if TYPE_CHECKING:
    from .sortedlist import SortedList
    from .strategies import ReadyIndex

#: Sort key of a waiting interaction in a queue: (-static score in micro-points, queued at,
#: FIFO sequence, interaction id). See ``AcdEngine`` and docs/routing.md ("Scoring").
WaitKey = tuple[int, int, int, str]

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
US = 1_000_000  # microseconds per second


def to_us(moment: datetime) -> int:
    """Microseconds since :data:`EPOCH` for an aware datetime."""
    if moment.tzinfo is None:
        raise InvalidInput("Times must be timezone-aware.")
    return (moment - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def seconds_to_us(seconds: float) -> int:
    return round(seconds * US)


class IsoText:
    """``from_us(us).isoformat()``, faster for instants that follow each other.

    The text up to the seconds is kept from the previous call, so an instant in the same
    second as the one before (deadlines set one after another, mostly) costs a string format
    instead of a datetime, a timedelta and ``isoformat``. One per engine (not thread-safe).
    """

    __slots__ = ("_head", "_second")

    def __init__(self) -> None:
        self._second: int | None = None
        self._head = ""  # "YYYY-MM-DDTHH:MM:SS" of ``_second``

    def __call__(self, us: int) -> str:
        second, micro = divmod(us, US)
        if second != self._second:
            self._head = from_us(second * US).isoformat()[:-6]  # without "+00:00" (UTC)
            self._second = second
        if micro:
            return f"{self._head}.{micro:06d}+00:00"
        return self._head + "+00:00"


class Channel(StrEnum):
    """How the customer reaches us. ``callback`` is an outbound call the agent places."""

    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"
    CALLBACK = "callback"
    TASK = "task"


#: Channels that are phone calls: one of them in progress blocks the others when the agent's
#: ``voice_blocks_other_channels`` is set.
PHONE_CHANNELS = (Channel.VOICE, Channel.CALLBACK)


class Strategy(StrEnum):
    """How a queue picks among the available agents allowed to take an interaction."""

    RING_ALL = "ring-all"
    ROUND_ROBIN = "round-robin"
    LINEAR = "linear"
    LONGEST_IDLE = "longest-idle"
    FEWEST_INTERACTIONS = "fewest-interactions"
    LEAST_TALK_TIME = "least-talk-time"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted-random"
    BEST_SKILL = "best-skill"


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"  # an interaction is being offered to the agent
    BUSY = "busy"
    WRAP_UP = "wrap_up"  # after-interaction work
    BREAK = "break"  # aux / not ready, with a reason code


class InteractionState(StrEnum):
    QUEUED = "queued"  # waiting in one or more queues
    SCHEDULED = "scheduled"  # a callback waiting for its time (keeps its place)
    OFFERED = "offered"  # reserved for one agent (several with ring-all)
    ACTIVE = "active"  # connected to an agent


class Role(StrEnum):
    OWNER = "owner"
    CONSULT = "consult"
    CONFERENCE = "conference"


DEFAULT_CAPACITY: Mapping[Channel, int] = {
    Channel.VOICE: 1,
    Channel.CHAT: 1,
    Channel.EMAIL: 1,
    Channel.CALLBACK: 1,
    Channel.TASK: 1,
}

MAX_PRIORITY = 100
MAX_PROFICIENCY = 5


def _fail(message: str, field: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _check_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise _fail(f"{field} must be a non-empty string of at most 200 characters.", field)
    return value


def _check_seconds(value: object, field: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{field} must be a number of seconds.", field)
    if value < 0:
        raise _fail(f"{field} cannot be negative.", field)
    return float(value)


def parse_channel(value: object, field: str = "channel") -> Channel:
    try:
        return Channel(str(value))
    except ValueError:
        names = ", ".join(c.value for c in Channel)
        raise _fail(f"Unknown channel {value!r}; expected one of {names}.", field) from None


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """A queue member named explicitly. Lower penalty = preferred tier."""

    agent_id: str
    penalty: int = 0
    weight: int = 1  # share for the weighted-random strategy (1–100)


@dataclass(frozen=True, slots=True)
class RelaxationStep:
    """After ``after_seconds`` in the queue, widen who may take a waiting interaction."""

    after_seconds: float
    max_penalty: int | None = None  # allow members with penalty <= this (None: unchanged)
    lower_levels: int = 0  # lower the interaction's skill thresholds by this many levels
    add_queue_id: str | None = None  # also wait in this queue (keeping the original wait time)


@dataclass(frozen=True, slots=True)
class Diversion:
    """Where a queue rule sends an interaction: another queue, else out of the engine."""

    queue_id: str | None = None
    divert_to: str | None = None  # a label for the shell, e.g. "voicemail:sales"


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    enabled: bool = True
    max_attempts: int = 3
    retry_delay_seconds: float = 300.0
    max_delay_seconds: float = 7 * 86400.0  # how far ahead a customer may choose a time


DTMF_KEYS = frozenset("0123456789*#")
"""Keys a caller can press on a phone's keypad (RFC 4733 events 0–11)."""


@dataclass(frozen=True, slots=True)
class WaitingMedia:
    """What a *voice* caller hears while waiting in the queue (docs/telephony.md "While
    callers wait"): ringback (the default), or music on hold with spoken announcements.

    ``music_on_hold``: the platform sends early media (183) — music, and the announcements
    below — instead of ringback (180). ``announce_every_seconds``: how often the
    announcement comes back (``None``: only once, as the caller joins). ``announce_position``
    / ``announce_wait``: say the caller's place in line / their expected wait.
    ``callback_key``: a key (``"1"``) the caller presses to be called back, keeping their
    place in line (the queue must offer callbacks).
    """

    music_on_hold: bool = False
    announce_every_seconds: float | None = 60.0
    announce_position: bool = True
    announce_wait: bool = True
    callback_key: str | None = None


@dataclass(frozen=True, slots=True)
class PostCallSurvey:
    """A satisfaction question the platform puts to a *voice* caller when the agent hangs
    up first (docs/telephony.md "Post-call survey"): the caller presses 1 to ``max_score``
    (``0`` for 10 on a ten-point scale), hears ``thanks`` and is hung up. ``question``
    empty: a question naming the scale. The answer is the customer satisfaction (CSAT) of
    the interaction (docs/kpis.md)."""

    enabled: bool = False
    max_score: int = 5
    question: str = ""
    thanks: str = "Thank you for your feedback. Goodbye."

    @property
    def prompt(self) -> str:
        """What the caller hears."""
        return self.question or (
            "Before you go: how satisfied were you with this call? Press 1 for very "
            f"unsatisfied, up to {self.max_score} for very satisfied."
        )

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys that answer (``0`` stands for 10)."""
        return tuple(str(n % 10) for n in range(1, self.max_score + 1))

    @staticmethod
    def score_of(key: str) -> int:
        """The score a key gives (``0``: 10)."""
        return 10 if key == "0" else int(key)


@dataclass(frozen=True, slots=True)
class PriorityRule:
    """Add ``boost`` to the priority of interactions whose ``attribute`` equals ``value``.

    E.g. ``PriorityRule("vip", "gold", 5)`` or ``PriorityRule("dnis", "+3222000100", 2)``.
    """

    attribute: str
    value: str | int | float | bool
    boost: int


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue as an administrator configures it. See docs/routing.md for each rule."""

    id: str
    name: str = ""
    strategy: Strategy = Strategy.LONGEST_IDLE
    channels: tuple[Channel, ...] = tuple(Channel)
    members: tuple[Member, ...] = ()
    # Agents matching this expression are members too (None: nobody; "": every agent).
    member_expression: str | None = None
    member_expression_penalty: int = 0
    member_expression_weight: int = 1
    best_skill: str | None = None  # the skill whose proficiency ranks agents for best-skill
    service_level_seconds: float = 20.0
    offer_timeout_seconds: float = 20.0
    wrapup_seconds: float | None = 0.0  # None: wrap-up lasts until the agent ends it
    reoffer_delay_seconds: float = 10.0  # an agent who missed/rejected waits this long
    weight: float = 0.0  # score points added to this queue's interactions (cross-queue)
    ageing_rate: float = 1.0  # score points per second of waiting
    initial_max_penalty: int | None = None  # None: every tier, lowest penalty first
    relaxation: tuple[RelaxationStep, ...] = ()
    max_wait_seconds: float | None = None
    on_max_wait: Diversion = Diversion()
    max_length: int | None = None
    on_full: Diversion = Diversion()
    ewt_threshold_seconds: float | None = None
    on_ewt: Diversion = Diversion()
    max_waiting_per_agent: float | None = None
    on_ratio: Diversion = Diversion()
    join_when_empty: bool = True
    leave_when_empty: bool = False
    on_empty: Diversion = Diversion()
    hours: str | None = None  # business hours (by name): closed, new contacts go on_closed
    on_closed: Diversion = Diversion()
    default_handle_seconds: float = 180.0  # EWT before any handle time has been seen
    callback: CallbackPolicy = CallbackPolicy()
    priority_rules: tuple[PriorityRule, ...] = ()
    waiting: WaitingMedia = WaitingMedia()
    survey: PostCallSurvey = PostCallSurvey()

    def normalized(self) -> QueueConfig:
        """A checked copy with enums in place of strings; ``InvalidInput`` when wrong."""
        qid = _check_id(self.id, "id")
        try:
            strategy = Strategy(str(self.strategy))
        except ValueError:
            names = ", ".join(s.value for s in Strategy)
            raise _fail(
                f"Unknown strategy {self.strategy!r}; expected one of {names}.", "strategy"
            ) from None
        if isinstance(self.channels, str) or not self.channels:
            raise _fail("A queue needs at least one channel.", "channels")
        channels = tuple(dict.fromkeys(parse_channel(c, "channels") for c in self.channels))
        members: list[Member] = []
        seen: set[str] = set()
        for m in self.members:
            if not isinstance(m, Member):
                raise _fail("members must be Member entries.", "members")
            _check_id(m.agent_id, "members")
            if m.agent_id in seen:
                raise _fail(f"Agent {m.agent_id!r} is listed twice.", "members")
            seen.add(m.agent_id)
            _check_penalty(m.penalty, "members")
            _check_weight(m.weight, "members")
            members.append(m)
        if self.member_expression is not None:
            compile_expression(self.member_expression, field="member_expression")
        _check_penalty(self.member_expression_penalty, "member_expression_penalty")
        _check_weight(self.member_expression_weight, "member_expression_weight")
        if strategy is Strategy.BEST_SKILL and not self.best_skill:
            raise _fail("The best-skill strategy needs best_skill (a skill name).", "best_skill")
        _check_seconds(self.wrapup_seconds, "wrapup_seconds", allow_none=True)
        for name in (
            "service_level_seconds",
            "reoffer_delay_seconds",
            "default_handle_seconds",
        ):
            _check_seconds(getattr(self, name), name)
        timeout = _check_seconds(self.offer_timeout_seconds, "offer_timeout_seconds")
        if not timeout:
            raise _fail("offer_timeout_seconds must be positive.", "offer_timeout_seconds")
        for name in ("weight", "ageing_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _fail(f"{name} must be a number.", name)
            if not math.isfinite(value) or abs(value) > 1e6:
                raise _fail(f"{name} must be a finite number of at most 1e6.", name)
        if self.ageing_rate < 0:
            raise _fail("ageing_rate cannot be negative.", "ageing_rate")
        if self.initial_max_penalty is not None:
            _check_penalty(self.initial_max_penalty, "initial_max_penalty")
        last_after = 0.0
        max_pen = self.initial_max_penalty
        for step in self.relaxation:
            if not isinstance(step, RelaxationStep):
                raise _fail("relaxation must be RelaxationStep entries.", "relaxation")
            after = _check_seconds(step.after_seconds, "relaxation") or 0.0
            if after < last_after:
                raise _fail("Relaxation steps must be in increasing after_seconds.", "relaxation")
            last_after = after
            if step.max_penalty is not None:
                _check_penalty(step.max_penalty, "relaxation")
                if max_pen is not None and step.max_penalty < max_pen:
                    raise _fail("A relaxation step cannot narrow max_penalty.", "relaxation")
                max_pen = step.max_penalty
            if not isinstance(step.lower_levels, int) or not 0 <= step.lower_levels <= 5:
                raise _fail("lower_levels must be between 0 and 5.", "relaxation")
            if step.add_queue_id is not None:
                _check_id(step.add_queue_id, "relaxation")
                if step.add_queue_id == qid:
                    raise _fail("A queue cannot add itself.", "relaxation")
        _check_seconds(self.max_wait_seconds, "max_wait_seconds", allow_none=True)
        _check_seconds(self.ewt_threshold_seconds, "ewt_threshold_seconds", allow_none=True)
        if self.max_length is not None and (
            not isinstance(self.max_length, int) or self.max_length < 0
        ):
            raise _fail("max_length must be a non-negative integer.", "max_length")
        _check_seconds(self.max_waiting_per_agent, "max_waiting_per_agent", allow_none=True)
        if self.hours is not None:
            _check_id(self.hours, "hours")
        for name in ("on_max_wait", "on_full", "on_ewt", "on_ratio", "on_empty", "on_closed"):
            div = getattr(self, name)
            if not isinstance(div, Diversion):
                raise _fail(f"{name} must be a Diversion.", name)
            if div.queue_id is not None:
                _check_id(div.queue_id, name)
                if div.queue_id == qid:
                    raise _fail(f"{name} cannot send an interaction to the same queue.", name)
        cb = self.callback
        if not isinstance(cb, CallbackPolicy):
            raise _fail("callback must be a CallbackPolicy.", "callback")
        if not isinstance(cb.max_attempts, int) or not 1 <= cb.max_attempts <= 100:
            raise _fail("callback.max_attempts must be between 1 and 100.", "callback")
        _check_seconds(cb.retry_delay_seconds, "callback")
        _check_seconds(cb.max_delay_seconds, "callback")
        waiting = self.waiting
        if not isinstance(waiting, WaitingMedia):
            raise _fail("waiting must be a WaitingMedia.", "waiting")
        for flag in ("music_on_hold", "announce_position", "announce_wait"):
            if not isinstance(getattr(waiting, flag), bool):
                raise _fail(f"waiting.{flag} must be true or false.", f"waiting.{flag}")
        every = _check_seconds(
            waiting.announce_every_seconds, "waiting.announce_every_seconds", allow_none=True
        )
        if every is not None and not 10 <= every <= 3600:
            raise _fail(
                "waiting.announce_every_seconds must be between 10 and 3600 (or null: once).",
                "waiting.announce_every_seconds",
            )
        if waiting.callback_key is not None:
            if waiting.callback_key not in DTMF_KEYS or len(waiting.callback_key) != 1:
                raise _fail(
                    "waiting.callback_key must be one key: 0-9, * or #.", "waiting.callback_key"
                )
            if not cb.enabled or Channel.CALLBACK not in channels:
                raise _fail(
                    "waiting.callback_key needs a queue that offers callbacks (callback "
                    "enabled and the callback channel among its channels).",
                    "waiting.callback_key",
                )
        survey = self.survey
        if not isinstance(survey, PostCallSurvey):
            raise _fail("survey must be a PostCallSurvey.", "survey")
        if not isinstance(survey.enabled, bool):
            raise _fail("survey.enabled must be true or false.", "survey.enabled")
        if type(survey.max_score) is not int or not 2 <= survey.max_score <= 10:
            raise _fail("survey.max_score must be a whole number from 2 to 10.", "survey.max_score")
        for name, limit in (("question", 400), ("thanks", 200)):
            text = getattr(survey, name)
            if not isinstance(text, str) or len(text) > limit:
                raise _fail(f"survey.{name} must be a text of at most {limit} characters.",
                            f"survey.{name}")  # fmt: skip
        if survey.enabled and not survey.thanks.strip():
            raise _fail("survey.thanks must not be empty.", "survey.thanks")
        for rule in self.priority_rules:
            if not isinstance(rule, PriorityRule) or not isinstance(rule.boost, int):
                raise _fail("priority_rules must be PriorityRule entries.", "priority_rules")
            _check_id(rule.attribute, "priority_rules")

        def opt(value: float | None) -> float | None:
            return None if value is None else float(value)

        return replace(
            self,
            name=self.name or qid,
            strategy=strategy,
            channels=channels,
            members=tuple(members),
            service_level_seconds=float(self.service_level_seconds),
            offer_timeout_seconds=float(self.offer_timeout_seconds),
            wrapup_seconds=opt(self.wrapup_seconds),
            reoffer_delay_seconds=float(self.reoffer_delay_seconds),
            weight=float(self.weight),
            ageing_rate=float(self.ageing_rate),
            default_handle_seconds=float(self.default_handle_seconds),
            max_wait_seconds=opt(self.max_wait_seconds),
            ewt_threshold_seconds=opt(self.ewt_threshold_seconds),
            max_waiting_per_agent=opt(self.max_waiting_per_agent),
            relaxation=tuple(
                replace(step, after_seconds=float(step.after_seconds)) for step in self.relaxation
            ),
            callback=replace(
                cb,
                retry_delay_seconds=float(cb.retry_delay_seconds),
                max_delay_seconds=float(cb.max_delay_seconds),
            ),
            waiting=replace(waiting, announce_every_seconds=every),
        )

    @property
    def levels(self) -> int:
        """How many relaxation levels an interaction can be at (1 + steps)."""
        return 1 + len(self.relaxation)

    def level_max_penalty(self, level: int) -> int | None:
        limit = self.initial_max_penalty
        for step in self.relaxation[:level]:
            if step.max_penalty is not None:
                limit = step.max_penalty
        return limit

    def level_relax(self, level: int) -> int:
        return sum(step.lower_levels for step in self.relaxation[:level])


def _check_penalty(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise _fail("A penalty must be an integer between 0 and 1000.", field)


def _check_weight(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise _fail("A member weight must be an integer between 1 and 100.", field)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """An agent as configured: skills (proficiency 1–5), attributes and capacity."""

    id: str
    name: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    capacity: Mapping[Channel, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    voice_blocks_other_channels: bool = True

    def normalized(self) -> AgentConfig:
        aid = _check_id(self.id, "id")
        skills: dict[str, int] = {}
        for name, level in dict(self.skills).items():
            _check_id(name, "skills")
            if (
                isinstance(level, bool)
                or not isinstance(level, int)
                or not 1 <= level <= MAX_PROFICIENCY
            ):
                raise _fail(
                    f"Skill {name!r} needs a proficiency between 1 and {MAX_PROFICIENCY}.",
                    "skills",
                )
            skills[name] = level
        attributes = dict(self.attributes)
        for key, value in attributes.items():
            _check_id(key, "attributes")
            _check_json(value, "attributes")
        capacity: dict[Channel, int] = {}
        for ch, n in dict(self.capacity).items():
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 100:
                raise _fail("A channel capacity must be an integer between 0 and 100.", "capacity")
            capacity[parse_channel(ch, "capacity")] = n
        return replace(
            self,
            name=self.name or aid,
            skills=skills,
            attributes=attributes,
            capacity={c: capacity[c] for c in Channel if c in capacity},
            voice_blocks_other_channels=bool(self.voice_blocks_other_channels),
        )


def _check_json(value: object, field: str, depth: int = 0) -> None:
    if depth > 8:
        raise _fail("Attribute values are nested too deeply.", field)
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail("Attribute numbers must be finite.", field)
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, field, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail("Attribute keys must be strings.", field)
            _check_json(v, field, depth + 1)
        return
    raise _fail(f"Attribute values must be JSON data, not {type(value).__name__}.", field)


def check_attributes(value: object, field: str = "attributes") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail("attributes must be a mapping.", field)
    out = dict(value)
    for key, item in out.items():
        if not isinstance(key, str):
            raise _fail("Attribute keys must be strings.", field)
        _check_json(item, field)
    return out


@dataclass(frozen=True)
class EngineConfig:
    """Engine-wide settings. ``rng`` is the only source of randomness (random strategies)."""

    rng: random.Random = field(default_factory=lambda: random.Random(0))
    max_consecutive_misses: int = 3  # then the agent goes to break with missed_offers_reason
    missed_offers_reason: str = "missed-offers"
    reject_counts_as_miss: bool = False
    priority_points: float = 60.0  # score points per priority level
    handle_time_window: int = 50  # recent handle times per queue and channel used for EWT
    max_overflow_hops: int = 8  # an interaction overflowing more often is diverted
    expression_cache_size: int = 4096
    # Break (aux) reason codes agents may use (None: any non-empty code). The engine's own
    # missed_offers_reason is always allowed.
    break_reasons: frozenset[str] | None = None

    def normalized(self) -> EngineConfig:
        if not isinstance(self.rng, random.Random):
            raise _fail("rng must be a random.Random.", "rng")
        if not isinstance(self.max_consecutive_misses, int) or self.max_consecutive_misses < 1:
            raise _fail(
                "max_consecutive_misses must be a positive integer.", "max_consecutive_misses"
            )
        _check_id(self.missed_offers_reason, "missed_offers_reason")
        _check_seconds(self.priority_points, "priority_points")
        if not isinstance(self.handle_time_window, int) or self.handle_time_window < 1:
            raise _fail("handle_time_window must be a positive integer.", "handle_time_window")
        if not isinstance(self.max_overflow_hops, int) or self.max_overflow_hops < 0:
            raise _fail("max_overflow_hops must be a non-negative integer.", "max_overflow_hops")
        if self.break_reasons is not None:
            if isinstance(self.break_reasons, str) or not isinstance(
                self.break_reasons, (set, frozenset, list, tuple)
            ):
                raise _fail("break_reasons must be a set of reason codes.", "break_reasons")
            for code in self.break_reasons:
                if not isinstance(code, str) or not code or len(code) > 100:
                    raise _fail(
                        "Break reason codes must be non-empty strings of at most 100 characters.",
                        "break_reasons",
                    )
            return replace(self, break_reasons=frozenset(self.break_reasons))
        return self


# --- runtime records ------------------------------------------------------------------------


@dataclass(slots=True)
class QueueEntry:
    """An interaction's place in one queue. ``key`` orders the queue's waiting list."""

    queue_id: str
    entered_at: int
    level: int
    priority: int  # effective priority in this queue (base + priority rules)
    key: WaitKey
    listed: bool = False  # currently in the queue's waiting lists


@dataclass(slots=True)
class Offer:
    agent_id: str
    queue_id: str
    offered_at: int
    deadline: int
    timer_id: int
    ring_all: bool


@dataclass(slots=True)
class Participant:
    """An agent on an active interaction. ``joined_at``: when it was brought in (for a
    consultation on a phone channel: when its phone started to ring); ``connected_at``: when
    it started to talk (``None`` while its phone still rings, see :meth:`AcdEngine.consult`)."""

    role: Role
    joined_at: int
    connected_at: int | None


@dataclass(slots=True, eq=False)
class Interaction:
    """A customer contact (call, chat, e-mail, callback, task) as the engine tracks it."""

    id: str
    channel: Channel
    priority: int
    required_skills: str
    expression: SkillExpression
    customer_id: str | None
    attributes: dict[str, Any]
    created_at: int
    queued_at: int  # start of the current wait (kept across overflow, returns, callbacks)
    queue_id: str  # the queue it waits in (or last waited in)
    seq: int  # FIFO tie-break, kept with the place in line
    state: InteractionState = InteractionState.QUEUED
    entries: dict[str, QueueEntry] = field(default_factory=dict)  # primary first
    offers: dict[str, Offer] = field(default_factory=dict)
    offer_kind: str = "queue"  # queue | transfer
    offer_attempts: int = 0
    excluded: dict[str, int] = field(default_factory=dict)  # agent -> until (us)
    agent_id: str | None = None  # owner while active
    participants: dict[str, Participant] = field(default_factory=dict)
    leg_started_at: int | None = None
    hold_started_at: int | None = None
    leg_hold_us: int = 0
    hops: int = 0
    max_wait_reached: bool = False
    original_channel: Channel | None = None
    callback_phone: str | None = None
    callback_due_at: int | None = None
    callback_attempts: int = 0
    timers: dict[str, int] = field(default_factory=dict)
    direction: str = "inbound"  # inbound | outbound (started by the agent: start_outbound)


@dataclass(slots=True)
class Wrapup:
    interaction_id: str
    channel: Channel
    queue_id: str
    started_at: int
    deadline: int | None
    timer_id: int | None
    talk_us: int
    hold_us: int
    outbound: bool = False  # outbound work: its handle time does not feed the EWT


@dataclass(slots=True)
class Membership:
    penalty: int
    weight: int
    order: int  # position in the queue's member order (static members first)


@dataclass(slots=True, eq=False)
class Agent:
    id: str
    config: AgentConfig
    ordinal: int
    state: AgentState = AgentState.LOGGED_OUT
    reason: str = "created"
    since: int = 0
    since_iso: str = ""  # ``since`` as ISO text, kept to avoid re-formatting it
    logged_in_at: int | None = None
    aux_reason: str | None = None  # a requested break (effective once the work is done)
    offer: str | None = None  # interaction being offered
    interactions: dict[str, Channel] = field(default_factory=dict)  # joined, any role
    # Of those, the ones where the agent's phone still rings (a consultation not answered
    # yet): the agent is ``reserved`` for them, not ``busy``.
    rings: set[str] = field(default_factory=set)
    wrapups: dict[str, Wrapup] = field(default_factory=dict)
    load: dict[Channel, int] = field(default_factory=dict)
    consecutive_misses: int = 0
    handled: int = 0  # interactions accepted since login
    talk_us: int = 0  # talk time since login
    idle_since: int = 0
    queues: dict[str, Membership] = field(default_factory=dict)
    # Ready-index entry per queue: (penalty, strategy key, channels available on there).
    index_keys: dict[str, tuple[int, tuple[Any, ...], tuple[Channel, ...]]] = field(
        default_factory=dict
    )

    @property
    def staffed(self) -> bool:
        """Logged in and not on (or heading to) a break: counts for EWT and empty rules."""
        return self.logged_in_at is not None and self.aux_reason is None


@dataclass(slots=True, eq=False)
class Queue:
    id: str
    config: QueueConfig
    ordinal: int
    expression: SkillExpression | None
    level_max_penalty: tuple[int | None, ...]
    level_relax: tuple[int, ...]
    channel_set: frozenset[Channel]
    # From ``config``, converted once (the hot paths need them on every offer / wrap-up):
    offer_timeout_us: int
    wrapup_us: int | None  # None: wrap-up lasts until the agent ends it
    ready: ReadyIndex  # available agents (derived: rebuilt from the records on restore)
    members: dict[str, Membership] = field(default_factory=dict)
    listed: dict[str, Membership] = field(default_factory=dict)  # from config.members
    rr_last: int = -1  # member order of the last agent offered (round-robin memory)
    handle_times: dict[Channel, list[float]] = field(default_factory=dict)
    staffed_agents: int = 0
    staffed_capacity: dict[Channel, int] = field(default_factory=dict)
    scheduled: dict[str, None] = field(default_factory=dict)  # callbacks not yet due
    # Derived indexes (rebuilt from the records above on restore):
    waiting: dict[Channel, list[SortedList[WaitKey]]] = field(default_factory=dict)  # per level
    waiting_count: int = 0


def compile_member_expression(config: QueueConfig) -> SkillExpression | None:
    if config.member_expression is None:
        return None
    return compile_expression(config.member_expression, field="member_expression")
