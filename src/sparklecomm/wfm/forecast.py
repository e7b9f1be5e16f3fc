"""Call-volume forecasting per interval, with rolling-origin backtests (pure numpy).

The history is a series of (interval start, calls). Contact centers are open on a weekly
pattern, so we work on a *week x slot* matrix: a slot is an (weekday, time-of-day)
pair seen in the history (the opening hours), a row is a calendar week (Monday first),
and a missing cell (a holiday, a gap) is NaN. Forecasts are made for the open slots
only; timestamps are local wall-clock time and carry no time zone.

Methods:

* ``seasonal-naive``: the same slot last week (or the latest week that has it).
* ``weekday-average``: mean of the same slot over the last ``weeks`` weeks (default 4).
* ``holt-winters``: additive Holt-Winters with a damped trend on *daily* totals (weekly
  season, smoothing constants chosen on a small grid by one-step-ahead squared error),
  spread over the day by each weekday's intraday profile of the last 8 weeks.
* ``blend``: the equal-weight average of ``weekday-average`` and a robust top-down
  forecast: each weekday's daily total is the *median* of its last 4 complete weeks
  (holiday and campaign spikes do not move it), spread over the day by an intraday
  profile pooled over all weekdays of the last 20 complete weeks (one shape per time of
  day, rescaled to each weekday's opening hours). Equal weights are fixed in advance,
  nothing is tuned on the data, so a backtest of it fits on the training weeks only.
* ``auto``: whichever of the above has the lowest WAPE in a rolling-origin backtest over
  the last weeks of the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from sparklecomm.core.errors import InvalidInput
from sparklecomm.wfm._numerics import FloatArray

Method = Literal["seasonal-naive", "weekday-average", "holt-winters", "blend"]
METHODS: Final[tuple[Method, ...]] = get_args(Method)
IntArray = npt.NDArray[np.int64]

DAY: Final = 86_400
WEEK: Final = 7 * DAY
# 1970-01-01 was a Thursday; shifting by 3 days makes weeks start on Monday.
_EPOCH_SHIFT: Final = 3 * DAY


@dataclass(frozen=True)
class WeekGrid:
    """Interval counts arranged as calendar weeks x open slots.

    Attributes:
        interval: interval length, seconds.
        first_week: start of the first row, seconds since the epoch (a Monday 00:00).
        slots: offset of each open slot from the start of its week, seconds (sorted).
        values: calls, shape (weeks, slots); NaN where the history has no value.
        last: flat index (row * slots + column) of the last observed interval.
    """

    interval: int
    first_week: int
    slots: IntArray
    values: FloatArray
    last: int

    def times(self, flat: IntArray) -> IntArray:
        """Start time (epoch seconds) of flat positions ``row * slots + column``."""
        rows, cols = np.divmod(flat, self.slots.size)
        out: IntArray = self.first_week + rows * WEEK + self.slots[cols]
        return out

    @property
    def flat(self) -> FloatArray:
        out: FloatArray = self.values.ravel()
        return out


@dataclass(frozen=True)
class Score:
    """Backtest accuracy of one method (pooled over folds).

    Attributes:
        wape: sum |error| / sum actual over intervals (weighted absolute percentage error).
        mae: mean absolute error per interval, calls.
        bias: sum error / sum actual (positive: over-forecast).
        folds: number of backtest weeks used.
        mape: mean of |error| / actual over intervals with calls (NaN if none had any).
        daily_wape: WAPE of the daily totals (days with every open interval observed).
        daily_mape: MAPE of those daily totals.
    """

    wape: float
    mae: float
    bias: float
    folds: int
    mape: float = float("nan")
    daily_wape: float = float("nan")
    daily_mape: float = float("nan")


def parse_duration(text: str) -> int:
    """Seconds in ``'28d'``, ``'4w'``, ``'12h'``, ``'30m'``, ``'90s'`` or plain seconds."""
    value = text.strip().lower()
    units = {"w": WEEK, "d": DAY, "h": 3600, "m": 60, "s": 1}
    scale = 1
    if value and value[-1] in units:
        scale = units[value[-1]]
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(
            f"cannot read duration {text!r}; use e.g. 28d, 4w, 12h or seconds", field="duration"
        ) from None
    seconds = number * scale
    if not np.isfinite(seconds) or seconds <= 0 or seconds != int(seconds):
        raise InvalidInput(f"duration {text!r} must be a positive whole number of seconds")
    return int(seconds)


def week_grid(times: npt.ArrayLike, calls: npt.ArrayLike, interval: int) -> WeekGrid:
    """Sum the history into intervals of ``interval`` seconds, laid out as weeks x slots.

    ``times`` are epoch seconds (local wall-clock time) of each observation's start; each
    observation goes to the interval containing it. ``interval`` must divide a day.
    """
    t = np.asarray(times, dtype=np.int64)
    y = np.asarray(calls, dtype=np.float64)
    if t.size == 0:
        raise InvalidInput("the history is empty", field="history")
    if interval <= 0 or DAY % interval:
        raise InvalidInput(
            f"interval {interval} s must divide a day (e.g. 900, 1800, 3600)", field="interval"
        )
    if np.any(np.diff(t) <= 0):
        i = int(np.nonzero(np.diff(t) <= 0)[0][0]) + 1
        raise InvalidInput(f"history timestamps must increase (row {i + 1})", field="history")
    if np.any(~np.isfinite(y)) or np.any(y < 0):
        i = int(np.nonzero(~np.isfinite(y) | (y < 0))[0][0])
        raise InvalidInput(f"calls must be 0 or more (row {i + 1})", field="history")
    steps = np.diff(t)
    if steps.size and interval % int(np.gcd.reduce(steps)):
        raise InvalidInput(
            f"the history's spacing ({int(np.gcd.reduce(steps))} s) does not divide "
            f"--interval {interval} s",
            field="interval",
        )
    shifted = t + _EPOCH_SHIFT
    start = (shifted // interval) * interval
    keys, inverse = np.unique(start, return_inverse=True)
    sums = np.bincount(inverse, weights=y)
    week = keys // WEEK
    offset = keys - week * WEEK
    slots = np.unique(offset)
    first = int(week[0])
    values = np.full((int(week[-1]) - first + 1, slots.size), np.nan)
    values[week - first, np.searchsorted(slots, offset)] = sums
    last = int((week[-1] - first) * slots.size + np.searchsorted(slots, offset[-1]))
    return WeekGrid(
        interval=interval,
        first_week=first * WEEK - _EPOCH_SHIFT,
        slots=slots.astype(np.int64),
        values=values,
        last=last,
    )


def _truncate(grid: WeekGrid, last: int) -> WeekGrid:
    """The grid as if the history ended at flat position ``last``."""
    flat = grid.flat.copy()
    flat[last + 1 :] = np.nan
    rows = last // grid.slots.size + 1
    values = flat.reshape(grid.values.shape)[:rows]
    return WeekGrid(grid.interval, grid.first_week, grid.slots, values, last)


def _seasonal_naive(grid: WeekGrid, positions: IntArray) -> FloatArray:
    cols = positions % grid.slots.size
    latest = np.full(grid.slots.size, np.nan)
    for row in grid.values:  # forward-fill each slot down the weeks
        latest = np.where(np.isnan(row), latest, row)
    return _fill(latest, grid)[cols]


def _weekday_average(grid: WeekGrid, positions: IntArray, weeks: int = 4) -> FloatArray:
    cols = positions % grid.slots.size
    means = np.full(grid.slots.size, np.nan)
    for c in range(grid.slots.size):
        seen = grid.values[:, c][~np.isnan(grid.values[:, c])]
        if seen.size:
            means[c] = seen[-weeks:].mean()
    return _fill(means, grid)[cols]


def _fill(per_slot: FloatArray, grid: WeekGrid) -> FloatArray:
    """Slots never observed get the overall mean (there are none in a consistent grid)."""
    mean = float(np.nanmean(grid.values)) if np.isfinite(grid.values).any() else 0.0
    return np.where(np.isnan(per_slot), mean, per_slot)


_HW_ALPHA: Final = (0.05, 0.1, 0.2, 0.3, 0.5)
_HW_BETA: Final = (0.0, 0.02, 0.05)
_HW_GAMMA: Final = (0.05, 0.1, 0.2, 0.3)
_HW_PHI: Final = 0.98
_PROFILE_WEEKS: Final = 8


def _holt_winters_fit(
    y: FloatArray, m: int, alpha: float, beta: float, gamma: float
) -> tuple[float, float, FloatArray, float]:
    """Run additive damped Holt-Winters over ``y`` (NaN: no observation, states carry on).

    Returns final level, trend, season (indexed by position modulo m) and the one-step
    squared error summed over observed points after the first season.
    """
    first = y[:m]
    level = float(np.nanmean(first)) if np.isfinite(first).any() else 0.0
    trend = 0.0
    season = np.where(np.isnan(first), 0.0, first - level)
    sse = 0.0
    phi = _HW_PHI
    for i in range(m, y.size):
        s_i = season[i % m]
        obs = y[i]
        if obs != obs:  # NaN: no observation, move the states forward unchanged
            level = level + phi * trend
            trend = phi * trend
            continue
        err = obs - (level + phi * trend + s_i)
        sse += err * err
        new_level = alpha * (obs - s_i) + (1 - alpha) * (level + phi * trend)
        trend = beta * (new_level - level) + (1 - beta) * phi * trend
        season[i % m] = gamma * (obs - new_level) + (1 - gamma) * s_i
        level = new_level
    return level, trend, season, sse


def _holt_winters(grid: WeekGrid, positions: IntArray) -> FloatArray:
    """Top-down: Holt-Winters on daily totals (weekly season), split by intraday profile.

    Smoothing a week of half-hours directly lets the level chase every busy hour; daily
    totals carry the trend and the weekday pattern, and each weekday's average intraday
    shape over the last weeks distributes them.
    """
    m = grid.slots.size
    day_of_slot = grid.slots // DAY
    days = np.unique(day_of_slot)
    column = np.searchsorted(days, day_of_slot)
    # Daily totals, NaN for days not fully observed.
    member = np.zeros((m, days.size))
    member[np.arange(m), column] = 1.0
    totals = np.nan_to_num(grid.values, nan=0.0) @ member
    totals[(np.isnan(grid.values) @ member) > 0] = np.nan
    y = totals.ravel()
    observed = np.nonzero(~np.isnan(y))[0]
    if observed.size < 2 * days.size:
        raise InvalidInput("holt-winters needs at least two weeks of history", field="method")
    y = y[: observed[-1] + 1]
    best: tuple[float, float, float, float] | None = None
    for alpha, beta, gamma in product(_HW_ALPHA, _HW_BETA, _HW_GAMMA):
        sse = _holt_winters_fit(y, days.size, alpha, beta, gamma)[3]
        if best is None or sse < best[0]:
            best = (sse, alpha, beta, gamma)
    assert best is not None
    level, trend, season, _ = _holt_winters_fit(y, days.size, *best[1:])
    # Intraday shares per slot over the last complete weeks of each weekday.
    shares = grid.values / np.where(totals > 0, totals, np.nan)[:, column]
    recent = shares[-_PROFILE_WEEKS - 1 :]
    seen = ~np.isnan(recent)
    counts = seen.sum(axis=0)
    profile = np.where(
        counts > 0,
        np.where(seen, recent, 0.0).sum(axis=0) / np.maximum(counts, 1),
        1.0 / np.bincount(column)[column],
    )
    rows, cols = np.divmod(positions, m)
    day_pos = rows * days.size + column[cols]
    h = (day_pos - (y.size - 1)).astype(np.float64)
    damp = _HW_PHI * (1 - _HW_PHI**h) / (1 - _HW_PHI)
    daily = level + damp * trend + season[day_pos % days.size]
    out: FloatArray = np.maximum(daily, 0.0) * profile[cols]
    return out


_BLEND_LEVEL_WEEKS: Final = 4
_BLEND_PROFILE_WEEKS: Final = 20


def _day_columns(grid: WeekGrid) -> tuple[IntArray, int]:
    """Day index (0.. within the open weekdays) of each slot, and the number of open days."""
    day_of_slot = grid.slots // DAY
    days = np.unique(day_of_slot)
    column: IntArray = np.searchsorted(days, day_of_slot).astype(np.int64)
    return column, int(days.size)


def _daily_totals(grid: WeekGrid, column: IntArray, ndays: int) -> FloatArray:
    """Calls per (week, open weekday); NaN where the day is not fully observed."""
    member = np.zeros((grid.slots.size, ndays))
    member[np.arange(grid.slots.size), column] = 1.0
    totals: FloatArray = np.nan_to_num(grid.values, nan=0.0) @ member
    totals[(np.isnan(grid.values) @ member) > 0] = np.nan
    return totals


def _top_down_median(grid: WeekGrid, positions: IntArray) -> FloatArray:
    """Median daily total per weekday (last complete weeks) x pooled intraday profile."""
    column, ndays = _day_columns(grid)
    totals = _daily_totals(grid, column, ndays)
    complete = ~np.isnan(totals).any(axis=1)
    if not complete.any():
        raise InvalidInput("blend needs at least one complete week of history", field="method")
    level = np.median(totals[complete][-_BLEND_LEVEL_WEEKS:], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = (grid.values / totals[:, column])[complete][-_BLEND_PROFILE_WEEKS:]
    shares[~np.isfinite(shares)] = np.nan
    # One intraday shape per time of day, pooled over the weekdays open then.
    _, tod = np.unique(grid.slots % DAY, return_inverse=True)
    seen = ~np.isnan(shares)
    sums = np.bincount(tod, weights=np.where(seen, shares, 0.0).sum(axis=0))
    counts = np.bincount(tod, weights=seen.sum(axis=0).astype(np.float64))
    pooled = np.where(counts > 0, sums / np.maximum(counts, 1.0), 0.0)[tod]
    per_day = np.bincount(column, weights=pooled, minlength=ndays)
    profile = np.where(
        per_day[column] > 0,
        pooled / np.where(per_day > 0, per_day, 1.0)[column],
        1.0 / np.bincount(column, minlength=ndays)[column],
    )
    cols = positions % grid.slots.size
    out: FloatArray = level[column[cols]] * profile[cols]
    return out


def _blend(grid: WeekGrid, positions: IntArray) -> FloatArray:
    """Equal-weight average of weekday-average and the median top-down forecast."""
    out: FloatArray = 0.5 * _weekday_average(grid, positions) + 0.5 * _top_down_median(
        grid, positions
    )
    return out


def _predict(grid: WeekGrid, method: Method, positions: IntArray) -> FloatArray:
    if method == "seasonal-naive":
        out = _seasonal_naive(grid, positions)
    elif method == "weekday-average":
        out = _weekday_average(grid, positions)
    elif method == "holt-winters":
        out = _holt_winters(grid, positions)
    elif method == "blend":
        out = _blend(grid, positions)
    else:
        raise InvalidInput(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return np.maximum(out, 0.0)


def future_positions(grid: WeekGrid, horizon: int) -> IntArray:
    """Flat positions of the open intervals starting within ``horizon`` s after the history."""
    end = int(grid.times(np.array([grid.last]))[0]) + grid.interval
    count = (horizon // WEEK + 2) * grid.slots.size
    pos = np.arange(grid.last + 1, grid.last + 1 + count, dtype=np.int64)
    times = grid.times(pos)
    keep: IntArray = pos[times < end + horizon]
    return keep


def forecast(grid: WeekGrid, method: Method, horizon: int) -> tuple[IntArray, FloatArray]:
    """Interval starts (epoch seconds) and forecast calls for ``horizon`` s after the history."""
    positions = future_positions(grid, horizon)
    return grid.times(positions), _predict(grid, method, positions)


def backtest(grid: WeekGrid, methods: tuple[Method, ...], weeks: int) -> dict[Method, Score]:
    """Rolling-origin backtest: for each of the last ``weeks`` weeks, fit on what came before
    and forecast that week. Methods that cannot run on the shorter history are left out.

    Scores are pooled over the folds, per interval and per day (a day counts when all its
    open intervals were observed)."""
    m = grid.slots.size
    flat = grid.flat
    column, ndays = _day_columns(grid)
    member = np.zeros((m, ndays))
    member[np.arange(m), column] = 1.0
    errors: dict[Method, list[tuple[FloatArray, FloatArray, FloatArray, FloatArray]]] = {
        k: [] for k in methods
    }
    for fold in range(weeks, 0, -1):
        cut = grid.last - fold * m  # last position the fold may see
        if cut < m:
            continue
        train = _truncate(grid, cut)
        positions = np.arange(cut + 1, cut + 1 + m, dtype=np.int64)
        actual = flat[positions]
        seen = ~np.isnan(actual)
        if not seen.any():
            continue
        # The fold's week starts mid-week in general: day j of it is the day of its slot.
        day = (positions // m - positions[0] // m) * ndays + column[positions % m]
        full_day = np.bincount(day, weights=(~seen).astype(np.float64)) == 0
        for method in methods:
            try:
                predicted = _predict(train, method, positions)
            except InvalidInput:
                continue
            keep = full_day & (np.bincount(day) > 0)
            daily_p = np.bincount(day, weights=np.where(seen, predicted, 0.0))[keep]
            daily_a = np.bincount(day, weights=np.where(seen, actual, 0.0))[keep]
            errors[method].append((predicted[seen], actual[seen], daily_p, daily_a))
    scores: dict[Method, Score] = {}
    for method, folds in errors.items():
        if not folds:
            continue
        predicted = np.concatenate([f[0] for f in folds])
        actual = np.concatenate([f[1] for f in folds])
        daily_p = np.concatenate([f[2] for f in folds])
        daily_a = np.concatenate([f[3] for f in folds])
        total = float(actual.sum())
        err = predicted - actual
        scores[method] = Score(
            wape=_wape(predicted, actual),
            mae=float(np.abs(err).mean()),
            bias=float(err.sum() / total) if total > 0 else float("nan"),
            folds=len(folds),
            mape=_mape(predicted, actual),
            daily_wape=_wape(daily_p, daily_a),
            daily_mape=_mape(daily_p, daily_a),
        )
    return scores


def _wape(predicted: FloatArray, actual: FloatArray) -> float:
    total = float(actual.sum())
    return float(np.abs(predicted - actual).sum() / total) if total > 0 else float("nan")


def _mape(predicted: FloatArray, actual: FloatArray) -> float:
    """Mean absolute percentage error over the points with a positive actual."""
    pos = actual > 0
    if not pos.any():
        return float("nan")
    return float(np.mean(np.abs(predicted[pos] - actual[pos]) / actual[pos]))


def choose_method(scores: dict[Method, Score]) -> Method:
    """The method with the lowest backtest WAPE (seasonal-naive when nothing could be scored)."""
    ranked = sorted((s.wape, METHODS.index(k), k) for k, s in scores.items() if np.isfinite(s.wape))
    return ranked[0][2] if ranked else "seasonal-naive"
