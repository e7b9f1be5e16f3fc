"""Per-queue indexes of available agents, one ordering per routing strategy.

For every queue the engine keeps the agents who could take an interaction right now in a
:class:`ReadyIndex`: one sorted list per penalty tier, ordered by the queue strategy's key
(:func:`strategy_key`), each agent noted with the channels it is available on. Picking an
agent is "walk the lowest allowed tier from the strategy's starting point and take the first
agent on the interaction's channel who meets its own requirement" — usually one step, never
a scan over all agents. An agent's entry is removed
and re-added whenever its key changes (offered something, load changed, available again), so
keys are never stale.

Strategy keys (ascending = preferred; ``order`` is the member order, ``agent_id`` makes keys
unique)::

    ring-all, linear, round-robin, random  (order, agent_id)
    longest-idle          (load, idle_since, order, agent_id)
    fewest-interactions   (handled since login, load, idle_since, order, agent_id)
    least-talk-time       (talk time since login, load, idle_since, order, agent_id)
    best-skill            (-proficiency in the queue's best_skill, load, idle_since, ...)
    weighted-random       (weight, order, agent_id)

Starting points: round-robin starts after the member offered last (wrapping around); random
starts at a uniformly drawn position and weighted-random at a position drawn in proportion to
member weights; both then walk on (wrapping) when the drawn agent lacks a required skill.
Ring-all takes every eligible agent of the tier.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Any

from .model import Agent, Channel, Membership, QueueConfig, Strategy
from .sortedlist import SortedList

Key = tuple[Any, ...]
Channels = tuple[Channel, ...]


def strategy_key(config: QueueConfig, agent: Agent, member: Membership) -> Key:
    """The ordering key of ``agent`` in ``config``'s ready index (smaller = offered first)."""
    strategy = config.strategy
    aid = agent.id
    order = member.order
    if strategy is Strategy.LONGEST_IDLE:
        return (sum(agent.load.values()), agent.idle_since, order, aid)
    if strategy is Strategy.FEWEST_INTERACTIONS:
        return (agent.handled, sum(agent.load.values()), agent.idle_since, order, aid)
    if strategy is Strategy.LEAST_TALK_TIME:
        return (agent.talk_us, sum(agent.load.values()), agent.idle_since, order, aid)
    if strategy is Strategy.BEST_SKILL:
        level = agent.config.skills.get(config.best_skill or "", 0)
        return (-level, sum(agent.load.values()), agent.idle_since, order, aid)
    if strategy is Strategy.WEIGHTED_RANDOM:
        return (member.weight, order, aid)
    return (order, aid)


#: Strategies whose key includes the agent's total load.
LOAD_STRATEGIES = frozenset(
    (
        Strategy.LONGEST_IDLE,
        Strategy.FEWEST_INTERACTIONS,
        Strategy.LEAST_TALK_TIME,
        Strategy.BEST_SKILL,
    )
)


def strategy_key_for(config: QueueConfig, agent: Agent, member: Membership, load: int) -> Key:
    """:func:`strategy_key` with the agent's total load given (any value when unused)."""
    strategy = config.strategy
    if strategy is Strategy.LONGEST_IDLE:
        return (load, agent.idle_since, member.order, agent.id)
    if strategy is Strategy.FEWEST_INTERACTIONS:
        return (agent.handled, load, agent.idle_since, member.order, agent.id)
    if strategy is Strategy.LEAST_TALK_TIME:
        return (agent.talk_us, load, agent.idle_since, member.order, agent.id)
    if strategy is Strategy.BEST_SKILL:
        level = agent.config.skills.get(config.best_skill or "", 0)
        return (-level, load, agent.idle_since, member.order, agent.id)
    if strategy is Strategy.WEIGHTED_RANDOM:
        return (member.weight, member.order, agent.id)
    return (member.order, agent.id)


class ReadyIndex:
    """Available agents of one queue, all its channels: a sorted list per penalty tier.

    An agent has one entry (its penalty and strategy key) and the channels it can take now
    (among the queue's). Picking for a channel sees exactly the agents available on that
    channel, in key order — the same agents in the same order, and the same random draws, as
    one index per channel would give — while an agent going in or out of the queue costs one
    sorted-list update rather than one per channel, and a change of channels alone (a chat
    more or less) none. Agents available on all the queue's channels (the usual case) need no
    per-channel bookkeeping: the index counts, per channel and tier, the agents *missing* it.

    Tier lists are kept (empty) when their last agent leaves: agents go in and out of the
    index on every offer, and a queue's few available agents often empty a tier.
    """

    __slots__ = (
        "_missing",
        "_missing_weights",
        "_n_channels",
        "_penalties",
        "_tiers",
        "_weighted",
        "_weights",
        "_where",
        "channels",
        "strategy",
    )

    def __init__(self, strategy: Strategy, channels: Channels) -> None:
        self.strategy = strategy
        self.channels = tuple(dict.fromkeys(channels))  # the queue's channels
        self._n_channels = len(self.channels)
        self._weighted = strategy is Strategy.WEIGHTED_RANDOM
        self._tiers: dict[int, SortedList[Key]] = {}  # penalty -> agents (possibly empty)
        self._penalties: list[int] = []  # sorted penalties whose tier has agents
        self._where: dict[str, tuple[int, Key, Channels]] = {}
        # channel -> penalty -> agents of that tier not available on the channel
        self._missing: dict[Channel, dict[int, int]] = {}
        # weighted-random: penalty -> weight -> agents; (penalty, channel) -> weight -> missing
        self._weights: dict[int, dict[int, int]] = {}
        self._missing_weights: dict[tuple[int, Channel], dict[int, int]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._where

    def has(self, agent_id: str, channel: Channel) -> bool:
        """Whether the agent is in the index and available on ``channel``."""
        where = self._where.get(agent_id)
        return where is not None and channel in where[2]

    def _on(self, channel: Channel, penalty: int) -> int:
        """How many agents of the tier are available on ``channel``."""
        tier = self._tiers[penalty]
        missing = self._missing.get(channel)
        return len(tier) - missing.get(penalty, 0) if missing else len(tier)

    def count(self, channel: Channel) -> int:
        """How many agents are available on ``channel``."""
        if channel not in self.channels:
            return 0
        missing = self._missing.get(channel)
        return len(self._where) - (sum(missing.values()) if missing else 0)

    def serves(self, channel: Channel) -> bool:
        """Whether some agent is available on ``channel``."""
        missing = self._missing.get(channel)
        if not missing:
            return bool(self._penalties) and channel in self.channels
        return any(self._on(channel, p) for p in self._penalties)

    # -- updates -------------------------------------------------------------------------------

    def _miss(self, penalty: int, key: Key, channels: Channels, delta: int) -> None:
        """Count the queue channels not in ``channels`` as missing (``delta`` +1 / -1)."""
        for ch in self.channels:
            if ch in channels:
                continue
            per = self._missing.setdefault(ch, {})
            n = per.get(penalty, 0) + delta
            if n:
                per[penalty] = n
            else:
                del per[penalty]
            if self._weighted:
                weights = self._missing_weights.setdefault((penalty, ch), {})
                m = weights.get(key[0], 0) + delta
                if m:
                    weights[key[0]] = m
                else:
                    del weights[key[0]]

    def add(self, agent_id: str, penalty: int, key: Key, channels: Channels) -> None:
        """Add an agent available on ``channels`` (non-empty, the queue's only)."""
        tier = self._tiers.get(penalty)
        if tier is None:
            tier = self._tiers[penalty] = SortedList(load=128)
        # SortedList.add, inlined for the hot path (tiers are usually one short sublist).
        maxes = tier._maxes
        if not maxes:
            tier._lists.append([key])
            maxes.append(key)
            tier._len = 1
            insort(self._penalties, penalty)
        elif len(maxes) == 1 and len(tier._lists[0]) < tier._load:
            sub = tier._lists[0]
            if key > maxes[0]:
                sub.append(key)
                maxes[0] = key
            else:
                insort(sub, key)
            tier._len += 1
        else:
            tier.add(key)
        self._where[agent_id] = (penalty, key, channels)
        if self._weighted:
            weights = self._weights.setdefault(penalty, {})
            weights[key[0]] = weights.get(key[0], 0) + 1
        if len(channels) != self._n_channels:
            self._miss(penalty, key, channels, +1)

    def remove(self, agent_id: str) -> None:
        penalty, key, channels = self._where.pop(agent_id)
        tier = self._tiers[penalty]
        # SortedList.remove, inlined for the hot path (tiers are usually one sublist).
        maxes = tier._maxes
        lists = tier._lists
        pos = bisect_left(maxes, key) if len(maxes) > 1 else 0
        sub = lists[pos]
        idx = bisect_left(sub, key)
        if idx == len(sub) or sub[idx] != key:  # pragma: no cover - index out of step
            raise KeyError(key)
        del sub[idx]
        tier._len -= 1
        if not sub:
            del lists[pos]
            del maxes[pos]
            if not lists:  # the tier is empty (kept for the next agent)
                self._penalties.remove(penalty)
        elif idx == len(sub):
            maxes[pos] = sub[-1]
        if self._weighted:
            weights = self._weights[penalty]
            weights[key[0]] -= 1
            if not weights[key[0]]:
                del weights[key[0]]
        if len(channels) != self._n_channels:
            self._miss(penalty, key, channels, -1)

    def set_channels(self, agent_id: str, channels: Channels) -> None:
        """The agent stays (same key) but is now available on ``channels``."""
        penalty, key, old = self._where[agent_id]
        if len(old) != self._n_channels:
            self._miss(penalty, key, old, -1)
        self._where[agent_id] = (penalty, key, channels)
        if len(channels) != self._n_channels:
            self._miss(penalty, key, channels, +1)

    # -- picking -------------------------------------------------------------------------------

    def tiers(self, max_penalty: int | None, channel: Channel) -> list[tuple[int, SortedList[Key]]]:
        """Tiers with agents on ``channel`` allowed by ``max_penalty`` (None: all), lowest first."""
        tiers = self._tiers
        if channel not in self.channels:
            return []
        if self._missing.get(channel):
            penalties = [p for p in self._penalties if self._on(channel, p)]
        else:
            penalties = self._penalties
        if max_penalty is None:
            return [(p, tiers[p]) for p in penalties]
        return [(p, tiers[p]) for p in penalties if p <= max_penalty]

    def lowest(self, channel: Channel) -> tuple[int, SortedList[Key]] | None:
        """The lowest-penalty tier with agents on ``channel``, None when there is none
        (:meth:`serves` and :meth:`lowest_tier` in one pass, without listing the tiers)."""
        if channel not in self.channels:
            return None
        missing = self._missing.get(channel)
        for penalty in self._penalties:
            if not missing or self._on(channel, penalty):
                return penalty, self._tiers[penalty]
        return None

    def lowest_tier(self, channel: Channel) -> tuple[int, SortedList[Key]]:
        """The lowest-penalty tier with agents on ``channel`` (``IndexError`` when none)."""
        return self.tiers(None, channel)[0]

    def _start(self, penalty: int, rng: random.Random, channel: Channel) -> int:
        """Random strategies: the drawn starting position among the tier's agents on
        ``channel`` (one draw)."""
        if self.strategy is Strategy.RANDOM:
            return rng.randrange(self._on(channel, penalty))
        counts = self._weights[penalty]
        missing = self._missing_weights.get((penalty, channel))
        if missing:
            counts = {w: n - missing.get(w, 0) for w, n in counts.items()}
            counts = {w: n for w, n in counts.items() if n}
        weights = sorted(counts)
        draw = rng.randrange(sum(w * counts[w] for w in weights))
        position = 0
        for w in weights:
            span = w * counts[w]
            if draw < span:
                return position + draw // w
            draw -= span
            position += counts[w]
        return 0  # pragma: no cover - the draw is always below the total

    def _full(self, penalty: int, channel: Channel) -> bool:
        """Whether every agent of the tier is available on ``channel``."""
        missing = self._missing.get(channel)
        return not missing or not missing.get(penalty)

    def _position(self, penalty: int, keys: SortedList[Key], nth: int, channel: Channel) -> int:
        """Position in the tier of its ``nth`` agent on ``channel``."""
        if self._full(penalty, channel):
            return nth
        where = self._where
        for position, key in enumerate(keys):
            if channel in where[key[-1]][2]:
                if not nth:
                    return position
                nth -= 1
        raise IndexError(nth)  # pragma: no cover - the counts say the agent exists

    def first(
        self,
        penalty: int,
        keys: SortedList[Key],
        rng: random.Random,
        rr_last: int,
        channel: Channel,
    ) -> str:
        """The agent this strategy offers to first in a tier with agents on ``channel``
        (same as the first of :meth:`candidates`)."""
        strategy = self.strategy
        if strategy is Strategy.RANDOM or strategy is Strategy.WEIGHTED_RANDOM:
            start = self._start(penalty, rng, channel)
            return str(keys[self._position(penalty, keys, start, channel)][-1])
        missing = self._missing.get(channel)
        if not missing or not missing.get(penalty):  # _full: no agent to skip
            if strategy is Strategy.ROUND_ROBIN:
                for key in keys.iter_from((rr_last + 1, "")):
                    return str(key[-1])
            return str(keys._lists[0][0][-1])  # keys.first()
        for aid in self.candidates(penalty, keys, rng, rr_last, channel):
            return aid
        raise IndexError(penalty)  # pragma: no cover - the counts say the agent exists

    def candidates(
        self,
        penalty: int,
        keys: SortedList[Key],
        rng: random.Random,
        rr_last: int,
        channel: Channel,
    ) -> Iterator[str]:
        """Agent ids of a tier available on ``channel``, in the order this strategy offers
        to them.

        Lazy: the caller stops at the first agent meeting the interaction's requirement.
        Random strategies draw from ``rng`` once per call.
        """
        strategy = self.strategy
        where = self._where
        if strategy is Strategy.ROUND_ROBIN:
            # The member after the one offered last, wrapping around (round-robin memory).
            for key in keys.iter_from((rr_last + 1, "")):
                if channel in where[key[-1]][2]:
                    yield key[-1]
            for key in keys:
                if key[0] > rr_last:
                    return
                if channel in where[key[-1]][2]:
                    yield key[-1]
            return
        if strategy is Strategy.RANDOM or strategy is Strategy.WEIGHTED_RANDOM:
            start = self._position(penalty, keys, self._start(penalty, rng, channel), channel)
            for key in keys.iter_at(start):
                if channel in where[key[-1]][2]:
                    yield key[-1]
            for i, key in enumerate(keys):
                if i >= start:
                    return
                if channel in where[key[-1]][2]:
                    yield key[-1]
            return
        for key in keys:
            if channel in where[key[-1]][2]:
                yield key[-1]
