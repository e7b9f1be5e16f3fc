"""Settings, from ``SPARKLECOMM_*`` environment variables and an optional TOML file.

Precedence (highest first): explicit arguments (the CLI's flags), environment variables,
the TOML file named by ``SPARKLECOMM_CONFIG`` (or ``<data_dir>/sparklecomm.toml``), defaults.

The data directory defaults to ``data`` in the *current* directory. Only the commands that
set an installation up (``serve``, ``demo``, ``migrate``) create it; the others first ask
:meth:`Settings.installation_problem`, so that running one from the wrong directory says
where it looked instead of making an empty installation there.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

LogLevel = Literal["debug", "info", "warning", "error"]
DATABASE_FILE = "sparklecomm.db"
"""The SQLite database in the data directory (without ``database_url``)."""
SECRET_FILE = "secret.key"  # noqa: S105 (a file name)
"""The generated secret key in the data directory (without ``secret_key``)."""
POINT_AT_IT = (
    "Point at the installation with `sparklecomm --data-dir DIR COMMAND`, SPARKLECOMM_DATA_DIR "
    "or data_dir in the file SPARKLECOMM_CONFIG names"
)


def _toml_path() -> Path | None:
    explicit = os.environ.get("SPARKLECOMM_CONFIG")
    if explicit:
        return Path(explicit)
    data_dir = Path(os.environ.get("SPARKLECOMM_DATA_DIR", "data"))
    candidate = data_dir / "sparklecomm.toml"
    return candidate if candidate.exists() else None


class Settings(BaseSettings):
    """Everything the composition root needs to build the platform."""

    model_config = SettingsConfigDict(env_prefix="SPARKLECOMM_", extra="forbid")

    data_dir: Path = Field(default=Path("data"), description="Where SQLite, keys and files live")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/sparklecomm.db. "
        "postgresql+psycopg://user@host/db for PostgreSQL.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret_key: str | None = Field(
        default=None,
        description="Signs nothing secret yet; reserved. Generated in the data dir when unset.",
    )
    log_level: LogLevel = "info"
    log_format: Literal["console", "json"] = "console"
    redis_url: str | None = Field(
        default=None, description="redis://host:port/db: share events between serve processes"
    )
    sip_enabled: bool = Field(default=True, description="Listen for SIP phones and trunks")
    sip_host: str | None = Field(default=None, description="SIP address (default: host)")
    sip_port: int = Field(default=5060, ge=0, le=65535, description="0 picks a free port")
    sip_transports: list[Literal["UDP", "TCP", "TLS"]] = Field(
        default=["UDP", "TCP"],
        description="TLS is added when sip_tls_certificate and sip_tls_private_key are set",
    )
    sip_tls_port: int = Field(
        default=5061, ge=0, le=65535, description="SIP over TLS port; 0 picks a free port"
    )
    sip_tls_certificate: Path | None = Field(
        default=None,
        description="PEM certificate chain of SIP over TLS (server certificate first); "
        "TLS listens when this and sip_tls_private_key are set",
    )
    sip_tls_private_key: Path | None = Field(
        default=None, description="PEM private key of sip_tls_certificate (not encrypted)"
    )
    sip_tls_min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    sip_tls_ca_file: Path | None = Field(
        default=None,
        description="PEM CAs trusted for TLS connections SparkleComm opens (trunks, phones "
        "whose connection is gone); default: the system's CAs",
    )
    sip_tls_verify_peer: bool = Field(
        default=True,
        description="Check the certificate (CA and name/address) of TLS peers we connect to",
    )
    sip_realm: str = Field(default="sparklecomm", min_length=1, max_length=100)
    sip_digest_algorithms: list[Literal["SHA-256", "MD5"]] = Field(
        default=["SHA-256", "MD5"],
        description="Challenge order; old phones that know only MD5 need MD5 first",
    )
    music_on_hold: Path | None = Field(
        default=None,
        description="A WAV file (any PCM rate, mono or stereo) that callers waiting in queues "
        "with music on hold hear, looped; default: the platform's built-in music",
    )
    session_ttl_hours: int = Field(default=12, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=300, ge=1)
    cookie_secure: bool = False
    gc_threshold: int = Field(
        default=50_000,
        ge=0,
        description="Objects allocated between young-generation garbage collections in "
        "serve (Python's default is 700; 0 keeps it). Fewer collections: about 25 % less CPU "
        "per SIP call.",
    )

    routing_freshness_seconds: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="With several serve processes on one database: how old a process's view "
        "of another's routing decisions may be before a read checks the journal again "
        "(0: before every read)",
    )
    routing_max_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Tries of a routing command while other serve processes keep storing "
        "commands for the same organisation first (then 409 Conflict)",
    )
    routing_snapshot_every: int = Field(
        default=500,
        ge=1,
        description="Routing commands between snapshots of an organisation's engine "
        "(fewer: faster start, more writes)",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / DATABASE_FILE).resolve()}"

    def installation_problem(self) -> str | None:
        """Why these settings do not name an existing installation, for the commands that
        only read or change one (None when they do). Such a command never creates the data
        directory:

        * the data directory must exist;
        * the default one (``./data``, nothing chose it) must also hold the installation:
          its SQLite database, or with ``database_url`` its secret key (unless
          ``secret_key`` is set: then no data directory is needed);
        * a directory chosen explicitly (``--data-dir``, ``SPARKLECOMM_DATA_DIR``, the
          TOML file) that exists is used as it is, as before: an empty one becomes a new
          installation (what ``migrate`` would make).
        """
        if self.database_url and self.secret_key:
            return None  # nothing of the data directory is used
        data_dir = self.data_dir.absolute()
        chosen = "data_dir" in self.model_fields_set
        reason: str | None = None
        if not self.data_dir.is_dir():
            reason = "the directory does not exist"
        elif chosen:
            return None
        elif not self.database_url:
            if not (data_dir / DATABASE_FILE).exists():
                reason = f"it holds no database ({DATABASE_FILE})"
        elif not (data_dir / SECRET_FILE).exists():
            reason = f"it holds no secret key ({SECRET_FILE})"
        if reason is None:
            return None
        if chosen:
            which = (
                "the data directory chosen by --data-dir, SPARKLECOMM_DATA_DIR or the config file"
            )
        else:
            which = f"the default data directory: ./data of the current directory {Path.cwd()}"
        if not self.database_url:
            also = " (or at its database: --database-url or SPARKLECOMM_DATABASE_URL)"
        else:
            also = " (or give the server's key: SPARKLECOMM_SECRET_KEY)"
        return (
            f"no SparkleComm installation at {data_dir} ({which}): {reason}. {POINT_AT_IT}"
            f"{also}; to set a new installation up there, run `sparklecomm migrate` (or serve)."
        )

    def effective_secret_key(self) -> str:
        """The configured key, or one generated once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / SECRET_FILE
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key
