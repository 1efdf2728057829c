"""batchpay's one error hierarchy.

Every error a user can meet is a :class:`BatchpayError`: it carries a one-line
``message``, a ``hint`` saying what to do, the documented ``exit_code`` the CLI
turns it into, and whether retrying the same operation is safe (``retryable``).

::

    BatchpayError
    ├── ConfigError              bad or missing configuration, credentials, environment
    ├── InputError               the file cannot be read as a payout file
    ├── ValidationFailed         rows failed validation (carries every RowIssue)
    ├── DuplicateFileError       the file (or a re-saved copy) was already run
    ├── ControlTotalsMismatch    declared row count / totals disagree with the file
    ├── PreflightError           e.g. the balance cannot cover the run
    ├── RunLockedError           another batchpay process holds this run
    ├── JournalError             the journal database is unusable (unreadable, full, read-only)
    │   ├── LivePayoutExists         (journal) another run holds a live payout for the row
    │   └── RunExists                (journal) another process just created the run
    ├── ReportError              (report) the report cannot be written where it was asked
    ├── RunNotFound              the command names a run the journal does not hold (exit 2)
    ├── ConfirmationRequired     a verb that pays again was not confirmed (exit 2)
    ├── NothingToDo              nothing to do, and nothing done (exit 0)
    ├── UnexpectedAnswer         the API answered, but not as its contract says (exit 11)
    ├── Held / Refused           (resolve) a row needs a person / the API refused a creation
    ├── Incomplete               (airflow.steps) some outcomes not yet known (exit 10, retryable)
    ├── WebhookRejected          (webhooks) a delivery failed signature or freshness checks
    ├── AlreadySubscribed        (webhooks) the URL already has a subscription
    ├── TransportError           could not reach the API: outcome of a POST unknown (retryable)
    └── ApiError                 the API answered with an error envelope
        ├── InvalidRequestError          400
        ├── AuthenticationError          401 (stops the run)
        ├── PermissionDeniedError        403 (velocity_blocked, key_environment_mismatch, ...)
        ├── NotFoundError                404
        ├── ConflictError                409
        │   ├── IdempotencyConflictError     409 idempotency_conflict (a data problem)
        │   └── IdempotencyInFlightError     409 idempotency_in_flight (retryable)
        ├── UnprocessableError           422 (business refusals; validation_error)
        ├── RateLimitedError             429 (retryable, honours Retry-After)
        └── ServerError                  5xx (retryable)

"Could not reach the API" (:class:`TransportError`) is kept apart from "the API
said no" (:class:`ApiError`): only the second tells us the request was refused.

Text taken from a server's answer (error codes, messages, request ids) passes through
:func:`server_text` before it becomes part of an error: bounded, one line, and with anything
shaped like a credential redacted, so it is safe to store in the journal and to report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Exit codes of the ``batchpay`` command, documented in the README."""

    OK = 0
    ROWS_FAILED = 1
    USAGE = 2
    INPUT_UNREADABLE = 3
    VALIDATION_FAILED = 4
    DUPLICATE_FILE = 5
    CONFIG = 6
    AUTHENTICATION = 7
    LOCKED = 8
    PREFLIGHT = 9
    INCOMPLETE = 10
    API_ERROR = 11
    INTERNAL = 70


class BatchpayError(Exception):
    """Base of every error batchpay raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL
    retryable: bool = False
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class ConfigError(BatchpayError):
    """Configuration, credentials or environment are missing or inconsistent."""

    exit_code = ExitCode.CONFIG


class InputError(BatchpayError):
    """The input file cannot be read as a payout file (encoding, format, limits)."""

    exit_code = ExitCode.INPUT_UNREADABLE

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str = "unreadable",
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.row = row
        self.column = column


@dataclass(frozen=True, slots=True)
class RowIssue:
    """One problem with one cell or row of the input file.

    ``row`` is the row number as the user sees it in Excel (header is row 1).
    """

    row: int
    column: str | None
    code: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class ValidationFailed(BatchpayError):
    """One or more rows failed validation; nothing was sent."""

    exit_code = ExitCode.VALIDATION_FAILED
    default_hint = (
        "fix the listed cells and run again, or pass --skip-invalid to pay only the valid rows"
    )

    def __init__(self, issues: list[RowIssue], *, rows_checked: int = 0) -> None:
        n_rows = len({i.row for i in issues})
        super().__init__(
            f"{len(issues)} problem(s) in {n_rows} row(s) of {rows_checked}; nothing was sent"
        )
        self.issues = issues
        self.rows_checked = rows_checked


class DuplicateFileError(BatchpayError):
    """The file, or a re-saved copy of it, was already run."""

    exit_code = ExitCode.DUPLICATE_FILE
    default_hint = (
        "nothing was sent; if you really mean to pay these rows again, "
        "change their references in a new file"
    )

    def __init__(self, message: str, *, run_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.run_id = run_id


class ControlTotalsMismatch(BatchpayError):
    """Declared control totals (row count, totals per currency) disagree with the file."""

    exit_code = ExitCode.VALIDATION_FAILED
    default_hint = "check the file is complete and the declared totals are right; nothing was sent"


class PreflightError(BatchpayError):
    """A check before submission refused the run (e.g. insufficient balance)."""

    exit_code = ExitCode.PREFLIGHT


class RunLockedError(BatchpayError):
    """Another batchpay process is working on the same run or file."""

    exit_code = ExitCode.LOCKED
    default_hint = "wait for the other process to finish, then run the same command again"


class JournalError(BatchpayError):
    """The journal database cannot be opened, read or written, or is inconsistent."""

    exit_code = ExitCode.CONFIG


class ReportError(BatchpayError):
    """The report cannot be written (the folder is not a folder, not writable, or full)."""

    exit_code = ExitCode.CONFIG


class RunNotFound(BatchpayError):
    """The command names a run this journal does not hold (or the journal holds none)."""

    exit_code = ExitCode.USAGE
    default_hint = "`batchpay runs` lists the runs this journal knows"


class ConfirmationRequired(BatchpayError):
    """A verb that pays rows again was not confirmed."""

    exit_code = ExitCode.USAGE


class NothingToDo(BatchpayError):
    """There was nothing to do; nothing was done (not a failure)."""

    exit_code = ExitCode.OK


class UnexpectedAnswer(BatchpayError):
    """The API answered successfully, but not as its contract says."""

    exit_code = ExitCode.API_ERROR


class TransportError(BatchpayError):
    """The API could not be reached, or the connection broke before an answer.

    For a POST the outcome is unknown: the request may have been applied. It is
    retried with the same idempotency key, never with a new one.
    """

    exit_code = ExitCode.API_ERROR
    retryable = True
    default_hint = "check the network and the API URL; batchpay retries with the same key"

    def __init__(
        self,
        message: str,
        *,
        timeout: bool = False,
        hint: str | None = None,
        sent: bool | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.timeout = timeout
        # False only when the request provably never left (connection refused,
        # connect timeout): then even a write without an idempotency key is safe
        # to repeat. None/True: the server may have acted on it.
        self.sent = sent
        # The X-Request-ID batchpay sent, so even a lost answer can be traced.
        self.request_id = request_id


class ApiError(BatchpayError):
    """The API answered with an error envelope."""

    exit_code = ExitCode.API_ERROR
    replayed = False
    """The answer was the provider's replay of an earlier one (``X-Idempotent-Replayed``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        request_id: str | None = None,
        details: Any = None,
        body: Any = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.details = details
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"


class InvalidRequestError(ApiError):
    """400: the request could not be parsed or had unknown fields."""


class AuthenticationError(ApiError):
    """401: the credential was refused. The run stops; looping would not help."""

    exit_code = ExitCode.AUTHENTICATION
    default_hint = "check BATCHPAY_API_KEY (or BATCHPAY_API_KEY_FILE) and the API URL"


class PermissionDeniedError(ApiError):
    """403: authenticated but not permitted (velocity block, wrong environment, ...)."""


class NotFoundError(ApiError):
    """404: the resource does not exist under this merchant."""


class ConflictError(ApiError):
    """409: the resource's state disallows the request."""


class IdempotencyConflictError(ConflictError):
    """409 idempotency_conflict: the key was used before with a different body.

    A data problem, never retried: batchpay fixes a row's body before its first send.
    """

    default_hint = (
        "the provider holds this idempotency key with a different request body; "
        "the row's data changed after it was first sent"
    )


class IdempotencyInFlightError(ConflictError):
    """409 idempotency_in_flight: the first request with this key is still running."""

    retryable = True


class UnprocessableError(ApiError):
    """422: syntactically valid but refused (validation, balance, business rule)."""


class RateLimitedError(ApiError):
    """429: the per-merchant rate limit was exceeded."""

    retryable = True


class ServerError(ApiError):
    """5xx: the provider failed; safe to retry with the same idempotency key."""

    retryable = True


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableError,
    429: RateLimitedError,
}

_BY_CODE: dict[str, type[ApiError]] = {
    "idempotency_conflict": IdempotencyConflictError,
    "idempotency_in_flight": IdempotencyInFlightError,
    "idempotency_unavailable": ServerError,
    "rate_limit_exceeded": RateLimitedError,
}


# Longest server text kept, per kind: enough to read, never a 10 kB page in a report cell.
MAX_CODE_CHARS = 64
MAX_MESSAGE_CHARS = 500
MAX_REQUEST_ID_CHARS = 128

REDACTED = "[redacted]"
_SECRET_SHAPES = re.compile(
    r"""
      ant_ocs?_[A-Za-z0-9_\-]+                              # OAuth client ids and secrets
    | whsec_[A-Za-z0-9+/=_\-]+                              # webhook signing secrets
    | eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*    # JWT-shaped strings
    """,
    re.VERBOSE,
)
# Anton API keys keep their kind and last four characters, as Secret.masked() shows them.
_API_KEY = re.compile(r"\b(ak_(?:test|live)_)([A-Za-z0-9_\-]*)")
# "Bearer <token>" / "DPoP <token>": the scheme word stays, the token (8+ characters) goes.
_AUTH_TOKEN = re.compile(r"\b(bearer|dpop)(\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def redact_secrets(text: str) -> str:
    """``text`` with everything shaped like a key, secret or token replaced by ``[redacted]``.

    API keys are masked rather than removed (``ak_test_…f00d``), so a user can tell which
    key a message is about.
    """
    text = _API_KEY.sub(_mask_api_key, text)
    text = _AUTH_TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _SECRET_SHAPES.sub(REDACTED, text)


def _mask_api_key(match: re.Match[str]) -> str:
    prefix, rest = match.group(1), match.group(2)
    return f"{prefix}…{rest[-4:]}" if len(rest) >= 12 else f"{prefix}{REDACTED}"


def server_text(value: object, limit: int) -> str:
    """Text from a server's answer made safe to keep: secrets redacted, one line, bounded.

    Control characters (newlines, terminal escapes) become spaces, so a message stays one
    line on the terminal; text over ``limit`` characters is cut and ends with ``…``.
    """
    text = _CONTROL.sub(" ", redact_secrets(str(value))).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def api_error_from_response(
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> ApiError:
    """Map an HTTP error answer (status, decoded body, headers) to the right ApiError.

    The code, message and request id are taken through :func:`server_text`.
    """
    headers = headers or {}
    code = f"http_{status}"
    message = f"HTTP {status}"
    details: Any = None
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            code = str(err.get("code") or code)
            message = str(err.get("message") or message)
            details = err.get("details")
        elif isinstance(err, str):  # OAuth-style flat envelope
            code = err
            message = str(body.get("error_description") or message)
    retry_after: float | None = None
    raw_retry = _header(headers, "retry-after")
    if raw_retry is not None:
        try:
            retry_after = max(0.0, float(raw_retry))
        except ValueError:
            retry_after = None
    code = server_text(code, MAX_CODE_CHARS) or f"http_{status}"
    message = server_text(message, MAX_MESSAGE_CHARS) or f"HTTP {status}"
    request_id = _header(headers, "x-request-id")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls(
        message,
        status=status,
        code=code,
        request_id=server_text(request_id, MAX_REQUEST_ID_CHARS) if request_id else None,
        details=details,
        body=body,
        retry_after=retry_after,
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
