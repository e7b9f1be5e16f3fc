"""Which engine the platform runs (SPARKLECOMM_ROUTING_CORE)."""

from __future__ import annotations

import pytest

from sparklecomm.acd import AcdEngine
from sparklecomm.acd.compiled import CompiledEngine, engine_class, routing_core
from sparklecomm.core.errors import InvalidInput


def test_the_compiled_engine_runs_when_built_unless_python_is_asked_for() -> None:
    assert engine_class("python") is AcdEngine
    if CompiledEngine is None:
        assert routing_core("auto") == "python"
        with pytest.raises(InvalidInput, match="not built"):
            routing_core("compiled")
    else:
        assert engine_class("auto") is CompiledEngine
        assert engine_class(" Compiled ") is CompiledEngine


def test_a_wrong_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKLECOMM_ROUTING_CORE", "rust")
    with pytest.raises(InvalidInput, match="SPARKLECOMM_ROUTING_CORE must be one of") as info:
        engine_class()
    assert info.value.field == "SPARKLECOMM_ROUTING_CORE"
