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
