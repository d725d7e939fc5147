"""Errors a user can cause. The domain raises them; the API layer turns each kind into its
HTTP status and the JSON body ``{"error": {"code", "message"}}``."""

from __future__ import annotations


class DomainError(Exception):
    """Base: ``code`` is stable and machine-readable, ``message`` is for a person."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: more machine-readable fields of the error body (e.g. a login challenge)
        self.details: dict[str, object] = {}


class Invalid(DomainError):
    status = 422


class NotAuthenticated(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class TooMany(DomainError):
    status = 429
