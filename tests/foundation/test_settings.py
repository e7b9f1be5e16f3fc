"""Settings from the environment and from a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sparklecomm.settings import Settings


def test_defaults_use_sqlite_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARKLECOMM_DATABASE_URL", raising=False)
    s = Settings(data_dir=tmp_path)
    assert s.effective_database_url == f"sqlite:///{tmp_path.resolve()}/sparklecomm.db"
    key = s.effective_secret_key()
    assert len(key) > 40 and s.effective_secret_key() == key  # generated once, then kept
    assert oct((tmp_path / "secret.key").stat().st_mode)[-3:] == "600"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKLECOMM_DATABASE_URL", "postgresql+psycopg://u@db/sc")
    monkeypatch.setenv("SPARKLECOMM_PORT", "9000")
    monkeypatch.setenv("SPARKLECOMM_LOG_LEVEL", "DEBUG")
    s = Settings()
    assert s.effective_database_url == "postgresql+psycopg://u@db/sc"
    assert s.port == 9000 and s.log_level == "debug"


def test_toml_file_below_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "sc.toml"
    conf.write_text('port = 8181\nhost = "0.0.0.0"\nlog_format = "json"\n')
    monkeypatch.setenv("SPARKLECOMM_CONFIG", str(conf))
    monkeypatch.setenv("SPARKLECOMM_HOST", "127.0.0.2")
    s = Settings()
    assert s.port == 8181 and s.log_format == "json"
    assert s.host == "127.0.0.2"  # the environment wins over the file


def test_unknown_or_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="port"):
        Settings(port=70000)
    with pytest.raises(ValidationError, match="log_level"):
        Settings(log_level="loud")  # type: ignore[arg-type]


def test_routing_settings_reach_the_routing_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparklecomm.app import build_services

    monkeypatch.delenv("SPARKLECOMM_DATABASE_URL", raising=False)
    monkeypatch.setenv("SPARKLECOMM_ROUTING_FRESHNESS_SECONDS", "0")
    monkeypatch.setenv("SPARKLECOMM_ROUTING_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("SPARKLECOMM_ROUTING_SNAPSHOT_EVERY", "100")
    services = build_services(Settings(data_dir=tmp_path))
    acd = services.extra["acd"]
    assert (acd.freshness_seconds, acd.max_attempts, acd.snapshot_every) == (0, 5, 100)
    services.db.dispose()
    with pytest.raises(ValidationError, match="routing_max_attempts"):
        Settings(routing_max_attempts=0)
