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
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Calls a function after a delay (seconds)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class _CoarseTimer:
    """A timer in one of :class:`LoopScheduler`'s slots; cancelling drops the callback."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class LoopScheduler:
    """The real scheduler, on the running asyncio loop.

    Delays below ``coarse_from`` seconds (retransmissions, 100 Trying) are
    ``loop.call_later`` timers. Longer ones (the 64*T1 timeouts B, F, H, J, L, M, and D,
    I, K) go into slots of ``resolution`` seconds, one loop timer per slot, and fire at
    most ``resolution`` late, never early: every transaction arms one or two of them and
    most are cancelled, so a loop timer each would keep tens of thousands of handles in
    the loop's heap under load, every push and pop comparing them in Python.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        coarse_from: float = 5.0,
        resolution: float = 0.1,
    ) -> None:
        self._loop = loop
        self.coarse_from = coarse_from
        self.resolution = resolution
        self._slots: dict[int, list[_CoarseTimer]] = {}
        self._slots_loop: asyncio.AbstractEventLoop | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        loop = self._loop or asyncio.get_running_loop()
        if delay < self.coarse_from:
            return loop.call_later(delay, callback)
        if loop is not self._slots_loop:
            self._slots = {}  # slots armed on another (closed) loop will never fire
            self._slots_loop = loop
        slot = math.ceil((loop.time() + delay) / self.resolution)
        timer = _CoarseTimer(callback)
        timers = self._slots.get(slot)
        if timers is None:
            self._slots[slot] = timers = []
            loop.call_at(slot * self.resolution, self._fire, loop, slot)
        timers.append(timer)
        return timer

    def _fire(self, loop: asyncio.AbstractEventLoop, slot: int) -> None:
        for timer in self._slots.pop(slot, ()):
            callback = timer.callback
            if callback is None:
                continue
            timer.callback = None
            try:
                callback()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # as asyncio's Handle does: report, go on
                loop.call_exception_handler(
                    {"message": f"Exception in SIP timer {callback!r}", "exception": exc}
                )


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
