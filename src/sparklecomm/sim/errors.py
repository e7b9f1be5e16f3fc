"""Scenario errors: one message naming the key at fault (``arrivals[0].handle_time.mean``)."""

from __future__ import annotations

import math

from sparklecomm.core.errors import InvalidInput


class ScenarioError(InvalidInput):
    """A scenario that cannot be simulated; ``field`` is the key path at fault."""

    def __init__(self, detail: str, where: str) -> None:
        super().__init__(detail, field=where)


def check_number(
    value: object,
    where: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
) -> float:
    """``value`` as a finite float within bounds (``strict``: above ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{where} must be a number (got {value!r})", where)
    number = float(value)
    if minimum is not None:
        if strict and number <= minimum:
            raise ScenarioError(f"{where} must be greater than {minimum:g} (got {value!r})", where)
        if number < minimum:
            raise ScenarioError(f"{where} must be at least {minimum:g} (got {value!r})", where)
    if maximum is not None and number > maximum:
        raise ScenarioError(f"{where} must be at most {maximum:g} (got {value!r})", where)
    return number


def check_int(value: object, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where} must be a whole number (got {value!r})", where)
    if value < minimum:
        raise ScenarioError(f"{where} must be at least {minimum} (got {value!r})", where)
    return value
