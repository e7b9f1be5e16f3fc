"""Call-volume forecasting: grid construction, methods, backtests, and the CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from sparklecomm.core.errors import InvalidInput
from sparklecomm.wfm.cli import erlang_app, register
from sparklecomm.wfm.forecast import (
    DAY,
    METHODS,
    WEEK,
    Method,
    backtest,
    choose_method,
    forecast,
    parse_duration,
    week_grid,
)

# Five-minute call volumes of a large North American commercial bank's call center,
# 3 March - 16 October 2003, weekdays 07:00-21:05 (R package fpp2, data set `calls`;
# Hyndman & Athanasopoulos, "Forecasting: Principles and Practice", 2nd ed.).
FPP2 = Path("/work/shared/data/call-volumes/calls_fpp2_5min.csv")
MONDAY = int((datetime(2024, 1, 1) - datetime(1970, 1, 1)).total_seconds())  # a Monday

app = typer.Typer()
app.add_typer(erlang_app, name="erlang")
register(app)
runner = CliRunner()


def _load_fpp2() -> tuple[np.ndarray, np.ndarray]:
    with FPP2.open() as handle:
        rows = list(csv.DictReader(handle))
    times = np.array([np.datetime64(r["timestamp"], "s") for r in rows]).astype(np.int64)
    calls = np.array([float(r["calls"]) for r in rows])
    return times, calls


def _weekly_pattern(weeks: int, step: int = 1800) -> tuple[np.ndarray, np.ndarray]:
    """Weekdays 08:00-12:00, calls depend only on (weekday, time)."""
    times, calls = [], []
    for w in range(weeks):
        for d in range(5):
            for k in range(8):
                t = MONDAY + w * WEEK + d * DAY + 8 * 3600 + k * step
                times.append(t)
                calls.append(10.0 * (d + 1) + k)
    return np.array(times), np.array(calls)


def test_parse_duration() -> None:
    assert parse_duration("28d") == 28 * DAY
    assert parse_duration("4w") == 4 * WEEK
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("1800") == 1800
    for bad in ("soon", "-1d", "0", "1.5s"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)


def test_week_grid_sums_into_intervals_on_monday_weeks() -> None:
    times = np.array([MONDAY + 8 * 3600 + 300 * i for i in range(12)])  # 08:00-08:55
    grid = week_grid(times, np.ones(12), 1800)
    assert grid.values.shape == (1, 2)
    assert grid.values.tolist() == [[6.0, 6.0]]
    assert grid.first_week == MONDAY
    assert grid.times(np.array([0, 1])).tolist() == [MONDAY + 8 * 3600, MONDAY + 8 * 3600 + 1800]
    with pytest.raises(InvalidInput, match="divide"):
        week_grid(times, np.ones(12), 1000)
    with pytest.raises(InvalidInput, match="increase"):
        week_grid(times[::-1], np.ones(12), 1800)
    with pytest.raises(InvalidInput, match="spacing"):
        week_grid(np.array([0, 3600]), np.ones(2), 1800 + 1800 // 2)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "blend"])
def test_methods_reproduce_a_pure_weekly_pattern(method: Method) -> None:
    # blend pools the intraday shape over weekdays: see test_forecast_blend.py.
    times, calls = _weekly_pattern(6)
    grid = week_grid(times, calls, 1800)
    starts, values = forecast(grid, method, 2 * WEEK)
    assert len(starts) == 2 * 5 * 8
    assert starts[0] == MONDAY + 6 * WEEK + 8 * 3600  # next open interval
    expected = np.tile(calls[:40], 2)
    assert np.allclose(values, expected, rtol=1e-6, atol=1e-6)


def test_backtest_scores_and_auto_choice() -> None:
    times, calls = _weekly_pattern(6)
    rng = np.random.default_rng(0)
    noisy = calls * rng.uniform(0.8, 1.2, calls.size)
    scores = backtest(week_grid(times, noisy, 1800), METHODS, 3)
    assert set(scores) == set(METHODS)
    assert all(s.folds == 3 and 0 <= s.wape < 0.3 for s in scores.values())
    assert all(0 <= s.mape < 0.3 and 0 <= s.daily_wape <= s.wape for s in scores.values())
    assert choose_method(scores) == min(scores, key=lambda k: scores[k].wape)


def test_real_call_center_data() -> None:
    times, calls = _load_fpp2()
    grid = week_grid(times, calls, 1800)
    assert grid.values.shape == (
        33,
        5 * 29,
    )  # 33 weeks x (5 weekdays x 29 half-hours from 07:00; the last holds 21:00-21:05)
    assert np.nansum(grid.values) == pytest.approx(calls.sum())
    scores = backtest(grid, METHODS, 4)
    # Measured: weekday-average 6.9 %, holt-winters 7.9 %, seasonal-naive 10.0 % WAPE.
    assert scores["weekday-average"].wape < 0.08
    assert scores["holt-winters"].wape < 0.09
    assert scores["seasonal-naive"].wape < 0.11
    starts, values = forecast(grid, "holt-winters", 28 * DAY)
    assert len(starts) == 4 * 5 * 29
    assert str(np.datetime64(int(starts[0]), "s")) == "2003-10-17T07:00:00"
    assert np.all(values >= 0)
    # The forecast daily volume stays in the range of the history's.
    daily = values.reshape(-1, 29).sum(axis=1)
    history_daily = np.nansum(grid.values) / (calls.size / 169)  # 169 five-minute rows a day
    assert 0.9 * history_daily < daily.mean() < 1.1 * history_daily


def test_forecast_cli_feeds_staff(tmp_path: Path) -> None:
    out = tmp_path / "forecast.csv"
    result = runner.invoke(
        app,
        [
            "forecast", "--history", str(FPP2), "--horizon", "7d", "--interval", "1800",
            "--output", str(out), "--backtest", "2w", "--aht", "240",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Method: blend (chosen by backtest)" in result.stdout
    assert "interval MAPE" in result.stdout and "daily MAPE" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5 * 29 and list(rows[0]) == ["start", "calls", "aht"]
    staffed = runner.invoke(app, ["staff", "--input", str(out), "--sl", "0.8", "--json"])
    assert staffed.exit_code == 0, staffed.output
    assert len(json.loads(staffed.stdout)) == 5 * 29


def test_forecast_cli_json_and_method(tmp_path: Path) -> None:
    history = tmp_path / "h.csv"
    times, calls = _weekly_pattern(3)
    history.write_text(
        "timestamp,calls\n"
        + "".join(
            f"{np.datetime64(int(t), 's')},{c:g}\n" for t, c in zip(times, calls, strict=True)
        )
    )
    result = runner.invoke(
        app,
        ["forecast", "--history", str(history), "--horizon", "3d", "--method", "seasonal-naive",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["method"] == "seasonal-naive" and data["backtest"] == {}
    assert [row["calls"] for row in data["forecast"]] == [10.0 + k for k in range(8)]
    csv_out = runner.invoke(app, ["forecast", "--history", str(history), "--horizon", "1d"])
    assert csv_out.exit_code == 0
    assert next(csv.reader(io.StringIO(csv_out.stdout))) == ["start", "calls"]
    assert "Method:" in csv_out.stderr


@pytest.mark.parametrize(
    ("text", "args", "needle"),
    [
        ("timestamp,calls\n2024-01-01T08:00,3\nyesterday,4\n", [], "line 3: timestamp"),
        ("timestamp,calls\n2024-01-01T08:00,-3\n", [], "line 2: calls must be 0 or more"),
        ("timestamp,calls\n2024-01-01T08:30,3\n2024-01-01T08:00,3\n", [], "line 3"),
        ("time,calls\n", [], "missing column(s) timestamp"),
        ("timestamp,calls\n2024-01-01T08:00,3\n", ["--horizon", "soon"], "duration"),
        ("timestamp,calls\n2024-01-01T08:00,3\n", ["--backtest", "10d"], "whole weeks"),
        ("timestamp,calls\n2024-01-01T08:00,3\n2024-01-01T08:20,3\n", [], "spacing"),
    ],
)
def test_forecast_cli_errors(tmp_path: Path, text: str, args: list[str], needle: str) -> None:
    history = tmp_path / "h.csv"
    history.write_text(text)
    result = runner.invoke(app, ["forecast", "--history", str(history), *args])
    assert result.exit_code == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


# --- blend -----------------------------------------------------------------------------------


def _scaled_pattern(weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Weekdays 08:00-12:00 at 30 min: weekday level x one intraday shape."""
    times, calls = [], []
    for w in range(weeks):
        for d in range(5):
            for k in range(8):
                times.append(MONDAY + w * WEEK + d * DAY + 8 * 3600 + k * 1800)
                calls.append(10.0 * (d + 1) * (1 + k))
    return np.array(times), np.array(calls)


def test_blend_reproduces_a_weekly_pattern_with_a_common_intraday_shape() -> None:
    times, calls = _scaled_pattern(6)
    grid = week_grid(times, calls, 1800)
    starts, values = forecast(grid, "blend", 2 * WEEK)
    assert starts[0] == MONDAY + 6 * WEEK + 8 * 3600
    assert np.allclose(values, np.tile(calls[:40], 2), rtol=1e-9)


def test_blend_ignores_a_one_week_spike_and_needs_a_complete_week() -> None:
    times, calls = _scaled_pattern(5)
    spiked = calls.copy()
    spiked[3 * 40 : 4 * 40] *= 3  # a campaign week: the median level does not move
    values = forecast(week_grid(times, spiked, 1800), "blend", WEEK)[1]
    wa = forecast(week_grid(times, spiked, 1800), "weekday-average", WEEK)[1]
    assert np.allclose(values, 0.5 * wa + 0.5 * calls[:40])
    keep = np.r_[0:36, 44:80]  # no week has every open interval
    partial = week_grid(times[keep], calls[keep], 1800)
    with pytest.raises(InvalidInput, match="complete week"):
        forecast(partial, "blend", DAY)


def test_blend_beats_the_other_methods_on_the_real_backtest() -> None:
    grid = week_grid(*_load_fpp2(), 1800)
    scores = backtest(grid, METHODS, 4)
    # Measured (fpp2 calls, 30 min, 4 rolling-origin weeks), interval MAPE / WAPE, daily
    # MAPE / WAPE: blend 9.2 / 6.6, 4.3 / 4.3 %; weekday-average 9.5 / 6.9, 4.5 / 4.5 %;
    # holt-winters 10.6 / 7.9, 5.6 / 5.6 %; seasonal-naive 12.3 / 10.0, 8.1 / 8.0 %.
    assert scores["blend"].wape == pytest.approx(0.0659, abs=5e-4)
    for other in ("weekday-average", "holt-winters", "seasonal-naive"):
        assert scores["blend"].wape < scores[other].wape
        assert scores["blend"].mape < scores[other].mape
        assert scores["blend"].daily_wape < scores[other].daily_wape
        assert scores["blend"].daily_mape < scores[other].daily_mape
    assert scores["weekday-average"].daily_wape == pytest.approx(0.0446, abs=5e-4)
    assert all(s.folds == 4 for s in scores.values())


def test_forecast_cli_blend_method(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["forecast", "--history", str(FPP2), "--horizon", "1d", "--method", "blend",
         "--backtest", "1w", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["method"] == "blend" and list(data["backtest"]) == ["blend"]
    assert set(data["backtest"]["blend"]) >= {"wape", "mape", "daily_wape", "daily_mape"}
    assert len(data["forecast"]) == 29 and all(r["calls"] > 0 for r in data["forecast"])
