"""Identifiers and secrets."""

from __future__ import annotations

import hashlib
import secrets
import uuid


def new_id() -> str:
    """A new opaque, URL-safe, time-unordered identifier (UUID4 as 32 hex digits)."""
    return uuid.uuid4().hex


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """A new bearer secret such as an API token or a session key, with a readable prefix."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret, as stored in the database.

    Tokens are random 256-bit values, so a fast hash is enough (argon2 is for passwords,
    which are low-entropy); it also lets us look a token up by its hash in one query.
    """
    return hashlib.sha256(secret.encode()).hexdigest()
