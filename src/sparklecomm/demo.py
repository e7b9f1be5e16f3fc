"""The demo center: the platform with a demo organisation and live synthetic traffic.

``sparklecomm demo`` prepares a data directory (schema, the demo organisation, its queues,
simulated agents, customers and codes), then serves the platform while a traffic task feeds
the *real* routing engine through :class:`~sparklecomm.acd.service.AcdService`: customers
arrive (Poisson arrivals per queue), wait, sometimes hang up; simulated agents accept
their offers, talk, complete with a disposition and wrap up, and now and then take a break.
A person signed in as ``agent`` is a member of every queue and receives offers next to the
simulated agents.

Durations come from the simulator's distributions (:mod:`sparklecomm.sim.distributions`).
``sparklecomm.sim`` has no public arrival generator for wall-clock time (its Poisson step is
private to the discrete-event loop), so arrivals are drawn here with the same law
(exponential gaps at the stream's rate). ``speed`` divides every duration: the engine still
runs on the real clock, only the traffic is denser.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

import structlog

from sparklecomm.acd.service import AcdService
from sparklecomm.audit.store import Actor
from sparklecomm.auth.service import Principal
from sparklecomm.bootstrap import DEMO_SLUG, FirstRun, prepare
from sparklecomm.container import Services
from sparklecomm.core.errors import DomainError
from sparklecomm.customers.service import CustomerService
from sparklecomm.sim.distributions import Distribution, Exponential, LogNormal

log = structlog.get_logger(__name__)

SIM_AGENTS = [
    ("sim-mia", "Mia Novak"),
    ("sim-leo", "Leo Martin"),
    ("sim-zoe", "Zoé Laurent"),
    ("sim-raj", "Raj Patel"),
    ("sim-ines", "Inès Costa"),
    ("sim-tom", "Tom Becker"),
    ("sim-yuki", "Yuki Sato"),
    ("sim-omar", "Omar Diallo"),
]
QUEUES: list[dict[str, Any]] = [
    {
        "id": "support",
        "name": "Support",
        "channels": ["voice"],
        "members": range(0, 5),
        "per_minute": 3.0,
        "handle": 150.0,
        "patience": 120.0,
        "dnis": "+18005550100",
    },
    {
        "id": "sales",
        "name": "Sales",
        "channels": ["voice"],
        "members": range(3, 8),
        "per_minute": 2.0,
        "handle": 200.0,
        "patience": 90.0,
        "dnis": "+18005550200",
    },
    {
        "id": "chat",
        "name": "Web chat",
        "channels": ["chat"],
        "members": range(0, 8, 2),
        "per_minute": 2.0,
        "handle": 240.0,
        "patience": 300.0,
        "dnis": "chat:website",
    },
]
FIRST = [
    "Lena",
    "Omar",
    "Ada",
    "Noah",
    "Sofia",
    "Liam",
    "Emma",
    "Mateo",
    "Chloé",
    "Arjun",
    "Hana",
    "Lucas",
    "Nora",
    "Felix",
    "Maya",
    "Ivan",
    "Zara",
    "Hugo",
    "Aisha",
    "Jonas",
]
LAST = [
    "Ruiz",
    "Haddad",
    "Kowalski",
    "Smith",
    "Rossi",
    "Okafor",
    "Dubois",
    "Jensen",
    "Tanaka",
    "Silva",
    "Nguyen",
    "Schmidt",
]
DISPOSITIONS = ["resolved", "resolved", "resolved", "follow-up", "sale", "escalated"]
BREAKS = ["coffee", "lunch", "training"]


@dataclass
class DemoSetup:
    tenant_id: str
    admin: Principal
    sim_agents: list[str]
    customers: list[tuple[str, str]]  # (id, phone)
    first: FirstRun | None = None


def _principal(services: Services, tenant_id: str, username: str) -> Principal:
    user = services.auth.user_by_username(username)
    return Principal(
        user_id=user.id,
        tenant_id=tenant_id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        auth="token",
    )


def setup(services: Services, *, admin_password: str | None = None, seed: int = 7) -> DemoSetup:
    """Prepare the demo organisation (idempotent: a second run reuses what exists)."""
    first = prepare(services, admin_password=admin_password)
    tenant = services.auth.tenant_by_slug(DEMO_SLUG)
    tid = tenant.tenant_id
    acd: AcdService = services.extra["acd"]
    customers: CustomerService = services.extra["customers"]
    admin = _principal(services, tid, "admin")
    actor = Actor(id=None, name="demo")
    rng = random.Random(seed)
    existing = {u.username: u for u in services.auth.users_of_tenant(tid)}
    agent_ids = []
    for username, name in SIM_AGENTS:
        user = existing.get(username) or services.auth.do_create_user(
            tid,
            actor,
            username=username,
            password=secrets.token_urlsafe(16),
            role="agent",
            display_name=name,
        )
        agent_ids.append(user.id)
    human = existing["agent"].id if "agent" in existing else None
    known = set(acd.read(tid, lambda e: e.agent_ids()))
    for uid, (_username, name) in zip(agent_ids, SIM_AGENTS, strict=True):
        if uid not in known:
            skills = {"billing": rng.randint(1, 5), "english": 5, "spanish": rng.randint(0, 5)}
            acd.execute(
                tid,
                "add_agent",
                config={
                    "id": uid,
                    "name": name,
                    "skills": {k: v for k, v in skills.items() if v},
                    "capacity": {"voice": 1, "chat": 2},
                },
            )
    if human is not None and human not in known:
        acd.execute(
            tid,
            "add_agent",
            config={
                "id": human,
                "name": existing["agent"].display_name,
                "capacity": {"voice": 1, "chat": 3},
            },
        )
    queues = set(acd.read(tid, lambda e: e.queue_ids()))
    for q in QUEUES:
        if q["id"] in queues:
            continue
        members = [{"agent_id": agent_ids[i]} for i in q["members"]]
        if human is not None:
            members.append({"agent_id": human})
        acd.execute(
            tid,
            "add_queue",
            config={
                "id": q["id"],
                "name": q["name"],
                "channels": q["channels"],
                "members": members,
                "service_level_seconds": 20,
                "offer_timeout_seconds": 20,
                "wrapup_seconds": 30,
            },
        )
    customers.seed_default_codes(tid)
    people = [(c.id, c.phone or "") for c in customers.search(admin, None, 200)]
    if not people:
        for n in range(40):
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            tier = rng.choices([None, "silver", "gold", "platinum"], [70, 15, 10, 5])[0]
            phone = f"+1555{rng.randint(1000000, 9999999)}"
            c = customers.do_create(
                admin,
                {
                    "id": f"c-{1001 + n}",
                    "name": name,
                    "phone": phone,
                    "vip_tier": tier,
                    "email": f"{name.split()[0].lower()}.{n}@example.com",
                    "attributes": {
                        "plan": rng.choice(["Basic", "Pro", "Business"]),
                        "language": rng.choice(["en", "en", "es", "fr"]),
                    },
                },
            )
            people.append((c.id, phone))
    for uid in agent_ids:
        with contextlib.suppress(DomainError):
            acd.execute(tid, "login", agent_id=uid)
        state = acd.read(tid, functools.partial(_agent_state, agent_id=uid))
        if state == "break":
            with contextlib.suppress(DomainError):
                acd.execute(tid, "set_available", agent_id=uid)
    return DemoSetup(tid, admin, agent_ids, people, first)


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    kind: str = field(compare=False)
    args: tuple[str, ...] = field(compare=False, default=())


class Traffic:
    """Live synthetic traffic through the real engine (see the module docstring)."""

    def __init__(
        self,
        services: Services,
        demo: DemoSetup,
        *,
        speed: float = 1.0,
        load: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.acd: AcdService = services.extra["acd"]
        self.demo = demo
        self.speed = max(0.01, speed)
        self.load = load
        self.rng = random.Random(seed)
        self.heap: list[_Due] = []
        self.seq = 0
        self.loop = asyncio.get_event_loop_policy().get_event_loop()
        self.handling: set[tuple[str, str]] = set()  # (agent, interaction) already scheduled
        self.arrivals = 0
        self.handle: dict[str, Distribution] = {
            q["id"]: LogNormal(q["handle"], q["handle"] * 0.6) for q in QUEUES
        }
        self.patience: dict[str, Distribution] = {
            q["id"]: Exponential(q["patience"]) for q in QUEUES
        }

    def _at(self, delay: float, kind: str, *args: str) -> None:
        self.seq += 1
        # loop.time() is a plain monotonic clock: safe to read from the worker thread.
        heapq.heappush(self.heap, _Due(self.loop.time() + delay / self.speed, self.seq, kind, args))

    def _exec(self, name: str, **args: Any) -> bool:
        try:
            self.acd.execute(self.demo.tenant_id, name, **args)
        except DomainError:
            return False  # the situation moved on (answered, hung up, ...): that is fine
        return True

    def _next_arrival(self, queue: dict[str, Any]) -> None:
        rate = queue["per_minute"] * self.load / 60.0
        self._at(self.rng.expovariate(rate), "arrive", queue["id"])

    # ---- what happens ---------------------------------------------------------------------

    def arrive(self, queue_id: str) -> None:
        q = next(x for x in QUEUES if x["id"] == queue_id)
        self._next_arrival(q)
        self.arrivals += 1
        iid = f"demo-{self.rng.randrange(16**10):010x}"
        known = self.rng.random() < 0.8
        cid, phone = self.rng.choice(self.demo.customers) if known else (None, "")
        attrs: dict[str, Any] = {"dnis": q["dnis"]}
        if q["channels"] == ["voice"]:
            attrs["ani"] = phone or f"+1555{self.rng.randint(1000000, 9999999)}"
        if self._exec(
            "create_interaction",
            interaction_id=iid,
            queue_id=queue_id,
            channel=q["channels"][0],
            priority=0,
            required_skills="",
            customer_id=cid,
            attributes=attrs,
        ):
            self._at(self.patience[queue_id].sample(self.rng), "abandon", iid)

    def abandon(self, iid: str) -> None:
        state = self.acd.read(self.demo.tenant_id, lambda e: _state(e, iid))
        if state in ("queued", "offered"):
            self._exec("abandon", interaction_id=iid, reason="hangup")

    def agents(self) -> None:
        """Simulated agents react to their offers and finished work."""
        tid = self.demo.tenant_id
        snaps = self.acd.read(tid, lambda e: [e.agent_snapshot(a) for a in self.demo.sim_agents])
        for a in snaps:
            if a.offer and ("offer", a.offer) not in self.handling:
                self.handling.add(("offer", a.offer))
                self._at(self.rng.uniform(1.0, 4.0), "accept", a.offer, a.agent_id)
            for iid in a.interactions:
                if ("talk", iid) not in self.handling:
                    self.handling.add(("talk", iid))
                    queue = self.acd.read(tid, functools.partial(_queue, iid=iid))
                    dist = self.handle.get(queue, Exponential(180.0))
                    self._at(dist.sample(self.rng), "complete", iid, a.agent_id)
            for iid in a.wrapups:
                if ("wrap", iid) not in self.handling:
                    self.handling.add(("wrap", iid))
                    self._at(self.rng.uniform(5.0, 25.0), "wrapup_end", iid, a.agent_id)
            if a.state == "available" and self.rng.random() < 0.0003 * self.speed:
                self._exec("set_break", agent_id=a.agent_id, reason=self.rng.choice(BREAKS))
                self._at(self.rng.uniform(60.0, 300.0), "back", a.agent_id)
            if a.state == "logged_out":
                self._exec("login", agent_id=a.agent_id)

    def act(self, due: _Due) -> None:
        if due.kind == "arrive":
            self.arrive(due.args[0])
        elif due.kind == "abandon":
            self.abandon(due.args[0])
        elif due.kind == "accept":
            self._exec("accept", interaction_id=due.args[0], agent_id=due.args[1])
        elif due.kind == "complete":
            self._exec(
                "complete",
                interaction_id=due.args[0],
                agent_id=due.args[1],
                disposition=self.rng.choice(DISPOSITIONS),
            )
        elif due.kind == "wrapup_end":
            self._exec("end_wrapup", interaction_id=due.args[0], agent_id=due.args[1])
        elif due.kind == "back":
            self._exec("set_available", agent_id=due.args[0])

    async def run(self) -> None:
        """Run until cancelled; engine calls go to a worker thread (they write to SQL)."""
        loop = self.loop = asyncio.get_running_loop()
        for q in QUEUES:
            self._next_arrival(q)
        while True:
            try:
                await asyncio.to_thread(self.agents)
                while self.heap and self.heap[0].at <= loop.time():
                    await asyncio.to_thread(self.act, heapq.heappop(self.heap))
            except Exception:  # keep the demo alive whatever one step did
                log.exception("demo_traffic_step_failed")
            await asyncio.sleep(0.25)


def _state(engine: Any, iid: str) -> str | None:
    try:
        return str(engine.interaction_snapshot(iid).state)
    except DomainError:
        return None


def _agent_state(engine: Any, agent_id: str) -> str:
    return str(engine.agent_snapshot(agent_id).state)


def _queue(engine: Any, iid: str) -> str:
    try:
        return str(engine.interaction_snapshot(iid).queue_id)
    except DomainError:
        return ""


async def serve_with_traffic(
    services: Services, demo: DemoSetup, *, speed: float, load: float
) -> None:
    """Serve the platform and feed it traffic once the routing engine has started."""
    import uvicorn

    from sparklecomm.app import build_app
    from sparklecomm.runtime import tune_gc

    settings = services.settings
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(services),
            host=settings.host,
            port=settings.port,
            log_config=None,
            ws_ping_interval=20,
            lifespan="on",
        )
    )
    traffic = Traffic(services, demo, speed=speed, load=load)
    tune_gc(settings.gc_threshold)

    async def feed() -> None:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
            await asyncio.sleep(0.1)
        await traffic.run()

    task = asyncio.create_task(feed(), name="demo-traffic")
    try:
        await server.serve()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
