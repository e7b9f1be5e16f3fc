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


# ---- the data directory: only serve, demo and migrate create one ---------------------------


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An administrator in a directory that holds no installation, nothing set: the data
    directory is the default ./data of that directory."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for name in ("SPARKLECOMM_DATA_DIR", "SPARKLECOMM_CONFIG", "SPARKLECOMM_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return cwd


READING_AND_CHANGING = [
    ("tenant", "list"),
    ("user", "list"),
    ("extension", "list"),
    ("did", "list", "--tenant", "demo"),
    ("tenant", "add", "acme"),
    ("user", "passwd", "admin", "--password", "long enough"),
]


def test_commands_in_the_wrong_directory_refuse_and_create_nothing(elsewhere: Path) -> None:
    for args in READING_AND_CHANGING:
        code, out, err = run(*args)
        assert code == 2, (args, out, err)
        assert err.startswith(f"error: no SparkleComm installation at {elsewhere / 'data'} ")
        assert f"./data of the current directory {elsewhere}" in err
        assert "the directory does not exist" in err
        for way in ("--data-dir", "SPARKLECOMM_DATA_DIR", "SPARKLECOMM_DATABASE_URL"):
            assert way in err, (way, err)
        assert "sparklecomm migrate" in err and "Traceback" not in err
        assert list(elsewhere.iterdir()) == [], args  # no ./data, no database


def test_a_data_directory_without_database_is_no_installation(elsewhere: Path) -> None:
    (elsewhere / "data").mkdir()  # a folder that happens to be called data
    code, _, err = run("user", "list")
    assert code == 2 and "it holds no database (sparklecomm.db)" in err
    assert list((elsewhere / "data").iterdir()) == []


def test_migrate_sets_the_default_one_up_and_the_others_then_use_it(elsewhere: Path) -> None:
    code, out, err = run("migrate")
    assert code == 0, err
    assert (elsewhere / "data" / "sparklecomm.db").exists()
    assert run("tenant", "add", "acme")[0] == 0
    code, out, _ = run("tenant", "list", "--json")
    assert code == 0 and [t["slug"] for t in json.loads(out)] == ["acme"]


def test_the_installation_is_found_wherever_it_is_pointed_at(
    elsewhere: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``data_dir`` is the test's installation (the fixture of this module), away from
    ``elsewhere``: the global flag, the environment variable and the config file reach it."""
    monkeypatch.setenv("SPARKLECOMM_DATA_DIR", str(data_dir))
    assert run("tenant", "add", "acme")[0] == 0
    monkeypatch.delenv("SPARKLECOMM_DATA_DIR")
    code, out, err = run("--data-dir", str(data_dir), "tenant", "list")
    assert code == 0 and "acme" in out, err
    config = elsewhere.parent / "sparklecomm.toml"
    config.write_text(f"data_dir = {str(data_dir)!r}\n")
    monkeypatch.setenv("SPARKLECOMM_CONFIG", str(config))
    code, out, err = run("tenant", "list")
    assert code == 0 and "acme" in out, err
    assert list(elsewhere.iterdir()) == []


def test_a_data_directory_named_but_missing_is_refused_by_name(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = elsewhere.parent / "sparklecom-data"
    code, _, err = run("--data-dir", str(typo), "tenant", "list")
    assert code == 2 and f"no SparkleComm installation at {typo} " in err
    assert "chosen by --data-dir, SPARKLECOMM_DATA_DIR or the config file" in err
    monkeypatch.setenv("SPARKLECOMM_DATA_DIR", str(typo))
    code, _, err = run("user", "list")
    assert code == 2 and str(typo) in err
    assert not typo.exists() and list(elsewhere.iterdir()) == []
    # Setting one up there is what migrate is for.
    assert run("migrate")[0] == 0 and (typo / "sparklecomm.db").exists()


def test_with_a_database_url_the_secret_key_is_what_must_be_found(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is elsewhere (PostgreSQL in production; a SQLite URL here), but trunk
    passwords are encrypted with the installation's key: a new key made in the wrong
    directory would write passwords the server cannot read."""
    monkeypatch.setenv("SPARKLECOMM_DATABASE_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    code, _, err = run("tenant", "list")
    assert code == 2 and "the directory does not exist" in err
    (elsewhere / "data").mkdir()
    code, _, err = run("tenant", "list")
    assert code == 2 and "it holds no secret key (secret.key)" in err
    assert "SPARKLECOMM_SECRET_KEY" in err
    assert list((elsewhere / "data").iterdir()) == [] and not (tmp_path / "shared.db").exists()
    # The server's key given: no data directory is needed at all.
    monkeypatch.setenv("SPARKLECOMM_SECRET_KEY", "the-servers-own-secret-key")
    (elsewhere / "data").rmdir()
    code, _, err = run("tenant", "add", "acme")
    assert code == 0, err
    assert list(elsewhere.iterdir()) == []
