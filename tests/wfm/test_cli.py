"""The wfm command line, mounted the way the main `sparklecomm` CLI mounts it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sparklecomm.wfm.cli import erlang_app, register

app = typer.Typer()
app.add_typer(erlang_app, name="erlang")
register(app)
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_erlang_b_json() -> None:
    code, out, _ = run("erlang", "b", "--traffic", "10", "--lines", "17", "--json")
    assert code == 0
    assert json.loads(out) == {"blocking": pytest.approx(0.0129488752247, rel=1e-9)}


def test_erlang_c_json_contract() -> None:
    code, out, _ = run(
        "erlang",
        "c",
        "--calls",
        "100",
        "--interval",
        "1800",
        "--aht",
        "180",
        "--agents",
        "14",
        "--target",
        "20",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"traffic", "agents", "p_wait", "service_level", "asa", "occupancy"}
    assert data["traffic"] == 10.0 and data["agents"] == 14
    assert round(data["p_wait"], 3) == 0.174
    assert round(data["service_level"], 3) == 0.888


def test_erlang_a_json_contract() -> None:
    code, out, _ = run(
        "erlang",
        "a",
        "--calls",
        "100",
        "--interval",
        "1800",
        "--aht",
        "180",
        "--agents",
        "14",
        "--target",
        "20",
        "--patience",
        "300",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert set(data) == {
        "traffic",
        "agents",
        "p_wait",
        "service_level",
        "asa",
        "occupancy",
        "p_abandon",
    }
    assert 0 < data["p_abandon"] < 0.05
    assert 0.888 < data["service_level"] < 1


def test_human_output() -> None:
    code, out, _ = run("erlang", "c", "--calls", "100", "--aht", "180", "--agents", "14")
    assert code == 0
    assert "88.8 % answered within 20 s" in out
    code, out, _ = run(
        "staff", "--calls", "100", "--aht", "180", "--sl", "0.8", "--shrinkage", "0.3"
    )
    assert code == 0
    assert "Agents on the phones  14" in out
    assert "Scheduled agents      20" in out


def test_staff_json() -> None:
    code, out, _ = run(
        "staff",
        "--calls",
        "100",
        "--interval",
        "1800",
        "--aht",
        "180",
        "--sl",
        "0.8",
        "--target",
        "20",
        "--max-occupancy",
        "0.85",
        "--shrinkage",
        "0.3",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert (data["agents"], data["scheduled"]) == (14, 20)
    assert {"service_level", "asa", "occupancy", "p_wait"} <= set(data)
    code, out, _ = run(
        "staff",
        "--calls",
        "100",
        "--aht",
        "180",
        "--sl",
        "0.8",
        "--model",
        "a",
        "--patience",
        "300",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["agents"] == 13 and "p_abandon" in data


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intervals.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_staff_input_csv_and_json(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "start,calls,aht\n2024-05-06T08:00,100,180\n2024-05-06T08:30,0,200\n"
        "2024-05-06T09:00,250.5,240\n",
    )
    code, out, _ = run("staff", "--input", str(path), "--sl", "0.8", "--shrinkage", "0.3")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["start"] for r in rows] == [
        "2024-05-06T08:00",
        "2024-05-06T08:30",
        "2024-05-06T09:00",
    ]
    assert [int(r["agents"]) for r in rows][:2] == [14, 0]
    assert int(rows[0]["scheduled"]) == 20
    code, out, _ = run("staff", "--input", str(path), "--sl", "0.8", "--json")
    assert code == 0
    data = json.loads(out)
    assert len(data) == 3 and data[0]["agents"] == 14 and data[2]["calls"] == 250.5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("start,calls,aht\n08:00,100,180\n08:30,-3,180\n", "line 3"),
        ("start,calls,aht\n08:00,abc,180\n", "line 2: calls 'abc' is not a number"),
        ("start,calls,aht\n08:00,10,0\n", "line 2: aht must be greater than 0"),
        ("start,calls\n08:00,10\n", "missing column(s) aht"),
        ("start,calls,aht\n08:00,10\n", "line 2: expected 3 fields"),
        ("", "is empty"),
        ("start,calls,aht\n", "no intervals"),
    ],
)
def test_staff_input_errors_name_the_line(tmp_path: Path, text: str, needle: str) -> None:
    code, out, err = run("staff", "--input", str(_write(tmp_path, text)), "--sl", "0.8")
    assert code == 2
    assert needle in err
    assert out == ""
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["erlang", "c", "--calls", "-5", "--aht", "180", "--agents", "3"], "--calls"),
        (["erlang", "c", "--calls", "100", "--aht", "180", "--agents", "10"], "10 Erlangs"),
        (["erlang", "c", "--calls", "100", "--aht", "0", "--agents", "10"], "--aht"),
        (["erlang", "b", "--traffic", "-1", "--lines", "3"], "--traffic"),
        (
            ["erlang", "a", "--calls", "10", "--aht", "180", "--agents", "3", "--patience", "0"],
            "--patience",
        ),
        (["staff", "--calls", "100", "--aht", "180"], "at least one target"),
        (["staff", "--calls", "100", "--aht", "180", "--sl", "80"], "--sl"),
        (["staff", "--calls", "100", "--aht", "180", "--sl", "0.8", "--model", "a"], "--patience"),
        (
            ["staff", "--calls", "100", "--aht", "180", "--sl", "0.8", "--shrinkage", "1"],
            "--shrinkage",
        ),
        (["staff", "--calls", "100", "--sl", "0.8"], "--aht"),
        (["staff", "--input", "/nonexistent/x.csv", "--sl", "0.8"], "cannot read"),
    ],
)
def test_bad_input_exits_2_with_a_message(args: list[str], needle: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err


def test_unparseable_number_is_a_usage_error() -> None:
    code, _, err = run("erlang", "c", "--calls", "many", "--aht", "180", "--agents", "3")
    assert code == 2
    assert "--calls" in err


# --- schedule ---------------------------------------------------------------------------------

SHIFTS = """
shifts:
  - name: early
    start: {from: "08:00", to: "09:00", every: 30m}
    length: 4h
    breaks: [{length: 30m, window: [1h, 2h30m]}]
  - name: part
    start: ["10:00", "11:00"]
    length: 2h
    cost: 2.5
"""


def _staff_plan(tmp_path: Path) -> Path:
    """A requirements file written by `staff --input`, as a planner would make it."""
    intervals = _write(
        tmp_path,
        "start,calls,aht\n"
        + "".join(
            f"2024-05-06T{h:02d}:{m:02d},{calls},180\n"
            for (h, m), calls in zip(
                [(h, m) for h in range(8, 13) for m in (0, 30)],
                [20, 40, 60, 60, 80, 80, 60, 40, 30, 20],
                strict=True,
            )
        ),
    )
    code, out, err = run("staff", "--input", str(intervals), "--sl", "0.8")
    assert code == 0, err
    plan = tmp_path / "plan.csv"
    plan.write_text(out, encoding="utf-8")
    return plan


def test_schedule_covers_the_staff_plan(tmp_path: Path) -> None:
    plan = _staff_plan(tmp_path)
    shifts = tmp_path / "shifts.yaml"
    shifts.write_text(SHIFTS, encoding="utf-8")
    roster = tmp_path / "roster.csv"
    code, out, err = run(
        "schedule", "--requirements", str(plan), "--shifts", str(shifts), "--output", str(roster)
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(roster.read_text(encoding="utf-8"))))
    assert rows and set(rows[0]) == {"shift", "start", "end", "break_start", "break_end", "count"}
    assert all(int(r["count"]) > 0 for r in rows)
    assert "Coverage: requirement met in 10 of 10 intervals (column scheduled)" in out
    assert "2024-05-06T08:00" in out and f"Wrote {len(rows)} roster rows" in out
    # JSON: coverage per interval never below the requirement.
    code, out, err = run(
        "schedule",
        "--requirements",
        str(plan),
        "--shifts",
        str(shifts),
        "--json",
        "--column",
        "agents",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["requirement_column"] == "agents" and data["optimal"] is True
    assert all(c["scheduled"] >= c["required"] - 1e-9 for c in data["coverage"])
    assert sum(r["count"] for r in data["roster"]) == data["agents"]


def test_schedule_explains_infeasibility(tmp_path: Path) -> None:
    plan = _staff_plan(tmp_path)
    shifts = tmp_path / "shifts.yaml"
    shifts.write_text(
        "shifts: [{name: morning, start: '08:00', length: 3h, max_count: 50}]\n", encoding="utf-8"
    )
    code, out, err = run("schedule", "--requirements", str(plan), "--shifts", str(shifts))
    assert code == 1 and out == ""
    assert "cannot be covered" in err and "11:00" in err
    assert "no shift type is on the phones then" in err
    assert "Traceback" not in err
    code, out, err = run(
        "schedule", "--requirements", str(plan), "--shifts", str(shifts), "--allow-shortfall"
    )
    assert code == 0
    assert out.startswith("shift,start,end,break_start,break_end,count")
    assert "requirement met in 6 of 10 intervals" in err  # the roster went to stdout


@pytest.mark.parametrize(
    ("shifts_text", "csv_text", "needle"),
    [
        ("shifts: [{name: a, start: '08:00'}]", None, "shifts[0].length is missing"),
        ("shifts: [{name: a, start: '08:00', length: 4h, colour: red}]", None, "shifts[0].colour"),
        ("shifts: [oops", None, "not valid YAML"),
        (None, "start,agents\n2024-05-06T08:00,x\n", "line 2: agents 'x' is not a number"),
        (None, "start,calls\n2024-05-06T08:00,3\n", "no requirement column"),
        (None, "start,agents\nmonday,3\n", "line 2: start 'monday' is not ISO 8601"),
    ],
)
def test_schedule_bad_input_exits_2(
    tmp_path: Path, shifts_text: str | None, csv_text: str | None, needle: str
) -> None:
    shifts = tmp_path / "shifts.yaml"
    shifts.write_text(shifts_text or "shifts: [{name: a, start: '08:00', length: 4h}]\n")
    plan = tmp_path / "plan.csv"
    plan.write_text(csv_text or "start,agents\n2024-05-06T08:00,3\n")
    code, out, err = run("schedule", "--requirements", str(plan), "--shifts", str(shifts))
    assert code == 2, err
    assert out == ""
    assert needle in err
    assert "Traceback" not in err


# --- simulate ---------------------------------------------------------------------------------

SCENARIO = """
seed: 1
duration: 3600
service_level_threshold: 20
queues: [{name: support, strategy: longest-idle}]
agents: [{count: 8, queues: [support], skills: {}}]
arrivals:
  - queue: support
    rate_per_hour: 180
    handle_time: {dist: exponential, mean: 120}
    patience: {dist: exponential, mean: 300}
"""


def _scenario(tmp_path: Path, text: str = SCENARIO) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_simulate_json_contract(tmp_path: Path) -> None:
    code, out, err = run("simulate", str(_scenario(tmp_path)), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {
        "offered",
        "answered",
        "abandoned",
        "service_level",
        "asa",
        "abandon_rate",
        "occupancy",
        "aht",
        "queues",
    } <= set(data)
    assert "ci95" not in data and data["replications"] == 1
    assert data["offered"] == data["answered"] + data["abandoned"]
    assert set(data["queues"]) == {"support"}
    assert data["queues"]["support"]["offered"] == data["offered"]


def test_simulate_replications_events_and_intervals(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    intervals = tmp_path / "intervals.csv"
    code, out, err = run(
        "simulate",
        str(_scenario(tmp_path)),
        "--replications",
        "3",
        "--json",
        "--events",
        str(events),
        "--intervals",
        str(intervals),
        "--duration",
        "1800",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["replications"] == 3 and data["duration"] == 1800
    for key in ("service_level", "asa", "abandon_rate", "occupancy", "aht"):
        low, high = data["ci95"][key]
        assert low <= data[key] <= high
    assert "ci95" in data["queues"]["support"]
    lines = events.read_text(encoding="utf-8").splitlines()
    assert len(lines) == data["events"]
    first = json.loads(lines[0])
    assert first["replication"] == 1 and first["type"] == "queue.created"
    assert {json.loads(line)["replication"] for line in lines} == {1, 2, 3}
    rows = list(csv.DictReader(io.StringIO(intervals.read_text(encoding="utf-8"))))
    assert {r["queue"] for r in rows} == {"all", "support"}
    assert {r["replication"] for r in rows} == {"1", "2", "3"}


def test_simulate_text(tmp_path: Path) -> None:
    code, out, err = run("simulate", str(_scenario(tmp_path)), "-r", "2", "--no-progress")
    assert code == 0, err
    assert "scenario.yaml: 8 agents, 180 contacts expected over 3600 s, 2 replications" in out
    assert "Service level" in out and " ± " in out
    assert "queue support: offered" in out


@pytest.mark.parametrize(
    ("text", "args", "needle"),
    [
        (SCENARIO.replace("mean: 120", "mean: -120"), [], "arrivals[0].handle_time.mean"),
        (SCENARIO.replace("queues: [support]", "queues: [suport]"), [], "no queue named 'suport'"),
        (SCENARIO.replace("duration: 3600", "duration: soon"), [], "duration must be a number"),
        (SCENARIO + "colour: red\n", [], "colour: unknown key"),
        (SCENARIO, ["--replications", "0"], "--replications"),
        (SCENARIO, ["--duration", "-1"], "--duration"),
        ("queues: [\n", [], "not valid YAML"),
    ],
)
def test_simulate_bad_scenario_exits_2(
    tmp_path: Path, text: str, args: list[str], needle: str
) -> None:
    code, out, err = run("simulate", str(_scenario(tmp_path, text)), *args)
    assert code == 2
    assert needle in err
    assert out == ""
    assert "Traceback" not in err


def test_simulate_missing_file(tmp_path: Path) -> None:
    code, _, err = run("simulate", str(tmp_path / "nope.yaml"))
    assert code == 2 and "cannot read" in err


def test_simulate_jobs_do_not_change_the_figures(tmp_path: Path) -> None:
    outputs = []
    for jobs in ("1", "2"):
        events = tmp_path / f"events-{jobs}.jsonl"
        code, out, err = run(
            "simulate",
            str(_scenario(tmp_path)),
            "-r",
            "2",
            "--jobs",
            jobs,
            "--json",
            "--events",
            str(events),
            "--duration",
            "1800",
        )
        assert code == 0, err
        data = json.loads(out)
        data.pop("wall_seconds")
        outputs.append((data, events.read_text(encoding="utf-8")))
    assert outputs[0] == outputs[1]
    code, _out, err = run("simulate", str(_scenario(tmp_path)), "--jobs", "-1")
    assert code == 2 and "--jobs must not be negative (got -1)" in err
