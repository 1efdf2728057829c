"""The API's error answers: one exception type that becomes the documented envelope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INTERNAL_MESSAGE = "internal server error"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of a ``validation_error``'s ``details``: a dotted field path and what is wrong."""

    field: str
    message: str


class ApiProblem(Exception):
    """An error answer: HTTP status, catalog ``code``, ``message`` and optional ``details``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` body."""
        return error_envelope(self.code, self.message, self.details)


def error_envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """Build the documented error envelope."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def validation_failed(errors: list[FieldError]) -> ApiProblem:
    """422 ``validation_error`` carrying every field error at once."""
    return ApiProblem(
        422,
        "validation_error",
        "request failed validation",
        [{"field": e.field, "message": e.message} for e in errors],
    )


def invalid_body(message: str) -> ApiProblem:
    """400 ``invalid_request_body``: not JSON, wrong content type, or unknown fields."""
    return ApiProblem(400, "invalid_request_body", message)


def invalid_parameter(name: str, message: str) -> ApiProblem:
    """400 for a malformed query parameter (sandbox choice of code: ``invalid_parameter``)."""
    return ApiProblem(
        400,
        "invalid_parameter",
        f"query parameter {name} {message}",
        [{"field": name, "message": message}],
    )


def not_found(kind: str) -> ApiProblem:
    """404 ``{kind}_not_found``."""
    return ApiProblem(404, f"{kind}_not_found", f"{kind.replace('_', ' ')} not found")
