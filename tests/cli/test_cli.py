"""The ``sparklecomm`` command line, run in-process against a temporary data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparklecomm import __version__
from sparklecomm.cli import _overrides, app

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPARKLECOMM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SPARKLECOMM_DATABASE_URL", raising=False)
    _overrides.clear()
    return tmp_path


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_version_and_help() -> None:
    code, out, _ = run("version", "--json")
    assert code == 0 and json.loads(out) == {"version": __version__}
    code, out, _ = run("--help")
    assert code == 0
    for command in ("serve", "migrate", "user", "tenant", "version"):
        assert command in out
    code, out, _ = run("user", "--help")
    assert code == 0 and "passwd" in out


def test_migrate_creates_the_database(data_dir: Path) -> None:
    from sparklecomm.store.db import make_engine
    from sparklecomm.store.migrate import head_revision

    code, out, _ = run("migrate")
    head = head_revision(make_engine("sqlite://"))
    assert code == 0 and out.strip() == f"database at revision {head} (newest: {head})"
    assert (data_dir / "sparklecomm.db").exists()


def test_tenant_and_user_management() -> None:
    code, out, _ = run("tenant", "add", "acme", "--name", "Acme Support", "--json")
    assert code == 0 and json.loads(out)["slug"] == "acme"
    code, out, _ = run("tenant", "list", "--json")
    assert [t["name"] for t in json.loads(out)] == ["Acme Support"]
    code, out, _ = run(
        "user",
        "add",
        "Ana",
        "--tenant",
        "acme",
        "--role",
        "supervisor",
        "--password-stdin",
        "--json",
        input="s3cret-pass\n",
    )
    assert code == 0, out
    created = json.loads(out)
    assert created["username"] == "ana" and created["role"] == "supervisor"
    code, out, _ = run("user", "list", "--json")
    assert [(u["username"], u["tenant"]) for u in json.loads(out)] == [("ana", "acme")]
    code, out, _ = run("user", "list")
    assert "ana" in out and "supervisor" in out
    code, out, _ = run("user", "passwd", "ana", "--password", "another-pass")
    assert code == 0 and "changed" in out
    code, out, _ = run("user", "token", "ana", "--name", "crm", "--json")
    assert code == 0 and json.loads(out)["token"].startswith("sct_")


def test_errors_are_one_line_with_non_zero_exit() -> None:
    code, _, err = run("tenant", "add", "Bad Slug!")
    assert code == 2 and err.startswith("error: slug:") and "Traceback" not in err
    run("tenant", "add", "acme")
    code, _, err = run("tenant", "add", "acme")
    assert code == 1 and "already exists" in err
    code, _, err = run("user", "add", "bo", "--tenant", "nope", "--password", "long enough")
    assert code == 1 and "no tenant with slug 'nope'" in err
    assert "organisations here: acme" in err  # which ones there are (a wrong --data-dir shows)
    code, _, err = run("user", "add", "bo", "--tenant", "acme", "--password", "short")
    assert code == 2 and "password" in err
    code, _, err = run("user", "passwd", "ghost", "--password", "long enough")
    assert code == 1 and "no user named 'ghost'" in err


def test_bad_settings_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKLECOMM_PORT", "not-a-port")
    code, _, err = run("migrate")
    assert code == 2 and "port" in err


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("sparklecomm")
    out = subprocess.run(
        [str(exe), "version"], capture_output=True, text=True, check=True, env={**os.environ}
    )
    assert out.stdout.strip() == f"sparklecomm {__version__}"
