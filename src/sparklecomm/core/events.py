"""The one event envelope every domain emits.

An :class:`Event` is an immutable fact: ``id`` is the per-tenant, strictly increasing position
in that tenant's stream (assigned by the event store when the fact is committed), ``type`` a
dotted name (``agent.state_changed``, ``interaction.offered``, ``user.created``), ``time`` when
it happened (UTC), and ``payload`` plain JSON data. Pure cores emit :class:`NewEvent` (no id
yet); the shell appends them to the stream inside the transaction that made the change and
publishes them after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event produced by a core or service, not yet given its place in the stream."""

    type: str
    payload: JSON = field(default_factory=dict)
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """An event committed to a tenant's stream."""

    id: int
    tenant_id: str
    type: str
    time: datetime
    payload: JSON

    def to_json(self) -> JSON:
        """The wire form used by the HTTP API and the WebSocket."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "type": self.type,
            "time": self.time.isoformat(),
            "payload": self.payload,
        }

    @classmethod
    def from_json(cls, data: JSON) -> Event:
        return cls(
            id=int(data["id"]),
            tenant_id=str(data["tenant_id"]),
            type=str(data["type"]),
            time=datetime.fromisoformat(str(data["time"])),
            payload=dict(data["payload"]),
        )
