"""Both routing engines on the same commands: the Python one (the reference) and the
compiled core. Every result is compared as it comes: events, errors, the random draws."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sparklecomm.acd import AcdEngine, EngineConfig
from sparklecomm.core.clock import FakeClock
from sparklecomm.core.errors import DomainError

_acd_core = pytest.importorskip("sparklecomm.acd._acd_core")
CompiledEngine = _acd_core.CompiledEngine


class Pair:
    """The same commands on both engines; results compared as they come."""

    def __init__(self, seed: int, **config: Any) -> None:
        self.clock = FakeClock()
        self.python = AcdEngine(self.clock, EngineConfig(rng=random.Random(seed), **config))
        self.compiled = CompiledEngine(self.clock, EngineConfig(rng=random.Random(seed), **config))
        self.offers: list[tuple[str, str]] = []  # (interaction, agent) offered, not accepted
        self.active: list[tuple[str, str]] = []
        self.wrapups: list[tuple[str, str]] = []
        self.events = 0

    def run(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        expected: list[Any] | DomainError
        try:
            expected = getattr(self.python, method)(*args, **kwargs)
        except DomainError as exc:
            expected = exc
        try:
            got = getattr(self.compiled, method)(*args, **kwargs)
        except DomainError as exc:
            assert isinstance(expected, DomainError), (method, args, exc)
            assert (type(exc), exc.detail, exc.field) == (
                type(expected),
                expected.detail,
                expected.field,
            )
            return []
        assert not isinstance(expected, DomainError), (method, args, expected)
        assert [(e.type, e.payload, e.time) for e in got] == [
            (e.type, e.payload, e.time) for e in expected
        ], (method, args)
        assert self.python.config.rng.getstate() == self.compiled.rng.getstate()
        self.events += len(got)
        for event in got:
            self.track(event.type, event.payload)
        return list(got)

    def track(self, type_: str, p: dict[str, Any]) -> None:
        """Keep the lists of offers, connected interactions and wrap-ups up to date."""
        pair = (p.get("interaction_id"), p.get("agent_id"))
        if type_ == "interaction.offered":
            self.offers.append(pair)
        elif type_ in (
            "interaction.offer_timed_out",
            "interaction.offer_withdrawn",
            "interaction.rejected",
        ):
            self.offers.remove(pair)
        elif type_ == "interaction.accepted":
            self.offers.remove(pair)
            self.active.append(pair)
        elif type_ in ("interaction.completed", "interaction.transferred"):
            if pair in self.active:
                self.active.remove(pair)
        elif type_ == "interaction.wrapup_ended" and pair in self.wrapups:
            self.wrapups.remove(pair)
        if type_ == "interaction.completed" or type_ == "interaction.transferred":
            self.wrapups.append(pair)
