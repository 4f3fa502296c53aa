"""The contract's error responses (`core::error`): one exception per failure a request can meet,
and the JSON body `{"status": <code>, "errors": {"<parameter or 'request'>": "<message>"}}`.

Handlers raise these; each peer has one handler that renders them, so that every framework's own
defaults (text bodies, HTML pages, redirects) are replaced by the same bytes the Rust servers send.
"""

from __future__ import annotations

import json

#: Seconds a client is asked to wait (`Retry-After`) while the database is unavailable.
RETRY_AFTER_SECONDS = "1"


class ApiError(Exception):
    """A failure with the status and the per-parameter messages the contract gives it."""

    status: int = 500
    errors: dict[str, str] = {"request": "internal server error"}

    def __init__(self, errors: dict[str, str] | None = None, status: int | None = None) -> None:
        if errors is not None:
            self.errors = errors
        if status is not None:
            self.status = status
        super().__init__(f"{self.status}: {self.errors}")

    def body(self) -> dict:
        """The body as a value; messages ordered by parameter name, as core's BTreeMap is."""
        return {"status": self.status, "errors": dict(sorted(self.errors.items()))}

    def to_json(self) -> bytes:
        """The exact bytes every variant sends (serde_json's compact form)."""
        return json.dumps(self.body(), ensure_ascii=False, separators=(",", ":")).encode()

    def headers(self) -> dict[str, str]:
        """`Retry-After` on the statuses that carry one."""
        return {"Retry-After": RETRY_AFTER_SECONDS} if self.status == 503 else {}


class InvalidInput(ApiError):
    """400: one or more path or query values are invalid; keyed by parameter name."""

    status = 400

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)


def invalid(parameter: str, message: str) -> InvalidInput:
    """A 400 for a single parameter."""
    return InvalidInput({parameter: message})


class ContactNotFound(ApiError):
    status = 404
    errors = {"contact_id": "contact not found"}


class RouteNotFound(ApiError):
    status = 404
    errors = {"request": "no such path"}


class MethodNotAllowed(ApiError):
    status = 405
    errors = {"request": "method not allowed"}


class DatabaseUnavailable(ApiError):
    """503: the database cannot be reached, or no connection freed up within the wait timeout."""

    status = 503
    errors = {"request": "database unavailable, retry later"}


class Internal(ApiError):
    """500: a bug. The detail goes to the log, never to the client."""

    status = 500
    errors = {"request": "internal server error"}
