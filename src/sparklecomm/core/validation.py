"""Small input checks shared by services; each raises InvalidInput naming the field."""

from __future__ import annotations

from sparklecomm.core.errors import InvalidInput


def check_name(value: str, field: str, *, max_length: int = 200) -> str:
    """A display name: stripped, 1 to ``max_length`` characters."""
    value = value.strip()
    if not value or len(value) > max_length:
        raise InvalidInput(f"{field} must be 1-{max_length} characters", field=field)
    return value


def check_email(value: str | None, field: str = "email") -> str | None:
    """An e-mail address, loosely (it has an @ and fits the standard's length), or None."""
    if value is not None and (len(value) > 254 or "@" not in value):
        raise InvalidInput(f"{field} is not an e-mail address", field=field)
    return value
