"""Per-queue indexes of available agents, one ordering per routing strategy.

For every queue, channel and penalty tier the engine keeps the agents who could take an
interaction right now in a :class:`ReadyIndex`, ordered by the queue strategy's key
(:func:`strategy_key`). Picking an agent is then "walk the index from the right place and take
the first agent who meets the interaction's own requirement" — no scan over all agents.
An agent's entry is removed and re-added whenever its key changes (it is offered something,
its load changes, it becomes available), so keys never go stale.

Strategy keys (ascending = preferred; ``order`` is the member order, ``agent_id`` makes keys
unique)::

    ring-all, linear, round-robin, random  (order, agent_id)
    longest-idle          (load, idle_since, order, agent_id)
    fewest-interactions   (handled since login, load, idle_since, order, agent_id)
    least-talk-time       (talk time since login, load, idle_since, order, agent_id)
    best-skill            (-proficiency in the queue's best_skill, load, idle_since, ...)
    weighted-random       (order, agent_id), drawn with probability proportional to weight
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from .model import Agent, Membership, QueueConfig, Strategy
from .sortedlist import SortedList

Key = tuple[Any, ...]


def strategy_key(config: QueueConfig, agent: Agent, member: Membership) -> Key:
    """The ordering key of ``agent`` in ``config``'s ready index (smaller = offered first)."""
    strategy = config.strategy
    aid = agent.config.id
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


class ReadyIndex:
    """Available agents of one queue, channel and penalty tier, in strategy order."""

    __slots__ = ("_buckets", "_keys", "_sorted", "strategy")

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self._sorted: SortedList[Key] = SortedList(load=128)
        self._keys: dict[str, Key] = {}
        # weighted-random: weight -> agents with that weight, by member order
        self._buckets: dict[int, SortedList[Key]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, agent_id: str) -> bool:
        return agent_id in self._keys

    def add(self, agent_id: str, key: Key) -> None:
        self._keys[agent_id] = key
        if self.strategy is Strategy.WEIGHTED_RANDOM:
            weight = int(key[0])
            bucket = self._buckets.get(weight)
            if bucket is None:
                bucket = self._buckets[weight] = SortedList(load=128)
            bucket.add(key[1:])
        else:
            self._sorted.add(key)

    def remove(self, agent_id: str) -> None:
        key = self._keys.pop(agent_id)
        if self.strategy is Strategy.WEIGHTED_RANDOM:
            weight = int(key[0])
            bucket = self._buckets[weight]
            bucket.remove(key[1:])
            if not bucket:
                del self._buckets[weight]
        else:
            self._sorted.remove(key)

    def candidates(self, rng: random.Random, rr_last: int) -> Iterator[str]:
        """Agent ids in the order this strategy would offer to them.

        Lazy: the caller stops at the first agent meeting the interaction's requirement, so
        the usual cost is one step. Random strategies draw from ``rng`` once per call.
        """
        strategy = self.strategy
        if strategy is Strategy.ROUND_ROBIN:
            # The member after the one offered last, wrapping around (round-robin memory).
            for key in self._sorted.iter_from((rr_last + 1, "")):
                yield key[-1]
            for key in self._sorted:
                if key[0] > rr_last:
                    return
                yield key[-1]
            return
        if strategy is Strategy.RANDOM:
            n = len(self._sorted)
            if not n:
                return
            start = rng.randrange(n)
            for key in self._sorted.iter_at(start):
                yield key[-1]
            for i, key in enumerate(self._sorted):
                if i >= start:
                    return
                yield key[-1]
            return
        if strategy is Strategy.WEIGHTED_RANDOM:
            yield from self._weighted(rng)
            return
        for key in self._sorted:
            yield key[-1]

    def _weighted(self, rng: random.Random) -> Iterator[str]:
        if not self._buckets:
            return
        weights = sorted(self._buckets, reverse=True)
        total = sum(w * len(self._buckets[w]) for w in weights)
        draw = rng.randrange(total)
        first = weights[0]
        index = 0
        for w in weights:
            span = w * len(self._buckets[w])
            if draw < span:
                first, index = w, draw // w
                break
            draw -= span
        bucket = self._buckets[first]
        # The drawn agent first; if it does not meet the requirement, walk on from there.
        for key in bucket.iter_at(index):
            yield key[-1]
        for i, key in enumerate(bucket):
            if i >= index:
                break
            yield key[-1]
        for w in weights:
            if w != first:
                for key in self._buckets[w]:
                    yield key[-1]


class TierIndex:
    """The ready indexes of one queue and channel, one per penalty tier."""

    __slots__ = ("_penalties", "_tiers", "strategy")

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self._tiers: dict[int, ReadyIndex] = {}
        self._penalties: list[int] = []  # sorted penalties with a non-empty tier

    def add(self, agent_id: str, penalty: int, key: Key) -> None:
        tier = self._tiers.get(penalty)
        if tier is None:
            tier = self._tiers[penalty] = ReadyIndex(self.strategy)
            self._penalties.append(penalty)
            self._penalties.sort()
        tier.add(agent_id, key)

    def remove(self, agent_id: str, penalty: int) -> None:
        tier = self._tiers[penalty]
        tier.remove(agent_id)
        if not len(tier):
            del self._tiers[penalty]
            self._penalties.remove(penalty)

    def tiers(self, max_penalty: int | None) -> Iterator[tuple[int, ReadyIndex]]:
        """Non-empty tiers allowed by ``max_penalty`` (None: all), lowest penalty first."""
        for penalty in self._penalties:
            if max_penalty is not None and penalty > max_penalty:
                return
            yield penalty, self._tiers[penalty]

    def __len__(self) -> int:
        return sum(len(t) for t in self._tiers.values())
