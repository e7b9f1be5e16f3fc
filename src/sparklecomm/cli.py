"""The ``sparklecomm`` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from sparklecomm import __version__
from sparklecomm.acd.cli import agent_app, queue_app
from sparklecomm.audit.store import Actor
from sparklecomm.core.errors import DomainError, InvalidInput

app = typer.Typer(
    help="SparkleComm: contact center and unified communications.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(
    help="Manage users (agents, supervisors, administrators).", no_args_is_help=True
)
tenant_app = typer.Typer(help="Manage organisations (tenants).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(tenant_app, name="tenant")
app.add_typer(queue_app, name="queue")
app.add_typer(agent_app, name="agent")

T = TypeVar("T")
_overrides: dict[str, Any] = {}

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: SPARKLECOMM_DATA_DIR, else ./data of the current "
        "directory; only serve, demo and migrate create it)",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Domain errors become one readable line on stderr and a non-zero exit code."""
    try:
        yield
    except InvalidInput as exc:
        _fail(f"{exc.field}: {exc.detail}" if exc.field else exc.detail, 2)
    except DomainError as exc:
        _fail(exc.detail, 1)


def _settings(data_dir: Path | None = None) -> Any:
    from sparklecomm.settings import Settings

    kwargs = dict(_overrides)
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    try:
        return Settings(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"bad settings: {problems}", 2)


def _services(
    data_dir: Path | None = None, *, migrate: bool = True, initialise: bool = False
) -> Any:
    """The services of the installation the settings name. Only the commands that set one
    up (``initialise``: serve, demo, migrate) create the data directory; the others refuse
    (exit 2) with where they looked when it holds no installation
    (:meth:`~sparklecomm.settings.Settings.installation_problem`)."""
    from sparklecomm.app import build_services
    from sparklecomm.store.migrate import upgrade

    settings = _settings(data_dir)
    if initialise:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    else:
        problem = settings.installation_problem()
        if problem is not None:
            _fail(problem, 2)
    services = build_services(settings)
    if migrate:
        upgrade(services.db.engine)
    return services


def _emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        human()


@app.callback()
def _root(
    data_dir: DataDir = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: SQLite)")
    ] = None,
) -> None:
    """Global options apply to every command."""
    from sparklecomm.logging import configure_logging

    # Logs go to stderr (stdout is for the commands' output, e.g. --json); serve
    # reconfigures them from the settings.
    configure_logging("warning")
    if data_dir is not None:
        _overrides["data_dir"] = data_dir
    if database_url is not None:
        _overrides["database_url"] = database_url


@app.command()
def version(as_json: JsonFlag = False) -> None:
    """Print the version."""
    _emit(as_json, {"version": __version__}, lambda: typer.echo(f"sparklecomm {__version__}"))


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Create or upgrade the database schema."""
    from sparklecomm.store.migrate import current_revision, head_revision

    with _errors():
        services = _services(data_dir, initialise=True)
        rev = current_revision(services.db.engine)
        typer.echo(f"database at revision {rev} (newest: {head_revision(services.db.engine)})")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="HTTP address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
    data_dir: DataDir = None,
    admin_password: Annotated[
        str | None,
        typer.Option(help="Password of the first admin on a fresh data directory"),
    ] = None,
    sip_host: Annotated[
        str | None, typer.Option(help="SIP address (default: the HTTP address)")
    ] = None,
    sip_port: Annotated[int | None, typer.Option(help="SIP port, UDP and TCP (5060)")] = None,
    sip_tls_port: Annotated[
        int | None, typer.Option(help="SIP over TLS port (5061; 0 picks a free port)")
    ] = None,
    sip_tls_certificate: Annotated[
        Path | None,
        typer.Option(help="PEM certificate chain for SIP over TLS (with --sip-tls-private-key)"),
    ] = None,
    sip_tls_private_key: Annotated[
        Path | None, typer.Option(help="PEM private key of --sip-tls-certificate")
    ] = None,
) -> None:
    """Run the platform: web pages, HTTP API, real-time events and SIP."""
    import uvicorn

    from sparklecomm.app import build_app
    from sparklecomm.bootstrap import PASSWORD_FILE, prepare
    from sparklecomm.logging import configure_logging
    from sparklecomm.runtime import tune_gc

    for key, value in (
        ("host", host),
        ("port", port),
        ("sip_host", sip_host),
        ("sip_port", sip_port),
        ("sip_tls_port", sip_tls_port),
        ("sip_tls_certificate", sip_tls_certificate),
        ("sip_tls_private_key", sip_tls_private_key),
    ):
        if value is not None:
            _overrides[key] = value
    with _errors():
        services = _services(data_dir, migrate=False, initialise=True)
        settings = services.settings
        configure_logging(settings.log_level, settings.log_format)
        tls = _check_sip_tls(settings)
        first = prepare(services, admin_password=admin_password)
    url = f"http://{'localhost' if settings.host in ('0.0.0.0', '127.0.0.1') else settings.host}"  # noqa: S104
    url += f":{settings.port}/login"
    typer.echo(f"SparkleComm {__version__}: data in {settings.data_dir.resolve()}")
    if first is not None:
        typer.echo(
            "First start: created the demo organisation 'demo' with users "
            f"admin, {', '.join(first.demo_users)}"
        )
        typer.echo(f"  password: {first.password}   (also in {settings.data_dir / PASSWORD_FILE})")
    typer.echo(f"Sign in at {url}")
    if settings.sip_enabled:
        typer.echo(
            f"SIP ({'/'.join(settings.sip_transports)}) on "
            f"{settings.sip_host or settings.host}:{settings.sip_port}, realm "
            f"{settings.sip_realm}: phones register as their extension "
            "(sparklecomm extension add)"
        )
        if tls:
            typer.echo(
                f"SIP over TLS on {settings.sip_host or settings.host}:{settings.sip_tls_port} "
                f"(certificate {settings.sip_tls_certificate}); media stays RTP (no SRTP)"
            )
    sys.stdout.flush()
    application = build_app(services)
    tune_gc(settings.gc_threshold)
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws_ping_interval=20,
        lifespan="on",
    )


def _check_sip_tls(settings: Any) -> bool:
    """Whether SIP over TLS is on; a certificate, key or CA file that cannot be used ends
    ``serve`` here with one line naming it (not later, in the server's start-up)."""
    from sparklecomm.telephony.server import SipServerConfig, tls_contexts, tls_options

    if not settings.sip_enabled:
        return False
    options = tls_options(settings)
    wanted = "TLS" in options["transports"]
    if not (wanted or settings.sip_tls_certificate or settings.sip_tls_private_key):
        return False
    try:
        tls_contexts(SipServerConfig(**options))
    except OSError as error:
        _fail(f"SIP over TLS: {error}", 2)
    return True


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="HTTP address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Data directory of the demo")] = Path(
        "demo-data"
    ),
    speed: Annotated[
        float, typer.Option(help="Time acceleration of the traffic (1: real time)")
    ] = 1.0,
    load: Annotated[float, typer.Option(help="Multiplier of the arrival rates")] = 1.0,
    admin_password: Annotated[
        str | None, typer.Option(help="Password of the demo users on a fresh data directory")
    ] = None,
) -> None:
    """Run the platform with a demo organisation and live synthetic traffic."""
    import asyncio

    from sparklecomm.bootstrap import PASSWORD_FILE
    from sparklecomm.demo import serve_with_traffic, setup
    from sparklecomm.logging import configure_logging

    if host is not None:
        _overrides["host"] = host
    if port is not None:
        _overrides["port"] = port
    with _errors():
        services = _services(data_dir, migrate=False, initialise=True)
        settings = services.settings
        configure_logging(settings.log_level, settings.log_format)
        prepared = setup(services, admin_password=admin_password)
    url = f"http://{'localhost' if settings.host in ('0.0.0.0', '127.0.0.1') else settings.host}"  # noqa: S104
    typer.echo(f"SparkleComm demo center: data in {settings.data_dir.resolve()}")
    typer.echo(f"  wallboard:     {url}:{settings.port}/wallboard  (supervisor)")
    typer.echo(f"  agent desktop: {url}:{settings.port}/agent      (agent)")
    typer.echo(f"  passwords in {settings.data_dir / PASSWORD_FILE}")
    if prepared.first is not None:
        typer.echo(f"  password of admin, supervisor and agent: {prepared.first.password}")
    typer.echo(
        f"Traffic: {len(prepared.sim_agents)} simulated agents, speed x{speed}, load x{load}"
    )
    sys.stdout.flush()
    asyncio.run(serve_with_traffic(services, prepared, speed=speed, load=load))


def _read_password(password: str | None, password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if password is not None:
        return password
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@user_app.command("add")
def user_add(
    username: str,
    tenant: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    role: Annotated[str, typer.Option(help="admin, supervisor or agent")] = "agent",
    display_name: Annotated[str | None, typer.Option(help="Name shown to others")] = None,
    email: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a user in an organisation."""
    from sparklecomm.auth.service import user_payload

    with _errors():
        services = _services()
        t = services.auth.tenant_by_slug(tenant)
        secret = _read_password(password, password_stdin)
        user = services.auth.do_create_user(
            t.tenant_id,
            Actor.cli(),
            username=username,
            password=secret,
            role=role,
            display_name=display_name,
            email=email,
        )
        _emit(
            as_json,
            user_payload(user),
            lambda: typer.echo(f"created {user.role} {user.username} in {t.slug}"),
        )


@user_app.command("list")
def user_list(
    tenant: Annotated[str | None, typer.Option(help="Only this organisation")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List users."""
    from sparklecomm.auth.service import user_payload

    with _errors():
        services = _services()
        tenants = [services.auth.tenant_by_slug(tenant)] if tenant else services.auth.list_tenants()
        rows = []
        for t in tenants:
            for u in services.auth.users_of_tenant(t.tenant_id):
                rows.append({**user_payload(u), "tenant": t.slug})

        def human() -> None:
            typer.echo(f"{'TENANT':<12} {'USERNAME':<24} {'ROLE':<11} {'ACTIVE':<7} NAME")
            for r in rows:
                active = "yes" if r["is_active"] else "no"
                typer.echo(
                    f"{r['tenant']:<12} {r['username']:<24} {r['role']:<11} {active:<7} "
                    f"{r['display_name']}"
                )

        _emit(as_json, rows, human)


@user_app.command("passwd")
def user_passwd(
    username: str,
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
) -> None:
    """Set a user's password (also clears a sign-in lockout)."""
    with _errors():
        services = _services()
        user = services.auth.user_by_username(username)
        secret = _read_password(password, password_stdin)
        services.auth.do_set_password(user.tenant_id, user.id, secret, Actor.cli())
        typer.echo(f"password of {user.username} changed")


@user_app.command("token")
def user_token(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for")] = "cli",
    as_json: JsonFlag = False,
) -> None:
    """Issue an API token acting as a user (printed once)."""
    with _errors():
        services = _services()
        user = services.auth.user_by_username(username)
        secret = services.auth.do_create_token_for(user, name)
        _emit(as_json, {"token": secret, "username": user.username}, lambda: typer.echo(secret))


@tenant_app.command("add")
def tenant_add(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an organisation."""
    with _errors():
        services = _services()
        t = services.auth.do_create_tenant(slug, name or slug, Actor.cli())
        _emit(
            as_json,
            {"tenant_id": t.tenant_id, "slug": t.slug, "name": t.name},
            lambda: typer.echo(f"created tenant {t.slug} ({t.name})"),
        )


@tenant_app.command("list")
def tenant_list(as_json: JsonFlag = False) -> None:
    """List organisations."""
    with _errors():
        services = _services()
        rows = [
            {
                "tenant_id": t.tenant_id,
                "slug": t.slug,
                "name": t.name,
                "created_at": t.created_at.isoformat(),
            }
            for t in services.auth.list_tenants()
        ]

        def human() -> None:
            for r in rows:
                typer.echo(f"{r['slug']:<20} {r['name']}")

        _emit(as_json, rows, human)


extension_app = typer.Typer(help="SIP extensions that phones register with.", no_args_is_help=True)
app.add_typer(extension_app, name="extension")


@extension_app.command("add")
def extension_add(
    number: Annotated[str, typer.Argument(help="Extension number, e.g. 1001")],
    tenant: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    display_name: Annotated[str | None, typer.Option(help="Caller name")] = None,
    user: Annotated[str | None, typer.Option(help="Username of the person it belongs to")] = None,
    password: Annotated[
        str | None, typer.Option(help="SIP password; prompted when omitted")
    ] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create an extension (the SIP login is its number)."""
    from sparklecomm.telephony.extensions import extension_payload

    with _errors():
        services = _services()
        t = services.auth.tenant_by_slug(tenant)
        user_id = services.auth.user_by_username(user).id if user else None
        secret = _read_password(password, password_stdin)
        ext = services.extra["extensions"].do_create(
            t.tenant_id,
            Actor.cli(),
            number=number,
            password=secret,
            display_name=display_name,
            user_id=user_id,
        )
        _emit(
            as_json,
            extension_payload(ext),
            lambda: typer.echo(f"created extension {ext.number} ({ext.display_name})"),
        )


@extension_app.command("list")
def extension_list(
    tenant: Annotated[str | None, typer.Option(help="Only this organisation")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List extensions."""
    from sparklecomm.telephony.extensions import extension_payload

    with _errors():
        services = _services()
        tenant_id = services.auth.tenant_by_slug(tenant).tenant_id if tenant else None
        rows = [extension_payload(e) for e in services.extra["extensions"].list(tenant_id)]

        def human() -> None:
            for r in rows:
                typer.echo(f"{r['number']:<8} {r['display_name']}")

        _emit(as_json, rows, human)


@extension_app.command("passwd")
def extension_passwd(
    number: str,
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
) -> None:
    """Set an extension's SIP password."""
    with _errors():
        services = _services()
        secret = _read_password(password, password_stdin)
        services.extra["extensions"].do_set_password(number, secret, Actor.cli())
        typer.echo(f"password of extension {number} changed")


def _mount_pbx() -> None:
    """``did``, ``trunk``, ``ringgroup``, ``block``, ``dialrule``, ``extension forward|dnd``."""
    from sparklecomm.telephony.pbx.cli import register

    register(app, extension_app)


_mount_pbx()


def _mount_recordings() -> None:
    """``recordings list|policy|purge``."""
    from sparklecomm.telephony.recordings_cli import register

    register(app)


_mount_recordings()


def _mount_optional() -> None:
    """Domains that ship their own commands register them here."""
    import importlib

    try:
        wfm_cli = importlib.import_module("sparklecomm.wfm.cli")
    except ImportError:
        return
    erlang_app = getattr(wfm_cli, "erlang_app", None)
    if erlang_app is not None:
        app.add_typer(erlang_app, name="erlang")
    register = getattr(wfm_cli, "register", None)
    if register is not None:
        register(app)


_mount_optional()


def main() -> None:
    app()
