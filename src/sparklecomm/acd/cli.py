"""``sparklecomm queue ...`` and ``sparklecomm agent ...``: routing provisioning for scripts.

The routing engine lives in the running server (one process owns a tenant's engine), so
these commands are HTTP clients of its API, authenticated with an API token
(``sparklecomm user token NAME`` prints one): ``--url`` / ``SPARKLECOMM_URL`` and
``--token`` / ``SPARKLECOMM_TOKEN``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer

queue_app = typer.Typer(help="Queues: create, list, show live, members.", no_args_is_help=True)
member_app = typer.Typer(help="Agents of a queue.", no_args_is_help=True)
agent_app = typer.Typer(help="Agents: skills, capacity, login, state.", no_args_is_help=True)
queue_app.add_typer(member_app, name="member")

Url = Annotated[str, typer.Option("--url", envvar="SPARKLECOMM_URL", help="Server URL")]
Token = Annotated[
    str, typer.Option("--token", envvar="SPARKLECOMM_TOKEN", help="API token (Bearer)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]
DEFAULT_URL = "http://127.0.0.1:8080"


def http_client(url: str, token: str) -> httpx.Client:
    """The HTTP client the commands use (tests swap in an in-process one)."""
    return httpx.Client(
        base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _call(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    if not token:
        typer.echo(
            "error: an API token is needed: --token or SPARKLECOMM_TOKEN "
            "(sparklecomm user token USERNAME prints one)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        with http_client(url, token) as client:
            response = client.request(method, f"/api/v1{path}", json=body)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach the server at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        try:
            problem = response.json()
            message = problem.get("detail") or problem.get("title")
            fields = [e["field"] for e in problem.get("errors", []) if e.get("field")]
            if fields and not str(message).startswith(fields[0]):
                message = f"{fields[0]}: {message}"
        except ValueError:
            message = response.text[:200]
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2 if response.status_code in (400, 422) else 1)
    return response.json() if response.content else None


def _emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        human()


def _pairs(values: list[str], option: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or not name or not number.strip().lstrip("-").isdigit():
            typer.echo(f"error: {option} takes NAME=NUMBER, got {value!r}", err=True)
            raise typer.Exit(2)
        out[name.strip()] = int(number)
    return out


def _user_id(url: str, token: str, username: str) -> str:
    users = _call(url, token, "GET", "/users")
    for user in users:
        if user["username"] == username.strip().lower() or user["id"] == username:
            return str(user["id"])
    typer.echo(f"error: no user named {username!r}", err=True)
    raise typer.Exit(1)


# ---- queues --------------------------------------------------------------------------


@queue_app.command("list")
def queue_list(url: Url = DEFAULT_URL, token: Token = "", as_json: JsonFlag = False) -> None:
    """Queues with their live figures."""
    queues = _call(url, token, "GET", "/queues")

    def human() -> None:
        typer.echo(f"{'QUEUE':<20} {'STRATEGY':<18} {'WAITING':>7} {'LONGEST':>8} {'STAFFED':>7}")
        for q in queues:
            typer.echo(
                f"{q['queue_id']:<20} {q['strategy']:<18} {q['waiting']:>7} "
                f"{q['longest_wait_seconds']:>7.0f}s {q['staffed_agents']:>7}"
            )

    _emit(as_json, queues, human)


@queue_app.command("add")
def queue_add(
    queue_id: Annotated[str, typer.Argument(help="Readable id, e.g. support")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id)")] = None,
    strategy: Annotated[str, typer.Option(help="longest-idle, round-robin, ...")] = (
        "longest-idle"
    ),
    member: Annotated[
        list[str] | None, typer.Option(help="USERNAME or USERNAME=PENALTY; repeatable")
    ] = None,
    service_level_seconds: Annotated[float, typer.Option(help="Service-level target")] = 20,
    offer_timeout_seconds: Annotated[float, typer.Option(help="Ring time per offer")] = 20,
    wrapup_seconds: Annotated[float, typer.Option(help="After-call work time")] = 0,
    hours: Annotated[
        str | None,
        typer.Option(
            help="Business hours it keeps (sparklecomm hours list); closed, new "
            "contacts go to --closed-to"
        ),
    ] = None,
    closed_to: Annotated[
        str | None, typer.Option(help="Queue that takes new contacts while closed")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a queue."""
    members = []
    for item in member or []:
        username, _, penalty = item.partition("=")
        members.append(
            {
                "agent_id": _user_id(url, token, username),
                "penalty": int(penalty) if penalty.isdigit() else 0,
            }
        )
    body = {
        "id": queue_id,
        "name": name or queue_id,
        "strategy": strategy,
        "members": members,
        "service_level_seconds": service_level_seconds,
        "offer_timeout_seconds": offer_timeout_seconds,
        "wrapup_seconds": wrapup_seconds,
    }
    if hours is not None:
        body["hours"] = hours
    if closed_to is not None:
        body["on_closed"] = {"queue_id": closed_to}
    config = _call(url, token, "POST", "/queues", body)
    _emit(as_json, config, lambda: typer.echo(f"created queue {queue_id} ({strategy})"))


@queue_app.command("show")
def queue_show(
    queue_id: str, url: Url = DEFAULT_URL, token: Token = "", as_json: JsonFlag = False
) -> None:
    """A queue's live view with its waiting list."""
    q = _call(url, token, "GET", f"/queues/{queue_id}")

    def human() -> None:
        typer.echo(
            f"{q['queue_id']} ({q['name']}): {q['waiting']} waiting, longest "
            f"{q['longest_wait_seconds']:.0f}s, {q['staffed_agents']} staffed"
        )
        for e in q["entries"]:
            ewt = "?" if e["ewt_seconds"] is None else f"{e['ewt_seconds']:.0f}s"
            typer.echo(
                f"  {e['position']:>3}. {e['interaction_id']} {e['channel']:<8} "
                f"waited {e['wait_seconds']:.0f}s, EWT {ewt}"
            )

    _emit(as_json, q, human)


@queue_app.command("remove")
def queue_remove(queue_id: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Delete a queue (refused while interactions wait in it)."""
    _call(url, token, "DELETE", f"/queues/{queue_id}")
    typer.echo(f"removed queue {queue_id}")


@member_app.command("add")
def member_add(
    queue_id: str,
    username: str,
    penalty: Annotated[int, typer.Option(help="Tier: 0 is offered first")] = 0,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Add an agent to a queue, or change its penalty."""
    agent_id = _user_id(url, token, username)
    _call(
        url,
        token,
        "PUT",
        f"/queues/{queue_id}/members/{agent_id}",
        {"agent_id": agent_id, "penalty": penalty},
    )
    typer.echo(f"{username} is in {queue_id} with penalty {penalty}")


@member_app.command("remove")
def member_remove(queue_id: str, username: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Take an agent out of a queue."""
    agent_id = _user_id(url, token, username)
    _call(url, token, "DELETE", f"/queues/{queue_id}/members/{agent_id}")
    typer.echo(f"{username} left {queue_id}")


# ---- agents --------------------------------------------------------------------------


@agent_app.command("list")
def agent_list(url: Url = DEFAULT_URL, token: Token = "", as_json: JsonFlag = False) -> None:
    """Agents with state and time in state."""
    agents = _call(url, token, "GET", "/agents")

    def human() -> None:
        typer.echo(f"{'AGENT':<24} {'STATE':<11} {'REASON':<14} {'FOR':>7} QUEUES")
        for a in agents:
            typer.echo(
                f"{a['name']:<24} {a['state']:<11} {a['reason']:<14} "
                f"{a['seconds_in_state']:>6.0f}s {','.join(a['queues'])}"
            )

    _emit(as_json, agents, human)


@agent_app.command("set")
def agent_set(
    username: str,
    skill: Annotated[list[str] | None, typer.Option(help="NAME=LEVEL (1-5); repeatable")] = None,
    capacity: Annotated[
        list[str] | None, typer.Option(help="CHANNEL=N, e.g. chat=3; repeatable")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: JsonFlag = False,
) -> None:
    """Make a user an agent, or change its skills and capacity."""
    body: dict[str, Any] = {"skills": _pairs(skill or [], "--skill")}
    if capacity:
        body["capacity"] = _pairs(capacity, "--capacity")
    agent_id = _user_id(url, token, username)
    config = _call(url, token, "PUT", f"/agents/{agent_id}", body)
    _emit(as_json, config, lambda: typer.echo(f"{username}: skills {body['skills']}"))


@agent_app.command("login")
def agent_login(username: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Log an agent in to routing (it becomes available)."""
    agent_id = _user_id(url, token, username)
    _call(url, token, "POST", f"/agents/{agent_id}/login", {})
    typer.echo(f"{username} logged in")


@agent_app.command("logout")
def agent_logout(username: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    agent_id = _user_id(url, token, username)
    _call(url, token, "POST", f"/agents/{agent_id}/logout", {})
    typer.echo(f"{username} logged out")


@agent_app.command("state")
def agent_state(
    username: str,
    state: Annotated[str, typer.Argument(help="ready or break")],
    reason: Annotated[str | None, typer.Option(help="Reason code, e.g. lunch")] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Set an agent ready or on break (with a reason code)."""
    wanted = {"ready": "available", "available": "available", "break": "break"}.get(state)
    if wanted is None:
        typer.echo("error: state must be ready or break", err=True)
        raise typer.Exit(2)
    agent_id = _user_id(url, token, username)
    body: dict[str, Any] = {"state": wanted}
    if reason:
        body["reason"] = reason
    _call(url, token, "POST", f"/agents/{agent_id}/state", body)
    typer.echo(f"{username} is {state}" + (f" ({reason})" if reason else ""))
