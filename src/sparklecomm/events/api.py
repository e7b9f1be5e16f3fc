"""The real-time event contract over HTTP and WebSocket.

1. ``GET /api/v1/events/state`` returns ``last_event_id`` and the initial state the caller may
   see (each domain contributes a part).
2. ``WS /api/v1/events/ws?last_event_id=N`` then streams every event with id > N, in order,
   without gaps or duplicates, and keeps streaming live ones; after a disconnect the client
   reconnects with the last id it saw and resumes exactly there. The first frame is
   ``{"op": "hello", "last_event_id": H, "resumed_from": N, "server_time": ms}`` (the
   server's clock in milliseconds since the epoch, for the pages' clock-skew correction).
   A frame then carries one event (``{"op": "event", "event": {...}}``) or, when several
   are ready at once (events within a few milliseconds are coalesced), a batch in order
   (``{"op": "events", "events": [...]}``). A client too far behind is closed with code
   4429 and the reason ``behind; resume from last_event_id=N``: reconnect with that id.
3. ``GET /api/v1/events?after=N`` is the same stream, paged, for scripts that poll.

Applying the events after ``last_event_id`` to the state gives the state a fresh fetch
would return (tested the Zulip way). State is read *after* the head id, so an event may be
both reflected in the state and delivered; reducers are upserts, so that is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from sparklecomm.api.deps import SESSION_COOKIE, CurrentPrincipal, ServicesDep
from sparklecomm.auth.service import Principal
from sparklecomm.container import Services
from sparklecomm.core.events import Event
from sparklecomm.events.fanout import BEHIND_CODE, Client, TenantHub, raw_transport_of
from sparklecomm.events.stream import PAGE

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1", tags=["events"])
MAX_EVENT_ID = 2**62


class EventOut(BaseModel):
    id: int
    tenant_id: str
    type: str
    time: str
    payload: dict[str, Any]


class EventsPage(BaseModel):
    events: list[EventOut]
    last_event_id: int


class StateOut(BaseModel):
    last_event_id: int
    state: dict[str, Any]


@router.get("/events", response_model=EventsPage)
def list_events(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventsPage:
    """Events with id > ``after``, oldest first, and the stream's current head."""
    head = svc.events.head(principal.tenant_id)
    page = svc.events.page(principal.tenant_id, after, limit)
    return EventsPage(events=[EventOut(**e.to_json()) for e in page], last_event_id=head)


def build_state(svc: Services, principal: Principal) -> StateOut:
    head = svc.events.head(principal.tenant_id)
    state: dict[str, Any] = {}
    for key, provider in svc.state_providers.items():
        part = provider(principal)
        if part is not None:
            state[key] = part
    return StateOut(last_event_id=head, state=state)


@router.get("/events/state", response_model=StateOut)
def initial_state(principal: CurrentPrincipal, svc: ServicesDep) -> StateOut:
    """The initial state and the event id to resume from (Zulip's "register")."""
    return build_state(svc, principal)


def _ws_principal(ws: WebSocket, svc: Services) -> Principal | None:
    token = ws.query_params.get("access_token")
    if token:
        return svc.auth.principal_from_token(token)
    header = ws.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return svc.auth.principal_from_token(header[7:].strip())
    cookie = ws.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    # A cookie is sent by the browser whatever page opens the socket: accept it only from
    # our own pages (cross-site WebSocket hijacking).
    origin = ws.headers.get("origin")
    host = ws.headers.get("host")
    if origin is not None and host is not None and origin.split("://", 1)[-1] != host:
        return None
    return svc.auth.principal_from_session(cookie)


@router.websocket("/events/ws")
async def events_ws(ws: WebSocket) -> None:
    """Stream the tenant's events; resume with ``?last_event_id=N``."""
    svc: Services = ws.app.state.services
    principal = await run_in_threadpool(_ws_principal, ws, svc)
    if principal is None:
        await ws.close(code=4401, reason="sign in first or pass access_token")
        return
    raw = ws.query_params.get("last_event_id")
    head = await run_in_threadpool(svc.events.head, principal.tenant_id)
    if raw is None or raw == "":
        after = head
    else:
        try:
            after = int(raw)
        except ValueError:
            after = -1
        if after < 0 or after > head:
            await ws.close(
                code=4400, reason=f"last_event_id must be an integer between 0 and {head}"
            )
            return
    await ws.accept()
    hello = {
        "op": "hello",
        "last_event_id": head,
        "resumed_from": after,
        "server_time": round(time.time() * 1000),
    }
    await ws.send_text(json.dumps(hello))
    hubs = svc.events.hubs
    hub = await hubs.acquire(principal.tenant_id, _frame)
    client = Client(after, raw_transport_of(ws._receive, ws._send))
    # The reader answers pings and, when the client goes away, wakes the loop below.
    reader = asyncio.create_task(_read_client(ws, client))
    try:
        await _serve(ws, svc, hub, client)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        hub.remove(client)
        hubs.release(hub)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def _serve(ws: WebSocket, svc: Services, hub: TenantHub, client: Client) -> None:
    """Catch the client up from the database, then let the hub send it live events.

    While the client is in the hub's live set the hub sends (or queues) every batch; this
    loop only sleeps, or sends queued frames. When it falls behind (or has just connected)
    it reads from the database, page by page, up to the hub's position, then joins.
    """
    tenant_id = hub.tenant_id
    while not client.closed:
        if client.live or client.outbox:
            if client.outbox:
                frames, client.outbox = client.outbox, []
                for frame, last in frames:
                    await ws.send_text(frame)
                    client.sent = last
                continue
            client.wake.clear()
            await client.wake.wait()
            continue
        if client.behind:  # too far behind: reconnect and catch up from the database
            log.info("event_client_behind", tenant_id=tenant_id, resume_from=client.sent)
            reason = f"behind; resume from last_event_id={client.sent}"
            await ws.close(code=BEHIND_CODE, reason=reason)
            return
        if client.last < hub.last:
            page = await run_in_threadpool(svc.events.page, tenant_id, client.last, PAGE)
            page = [e for e in page if e.id <= hub.last]
            if not page or page[0].id != client.last + 1:  # not visible yet: try again soon
                await asyncio.sleep(0.05)
                continue
            await ws.send_text(_frame(page))
            client.last = client.sent = page[-1].id
        elif not hub.join(client):  # the client is ahead of the hub: wait for it
            hub.waiting.add(client)
            client.wake.clear()
            await client.wake.wait()


_WIRE_CACHE: OrderedDict[tuple[str, int], str] = OrderedDict()
_WIRE_CACHE_SIZE = 4096


def _event_json(event: Event) -> str:
    """An event's JSON, encoded once for all subscribers.

    With a thousand clients on one tenant, encoding each event a thousand times would cost
    more than sending it. Only the event loop's thread calls this, so no lock is needed.
    """
    key = (event.tenant_id, event.id)
    text = _WIRE_CACHE.get(key)
    if text is None:
        text = json.dumps(event.to_json())
        _WIRE_CACHE[key] = text
        if len(_WIRE_CACHE) > _WIRE_CACHE_SIZE:
            _WIRE_CACHE.popitem(last=False)
    return text


def _frame(batch: list[Event]) -> str:
    """One frame: ``{"op": "event", ...}`` for one event, ``{"op": "events", ...}`` for more."""
    if len(batch) == 1:
        return '{"op": "event", "event": ' + _event_json(batch[0]) + "}"
    return '{"op": "events", "events": [' + ", ".join(_event_json(e) for e in batch) + "]}"


async def _read_client(ws: WebSocket, client: Client) -> None:
    """Answer pings; when the client goes away, stop the sender."""
    while True:
        try:
            text = await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, OSError):
            client.closed = True
            client.wake.set()
            return
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            if json.loads(text).get("op") == "ping":
                await ws.send_text('{"op": "pong"}')
