"""``sparklecomm did|hours|trunk|ringgroup|ivr|block|dialrule|voicemail ...`` and ``sparklecomm
extension forward|dnd|auto-answer``: PBX configuration (and the voicemail boxes' messages) from
the command line, straight on the database (like ``sparklecomm extension add``).

:func:`register` mounts the commands on the main app; the shared helpers (``_errors``,
``_services``, ``_emit``) are taken from :mod:`sparklecomm.cli` when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sparklecomm.audit.store import Actor
from sparklecomm.core.errors import InvalidInput

if TYPE_CHECKING:
    from sparklecomm.telephony.pbx.service import PbxService

did_app = typer.Typer(help="Inbound numbers (DIDs) and where they go.", no_args_is_help=True)
hours_app = typer.Typer(
    help="Business hours: when numbers are open (DIDs follow them).", no_args_is_help=True
)
trunk_app = typer.Typer(help="Carrier SIP trunks.", no_args_is_help=True)
ringgroup_app = typer.Typer(help="Ring groups (several extensions).", no_args_is_help=True)
ivr_app = typer.Typer(
    help="Voice menus (IVR): a spoken prompt, and where each key leads.", no_args_is_help=True
)
block_app = typer.Typer(help="Blocked inbound callers.", no_args_is_help=True)
voicemail_app = typer.Typer(
    help="Voicemail: the messages left in the extensions' boxes.", no_args_is_help=True
)
dialrule_app = typer.Typer(
    help="Outbound dial rules (no rule: no outbound calls).", no_args_is_help=True
)

Tenant = Annotated[str, typer.Option(help="Organisation slug")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]


def _cli() -> Any:
    import sparklecomm.cli as cli

    return cli


def _pbx(tenant: str | None = None) -> tuple[PbxService, str]:
    services = _cli()._services()
    tenant_id = services.auth.tenant_by_slug(tenant).tenant_id if tenant else ""
    service: PbxService = services.extra["pbx"]
    return service, tenant_id


def _attributes(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"attribute {pair!r} must be KEY=VALUE", field="attr")
        out[key.strip()] = value.strip()
    return out


def _emit(as_json: bool, data: Any, lines: list[str]) -> None:
    def human() -> None:
        for line in lines:
            typer.echo(line)

    _cli()._emit(as_json, data, human)


# -- did -------------------------------------------------------------------------------------
@did_app.command("add")
def did_add(
    number: Annotated[str, typer.Argument(help="Inbound number, e.g. +4930123456")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="extension:1001, ring-group:sales, queue:support, ivr:main, voicemail:1001 "
            "or reject",
        ),
    ],
    tenant: Tenant = "demo",
    attr: Annotated[
        list[str] | None, typer.Option("--attr", help="Attribute for the ACD, KEY=VALUE")
    ] = None,
    description: Annotated[str, typer.Option(help="A note")] = "",
    hours: Annotated[
        str | None, typer.Option("--hours", help="Follow these business hours (by name)")
    ] = None,
    closed_to: Annotated[
        str | None,
        typer.Option("--closed-to", help="Where calls go while closed (else: 480, closed)"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Route an inbound number to an extension, a ring group, a queue, a voice menu, or
    reject it."""
    from sparklecomm.telephony.pbx.service import did_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        did = pbx.do_create_did(
            tenant_id,
            Actor.cli(),
            number=number,
            destination=to,
            attributes=_attributes(attr),
            description=description,
            hours=hours,
            closed_destination=closed_to,
        )
        data = did_payload(did)
        _emit(as_json, data, [_did_line(data)])


def _did_line(data: dict[str, Any]) -> str:
    line = f"DID {data['number']} → {data['destination']}"
    if data.get("hours"):
        closed = data.get("closed_destination") or "480 (closed)"
        line += f" during {data['hours']}, else → {closed}"
    return line


@did_app.command("update")
def did_update(
    number: Annotated[str, typer.Argument(help="The DID to change")],
    tenant: Tenant = "demo",
    to: Annotated[str | None, typer.Option("--to", help="New destination")] = None,
    hours: Annotated[
        str | None, typer.Option("--hours", help='Business hours to follow ("" to stop)')
    ] = None,
    closed_to: Annotated[
        str | None, typer.Option("--closed-to", help='Where calls go while closed ("": 480)')
    ] = None,
    description: Annotated[str | None, typer.Option(help="A note")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change where a DID goes, and when."""
    from sparklecomm.telephony.pbx.service import did_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        did = pbx.do_update_did(
            tenant_id,
            Actor.cli(),
            number,
            destination=to,
            description=description,
            hours=hours,
            closed_destination=closed_to,
        )
        data = did_payload(did)
        _emit(as_json, data, [_did_line(data)])


@did_app.command("list")
def did_list(tenant: Tenant = "demo", as_json: JsonFlag = False) -> None:
    """List the organisation's DIDs."""
    from sparklecomm.telephony.pbx.service import did_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        rows = [did_payload(d) for d in pbx.dids(tenant_id)]
        _emit(as_json, rows, [_did_line(r) for r in rows])


@did_app.command("remove")
def did_remove(number: str, tenant: Tenant = "demo") -> None:
    """Remove a DID (calls to it then get 404)."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        pbx.do_delete_did(tenant_id, Actor.cli(), number)
        typer.echo(f"removed DID {number}")


# -- business hours --------------------------------------------------------------------------
OpenOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--open",
        help='Days and ranges, e.g. "mon-fri 08:00-18:00", "sat 09:00-13:00,14:00-16:00" '
        '(repeat; a day not given is closed; "22:00-06:00" runs past midnight)',
    ),
]
HolidayOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--holiday", help='A date closed all day, optionally named: "2026-12-25 Christmas Day"'
    ),
]
SpecialOpt = Annotated[
    list[str] | None,
    typer.Option("--special", help='A date with its own hours: "2026-12-24 09:00-12:00"'),
]


def _exceptions(holidays: list[str] | None, specials: list[str] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for text in holidays or []:
        day, _, name = text.strip().partition(" ")
        out.append({"date": day, "name": name.strip()})
    for text in specials or []:
        day, _, ranges = text.strip().partition(" ")
        if not ranges.strip():
            raise InvalidInput(
                f'--special {text!r}: give a date then ranges, e.g. "2026-12-24 09:00-12:00"',
                field="special",
            )
        out.append({"date": day, "hours": [r.strip() for r in ranges.split(",") if r.strip()]})
    return out


def _hours_lines(data: dict[str, Any]) -> list[str]:
    state = "open" if data.get("open_now") else "closed"
    change = data.get("next_change")
    lines = [
        f"business hours {data['name']} ({data['timezone']}): {state} now"
        + (f", changes at {change}" if change else "")
    ]
    for day, ranges in data["weekly"].items():
        lines.append(f"  {day} {', '.join(ranges)}")
    for e in data["exceptions"]:
        what = ", ".join(e["hours"]) if e["hours"] else "closed"
        lines.append(f"  {e['date']} {what}" + (f" ({e['name']})" if e["name"] else ""))
    return lines


@hours_app.command("add")
def hours_add(
    name: Annotated[str, typer.Argument(help="A name such as support-hours")],
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone, e.g. Europe/Berlin")],
    open_: OpenOpt = None,
    holiday: HolidayOpt = None,
    special: SpecialOpt = None,
    tenant: Tenant = "demo",
    description: Annotated[str, typer.Option(help="A note")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create business hours (a weekly timetable with holidays) for DIDs to follow."""
    from sparklecomm.core.hours import parse_week_spec
    from sparklecomm.telephony.pbx.service import hours_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        row = pbx.do_create_business_hours(
            tenant_id,
            Actor.cli(),
            name=name,
            timezone=timezone,
            weekly=parse_week_spec(open_ or []),
            exceptions=_exceptions(holiday, special),
            description=description,
        )
        data = hours_payload(row, pbx.clock.now())
        _emit(as_json, data, _hours_lines(data))


@hours_app.command("update")
def hours_update(
    name: Annotated[str, typer.Argument(help="The business hours to change")],
    timezone: Annotated[str | None, typer.Option("--timezone", help="IANA zone")] = None,
    open_: OpenOpt = None,
    holiday: HolidayOpt = None,
    special: SpecialOpt = None,
    tenant: Tenant = "demo",
    as_json: JsonFlag = False,
) -> None:
    """Change business hours: --open replaces the whole week; --holiday/--special replace
    all the dated exceptions."""
    from sparklecomm.core.hours import parse_week_spec
    from sparklecomm.telephony.pbx.service import hours_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        row = pbx.do_update_business_hours(
            tenant_id,
            Actor.cli(),
            name,
            timezone=timezone,
            weekly=parse_week_spec(open_) if open_ else None,
            exceptions=_exceptions(holiday, special) if (holiday or special) else None,
        )
        data = hours_payload(row, pbx.clock.now())
        _emit(as_json, data, _hours_lines(data))


@hours_app.command("list")
def hours_list(tenant: Tenant = "demo", as_json: JsonFlag = False) -> None:
    """The organisation's business hours, open or closed now."""
    from sparklecomm.telephony.pbx.service import hours_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        now = pbx.clock.now()
        rows = [hours_payload(r, now) for r in pbx.business_hours(tenant_id)]
        _emit(as_json, rows, [line for r in rows for line in _hours_lines(r)])


@hours_app.command("remove")
def hours_remove(name: str, tenant: Tenant = "demo") -> None:
    """Remove business hours (refused while a DID follows them)."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        pbx.do_delete_business_hours(tenant_id, Actor.cli(), name)
        typer.echo(f"removed business hours {name}")


# -- trunk -----------------------------------------------------------------------------------
@trunk_app.command("add")
def trunk_add(
    name: str,
    host: Annotated[str, typer.Option(help="Carrier's SIP host name or address")],
    tenant: Tenant = "demo",
    port: Annotated[int, typer.Option(help="Carrier's SIP port")] = 5060,
    transport: Annotated[str, typer.Option(help="UDP, TCP or TLS")] = "UDP",
    username: Annotated[str | None, typer.Option(help="Login for outbound calls")] = None,
    password: Annotated[str | None, typer.Option(help="Password (stored encrypted)")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
    register: Annotated[bool, typer.Option(help="REGISTER with the carrier")] = False,
    allow_ip: Annotated[
        list[str] | None, typer.Option("--allow-ip", help="Address inbound calls come from")
    ] = None,
    caller_id: Annotated[str | None, typer.Option(help="Number presented outbound")] = None,
    max_channels: Annotated[int, typer.Option(help="Concurrent calls, 0: no limit")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Add a carrier trunk."""
    from sparklecomm.telephony.pbx.service import trunk_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        secret = _cli()._read_password(password, True) if password_stdin else password
        values: dict[str, Any] = {
            "name": name,
            "host": host,
            "port": port,
            "transport": transport,
            "username": username,
            "password": secret,
            "register": register,
            "allowed_sources": allow_ip or [],
            "caller_id": caller_id,
            "max_channels": max_channels,
        }
        trunk = pbx.do_create_trunk(tenant_id, Actor.cli(), values)
        data = trunk_payload(trunk)
        _emit(as_json, data, [f"trunk {trunk.name} → {trunk.host}:{trunk.port}/{trunk.transport}"])


@trunk_app.command("list")
def trunk_list(tenant: Tenant = "demo", as_json: JsonFlag = False) -> None:
    """List trunks (passwords are never shown)."""
    from sparklecomm.telephony.pbx.service import trunk_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        rows = [trunk_payload(t) for t in pbx.trunks(tenant_id)]
        lines = [
            f"{r['name']:<16} {r['host']}:{r['port']}/{r['transport']}"
            f" register={'yes' if r['register'] else 'no'}"
            f" sources={','.join(r['allowed_sources']) or '-'}"
            for r in rows
        ]
        _emit(as_json, rows, lines)


@trunk_app.command("remove")
def trunk_remove(name: str, tenant: Tenant = "demo") -> None:
    """Remove a trunk (refused while a dial rule uses it)."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        pbx.do_delete_trunk(tenant_id, Actor.cli(), name)
        typer.echo(f"removed trunk {name}")


# -- ring groups -----------------------------------------------------------------------------
@ringgroup_app.command("add")
def ringgroup_add(
    name: str,
    member: Annotated[list[str], typer.Option("--member", help="Extension number (repeat)")],
    tenant: Tenant = "demo",
    mode: Annotated[str, typer.Option(help="simultaneous or sequential")] = "simultaneous",
    ring_seconds: Annotated[float, typer.Option(help="Ring time per step")] = 20.0,
    fallback: Annotated[
        str, typer.Option(help="extension:N, ring-group:NAME or reject")
    ] = "reject",
    as_json: JsonFlag = False,
) -> None:
    """Create a ring group."""
    from sparklecomm.telephony.pbx.service import ring_group_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        group = pbx.do_save_ring_group(
            tenant_id,
            Actor.cli(),
            name=name,
            members=member,
            mode=mode,
            ring_seconds=ring_seconds,
            fallback=fallback,
        )
        data = ring_group_payload(group)
        _emit(as_json, data, [f"ring group {group.name}: {', '.join(group.members)}"])


@ringgroup_app.command("list")
def ringgroup_list(tenant: Tenant = "demo", as_json: JsonFlag = False) -> None:
    """List ring groups."""
    from sparklecomm.telephony.pbx.service import ring_group_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        rows = [ring_group_payload(g) for g in pbx.ring_groups(tenant_id)]
        lines = [
            f"{r['name']:<16} {r['mode']:<13} {','.join(r['members'])} → {r['fallback']}"
            for r in rows
        ]
        _emit(as_json, rows, lines)


@ringgroup_app.command("remove")
def ringgroup_remove(name: str, tenant: Tenant = "demo") -> None:
    """Remove a ring group (refused while a DID, another group or a voice menu uses it)."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        pbx.do_delete_ring_group(tenant_id, Actor.cli(), name)
        typer.echo(f"removed ring group {name}")


# -- voice menus (IVR) -----------------------------------------------------------------------
def _options(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, dest = pair.partition("=")
        if not sep or not key.strip() or not dest.strip():
            raise InvalidInput(
                f"option {pair!r} must be KEY=DESTINATION, e.g. 1=queue:sales", field="option"
            )
        if key.strip() in out:
            raise InvalidInput(f"key {key.strip()} is given twice", field="option")
        out[key.strip()] = dest.strip()
    return out


def _ivr_line(data: dict[str, Any]) -> str:
    keys = ", ".join(f"{k}→{v}" for k, v in data["options"].items())
    return f"voice menu {data['name']}: {keys}; no choice → {data['default']}"


@ivr_app.command("set")
def ivr_set(
    name: Annotated[str, typer.Argument(help="A name such as main")],
    prompt: Annotated[str, typer.Option("--prompt", help="What the caller hears (spoken)")],
    option: Annotated[
        list[str],
        typer.Option("--option", help="KEY=DESTINATION, e.g. 1=queue:sales or 2=ivr:billing"),
    ],
    tenant: Tenant = "demo",
    default: Annotated[
        str, typer.Option("--default", help="Where callers go who press no valid key")
    ] = "reject",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for a key")] = 5.0,
    attempts: Annotated[int, typer.Option("--attempts", help="Times the menu is played")] = 3,
    invalid_prompt: Annotated[
        str | None, typer.Option("--invalid-prompt", help="Spoken after a wrong key or none")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a voice menu, or replace every setting of an existing one."""
    from sparklecomm.telephony.pbx.dialplan import DEFAULT_INVALID_PROMPT
    from sparklecomm.telephony.pbx.service import ivr_menu_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        menu = pbx.do_save_ivr_menu(
            tenant_id,
            Actor.cli(),
            name=name,
            prompt=prompt,
            options=_options(option),
            timeout_seconds=timeout,
            attempts=attempts,
            invalid_prompt=DEFAULT_INVALID_PROMPT if invalid_prompt is None else invalid_prompt,
            default=default,
        )
        data = ivr_menu_payload(menu)
        _emit(as_json, data, [_ivr_line(data)])


@ivr_app.command("list")
def ivr_list(tenant: Tenant = "demo", as_json: JsonFlag = False) -> None:
    """List voice menus."""
    from sparklecomm.telephony.pbx.service import ivr_menu_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        rows = [ivr_menu_payload(m) for m in pbx.ivr_menus(tenant_id)]
        _emit(as_json, rows, [_ivr_line(r) for r in rows])


@ivr_app.command("remove")
def ivr_remove(name: str, tenant: Tenant = "demo") -> None:
    """Remove a voice menu (refused while a DID or another menu leads to it)."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        pbx.do_delete_ivr_menu(tenant_id, Actor.cli(), name)
        typer.echo(f"removed voice menu {name}")


# -- voicemail -------------------------------------------------------------------------------
def _voicemail_line(data: dict[str, Any]) -> str:
    caller = data["caller"] + (f" ({data['caller_name']})" if data.get("caller_name") else "")
    state = "heard" if data["heard"] else "new"
    return (
        f"{data['id']}  box {data['box']}  {data['created_at']}  {data['seconds']:g} s  "
        f"from {caller}  [{state}]"
    )


@voicemail_app.command("list")
def voicemail_list(
    tenant: Tenant = "demo",
    box: Annotated[str | None, typer.Option("--box", help="Only this box (extension)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the messages, newest first."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        rows = pbx.voicemails(tenant_id, box=box)
        lines = [_voicemail_line(r) for r in rows] or ["no messages"]
        _emit(as_json, rows, lines)


@voicemail_app.command("save")
def voicemail_save(
    message_id: Annotated[str, typer.Argument(metavar="ID", help="The message's id")],
    file: Annotated[Path, typer.Argument(metavar="FILE.wav", help="Where to write the WAV")],
    tenant: Tenant = "demo",
) -> None:
    """Write a message's recording to a WAV file."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        message, audio = pbx.voicemail_audio(tenant_id, message_id)
        try:
            file.write_bytes(audio)
        except OSError as error:
            raise InvalidInput(f"cannot write {file}: {error.strerror}", field="file") from None
        typer.echo(f"saved message {message['id']} (box {message['box']}) to {file}")


@voicemail_app.command("delete")
def voicemail_delete(
    message_id: Annotated[str, typer.Argument(metavar="ID", help="The message's id")],
    tenant: Tenant = "demo",
) -> None:
    """Delete a message and its recording."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        pbx.do_delete_voicemail(tenant_id, Actor.cli(), message_id)
        typer.echo(f"deleted message {message_id}")


# -- blocked numbers -------------------------------------------------------------------------
@block_app.command("add")
def block_add(
    pattern: Annotated[str, typer.Argument(help="Number, prefix* or 'anonymous'")],
    tenant: Tenant = "demo",
    note: Annotated[str, typer.Option(help="Why")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Block inbound calls from a number, a prefix (+1900*) or anonymous callers."""
    from sparklecomm.telephony.pbx.service import blocked_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        row = pbx.do_block(tenant_id, Actor.cli(), pattern, note)
        _emit(as_json, blocked_payload(row), [f"blocked {row.pattern}"])


@block_app.command("list")
def block_list(tenant: Tenant = "demo", as_json: JsonFlag = False) -> None:
    """List blocked callers."""
    from sparklecomm.telephony.pbx.service import blocked_payload

    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        rows = [blocked_payload(b) for b in pbx.blocked(tenant_id)]
        _emit(as_json, rows, [f"{r['pattern']:<20} {r['note']}" for r in rows])


@block_app.command("remove")
def block_remove(pattern: str, tenant: Tenant = "demo") -> None:
    """Unblock."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        pbx.do_unblock(tenant_id, Actor.cli(), pattern)
        typer.echo(f"unblocked {pattern}")


# -- dial rules ------------------------------------------------------------------------------
@dialrule_app.command("add")
def dialrule_add(
    name: str,
    prefix: Annotated[str, typer.Option(help="Numbers starting with this ('' for all)")],
    tenant: Tenant = "demo",
    action: Annotated[str, typer.Option(help="allow or deny")] = "allow",
    trunk: Annotated[str | None, typer.Option(help="Trunk name (for allow)")] = None,
    emergency: Annotated[bool, typer.Option(help="An exact emergency number")] = False,
    strip: Annotated[int, typer.Option(help="Digits removed from the front")] = 0,
    prepend: Annotated[str, typer.Option(help="Digits put in front")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Allow (through a trunk) or deny outbound numbers by prefix."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        data = pbx.do_create_dial_rule(
            tenant_id,
            Actor.cli(),
            name=name,
            prefix=prefix,
            action=action,
            trunk=trunk,
            emergency=emergency,
            strip=strip,
            prepend=prepend,
        )
        via = f" via {data['trunk']}" if data["trunk"] else ""
        _emit(as_json, data, [f"dial rule {name}: {action} {prefix or '(any)'}{via}"])


@dialrule_app.command("list")
def dialrule_list(tenant: Tenant = "demo", as_json: JsonFlag = False) -> None:
    """List dial rules."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        rows = pbx.dial_rules(tenant_id)
        lines = [
            f"{r['name']:<16} {r['action']:<6} {r['prefix'] or '(any)':<12} {r['trunk'] or '-'}"
            for r in rows
        ]
        _emit(as_json, rows, lines)


@dialrule_app.command("remove")
def dialrule_remove(name: str, tenant: Tenant = "demo") -> None:
    """Remove a dial rule."""
    with _cli()._errors():
        pbx, tenant_id = _pbx(tenant)
        pbx.do_delete_dial_rule(tenant_id, Actor.cli(), name)
        typer.echo(f"removed dial rule {name}")


# -- extension forward / dnd -----------------------------------------------------------------
def _extension_tenant(pbx: PbxService, number: str) -> str:
    tenant_id = pbx.directory().extension_tenant.get(number.strip())
    if tenant_id is None:
        from sparklecomm.core.errors import NotFound

        raise NotFound(f"no extension {number}", field="number")
    return tenant_id


def extension_forward(
    number: Annotated[str, typer.Argument(help="Extension number")],
    always: Annotated[
        str | None, typer.Option(help="Forward every call to (a number, or 'voicemail')")
    ] = None,
    busy: Annotated[
        str | None, typer.Option(help="Forward when busy to (a number, or 'voicemail')")
    ] = None,
    no_answer: Annotated[
        str | None,
        typer.Option(help="Forward when not answered to (a number, or 'voicemail': its own box)"),
    ] = None,
    ring_seconds: Annotated[float | None, typer.Option(help="Ring time before no-answer")] = None,
    off: Annotated[bool, typer.Option("--off", help="Clear every forward")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set call forwarding (unconditional, busy, no answer) of an extension."""
    with _cli()._errors():
        if off and (always or busy or no_answer):
            raise InvalidInput("--off clears the forwards; give no target with it", field="off")
        pbx, _ = _pbx()
        tenant_id = _extension_tenant(pbx, number)
        values: dict[str, Any] = {}
        if off:
            values = {"forward_always": None, "forward_busy": None, "forward_no_answer": None}
        for key, value in (
            ("forward_always", always),
            ("forward_busy", busy),
            ("forward_no_answer", no_answer),
        ):
            if value is not None:
                values[key] = value
        if ring_seconds is not None:
            values["ring_seconds"] = ring_seconds
        if not values:
            raise InvalidInput("give --always, --busy, --no-answer or --off", field="always")
        data = pbx.do_set_call_settings(tenant_id, Actor.cli(), number, values)
        parts = [
            f"{label}→{data[key]}"
            for label, key in (
                ("always", "forward_always"),
                ("busy", "forward_busy"),
                ("no answer", "forward_no_answer"),
            )
            if data[key]
        ]
        _emit(as_json, data, [f"extension {number}: {', '.join(parts) or 'no forwarding'}"])


def _switch(number: str, state: str, setting: str, label: str, as_json: bool) -> None:
    """Turn the boolean call setting ``setting`` of an extension on or off."""
    with _cli()._errors():
        if state.lower() not in ("on", "off"):
            raise InvalidInput(f"state must be 'on' or 'off', not {state!r}", field="state")
        pbx, _ = _pbx()
        tenant_id = _extension_tenant(pbx, number)
        data = pbx.do_set_call_settings(
            tenant_id, Actor.cli(), number, {setting: state.lower() == "on"}
        )
        _emit(as_json, data, [f"extension {number}: {label} {state.lower()}"])


def extension_dnd(
    number: Annotated[str, typer.Argument(help="Extension number")],
    state: Annotated[str, typer.Argument(help="on or off")],
    as_json: JsonFlag = False,
) -> None:
    """Turn do-not-disturb on or off."""
    _switch(number, state, "dnd", "do-not-disturb", as_json)


def extension_auto_answer(
    number: Annotated[str, typer.Argument(help="Extension number")],
    state: Annotated[str, typer.Argument(help="on or off")],
    as_json: JsonFlag = False,
) -> None:
    """Turn auto-answer on or off: the extension's phones answer by themselves when they
    ring for their agent (queue calls, consultations, callbacks, click-to-dial)."""
    _switch(number, state, "auto_answer", "auto-answer", as_json)


def register(app: typer.Typer, extension_app: typer.Typer) -> None:
    """Mount the PBX commands on the ``sparklecomm`` app."""
    app.add_typer(did_app, name="did")
    app.add_typer(hours_app, name="hours")
    app.add_typer(trunk_app, name="trunk")
    app.add_typer(ringgroup_app, name="ringgroup")
    app.add_typer(ivr_app, name="ivr")
    app.add_typer(block_app, name="block")
    app.add_typer(dialrule_app, name="dialrule")
    app.add_typer(voicemail_app, name="voicemail")
    extension_app.command("forward")(extension_forward)
    extension_app.command("dnd")(extension_dnd)
    extension_app.command("auto-answer")(extension_auto_answer)
