"""Every KPI test runs on both feeds: the Python one (the reference) and the compiled one
(rust/acd_core/src/kpi.rs), which is skipped where the core is not built, except when CI
requires it (``SPARKLECOMM_ROUTING_CORE=compiled``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sparklecomm.acd.compiled import CompiledEngine

REQUIRED = os.environ.get("SPARKLECOMM_ROUTING_CORE", "").strip().lower() == "compiled"


@pytest.fixture(autouse=True, params=["python", "compiled"])
def kpi_feed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which feed ``KpiAccumulator()`` takes in this test (through the core setting)."""
    feed: str = request.param
    if feed == "compiled" and CompiledEngine is None:
        if REQUIRED:
            pytest.fail("SPARKLECOMM_ROUTING_CORE=compiled, but the compiled core is not built")
        pytest.skip("the compiled core is not built (scripts/build_core.sh)")
    monkeypatch.setenv("SPARKLECOMM_ROUTING_CORE", feed)
    yield feed
