"""The wire format: JSON bodies out and in, envelopes, list pages, query values, headers.

Bodies go out as compact UTF-8 JSON with amounts as decimal strings (a float is refused);
answers come in with fractions as :class:`~decimal.Decimal`. Error bodies are scrubbed of
secrets before they reach a message.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Final, Protocol
from urllib.parse import quote

from batchpay.client.records import ApiResult
from batchpay.errors import MAX_REQUEST_ID_CHARS, ApiError, server_text

__all__ = [
    "NOT_JSON",
    "Json",
    "answer_request_id",
    "check_idempotency_key",
    "clean_params",
    "decode_json",
    "encode_json",
    "http_date",
    "page_items",
    "path_segment",
    "scrub",
    "timestamp",
    "unwrap",
]

Json = dict[str, Any]

NOT_JSON: Final = object()
"""What :func:`decode_json` returns for a body that is not JSON."""

_MAX_KEY_LENGTH: Final = 255


class Answered(Protocol):
    """What is read of an answer (an ``httpx.Response`` or the transport's ``Answer``)."""

    @property
    def content(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware UTC datetime, or None when absent or unreadable."""
    if not value:
        return None
    return _http_date(value)


@functools.lru_cache(maxsize=64)  # a second's answers share one Date: parsed once
def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def path_segment(value: str) -> str:
    """One path segment: ids are quoted so ``../`` or ``?`` cannot change the URL."""
    if not value:
        raise ValueError("an id in a URL path must not be empty")
    return quote(value, safe="")


def check_idempotency_key(key: str) -> None:
    if not key or len(key) > _MAX_KEY_LENGTH:
        raise ValueError(f"an idempotency key must be 1..{_MAX_KEY_LENGTH} characters")
    # (the one printable ASCII character that is whitespace is the space itself)
    if not key.isascii() or not key.isprintable() or " " in key:
        raise ValueError("an idempotency key must be printable ASCII without spaces")


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite amount: {value}")
        return format(value, "f")
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _reject_floats(value: object) -> None:
    if isinstance(value, float):
        raise TypeError("refusing to send a float in a request body: use a decimal string")
    if isinstance(value, Mapping):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


def encode_json(body: Any) -> bytes:
    _reject_floats(body)
    return json.dumps(
        body,
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
        default=_json_default,
    ).encode("utf-8")


_DECODER = json.JSONDecoder(parse_float=Decimal)


def decode_json(response: Answered) -> Any:
    if not response.content:
        return None
    content = response.content
    try:
        # json.loads(content, parse_float=Decimal) reads bytes so, with a new decoder each time
        return _DECODER.decode(content.decode(json.detect_encoding(content), "surrogatepass"))
    except ValueError:  # (UnicodeDecodeError too)
        return NOT_JSON


def unwrap(body: Any) -> tuple[Any, bool, str | None]:
    """Strip a ``{"data": ...}`` envelope; a resource with its own ``id`` is never unwrapped."""
    if isinstance(body, dict) and "data" in body and "id" not in body:
        inner = body["data"]
        if isinstance(inner, list):
            has_more = body.get("has_more")
            cursor = body.get("next_cursor")
            return (
                inner,
                has_more is True or (isinstance(has_more, str) and has_more.lower() == "true"),
                cursor if isinstance(cursor, str) and cursor else None,
            )
        if isinstance(inner, dict):
            return inner, False, None
    return body, False, None


def page_items(page: ApiResult, path: str) -> list[Json]:
    data = page.data
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ApiError(
            f"GET {path}: expected a list of objects",
            status=page.status,
            code="invalid_response",
            request_id=page.request_id,
        )
    return data


def clean_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    cleaned = {key: value for key, value in params.items() if value is not None}
    return cleaned or None


def timestamp(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("timestamps sent to the API must be timezone-aware")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def answer_request_id(response: Answered, sent: str) -> str:
    """The answer's X-Request-ID (bounded, redacted), else the one we sent."""
    answered = response.headers.get("x-request-id")
    return (server_text(answered, MAX_REQUEST_ID_CHARS) if answered else "") or sent


def scrub(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: scrub(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, redact) for item in value]
    return value
