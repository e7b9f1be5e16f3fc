"""``sparklecomm recordings list|policy|purge``: call recordings from the command line,
straight on the database (like ``sparklecomm voicemail ...``).

:func:`register` mounts the commands on the main app; the shared helpers (``_errors``,
``_services``, ``_emit``) are taken from :mod:`sparklecomm.cli` when a command runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sparklecomm.audit.store import Actor
from sparklecomm.core.errors import InvalidInput

if TYPE_CHECKING:
    from sparklecomm.telephony.recordings import RecordingService

recordings_app = typer.Typer(
    help="Call recordings: list them, set which calls are recorded, purge old ones.",
    no_args_is_help=True,
)

Tenant = Annotated[str, typer.Option(help="Organisation slug")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]


def _cli() -> Any:
    import sparklecomm.cli as cli

    return cli


def _recordings(tenant: str | None = None) -> tuple[RecordingService, str]:
    services = _cli()._services()
    tenant_id = services.auth.tenant_by_slug(tenant).tenant_id if tenant else ""
    service: RecordingService = services.extra["recordings"]
    return service, tenant_id


def _emit(as_json: bool, data: Any, lines: list[str]) -> None:
    def human() -> None:
        for line in lines:
            typer.echo(line)

    _cli()._emit(as_json, data, human)


def _moment(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a time such as 2026-12-01T08:00:00Z", field=field
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{value!r} needs a time zone (Z or +01:00)", field=field)
    return moment


def _line(r: dict[str, Any]) -> str:
    minutes, seconds = divmod(int(r["seconds"]), 60)
    paused = f", paused {r['paused_seconds']:g}s" if r["paused_seconds"] else ""
    where = f" queue {r['queue_id']}" if r["queue_id"] else ""
    agent = f" agent {r['agent_id']}" if r["agent_id"] else ""
    return (
        f"{r['id']}  {r['started_at'][:19]}  {r['caller']} → {r['dialled']}{where}{agent}  "
        f"{minutes}:{seconds:02d}{paused}  [{r['status']}]"
    )


@recordings_app.command("list")
def recordings_list(
    tenant: Tenant = "demo",
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent (user id)")] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Only this queue")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Started at or after (ISO 8601, with zone)")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Started before")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-500)")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List recordings, newest first."""
    with _cli()._errors():
        recordings, tenant_id = _recordings(tenant)
        rows = recordings.recordings(
            tenant_id,
            agent_id=agent,
            queue_id=queue,
            since=_moment(since, "since"),
            until=_moment(until, "until"),
            limit=limit,
        )
        _emit(as_json, rows, [_line(r) for r in rows] or ["no recordings"])


def _policy_lines(p: dict[str, Any]) -> list[str]:
    days = p["retention_days"]
    return [
        f"all calls: {'yes' if p['all_calls'] else 'no'}",
        f"queues: {', '.join(p['queues']) or 'none'}",
        f"extensions: {', '.join(p['extensions']) or 'none'}",
        f"retention: {f'{days} days' if days else 'keep forever'}",
    ]


@recordings_app.command("policy")
def recordings_policy(
    tenant: Tenant = "demo",
    all_calls: Annotated[
        bool | None,
        typer.Option("--all-calls/--no-all-calls", help="Record every call"),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", help="Record this queue's calls (repeat; replaces the list)"),
    ] = None,
    extension: Annotated[
        list[str] | None,
        typer.Option("--extension", help="Record calls with this extension (repeat)"),
    ] = None,
    no_queues: Annotated[bool, typer.Option("--no-queues", help="Empty the queue list")] = False,
    no_extensions: Annotated[
        bool, typer.Option("--no-extensions", help="Empty the extension list")
    ] = False,
    retention_days: Annotated[
        int | None, typer.Option("--retention-days", help="Keep this many days (0: forever)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the recording policy, or change it: options left out keep their values."""
    with _cli()._errors():
        recordings, tenant_id = _recordings(tenant)
        current = recordings.policy(tenant_id)
        changes = (all_calls, queue, extension, retention_days)
        if all(c is None for c in changes) and not (no_queues or no_extensions):
            _emit(as_json, current, _policy_lines(current))
            return
        saved = recordings.do_set_policy(
            tenant_id,
            Actor.cli(),
            current["all_calls"] if all_calls is None else all_calls,
            [] if no_queues else (current["queues"] if queue is None else queue),
            [] if no_extensions else (current["extensions"] if extension is None else extension),
            current["retention_days"] if retention_days is None else retention_days,
        )
        _emit(as_json, saved, ["recording policy saved", *_policy_lines(saved)])


@recordings_app.command("purge")
def recordings_purge() -> None:
    """Delete the recordings past their organisation's retention now (the server also does
    this hourly), and close those a dead node left "recording"."""
    with _cli()._errors():
        recordings, _ = _recordings()
        recovered = recordings.recover_interrupted()
        removed = recordings.purge_expired(recordings.clock.now())
        typer.echo(f"purged {removed} recordings; closed {recovered} interrupted ones")


def register(app: typer.Typer) -> None:
    """Mount ``recordings`` on the ``sparklecomm`` app."""
    app.add_typer(recordings_app, name="recordings")
