"""Extensions: the SIP accounts phones register with, stored in SQL.

An extension belongs to an organisation and has a number (``1001``), a display name and a
SIP password, of which only the digest hashes (HA1 = H(user:realm:password)) are stored, one
per algorithm, for the server's realm. Changing the realm therefore needs new passwords.
The SIP login is the extension number, unique across the platform (like usernames), so a
phone needs no organisation in its settings.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column
from starlette.concurrency import run_in_threadpool

from sparklecomm.audit.store import Actor, write_audit_txn
from sparklecomm.core.errors import Conflict, InvalidInput, NotFound
from sparklecomm.core.events import NewEvent
from sparklecomm.core.ids import new_id
from sparklecomm.core.validation import check_name
from sparklecomm.store.db import Database
from sparklecomm.store.models import Base, UTCDateTime
from sparklecomm.telephony.sip.digest import compute_ha1

EXTENSION_RE = re.compile(r"^[0-9]{2,15}$")
ALGORITHMS = ("MD5", "SHA-256")
MIN_SIP_PASSWORD = 10


class Extension(Base):
    __tablename__ = "sip_extensions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"), index=True)
    number: Mapped[str] = mapped_column(String(15), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    realm: Mapped[str] = mapped_column(String(100))
    ha1_md5: Mapped[str] = mapped_column(String(64))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def extension_payload(ext: Extension) -> dict[str, object]:
    """Public form (never the hashes)."""
    return {
        "id": ext.id,
        "number": ext.number,
        "display_name": ext.display_name,
        "user_id": ext.user_id,
    }


class ExtensionService:
    """Create, list and re-key extensions; also the SIP server's credential store."""

    def __init__(self, db: Database, realm: str) -> None:
        self.db = db
        self.realm = realm

    def _check_password(self, password: str) -> None:
        if len(password) < MIN_SIP_PASSWORD:
            raise InvalidInput(
                f"a SIP password needs at least {MIN_SIP_PASSWORD} characters (phones are "
                "attacked by password guessing more than anything)",
                field="password",
            )

    def _hashes(self, number: str, password: str) -> tuple[str, str]:
        return (
            compute_ha1(number, self.realm, password, "MD5"),
            compute_ha1(number, self.realm, password, "SHA-256"),
        )

    def do_create(
        self,
        tenant_id: str,
        actor: Actor,
        *,
        number: str,
        password: str,
        display_name: str | None = None,
        user_id: str | None = None,
    ) -> Extension:
        """Create an extension; the audit row and the event share its transaction."""
        number = number.strip()
        if not EXTENSION_RE.match(number):
            raise InvalidInput("an extension number has 2-15 digits", field="number")
        self._check_password(password)
        name = check_name(display_name or number, "display_name")
        md5, sha256 = self._hashes(number, password)
        with self.db.write() as tx:
            if tx.session.scalar(select(Extension.id).where(Extension.number == number)):
                raise Conflict(f"extension {number} exists already", field="number")
            ext = Extension(
                id=new_id(),
                tenant_id=tenant_id,
                number=number,
                display_name=name,
                user_id=user_id,
                realm=self.realm,
                ha1_md5=md5,
                ha1_sha256=sha256,
                created_at=tx.clock.now(),
            )
            tx.session.add(ext)
            tx.session.flush()
            write_audit_txn(
                tx.session,
                tx.clock,
                tenant_id=tenant_id,
                actor=actor,
                action="extension.created",
                target_type="extension",
                target_id=ext.id,
                details={"number": number},
            )
            tx.emit(tenant_id, NewEvent("extension.created", {"extension": extension_payload(ext)}))
        return ext

    def do_set_password(self, number: str, password: str, actor: Actor) -> Extension:
        self._check_password(password)
        md5, sha256 = self._hashes(number, password)
        with self.db.write() as tx:
            ext = tx.session.scalar(select(Extension).where(Extension.number == number))
            if ext is None:
                raise NotFound(f"no extension {number}", field="number")
            ext.ha1_md5, ext.ha1_sha256, ext.realm = md5, sha256, self.realm
            write_audit_txn(
                tx.session,
                tx.clock,
                tenant_id=ext.tenant_id,
                actor=actor,
                action="extension.password_set",
                target_type="extension",
                target_id=ext.id,
            )
        return ext

    def list(self, tenant_id: str | None = None) -> list[Extension]:
        with self.db.read() as s:
            query = select(Extension).order_by(Extension.number)
            if tenant_id is not None:
                query = query.where(Extension.tenant_id == tenant_id)
            return list(s.scalars(query))

    def _ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        with self.db.read() as s:
            ext = s.scalar(select(Extension).where(Extension.number == username))
        if ext is None or ext.realm != realm:
            return None
        return {"MD5": ext.ha1_md5, "SHA-256": ext.ha1_sha256}.get(algorithm.upper())

    def _tenant_of(self, number: str) -> str | None:
        with self.db.read() as s:
            return s.scalar(select(Extension.tenant_id).where(Extension.number == number))

    async def tenant_of(self, number: str) -> str | None:
        """The tenant of extension ``number`` (the B2BUA's calling party), or None."""
        return await run_in_threadpool(self._tenant_of, number)

    async def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """The :class:`~sparklecomm.telephony.sip.digest.CredentialStore` protocol."""
        return await run_in_threadpool(self._ha1, username, realm, algorithm)

    def _numbers_of_user(self, tenant_id: str, user_id: str) -> tuple[str, ...]:
        with self.db.read() as s:
            query = (
                select(Extension.number)
                .where(Extension.tenant_id == tenant_id, Extension.user_id == user_id)
                .order_by(Extension.number)
            )
            return tuple(s.scalars(query))

    async def numbers_of_user(self, tenant_id: str, user_id: str) -> tuple[str, ...]:
        """The extensions of a person (an agent's phones, which the ACD rings)."""
        return await run_in_threadpool(self._numbers_of_user, tenant_id, user_id)
