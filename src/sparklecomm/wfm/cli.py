"""Command line for workforce management: ``erlang b|c|a``, ``staff``, ``forecast``,
``schedule`` and ``simulate``.

The only module of :mod:`sparklecomm.wfm` that reads or writes files (``simulate`` runs
:mod:`sparklecomm.sim`, imported when the command runs so the others start fast).

Mount on the main CLI with::

    from sparklecomm.wfm.cli import erlang_app, register
    app.add_typer(erlang_app, name="erlang")
    register(app)  # adds the top-level staff, forecast, schedule and simulate commands

All times are in seconds. Bad input is reported on stderr, naming the option or the
file line, with exit status 2; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import numpy as np
import typer

from sparklecomm.core.errors import DomainError
from sparklecomm.wfm.erlang import (
    erlang_a_metrics,
    erlang_b,
    erlang_c_metrics,
    offered_load,
)
from sparklecomm.wfm.forecast import (
    METHODS,
    WEEK,
    Method,
    Score,
    backtest,
    choose_method,
    parse_duration,
    week_grid,
)
from sparklecomm.wfm.forecast import forecast as make_forecast
from sparklecomm.wfm.staffing import Targets, required_agents

EXIT_USAGE = 2

erlang_app = typer.Typer(
    help="Erlang B, C and A queueing formulas (times in seconds).",
    no_args_is_help=True,
    add_completion=False,
)


class SlBasis(StrEnum):
    offered = "offered"
    answered = "answered"
    offered_less_short_abandons = "offered_less_short_abandons"
    short_abandons_met = "short_abandons_met"


class AsaBasisChoice(StrEnum):
    answered = "answered"
    offered = "offered"


class ModelChoice(StrEnum):
    c = "c"
    a = "a"


class MethodChoice(StrEnum):
    auto = "auto"
    seasonal_naive = "seasonal-naive"
    weekday_average = "weekday-average"
    holt_winters = "holt-winters"
    blend = "blend"


def _fail(message: str) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


@contextmanager
def _domain_errors() -> Iterator[None]:
    """Turn the library's input errors into a message and exit status 2."""
    try:
        yield
    except DomainError as exc:
        _fail(exc.detail)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity: an unstable queue's ASA prints as null
    return value


def _emit_json(payload: Any) -> None:
    if isinstance(payload, dict):
        payload = {k: _json_value(v) for k, v in payload.items()}
    elif isinstance(payload, list):
        payload = [{k: _json_value(v) for k, v in row.items()} for row in payload]
    typer.echo(json.dumps(payload))


def _check(name: str, value: float, *, positive: bool = False, fraction: bool = False) -> None:
    if not math.isfinite(value):
        _fail(f"{name} must be a finite number (got {value})")
    if positive and value <= 0:
        _fail(f"{name} must be greater than 0 (got {value:g})")
    if not positive and value < 0:
        _fail(f"{name} must not be negative (got {value:g})")
    if fraction and not 0 < value < 1:
        _fail(f"{name} must be a fraction between 0 and 1, e.g. 0.8 (got {value:g})")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _seconds(x: float) -> str:
    return "infinite" if not math.isfinite(x) else f"{x:.1f} s"


def _lines(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
CallsOpt = Annotated[float, typer.Option("--calls", help="Calls offered in the interval.")]
IntervalOpt = Annotated[float, typer.Option("--interval", help="Interval length, seconds.")]
AhtOpt = Annotated[float, typer.Option("--aht", help="Average handle time, seconds.")]
TargetOpt = Annotated[float, typer.Option("--target", help="Service-level answer time, seconds.")]


@erlang_app.command("b")
def erlang_b_command(
    traffic: Annotated[float, typer.Option("--traffic", help="Offered load, Erlangs.")],
    lines: Annotated[int, typer.Option("--lines", help="Number of lines (servers).")],
    as_json: JsonOpt = False,
) -> None:
    """Blocking probability of a loss system (Erlang B)."""
    _check("--traffic", traffic)
    if lines < 0:
        _fail(f"--lines must not be negative (got {lines})")
    with _domain_errors():
        blocking = float(erlang_b(traffic, lines))
    if as_json:
        _emit_json({"blocking": blocking})
    else:
        _lines(
            [
                ("Offered load", f"{traffic:g} Erlangs"),
                ("Lines", str(lines)),
                ("Blocking", f"{100 * blocking:.3f} %"),
            ]
        )


def _queue_inputs(calls: float, interval: float, aht: float, agents: int, target: float) -> float:
    _check("--calls", calls)
    _check("--interval", interval, positive=True)
    _check("--aht", aht, positive=True)
    _check("--target", target)
    if agents < 0:
        _fail(f"--agents must not be negative (got {agents})")
    return float(offered_load(calls, interval, aht))


@erlang_app.command("c")
def erlang_c_command(
    calls: CallsOpt,
    aht: AhtOpt,
    agents: Annotated[int, typer.Option("--agents", help="Agents on the phones.")],
    interval: IntervalOpt = 1800.0,
    target: TargetOpt = 20.0,
    as_json: JsonOpt = False,
) -> None:
    """Waiting probability, service level, ASA and occupancy (Erlang C, no abandonment)."""
    traffic = _queue_inputs(calls, interval, aht, agents, target)
    if calls > 0 and agents <= traffic:
        _fail(
            f"offered load {traffic:g} Erlangs needs more than --agents {agents}: with "
            "Erlang C the queue would grow without end (add agents, or use `erlang a` "
            "with --patience)"
        )
    with _domain_errors():
        m = erlang_c_metrics(traffic, agents, aht, target)
    _report_queue(traffic, agents, target, m.row(), as_json)


def _report_queue(
    traffic: float,
    agents: int,
    target: float,
    row: dict[str, Any],
    as_json: bool,
    *,
    sl_basis: str | None = None,
    asa_basis: str | None = None,
) -> None:
    """Print one queue's figures (Erlang C, or Erlang A when the bases are given)."""
    out: dict[str, Any] = {"traffic": traffic, "agents": agents}
    for key in ("p_wait", "service_level", "asa", "occupancy"):
        out[key] = row[key]
    erlang_a = sl_basis is not None
    if erlang_a:
        out["p_abandon"] = row["p_abandon"]
    if as_json:
        _emit_json(out)
        return
    sl_note = f" (of {sl_basis})" if erlang_a else ""
    asa_note = f" (of {asa_basis} calls)" if erlang_a else ""
    lines = [
        ("Offered load", f"{traffic:.3f} Erlangs"),
        ("Agents", str(agents)),
        ("P(wait)", _pct(out["p_wait"])),
        ("Service level", f"{_pct(out['service_level'])} answered within {target:g} s{sl_note}"),
        ("ASA", f"{_seconds(out['asa'])}{asa_note}"),
    ]
    if erlang_a:
        lines.append(("Abandoned", _pct(out["p_abandon"])))
    lines.append(("Occupancy", _pct(out["occupancy"])))
    _lines(lines)


@erlang_app.command("a")
def erlang_a_command(
    calls: CallsOpt,
    aht: AhtOpt,
    agents: Annotated[int, typer.Option("--agents", help="Agents on the phones.")],
    patience: Annotated[
        float, typer.Option("--patience", help="Callers' mean patience before hanging up, s.")
    ],
    interval: IntervalOpt = 1800.0,
    target: TargetOpt = 20.0,
    sl_basis: Annotated[
        SlBasis, typer.Option("--sl-basis", help="What the service level counts.")
    ] = SlBasis.offered,
    asa_basis: Annotated[
        AsaBasisChoice, typer.Option("--asa-basis", help="Calls the ASA averages over.")
    ] = AsaBasisChoice.answered,
    as_json: JsonOpt = False,
) -> None:
    """Queue with abandonment (Erlang A, exponential patience).

    Service level defaults to calls answered within --target over calls offered; ASA to
    the mean wait of answered calls.
    """
    traffic = _queue_inputs(calls, interval, aht, agents, target)
    _check("--patience", patience, positive=True)
    if agents == 0 and calls > 0:
        _fail("--agents must be at least 1 when calls are offered")
    with _domain_errors():
        m = erlang_a_metrics(
            traffic,
            agents,
            aht,
            patience,
            target,
            sl_basis=sl_basis.value,
            asa_basis=asa_basis.value,
        )
    _report_queue(
        traffic,
        agents,
        target,
        m.row(),
        as_json,
        sl_basis=sl_basis.value,
        asa_basis=asa_basis.value,
    )


def _read_intervals(path: Path) -> tuple[list[str], list[float], list[float]]:
    """Rows of a ``start,calls,aht`` CSV; errors name the file line."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        _fail(f"cannot read --input {path}: {exc.strerror}")
    starts: list[str] = []
    calls: list[float] = []
    ahts: list[float] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            _fail(f"{path} is empty; expected a header start,calls,aht")
        except (csv.Error, UnicodeDecodeError) as exc:
            _fail(f"{path} line 1: not a CSV header ({exc})")
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("start", "calls", "aht") if c not in names]
        if missing:
            _fail(f"{path} line 1: missing column(s) {', '.join(missing)} (have {header})")
        col = {c: names.index(c) for c in ("start", "calls", "aht")}
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < len(names):
                    _fail(f"{path} line {line}: expected {len(names)} fields, got {len(row)}")
                values = []
                for name, positive in (("calls", False), ("aht", True)):
                    text = row[col[name]].strip()
                    try:
                        value = float(text)
                    except ValueError:
                        _fail(f"{path} line {line}: {name} {text!r} is not a number")
                    if not math.isfinite(value) or value < 0 or (positive and value == 0):
                        rule = "greater than 0" if positive else "0 or more"
                        _fail(f"{path} line {line}: {name} must be {rule} (got {text})")
                    values.append(value)
                starts.append(row[col["start"]].strip())
                calls.append(values[0])
                ahts.append(values[1])
        except (csv.Error, UnicodeDecodeError) as exc:
            _fail(f"{path} line {reader.line_num}: malformed CSV ({exc})")
    if not starts:
        _fail(f"{path} has a header but no intervals")
    return starts, calls, ahts


def staff(
    calls: Annotated[
        float | None, typer.Option("--calls", help="Calls offered in the interval.")
    ] = None,
    aht: Annotated[float | None, typer.Option("--aht", help="Average handle time, s.")] = None,
    interval: IntervalOpt = 1800.0,
    sl: Annotated[
        float | None,
        typer.Option("--sl", help="Service-level target as a fraction, e.g. 0.8."),
    ] = None,
    target: TargetOpt = 20.0,
    asa: Annotated[float | None, typer.Option("--asa", help="Maximum ASA, seconds.")] = None,
    max_abandon: Annotated[
        float | None,
        typer.Option("--max-abandon", help="Maximum abandon rate, fraction (Erlang A)."),
    ] = None,
    max_occupancy: Annotated[
        float | None, typer.Option("--max-occupancy", help="Maximum occupancy, fraction.")
    ] = None,
    shrinkage: Annotated[
        float, typer.Option("--shrinkage", help="Share of paid time off the phones.")
    ] = 0.0,
    model: Annotated[
        ModelChoice, typer.Option("--model", help="c: Erlang C; a: Erlang A (needs --patience).")
    ] = ModelChoice.c,
    patience: Annotated[
        float | None, typer.Option("--patience", help="Mean patience, seconds (Erlang A).")
    ] = None,
    sl_basis: Annotated[
        SlBasis, typer.Option("--sl-basis", help="What the service level counts (Erlang A).")
    ] = SlBasis.offered,
    asa_basis: Annotated[
        AsaBasisChoice, typer.Option("--asa-basis", help="Calls the ASA averages over.")
    ] = AsaBasisChoice.answered,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="CSV with columns start,calls,aht: one row per interval."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Agents needed to meet service targets, and agents to schedule after shrinkage.

    One interval from --calls/--aht, or many from --input (CSV out, or JSON with --json).
    """
    _check("--interval", interval, positive=True)
    _check("--target", target)
    _check("--shrinkage", shrinkage)
    if shrinkage >= 1:
        _fail(f"--shrinkage must be below 1 (got {shrinkage:g})")
    if sl is not None:
        _check("--sl", sl, fraction=True)
    if asa is not None:
        _check("--asa", asa, positive=True)
    if max_abandon is not None:
        _check("--max-abandon", max_abandon, fraction=True)
    if max_occupancy is not None:
        _check("--max-occupancy", max_occupancy, positive=True)
        if max_occupancy > 1:
            _fail(f"--max-occupancy must be at most 1 (got {max_occupancy:g})")
    if sl is None and asa is None and max_abandon is None and max_occupancy is None:
        _fail("give at least one target: --sl, --asa, --max-abandon or --max-occupancy")
    if model is ModelChoice.a:
        if patience is None:
            _fail("--model a needs --patience (callers' mean patience in seconds)")
        _check("--patience", patience, positive=True)
    elif max_abandon is not None:
        _fail("--max-abandon needs --model a: Erlang C has no abandonment")
    targets = Targets(
        service_level=sl,
        target_time=target,
        asa=asa,
        abandon_rate=max_abandon,
        max_occupancy=max_occupancy,
        sl_basis=sl_basis.value,
        asa_basis=asa_basis.value,
    )

    if input_file is not None:
        if calls is not None or aht is not None:
            _fail("use either --input or --calls/--aht, not both")
        starts, call_list, aht_list = _read_intervals(input_file)
    else:
        if calls is None or aht is None:
            _fail("give --calls and --aht (or --input FILE.csv)")
        _check("--calls", calls)
        _check("--aht", aht, positive=True)
        starts, call_list, aht_list = [], [calls], [aht]

    call_arr = np.asarray(call_list, dtype=np.float64)
    aht_arr = np.asarray(aht_list, dtype=np.float64)
    with _domain_errors():
        traffic = offered_load(call_arr, interval, aht_arr)
        result = required_agents(
            traffic,
            aht_arr,
            targets,
            model=model.value,
            patience=patience,
            shrinkage=shrinkage,
        )
    rows: list[dict[str, Any]] = []
    for i in range(call_arr.size):
        metrics = result.metrics.row(i)
        row: dict[str, Any] = {}
        if input_file is not None:
            row.update(start=starts[i], calls=call_list[i], aht=aht_list[i])
        row.update(
            traffic=metrics["traffic"],
            agents=int(result.agents[i]),
            scheduled=int(result.scheduled[i]),
            p_wait=metrics["p_wait"],
            service_level=metrics["service_level"],
            asa=metrics["asa"],
            occupancy=metrics["occupancy"],
        )
        if model is ModelChoice.a:
            row["p_abandon"] = metrics["p_abandon"]
        rows.append(row)

    if input_file is not None:
        if as_json:
            _emit_json(rows)
        else:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(list(rows[0]))
            for row in rows:
                writer.writerow([_csv_value(v) for v in row.values()])
        return
    out = rows[0]
    if as_json:
        _emit_json(out)
        return
    lines = [
        ("Offered load", f"{out['traffic']:.3f} Erlangs"),
        ("Agents on the phones", str(out["agents"])),
        ("Scheduled agents", f"{out['scheduled']} (shrinkage {_pct(shrinkage)})"),
        ("Service level", f"{_pct(out['service_level'])} answered within {target:g} s"),
        ("ASA", _seconds(out["asa"])),
        ("Occupancy", _pct(out["occupancy"])),
        ("P(wait)", _pct(out["p_wait"])),
    ]
    if model is ModelChoice.a:
        lines.append(("Abandoned", _pct(out["p_abandon"])))
    _lines(lines)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.6g}"
    return value


_EPOCH = datetime(1970, 1, 1)
_METHOD_OF: dict[MethodChoice, Method] = {
    MethodChoice.seasonal_naive: "seasonal-naive",
    MethodChoice.weekday_average: "weekday-average",
    MethodChoice.holt_winters: "holt-winters",
    MethodChoice.blend: "blend",
}


def _read_history(path: Path) -> tuple[list[int], list[float]]:
    """``timestamp,calls`` rows as epoch seconds of local wall-clock time; errors name the line."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        _fail(f"cannot read --history {path}: {exc.strerror}")
    times: list[int] = []
    calls: list[float] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            _fail(f"{path} is empty; expected a header timestamp,calls")
        except (csv.Error, UnicodeDecodeError) as exc:
            _fail(f"{path} line 1: not a CSV header ({exc})")
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("timestamp", "calls") if c not in names]
        if missing:
            _fail(f"{path} line 1: missing column(s) {', '.join(missing)} (have {header})")
        ti, ci = names.index("timestamp"), names.index("calls")
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < len(names):
                    _fail(f"{path} line {line}: expected {len(names)} fields, got {len(row)}")
                text = row[ti].strip()
                try:
                    # Wall-clock time: a time zone, if given, is dropped, not converted.
                    stamp = datetime.fromisoformat(text).replace(tzinfo=None)
                except ValueError:
                    _fail(f"{path} line {line}: timestamp {text!r} is not ISO 8601")
                value_text = row[ci].strip()
                try:
                    value = float(value_text)
                except ValueError:
                    _fail(f"{path} line {line}: calls {value_text!r} is not a number")
                if not math.isfinite(value) or value < 0:
                    _fail(f"{path} line {line}: calls must be 0 or more (got {value_text})")
                seconds = int((stamp - _EPOCH).total_seconds())
                if times and seconds <= times[-1]:
                    _fail(f"{path} line {line}: timestamps must increase ({text})")
                times.append(seconds)
                calls.append(value)
        except (csv.Error, UnicodeDecodeError) as exc:
            _fail(f"{path} line {reader.line_num}: malformed CSV ({exc})")
    if not times:
        _fail(f"{path} has a header but no rows")
    return times, calls


def _pct_cell(value: float) -> str:
    return f"{100 * value:.1f}%" if math.isfinite(value) else "-"


def _iso(seconds: int) -> str:
    return str(np.datetime64(int(seconds), "s"))


def forecast(
    history: Annotated[
        Path, typer.Option("--history", help="CSV with columns timestamp,calls (local time).")
    ],
    horizon: Annotated[
        str, typer.Option("--horizon", help="How far ahead: e.g. 28d, 4w, 12h.")
    ] = "28d",
    interval: Annotated[
        int, typer.Option("--interval", help="Forecast interval length, seconds.")
    ] = 1800,
    method: Annotated[
        MethodChoice, typer.Option("--method", help="Forecasting method; auto picks by backtest.")
    ] = MethodChoice.auto,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the forecast CSV here (default stdout).")
    ] = None,
    backtest_span: Annotated[
        str | None,
        typer.Option("--backtest", help="Backtest over the last weeks, e.g. 4w (auto: 4w)."),
    ] = None,
    aht: Annotated[
        float | None,
        typer.Option("--aht", help="Add an aht column (s), so the file feeds `staff --input`."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Forecast calls per interval for the open hours seen in the history.

    Writes start,calls[,aht] rows. With --method auto (default) every method is scored by
    a rolling-origin backtest (WAPE) and the best one is used; --backtest prints MAPE and
    WAPE per method at the interval and the daily level.
    """
    if interval <= 0:
        _fail(f"--interval must be greater than 0 (got {interval})")
    if aht is not None:
        _check("--aht", aht, positive=True)
    with _domain_errors():
        horizon_s = parse_duration(horizon)
        weeks = 0
        if backtest_span is not None or method is MethodChoice.auto:
            span = parse_duration(backtest_span or "4w")
            if span % WEEK:
                _fail(f"--backtest must be whole weeks, e.g. 4w or 28d (got {backtest_span})")
            weeks = span // WEEK
    times, calls = _read_history(history)
    with _domain_errors():
        grid = week_grid(times, calls, interval)
        requested = _METHOD_OF.get(method)
        candidates = METHODS if requested is None else (requested,)
        scores: dict[Method, Score] = backtest(grid, candidates, weeks) if weeks else {}
        chosen = choose_method(scores) if requested is None else requested
        starts, values = make_forecast(grid, chosen, horizon_s)

    header = ["start", "calls"] + (["aht"] if aht is not None else [])
    table = [
        [_iso(int(t)), f"{v:.3f}"] + ([f"{aht:g}"] if aht is not None else [])
        for t, v in zip(starts, values, strict=True)
    ]
    if output is not None:
        try:
            with output.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(table)
        except OSError as exc:
            _fail(f"cannot write --output {output}: {exc.strerror}")
    summary: dict[str, Any] = {
        "method": chosen,
        "interval": interval,
        "horizon": horizon_s,
        "intervals": len(table),
        "backtest": {
            k: {
                "wape": v.wape,
                "mape": v.mape,
                "daily_wape": v.daily_wape,
                "daily_mape": v.daily_mape,
                "mae": v.mae,
                "bias": v.bias,
                "folds": v.folds,
            }
            for k, v in scores.items()
        },
    }
    if as_json:
        if output is None:
            summary["forecast"] = [
                {"start": _iso(int(t)), "calls": float(v)}
                for t, v in zip(starts, values, strict=True)
            ]
        else:
            summary["output"] = str(output)
        typer.echo(json.dumps(summary))
        return
    if output is None:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(table)
    report = sys.stdout if output is not None else sys.stderr
    how = "chosen by backtest" if method is MethodChoice.auto else "as requested"
    print(f"Method: {chosen} ({how})", file=report)
    if scores:
        print(f"Backtest over the last {weeks} weeks (rolling origin, 1 week ahead):", file=report)
        print(
            f"  {'method':<16} {'interval MAPE':>13} {'WAPE':>6}  {'daily MAPE':>10} "
            f"{'WAPE':>6}  {'MAE':>8}  {'bias':>6}",
            file=report,
        )
        for name, sc in sorted(scores.items(), key=lambda kv: kv[1].wape):
            print(
                f"  {name:<16} {_pct_cell(sc.mape):>13} {_pct_cell(sc.wape):>6}  "
                f"{_pct_cell(sc.daily_mape):>10} {_pct_cell(sc.daily_wape):>6}  "
                f"{sc.mae:8.1f}  {100 * sc.bias:+5.1f}%  ({sc.folds} weeks)",
                file=report,
            )
    if output is not None:
        print(f"Wrote {len(table)} intervals to {output}", file=report)


# --- schedule ---------------------------------------------------------------------------------


def _read_requirements(path: Path, column: str | None) -> tuple[list[datetime], list[float], str]:
    """``start`` and the requirement column of a CSV (``staff --input`` output)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        _fail(f"cannot read --requirements {path}: {exc.strerror}")
    starts: list[datetime] = []
    values: list[float] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            _fail(f"{path} is empty; expected a header with start and agents or scheduled")
        except (csv.Error, UnicodeDecodeError) as exc:
            _fail(f"{path} line 1: not a CSV header ({exc})")
        names = [h.strip().lower() for h in header]
        if "start" not in names:
            _fail(f"{path} line 1: missing column start (have {header})")
        if column is None:
            found = next((c for c in ("scheduled", "agents", "required") if c in names), None)
            if found is None:
                _fail(
                    f"{path} line 1: no requirement column; expected scheduled or agents "
                    f"(have {header}), or name one with --column"
                )
            column = found
        elif column.strip().lower() not in names:
            _fail(f"{path} line 1: no column {column!r} (have {header})")
        column = column.strip().lower()
        si, vi = names.index("start"), names.index(column)
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) <= max(si, vi):
                    _fail(f"{path} line {line}: expected {len(names)} fields, got {len(row)}")
                text = row[si].strip()
                try:
                    # Wall-clock time: a time zone, if given, is dropped, not converted.
                    moment = datetime.fromisoformat(text).replace(tzinfo=None)
                except ValueError:
                    _fail(f"{path} line {line}: start {text!r} is not ISO 8601")
                cell = row[vi].strip()
                try:
                    value = float(cell)
                except ValueError:
                    _fail(f"{path} line {line}: {column} {cell!r} is not a number")
                if not math.isfinite(value) or value < 0:
                    _fail(f"{path} line {line}: {column} must be 0 or more (got {cell})")
                if starts and moment <= starts[-1]:
                    _fail(f"{path} line {line}: start times must increase ({text})")
                starts.append(moment)
                values.append(value)
        except (csv.Error, UnicodeDecodeError) as exc:
            _fail(f"{path} line {reader.line_num}: malformed CSV ({exc})")
    if not starts:
        _fail(f"{path} has a header but no intervals")
    return starts, values, column


def _read_yaml(path: Path, option: str) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {option} {path}: {exc.strerror}")
    except UnicodeDecodeError:
        _fail(f"{option} {path} is not UTF-8 text")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        _fail(f"{option} {path} is not valid YAML{where}: {problem}")


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes") if moment.second == 0 else moment.isoformat()


def schedule(
    requirements: Annotated[
        Path,
        typer.Option(
            "--requirements",
            help="CSV with start and agents or scheduled columns (`staff --input` output).",
        ),
    ],
    shifts: Annotated[Path, typer.Option("--shifts", help="YAML file of shift types.")],
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the roster CSV here (default stdout).")
    ] = None,
    column: Annotated[
        str | None,
        typer.Option(
            "--column", help="Requirement column (default: scheduled if present, else agents)."
        ),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option("--interval", help="Interval length, s (default: smallest gap in the file)."),
    ] = None,
    allow_shortfall: Annotated[
        bool,
        typer.Option("--allow-shortfall", help="Cover what can be covered instead of failing."),
    ] = False,
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="Seconds the solver may spend.")
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Least-cost shifts (with breaks) covering each interval's requirement.

    Writes one roster row per shift instance (shift, start, end, break start and end,
    count) and prints the coverage per interval. Exit 1 when the shifts cannot cover the
    requirement (the reasons are printed), 2 on bad input.
    """
    from sparklecomm.wfm.schedule import Infeasible, Roster, build_roster, parse_shifts

    if interval is not None:
        _check("--interval", interval, positive=True)
    _check("--time-limit", time_limit, positive=True)
    starts, values, used = _read_requirements(requirements, column)
    with _domain_errors():
        types = parse_shifts(_read_yaml(shifts, "--shifts"))
    try:
        roster: Roster = build_roster(
            starts,
            values,
            types,
            interval=interval,
            allow_shortfall=allow_shortfall,
            time_limit=time_limit,
        )
    except Infeasible as exc:
        typer.echo(f"Error: {exc.detail}", err=True)
        typer.echo("(use --allow-shortfall to get the best partial roster)", err=True)
        raise typer.Exit(1) from None
    except DomainError as exc:
        _fail(exc.detail)

    header = ["shift", "start", "end", "break_start", "break_end", "count"]
    rows = [
        [
            s.shift,
            _stamp(s.start),
            _stamp(s.end),
            ";".join(_stamp(b[0]) for b in s.breaks),
            ";".join(_stamp(b[1]) for b in s.breaks),
            s.count,
        ]
        for s in roster.shifts
    ]
    if output is not None:
        try:
            with output.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(rows)
        except OSError as exc:
            _fail(f"cannot write --output {output}: {exc.strerror}")
    over = np.maximum(roster.scheduled - roster.required, 0.0)
    needed = float(roster.required.sum())
    summary: dict[str, Any] = {
        "requirement_column": used,
        "interval": roster.interval,
        "intervals": len(roster.starts),
        "agents": roster.agents,
        "shift_rows": len(roster.shifts),
        "cost": roster.cost,
        "paid_hours": roster.paid_hours,
        "optimal": roster.optimal,
        "gap": roster.gap,
        "required_agent_intervals": needed,
        "over_coverage": float(over.sum()) / needed if needed > 0 else 0.0,
        "short_intervals": int(np.count_nonzero(roster.shortfall)),
        "coverage": [
            {
                "start": _stamp(t),
                "required": float(r),
                "scheduled": float(c),
                "shortfall": float(sf),
            }
            for t, r, c, sf in zip(
                roster.starts, roster.required, roster.scheduled, roster.shortfall, strict=True
            )
        ],
    }
    if as_json:
        if output is None:
            summary["roster"] = [dict(zip(header, row, strict=True)) for row in rows]
        else:
            summary["output"] = str(output)
        typer.echo(json.dumps(summary))
        return
    report = sys.stdout
    if output is None:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        report = sys.stderr
    how = (
        "optimal" if roster.optimal else f"time limit reached, gap {100 * (roster.gap or 0):.2f} %"
    )
    print(
        f"Roster: {roster.agents} agents on {len(roster.shifts)} shift rows, cost "
        f"{roster.cost:g}, {roster.paid_hours:g} paid hours ({how})",
        file=report,
    )
    met = len(roster.starts) - summary["short_intervals"]
    print(
        f"Coverage: requirement met in {met} of {len(roster.starts)} intervals "
        f"(column {used}); over-coverage {100 * summary['over_coverage']:.1f} % of the "
        "required agent-intervals",
        file=report,
    )
    width = max(len(_stamp(t)) for t in roster.starts)
    print(f"{'start':<{width}}  required  scheduled  over/short", file=report)
    for t, r, c in zip(roster.starts, roster.required, roster.scheduled, strict=True):
        diff = c - r
        print(f"{_stamp(t):<{width}}  {r:8g}  {c:9.4g}  {diff:+10.4g}", file=report)
    if output is not None:
        print(f"Wrote {len(rows)} roster rows to {output}", file=report)


# --- simulate ---------------------------------------------------------------------------------


_SIM_TEXT = (
    ("offered", "Offered", "count"),
    ("answered", "Answered", "count"),
    ("abandoned", "Abandoned", "count"),
    ("short_abandoned", "  of which short", "count"),
    ("service_level", "Service level", "pct"),
    ("asa", "ASA", "s"),
    ("abandon_rate", "Abandon rate", "pct"),
    ("aht", "AHT", "s"),
    ("occupancy", "Occupancy", "pct"),
    ("utilisation", "Utilisation", "pct"),
    ("transfer_rate", "Transfer rate", "pct"),
    ("callbacks_requested", "Callbacks asked", "count"),
    ("overflowed", "Overflowed", "count"),
    ("diverted", "Diverted", "count"),
    ("longest_wait", "Longest wait", "s"),
)


def _sim_value(summary: dict[str, Any], key: str, kind: str) -> str:
    value = summary.get(key)
    if value is None:
        return "-"
    ci = summary.get("ci95", {}).get(key)
    half = (ci[1] - ci[0]) / 2 if ci else None
    if kind == "pct":
        text = f"{100 * value:.1f} %"
        return text + (f" ± {100 * half:.1f}" if half is not None else "")
    if kind == "s":
        text = f"{value:.1f} s"
        return text + (f" ± {half:.1f}" if half is not None else "")
    text = f"{value:.0f}" if half is None else f"{value:.1f}"
    return text + (f" ± {half:.1f}" if half is not None else "")


def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    replications: Annotated[
        int, typer.Option("--replications", "-r", help="Independent replications to run.")
    ] = 1,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            help="Replications run at once, each in its own process (0: one per CPU). "
            "The figures do not depend on it.",
        ),
    ] = 0,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Override the scenario's seed.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Override the simulated seconds.")
    ] = None,
    events: Annotated[
        Path | None, typer.Option("--events", help="Write every event as JSON lines here.")
    ] = None,
    intervals: Annotated[
        Path | None, typer.Option("--intervals", help="Write per-interval KPIs (CSV) here.")
    ] = None,
    roster: Annotated[
        Path | None,
        typer.Option(
            "--roster",
            help="Staff the scenario from this roster CSV (as `sparklecomm schedule` writes): "
            "agents log in, take breaks and log out as rostered.",
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar on stderr (default: when stderr is a terminal).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a scenario on the real routing engine and report its KPIs.

    With --replications N > 1 the figures are means over N independent runs with 95 %
    confidence intervals (`ci95` in JSON, ± half-widths in text). With --roster the
    scenario's agents are replaced by the roster's (each row's agents take the queues and
    skills of the scenario's agent group named like the row's shift, else of its first).
    """
    from sparklecomm.sim import ScenarioError, load_scenario, run_replications, summarize
    from sparklecomm.sim.results import default_jobs
    from sparklecomm.sim.scenario import apply_roster, read_roster

    if replications < 1:
        _fail(f"--replications must be at least 1 (got {replications})")
    if jobs < 0:
        _fail(f"--jobs must not be negative (got {jobs})")
    workers = jobs or default_jobs(replications)
    if seed is not None and seed < 0:
        _fail(f"--seed must not be negative (got {seed})")
    if duration is not None:
        _check("--duration", duration, positive=True)
    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if duration is not None:
        overrides["duration"] = duration
    try:
        sc = load_scenario(scenario, overrides)
    except ScenarioError as exc:
        _fail(f"{scenario}: {exc.detail}")
    if roster is not None:
        try:
            sc = apply_roster(sc, read_roster(roster))
        except ScenarioError as exc:
            _fail(f"--roster {roster}: {exc.detail}")

    event_file = None
    if events is not None:
        try:
            event_file = events.open("w", encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write --events {events}: {exc.strerror}")

    show = progress if progress is not None else sys.stderr.isatty()
    try:
        if show:
            from rich.console import Console
            from rich.progress import Progress

            with Progress(console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task(f"Simulating {scenario.name}", total=1.0)
                results = run_replications(
                    sc,
                    replications,
                    jobs=workers,
                    events_to=event_file,
                    progress=lambda share: bar.update(task, completed=share),
                )
        else:
            results = run_replications(sc, replications, jobs=workers, events_to=event_file)
    finally:
        if event_file is not None:
            event_file.close()
    summary = summarize(sc, results)
    if intervals is not None:
        _write_intervals(intervals, results)
    if as_json:
        _emit_json_deep(summary)
        return
    what = "replication" if replications == 1 else "replications"
    print(
        f"{scenario.name}: {sc.agent_count} agents, {sc.expected_calls:.0f} contacts expected "
        f"over {sc.duration:g} s, {replications} {what} (seed {sc.seed})"
    )
    optional = {"transfer_rate", "callbacks_requested", "overflowed", "diverted"}
    rows = [
        (label, _sim_value(summary, key, kind))
        for key, label, kind in _SIM_TEXT
        if key not in optional or summary.get(key)  # features the scenario does not use
    ]
    _lines(rows)
    for name, q in summary["queues"].items():
        parts = [
            f"offered {_sim_value(q, 'offered', 'count')}",
            f"SL {_sim_value(q, 'service_level', 'pct')}",
            f"ASA {_sim_value(q, 'asa', 's')}",
            f"abandoned {_sim_value(q, 'abandon_rate', 'pct')}",
            f"AHT {_sim_value(q, 'aht', 's')}",
        ]
        typer.echo(f"queue {name}: " + ", ".join(parts))
    if summary["in_progress"]:
        typer.echo(
            f"Note: {summary['in_progress']:.1f} contacts (mean per replication) were still in "
            "progress when the drain ended; they are in no rate (raise drain: in the scenario)"
        )


def _emit_json_deep(payload: Any) -> None:
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return _json_value(value)

    typer.echo(json.dumps(clean(payload)))


def _write_intervals(path: Path, results: Sequence[Any]) -> None:
    header = [
        "replication",
        "start",
        "queue",
        "offered",
        "answered",
        "abandoned",
        "short_abandoned",
        "service_level",
        "asa",
        "abandon_rate",
        "aht",
        "occupancy",
    ]
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for result in results:
                for iv in result.report.intervals:
                    groups = [("all", iv.overall), *iv.queues.items()]
                    for name, k in groups:
                        writer.writerow(
                            [
                                result.replication + 1,
                                iv.start.isoformat(),
                                name,
                                k.offered,
                                k.answered,
                                k.abandoned,
                                k.short_abandoned,
                                _csv_value(k.service_level),
                                _csv_value(k.asa),
                                _csv_value(k.abandon_rate),
                                _csv_value(k.aht),
                                _csv_value(k.occupancy) if name == "all" else "",
                            ]
                        )
    except OSError as exc:
        _fail(f"cannot write --intervals {path}: {exc.strerror}")


def register(app: typer.Typer) -> None:
    """Add the top-level ``staff``, ``forecast``, ``schedule`` and ``simulate`` commands."""
    app.command("staff")(staff)
    app.command("forecast")(forecast)
    app.command("schedule")(schedule)
    app.command("simulate")(simulate)
