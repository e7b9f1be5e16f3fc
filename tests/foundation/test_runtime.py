"""Process tuning for the server processes (runtime.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from sparklecomm.runtime import tune_gc
from sparklecomm.settings import Settings


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_tune_gc_raises_the_young_threshold_and_freezes_start_up(restore_gc: None) -> None:
    gc.unfreeze()
    tune_gc(50_000)
    assert gc.get_threshold()[0] == 50_000
    assert min(gc.get_threshold()[1:]) >= 10
    assert gc.get_freeze_count() > 0  # what start-up allocated is out of the collector's way


def test_zero_keeps_pythons_settings(restore_gc: None) -> None:
    before = gc.get_threshold()
    tune_gc(0)
    assert gc.get_threshold() == before


def test_the_setting_defaults_to_50000_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().gc_threshold == 50_000
    monkeypatch.setenv("SPARKLECOMM_GC_THRESHOLD", "0")
    assert Settings().gc_threshold == 0
