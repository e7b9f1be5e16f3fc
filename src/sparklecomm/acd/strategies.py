"""Per-queue indexes of available agents, one ordering per routing strategy.

For every queue and channel the engine keeps the agents who could take an interaction right
now in a :class:`ReadyIndex`: one sorted list per penalty tier, ordered by the queue
strategy's key (:func:`strategy_key`). Picking an agent is "walk the lowest allowed tier from
the strategy's starting point and take the first agent who meets the interaction's own
requirement" — usually one step, never a scan over all agents. An agent's entry is removed
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
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from .model import Agent, Membership, QueueConfig, Strategy
from .sortedlist import SortedList

Key = tuple[Any, ...]


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
    """Available agents of one queue and channel: a sorted list per penalty tier."""

    __slots__ = ("_penalties", "_tiers", "_weighted", "_weights", "_where", "strategy")

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self._weighted = strategy is Strategy.WEIGHTED_RANDOM
        self._tiers: dict[int, SortedList[Key]] = {}
        self._penalties: list[int] = []  # sorted penalties that have agents
        self._where: dict[str, tuple[int, Key]] = {}
        self._weights: dict[int, dict[int, int]] = {}  # weighted-random: tier -> weight -> n

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._where

    def add(self, agent_id: str, penalty: int, key: Key) -> None:
        tier = self._tiers.get(penalty)
        if tier is None:
            tier = self._tiers[penalty] = SortedList(load=128)
            self._penalties.append(penalty)
            self._penalties.sort()
        tier.add(key)
        self._where[agent_id] = (penalty, key)
        if self._weighted:
            counts = self._weights.setdefault(penalty, {})
            counts[key[0]] = counts.get(key[0], 0) + 1

    def remove(self, agent_id: str) -> None:
        penalty, key = self._where.pop(agent_id)
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
        elif idx == len(sub):
            maxes[pos] = sub[-1]
        if self._weighted:
            counts = self._weights[penalty]
            counts[key[0]] -= 1
            if not counts[key[0]]:
                del counts[key[0]]
        if not tier._len:  # (no __bool__ call on the hot path)
            del self._tiers[penalty]
            self._penalties.remove(penalty)
            self._weights.pop(penalty, None)

    def tiers(self, max_penalty: int | None) -> list[tuple[int, SortedList[Key]]]:
        """Non-empty tiers allowed by ``max_penalty`` (None: all), lowest penalty first."""
        tiers = self._tiers
        if max_penalty is None:
            return [(p, tiers[p]) for p in self._penalties]
        return [(p, tiers[p]) for p in self._penalties if p <= max_penalty]

    def lowest_tier(self) -> tuple[int, SortedList[Key]]:
        """The lowest-penalty tier (``IndexError`` when the index is empty)."""
        penalty = self._penalties[0]
        return penalty, self._tiers[penalty]

    def _start(self, penalty: int, keys: SortedList[Key], rng: random.Random) -> int:
        """Random strategies: the drawn starting position in the tier (one draw)."""
        if self.strategy is Strategy.RANDOM:
            return rng.randrange(len(keys))
        counts = self._weights[penalty]
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

    def first(self, penalty: int, keys: SortedList[Key], rng: random.Random, rr_last: int) -> str:
        """The agent this strategy offers to first in a non-empty tier (same as candidates)."""
        strategy = self.strategy
        if strategy is Strategy.ROUND_ROBIN:
            for key in keys.iter_from((rr_last + 1, "")):
                return str(key[-1])
            return str(keys.first()[-1])
        if strategy is Strategy.RANDOM or strategy is Strategy.WEIGHTED_RANDOM:
            return str(keys[self._start(penalty, keys, rng)][-1])
        return str(keys.first()[-1])

    def candidates(
        self, penalty: int, keys: SortedList[Key], rng: random.Random, rr_last: int
    ) -> Iterator[str]:
        """Agent ids of a tier in the order this strategy offers to them.

        Lazy: the caller stops at the first agent meeting the interaction's requirement.
        Random strategies draw from ``rng`` once per call.
        """
        strategy = self.strategy
        if strategy is Strategy.ROUND_ROBIN:
            # The member after the one offered last, wrapping around (round-robin memory).
            for key in keys.iter_from((rr_last + 1, "")):
                yield key[-1]
            for key in keys:
                if key[0] > rr_last:
                    return
                yield key[-1]
            return
        if strategy is Strategy.RANDOM or strategy is Strategy.WEIGHTED_RANDOM:
            start = self._start(penalty, keys, rng)
            for key in keys.iter_at(start):
                yield key[-1]
            for i, key in enumerate(keys):
                if i >= start:
                    return
                yield key[-1]
            return
        for key in keys:
            yield key[-1]
