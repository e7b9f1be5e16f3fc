"""The compiled routing core (``rust/acd_core``), where it is built: work in progress.

:class:`CompiledEngine` is a port of :class:`~sparklecomm.acd.engine.AcdEngine` to Rust that
must behave exactly like it (same events, errors and random draws; the differential tests in
``tests/routing/compiled/`` run both on the same commands). It runs the routing benchmark's
lifecycle so far — queues with listed members, agents, login, create → offer → accept →
complete → wrap-up, offer timeouts — and refuses everything else with
``NotImplementedError``. The platform runs the Python engine; docs/routing-core.md says what
is ported and what is left.

``CompiledEngine`` is None when the core was not built (``scripts/build_core.sh``).
"""

from __future__ import annotations

from typing import Any

CompiledEngine: Any
try:
    from ._acd_core import CompiledEngine
except ImportError:  # pragma: no cover - depends on the build
    CompiledEngine = None

__all__ = ["CompiledEngine"]
