"""Toll-fraud protection for the SIP side: who may send us requests, and how many.

Attackers scan for PBXs and then guess extension passwords until one works, to place calls
to premium numbers at the owner's expense. :class:`FraudGuard` is what the registrar and the
B2BUA ask before they spend any work on a request:

* :meth:`FraudGuard.allow` — ``False`` while the source address is blocked, or when it sends
  faster than its token bucket allows (``rate`` requests per second, ``burst`` at once);
* :meth:`FraudGuard.failed` — a failed digest authentication; ``max_failures`` of them within
  ``failure_window`` seconds block the address for ``block_seconds``, doubled for each
  further block (up to ``max_block_seconds``);
* :meth:`FraudGuard.trusted_source` — the carrier trunk whose allowed source addresses
  include a host, or ``None``. Trunks are exempt from the rate limit (a busy carrier sends
  many INVITEs) but never from the dial plan.

Pure and deterministic: the clock is injected (its ``monotonic()``), state is in memory and
bounded (idle sources are forgotten). Every refusal is logged with the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from sparklecomm.core.clock import Clock

log = structlog.get_logger(__name__)


def source_host(source: str) -> str:
    """``1.2.3.4:5060`` → ``1.2.3.4``; ``[::1]:5060`` → ``::1``; a bare host unchanged."""
    source = source.strip()
    if source.startswith("["):
        return source[1 : source.find("]")] if "]" in source else source[1:]
    if source.count(":") == 1:
        return source.split(":", 1)[0]
    return source


@dataclass
class _SourceState:
    tokens: float
    refilled_at: float
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    blocks: int = 0
    last_seen: float = 0.0


class FraudGuard:
    """Per-source rate limits and blocking after failed authentications."""

    def __init__(
        self,
        clock: Clock,
        *,
        rate: float = 20.0,
        burst: float = 40.0,
        max_failures: int = 5,
        failure_window: float = 60.0,
        block_seconds: float = 300.0,
        max_block_seconds: float = 86_400.0,
        forget_after: float = 3_600.0,
        max_sources: int = 100_000,
        logger: Any = None,
    ) -> None:
        """``logger`` defaults to this module's structlog logger (tests inject their own)."""
        if rate <= 0 or burst < 1 or max_failures < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_failures >= 1")
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.max_failures = max_failures
        self.failure_window = failure_window
        self.block_seconds = block_seconds
        self.max_block_seconds = max_block_seconds
        self.forget_after = forget_after
        self.max_sources = max_sources
        self._sources: dict[str, _SourceState] = {}
        self._trusted: dict[str, str] = {}
        self._log = logger if logger is not None else log
        self.refused = 0

    # -- trunks -------------------------------------------------------------------------
    def set_trusted(self, hosts: Mapping[str, str]) -> None:
        """Replace the map of trusted source hosts → trunk id (from the trunks' settings)."""
        self._trusted = {h.strip().lower(): t for h, t in hosts.items()}

    def trusted_source(self, host: str) -> str | None:
        """The id of the trunk allowed to send from ``host`` (``host`` or ``host:port``)."""
        return self._trusted.get(source_host(host).lower())

    # -- decisions ----------------------------------------------------------------------
    def _state(self, host: str, now: float) -> _SourceState:
        state = self._sources.get(host)
        if state is None:
            if len(self._sources) >= self.max_sources:
                self._forget_idle(now)
            state = _SourceState(tokens=self.burst, refilled_at=now)
            self._sources[host] = state
        state.last_seen = now
        return state

    def _forget_idle(self, now: float) -> None:
        idle = [
            h
            for h, s in self._sources.items()
            if now - s.last_seen > self.forget_after and s.blocked_until <= now
        ]
        for h in idle:
            del self._sources[h]
        if len(self._sources) >= self.max_sources:
            # Still full (a flood of distinct sources): drop the least recently seen half
            # that is not blocked, so memory stays bounded.
            victims = sorted(
                (s.last_seen, h) for h, s in self._sources.items() if s.blocked_until <= now
            )
            for _, h in victims[: len(victims) // 2 + 1]:
                del self._sources[h]

    def blocked_for(self, source: str) -> float:
        """Seconds the source stays blocked (0 when it is not)."""
        state = self._sources.get(source_host(source))
        if state is None:
            return 0.0
        return max(0.0, state.blocked_until - self.clock.monotonic())

    def allow(self, source: str) -> bool:
        """May a request from ``source`` be processed now? (Takes one token.)"""
        host = source_host(source)
        now = self.clock.monotonic()
        state = self._state(host, now)
        if state.blocked_until > now:
            self._refuse("blocked", source, retry_after=round(state.blocked_until - now, 1))
            return False
        if host.lower() in self._trusted:
            return True
        state.tokens = min(self.burst, state.tokens + (now - state.refilled_at) * self.rate)
        state.refilled_at = now
        if state.tokens < 1.0:
            self._refuse("rate_limited", source, rate=self.rate)
            return False
        state.tokens -= 1.0
        return True

    def failed(self, source: str) -> None:
        """Record a failed authentication from ``source``; may block it."""
        host = source_host(source)
        now = self.clock.monotonic()
        state = self._state(host, now)
        state.failures = [t for t in state.failures if now - t < self.failure_window]
        state.failures.append(now)
        if len(state.failures) >= self.max_failures:
            period = min(self.max_block_seconds, self.block_seconds * (2**state.blocks))
            state.blocks += 1
            state.blocked_until = now + period
            state.failures.clear()
            self._log.warning(
                "sip_source_blocked",
                source=source,
                host=host,
                seconds=period,
                blocks=state.blocks,
                reason="repeated failed authentication",
            )

    def succeeded(self, source: str) -> None:
        """A successful authentication clears the failure count (not an active block)."""
        state = self._sources.get(source_host(source))
        if state is not None:
            state.failures.clear()

    def refuse(self, reason: str, source: str, **details: object) -> None:
        """Log a refusal decided elsewhere (the dial plan's 403s), with the source."""
        self._refuse(reason, source, **details)

    def _refuse(self, reason: str, source: str, **details: object) -> None:
        self.refused += 1
        self._log.warning("sip_request_refused", reason=reason, source=source, **details)
