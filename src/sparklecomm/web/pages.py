"""The web shell: sign-in page, the page frame and its sections."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from sparklecomm import __version__
from sparklecomm.api.deps import SESSION_COOKIE, ServicesDep
from sparklecomm.auth.api import set_session_cookie
from sparklecomm.auth.service import Principal
from sparklecomm.core.errors import TooManyAttempts, Unauthenticated
from sparklecomm.web import TEMPLATES_DIR

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)

SECTIONS = [
    # (path, label, minimum role)
    ("/agent", "Agent desktop", "agent"),
    ("/wallboard", "Wallboard", "supervisor"),
    ("/admin", "Admin", "admin"),
]
# The main navigation: the sections (also the home page's cards) and the pages every user
# has besides them, each after the section it follows.
NAV_EXTRA = {
    "/agent": [
        ("/voicemail", "Voicemail", "agent"),
        ("/recordings", "Recordings", "agent"),
        ("/quality", "Quality", "agent"),
        ("/surveys", "Satisfaction", "agent"),
    ]
}


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _page_principal(request: Request, svc: Any) -> Principal | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    return svc.auth.principal_from_session(cookie) if cookie else None


def _render(
    request: Request, name: str, principal: Principal | None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    def entry(path: str, label: str, role: str) -> dict[str, Any]:
        allowed = principal is not None and principal.has_role(role)
        return {"path": path, "label": label, "allowed": allowed}

    sections = [entry(*s) for s in SECTIONS]
    nav: list[dict[str, Any]] = []
    for s in SECTIONS:
        nav.append(entry(*s))
        nav.extend(entry(*extra) for extra in NAV_EXTRA.get(s[0], []))
    return templates.TemplateResponse(
        request,
        name,
        {
            "principal": principal,
            "sections": sections,
            "nav": nav,
            "version": __version__,
            **ctx,
        },
        status_code=status,
    )


def _guarded(request: Request, svc: Any, role: str) -> Principal | Response:
    principal = _page_principal(request, svc)
    if principal is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if not principal.has_role(role):
        return _render(
            request,
            "forbidden.html",
            principal,
            status=403,
            active=request.url.path,
            needed=role,
        )
    return principal


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, svc: ServicesDep, next: str | None = None) -> Response:
    if _page_principal(request, svc) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(request, "login.html", None, next=_safe_next(next), error=None, username="")


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    svc: ServicesDep,
    username: Annotated[str, Form(max_length=150)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    source = request.client.host if request.client else "unknown"
    try:
        if not username or not password:
            raise Unauthenticated("enter your username and password")
        cookie, _ = svc.auth.login(username, password, source)
    except (Unauthenticated, TooManyAttempts) as exc:
        status = 429 if isinstance(exc, TooManyAttempts) else 401
        message = exc.detail[0].upper() + exc.detail[1:] + "."
        return _render(
            request,
            "login.html",
            None,
            status=status,
            next=_safe_next(next),
            error=message,
            username=username,
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(response, cookie, svc.settings.cookie_secure, svc.auth)
    return response


@router.post("/logout")
def logout_submit(request: Request, svc: ServicesDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        svc.auth.logout(cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, svc: ServicesDep) -> Response:
    principal = _guarded(request, svc, "agent")
    if not isinstance(principal, Principal):
        return principal
    tenant = svc.auth.get_tenant(principal.tenant_id)
    return _render(request, "home.html", principal, active="/", tenant=tenant)


@router.get("/agent", response_class=HTMLResponse)
def agent_page(request: Request, svc: ServicesDep) -> Response:
    principal = _guarded(request, svc, "agent")
    if not isinstance(principal, Principal):
        return principal
    return _render(request, "agent.html", principal, active="/agent")


@router.get("/voicemail", response_class=HTMLResponse)
def voicemail_page(request: Request, svc: ServicesDep) -> Response:
    """The messages in the voicemail boxes the user may open: every box of the organisation
    for supervisors and administrators, the boxes of their own extensions for agents."""
    principal = _guarded(request, svc, "agent")
    if not isinstance(principal, Principal):
        return principal
    return _render(
        request,
        "voicemail.html",
        principal,
        active="/voicemail",
        every_box=principal.has_role("supervisor"),
    )


@router.get("/recordings", response_class=HTMLResponse)
def recordings_page(request: Request, svc: ServicesDep) -> Response:
    """Call recordings: every recording of the organisation for supervisors and
    administrators (administrators may delete them), the recordings of their own calls for
    agents."""
    principal = _guarded(request, svc, "agent")
    if not isinstance(principal, Principal):
        return principal
    return _render(
        request,
        "recordings.html",
        principal,
        active="/recordings",
        every_agent=principal.has_role("supervisor"),
        may_delete=principal.has_role("admin"),
    )


@router.get("/surveys", response_class=HTMLResponse)
def surveys_page(request: Request, svc: ServicesDep) -> Response:
    """Customer satisfaction: the survey answers with the customers' comments, every
    answer for supervisors and administrators, those about their own contacts for agents."""
    principal = _guarded(request, svc, "agent")
    if not isinstance(principal, Principal):
        return principal
    return _render(
        request,
        "surveys.html",
        principal,
        active="/surveys",
        every_agent=principal.has_role("supervisor"),
    )


@router.get("/quality", response_class=HTMLResponse)
def quality_page(request: Request, svc: ServicesDep) -> Response:
    """Quality assurance: supervisors review recorded calls on a scorecard and follow the
    team's trends; agents read the feedback on their calls, acknowledge it and evaluate
    themselves; administrators also write the scorecards."""
    principal = _guarded(request, svc, "agent")
    if not isinstance(principal, Principal):
        return principal
    return _render(
        request,
        "quality.html",
        principal,
        active="/quality",
        every_agent=principal.has_role("supervisor"),
        edit_scorecards=principal.has_role("admin"),
    )


@router.get("/wallboard", response_class=HTMLResponse)
def wallboard_page(request: Request, svc: ServicesDep) -> Response:
    principal = _guarded(request, svc, "supervisor")
    if not isinstance(principal, Principal):
        return principal
    return _render(request, "wallboard.html", principal, active="/wallboard")


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, svc: ServicesDep) -> Response:
    principal = _guarded(request, svc, "admin")
    if not isinstance(principal, Principal):
        return principal
    return _render(request, "admin_users.html", principal, active="/admin", admin_section="/admin")


ADMIN_SECTIONS = {"queues": "Queues", "agents": "Agents & skills", "codes": "Codes"}


@router.get("/admin/{section}", response_class=HTMLResponse)
def admin_routing_page(section: str, request: Request, svc: ServicesDep) -> Response:
    """Admin › queues, agents (skills, proficiency, capacity), reason/disposition codes,
    phone numbers and business hours, phones (extensions), call recording (the policy)."""
    principal = _guarded(request, svc, "admin")
    if not isinstance(principal, Principal):
        return principal
    if section in ("numbers", "phones", "recording"):
        return _render(
            request,
            f"admin_{section}.html",
            principal,
            active="/admin",
            admin_section=f"/admin/{section}",
        )
    if section not in ADMIN_SECTIONS:
        return RedirectResponse("/admin", status_code=303)
    configs: list[dict[str, Any]] = []
    if section == "agents":
        configs = _agent_configs(svc, principal)
    return _render(
        request,
        "admin_routing.html",
        principal,
        agent_configs=configs,
        active="/admin",
        admin_section=f"/admin/{section}",
        section=section,
        title=ADMIN_SECTIONS[section],
    )


def _agent_configs(svc: Any, principal: Principal) -> list[dict[str, Any]]:
    """Every user who could take work, with its routing configuration (None: not yet an
    agent); the routing API has no read endpoint for an agent's configuration."""
    from sparklecomm.acd.persistence import agent_config_to_dict

    acd = svc.extra["acd"]
    configs = acd.read(
        principal.tenant_id,
        lambda e: {a: agent_config_to_dict(e.agent_config(a)) for a in e.agent_ids()},
    )
    return [
        {"id": u.id, "username": u.username, "name": u.display_name, "config": configs.get(u.id)}
        for u in svc.auth.users_of_tenant(principal.tenant_id)
        if u.is_active
    ]
