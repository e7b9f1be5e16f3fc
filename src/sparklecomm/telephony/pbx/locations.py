"""Registrations (the SIP location service) in SQL, so that every node of a cluster sees
every phone: :class:`SqlLocationStore` implements
:class:`~sparklecomm.telephony.sip.location.LocationStore`.

``replace`` rewrites an address-of-record's bindings in one transaction; readers filter
expired bindings themselves (as the protocol allows) and :meth:`SqlLocationStore.purge_expired`
deletes them. SQL runs in the thread pool, never on the event loop. Two nodes updating the
same address-of-record at the same instant: the last transaction wins (the registrar's
read-modify-write is per node), which for one phone re-registering is harmless.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select
from starlette.concurrency import run_in_threadpool

from sparklecomm.store.db import Database
from sparklecomm.telephony.extensions import Extension
from sparklecomm.telephony.pbx.models import SipBindingRow
from sparklecomm.telephony.sip.location import Binding

_AOR_USER = re.compile(r"^sips?:([^@;]+)@")


def _binding(row: SipBindingRow) -> Binding:
    return Binding(
        aor=row.aor,
        contact=row.contact,
        expires_at=row.expires_at,
        call_id=row.call_id,
        cseq=row.cseq,
        q=row.q,
        source=row.source,
        user_agent=row.user_agent,
    )


class SqlLocationStore:
    """Bindings in the ``sip_bindings`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def bindings_sync(self, aor: str) -> list[Binding]:
        with self.db.read() as s:
            query = select(SipBindingRow).where(SipBindingRow.aor == aor)
            return [_binding(r) for r in s.scalars(query.order_by(SipBindingRow.id))]

    def replace_sync(self, aor: str, bindings: Sequence[Binding]) -> None:
        match = _AOR_USER.match(aor)
        with self.db.write() as tx:
            s = tx.session
            tenant_id = None
            if match:
                tenant_id = s.scalar(
                    select(Extension.tenant_id).where(Extension.number == match.group(1))
                )
            s.execute(delete(SipBindingRow).where(SipBindingRow.aor == aor))
            if bindings:
                s.execute(
                    insert(SipBindingRow),
                    [
                        {
                            "tenant_id": tenant_id,
                            "aor": aor,
                            "contact": b.contact,
                            "expires_at": b.expires_at,
                            "call_id": b.call_id,
                            "cseq": b.cseq,
                            "q": b.q,
                            "source": b.source,
                            "user_agent": b.user_agent,
                        }
                        for b in bindings
                    ],
                )

    async def bindings(self, aor: str) -> list[Binding]:
        return await run_in_threadpool(self.bindings_sync, aor)

    async def replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        await run_in_threadpool(self.replace_sync, aor, bindings)

    def all_bindings(self) -> list[Binding]:
        with self.db.read() as s:
            return [
                _binding(r) for r in s.scalars(select(SipBindingRow).order_by(SipBindingRow.id))
            ]

    def purge_expired(self, now: datetime) -> int:
        """Delete expired bindings; return how many."""
        with self.db.write() as tx:
            result = tx.session.execute(
                delete(SipBindingRow).where(SipBindingRow.expires_at <= now)
            )
            return int(getattr(result, "rowcount", 0) or 0)
