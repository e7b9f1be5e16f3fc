"""Domain errors.

Services raise these; the HTTP layer turns them into RFC 9457 problem documents and the CLI
into a readable message with a non-zero exit code. Each carries a message meant for a person
and, where one input is at fault, the name of that field.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: something the caller asked for cannot be done."""

    status = 400
    title = "Bad request"
    code = "bad_request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(DomainError):
    status = 422
    title = "Invalid input"
    code = "invalid_input"


class NotFound(DomainError):
    status = 404
    title = "Not found"
    code = "not_found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    code = "conflict"


class Unauthenticated(DomainError):
    status = 401
    title = "Authentication required"
    code = "unauthenticated"


class PermissionDenied(DomainError):
    status = 403
    title = "Permission denied"
    code = "permission_denied"


class TooManyAttempts(DomainError):
    status = 429
    title = "Too many attempts"
    code = "too_many_attempts"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A part the request needs is not running or does not answer (the SIP server, another
    node): try again later."""

    status = 503
    title = "Service unavailable"
    code = "unavailable"
