"""The location service: which contacts each address-of-record is reachable at
(RFC 3261 §10, "bindings").

:class:`LocationStore` is the protocol the registrar writes to and a future proxy/B2BUA
reads from. :class:`InMemoryLocationStore` keeps bindings in a dict and, given a
:class:`BindingPersistence`, loads them at start and saves each change, so registrations
survive a restart; :class:`JsonFilePersistence` is a small file-backed one, and the SQL
store can implement the same two methods.

Expiry is absolute wall-clock time (``expires_at``), so a persisted binding stays valid
across restarts for exactly the time it was granted.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact registered for an address-of-record."""

    aor: str
    """Canonical ``sip:user@domain``."""
    contact: str
    """The Contact URI as registered (``sip:alice@192.0.2.4:5060;transport=tcp``)."""
    expires_at: datetime
    call_id: str
    cseq: int
    q: float | None = None
    source: str | None = None
    """Where the REGISTER came from (``UDP:192.0.2.4:5060``, ``TLS:192.0.2.4:49152``):
    reaching a phone behind NAT, over the transport (and for TCP/TLS the connection) it
    registered on."""
    user_agent: str | None = None

    @property
    def transport(self) -> str | None:
        """The transport the REGISTER came over (``UDP``, ``TCP``, ``TLS``), if known."""
        if not self.source or ":" not in self.source:
            return None
        return self.source.split(":", 1)[0].upper()

    def remaining(self, now: datetime) -> int:
        """Whole seconds left (0 once expired)."""
        return max(0, int((self.expires_at - now).total_seconds()))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["expires_at"] = self.expires_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Binding:
        values = dict(data)
        values["expires_at"] = datetime.fromisoformat(values["expires_at"])
        return cls(**values)


class LocationStore(Protocol):
    """Bindings by address-of-record. Implementations need not drop expired bindings:
    readers filter by ``expires_at``."""

    async def bindings(self, aor: str) -> list[Binding]:
        """Every stored binding of ``aor`` (expired ones may be included)."""
        ...

    async def replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        """Make ``bindings`` the whole set for ``aor`` (empty removes the AOR)."""
        ...


class BindingPersistence(Protocol):
    """Where an :class:`InMemoryLocationStore` keeps a durable copy."""

    def load(self) -> Iterable[Binding]: ...

    def save(self, aor: str, bindings: Sequence[Binding]) -> None: ...


class InMemoryLocationStore:
    """Bindings in memory, optionally mirrored to a :class:`BindingPersistence`."""

    def __init__(self, persistence: BindingPersistence | None = None) -> None:
        self._persistence = persistence
        self._by_aor: dict[str, list[Binding]] = {}
        if persistence is not None:
            for binding in persistence.load():
                self._by_aor.setdefault(binding.aor, []).append(binding)

    async def bindings(self, aor: str) -> list[Binding]:
        return list(self._by_aor.get(aor, ()))

    async def replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        if bindings:
            self._by_aor[aor] = list(bindings)
        else:
            self._by_aor.pop(aor, None)
        if self._persistence is not None:
            self._persistence.save(aor, bindings)

    def all_bindings(self) -> list[Binding]:
        return [binding for group in self._by_aor.values() for binding in group]

    def purge_expired(self, now: datetime) -> int:
        """Drop expired bindings from memory (not from persistence); return how many."""
        dropped = 0
        for aor in list(self._by_aor):
            live = [b for b in self._by_aor[aor] if b.expires_at > now]
            dropped += len(self._by_aor[aor]) - len(live)
            if live:
                self._by_aor[aor] = live
            else:
                del self._by_aor[aor]
        return dropped


class JsonFilePersistence:
    """Bindings in one JSON file, rewritten atomically on each change (a development and
    single-node convenience until the SQL store arrives)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def load(self) -> list[Binding]:
        if not self.path.exists():
            return []
        self._cache = json.loads(self.path.read_text(encoding="utf-8"))
        return [Binding.from_dict(item) for items in self._cache.values() for item in items]

    def save(self, aor: str, bindings: Sequence[Binding]) -> None:
        if bindings:
            self._cache[aor] = [binding.to_dict() for binding in bindings]
        else:
            self._cache.pop(aor, None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".bindings-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._cache, handle)
        os.replace(tmp, self.path)
