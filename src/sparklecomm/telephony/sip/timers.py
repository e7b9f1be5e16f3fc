"""Timer scheduling for the SIP stack, injectable so that tests run on fake time.

The transaction layer never sleeps: it asks a :class:`Scheduler` to call it back after a
delay. :class:`LoopScheduler` uses the running asyncio loop; :class:`FakeScheduler` fires
callbacks only when a test calls :meth:`FakeScheduler.advance`, in deadline order, so the
RFC 3261 timers (A to K) can be checked to the millisecond without waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Calls a function after a delay (seconds)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopScheduler:
    """The real scheduler: ``loop.call_later`` on the running asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        loop = self._loop or asyncio.get_running_loop()
        return loop.call_later(delay, callback)


@dataclass(order=True)
class _FakeTimer:
    deadline: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """A scheduler on fake time: nothing fires until :meth:`advance` moves time forward."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[_FakeTimer] = []
        self._seq = itertools.count()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _FakeTimer(self.now + max(0.0, delay), next(self._seq), callback)
        heapq.heappush(self._heap, timer)
        return timer

    @property
    def pending(self) -> int:
        """How many timers are still armed."""
        return sum(1 for timer in self._heap if not timer.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that falls due (those it arms too)."""
        end = self.now + seconds
        while self._heap and self._heap[0].deadline <= end:
            timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self.now = timer.deadline
            timer.callback()
        self.now = end


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 §17 timer values (seconds). T1 is the round-trip estimate, T2 the cap on
    retransmission intervals, T4 how long the network keeps a message; tests shrink them."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying_delay: float = 0.2
    """An INVITE server transaction sends 100 Trying if the TU has not answered by then."""

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J, L and M."""
        return 64 * self.t1

    @property
    def timer_d(self) -> float:
        """Timer D: at least 32 s, and never below 64*T1 (§17.1.1.2)."""
        return max(32.0, 64 * self.t1) if self.t1 >= 0.5 else 64 * self.t1
