"""The services of one running platform, built by ``sparklecomm.app.build_services``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sparklecomm.auth.service import AuthService, Principal
from sparklecomm.bus.base import EventBus
from sparklecomm.core.clock import Clock
from sparklecomm.events.stream import EventStream
from sparklecomm.settings import Settings
from sparklecomm.store.db import Database

StateProvider = Callable[[Principal], Any | None]


@dataclass
class Services:
    """Everything a request handler may use; one instance per process."""

    settings: Settings
    clock: Clock
    db: Database
    bus: EventBus
    auth: AuthService
    events: EventStream
    # Domains built later (acd, telephony, ...) register themselves here by name.
    extra: dict[str, Any] = field(default_factory=dict)
    # Parts of the real-time initial state ("register"), by key; a provider returns None
    # when the caller may not see that part. Each domain adds its own.
    state_providers: dict[str, StateProvider] = field(default_factory=dict)
