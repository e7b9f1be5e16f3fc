"""The compiled routing core (``rust/acd_core``) and the choice of engine.

:class:`CompiledEngine` is :class:`~sparklecomm.acd.engine.AcdEngine` ported to Rust: the
same commands, events, errors, random draws, queries and snapshots (a snapshot written by
either engine loads into the other). The Python engine stays the reference: the differential
tests in ``tests/routing/compiled/`` run both on the same commands and compare every result.
See docs/routing-core.md.

``CompiledEngine`` is None when the core was not built (``scripts/build_core.sh``, run by
the bootstrap). :func:`engine_class` picks the engine the platform runs:
``SPARKLECOMM_ROUTING_CORE`` = ``auto`` (the default: compiled when built), ``compiled``
(required: an error when it is not built) or ``python``.
"""

from __future__ import annotations

import os
from typing import Any, cast

from sparklecomm.core.errors import InvalidInput

from .engine import AcdEngine

CompiledEngine: Any
try:
    from . import _acd_core
except ImportError:  # pragma: no cover - depends on the build
    CompiledEngine = None
else:
    CompiledEngine = _acd_core.CompiledEngine

__all__ = ["CompiledEngine", "engine_class", "routing_core"]

CHOICES = ("auto", "compiled", "python")


def routing_core(setting: str | None = None) -> str:
    """The engine to run: ``"compiled"`` or ``"python"``, from ``setting`` or the
    ``SPARKLECOMM_ROUTING_CORE`` environment variable (``auto`` when unset)."""
    choice = (setting or os.environ.get("SPARKLECOMM_ROUTING_CORE") or "auto").strip().lower()
    if choice not in CHOICES:
        raise InvalidInput(
            f"SPARKLECOMM_ROUTING_CORE must be one of {', '.join(CHOICES)}, not {choice!r}.",
            field="SPARKLECOMM_ROUTING_CORE",
        )
    if choice == "python" or (choice == "auto" and CompiledEngine is None):
        return "python"
    if CompiledEngine is None:
        raise InvalidInput(
            "SPARKLECOMM_ROUTING_CORE=compiled, but the compiled routing core is not built: "
            "run scripts/build_core.sh (needs cargo and Debian's librust-pyo3-dev).",
            field="SPARKLECOMM_ROUTING_CORE",
        )
    return "compiled"


def engine_class(setting: str | None = None) -> type[AcdEngine]:
    """The engine class the platform runs (see :func:`routing_core`). The compiled engine
    has the Python engine's public interface; it is typed as that class."""
    if routing_core(setting) == "compiled":
        return cast(type[AcdEngine], CompiledEngine)
    return AcdEngine
