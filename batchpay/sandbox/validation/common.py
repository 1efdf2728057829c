"""What every body check shares: the field collector, unknown-field refusal, the body object.

Unknown fields are refused whole (400 ``invalid_request_body``, as the API's strict
decoder does); every other field problem is collected, so one 422
``validation_error`` lists them all with dotted field paths.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from batchpay.banking import COUNTRIES
from batchpay.money import is_known_currency

from ..problems import FieldError, invalid_body, validation_failed

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Collector:
    """Collects field errors so every problem is reported in one answer."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        """Record one problem on a dotted field path."""
        self.errors.append(FieldError(field, message))

    def raise_if_any(self) -> None:
        """Raise one 422 ``validation_error`` listing every problem collected."""
        if self.errors:
            raise validation_failed(self.errors)

    def string(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool,
        max_len: int | None = None,
    ) -> str | None:
        """A string field: present when required, a non-blank string, at most max_len long."""
        field = f"{path}{key}"
        if key not in obj or obj[key] is None:
            if required:
                self.add(field, "is required")
            return None
        value = obj[key]
        if not isinstance(value, str):
            self.add(field, "must be a string")
            return None
        if required and not value.strip():
            self.add(field, "must not be empty")
            return None
        if max_len is not None and len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters")
            return None
        return value

    def pattern(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        regex: re.Pattern[str],
        message: str,
        *,
        required: bool,
    ) -> str | None:
        """A string field that must match ``regex``."""
        value = self.string(obj, key, path, required=required)
        if value is not None and not regex.match(value):
            self.add(f"{path}{key}", message)
            return None
        return value

    def country(self, obj: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
        """An ISO-3166 alpha-2 country code the registry knows."""
        value = self.string(obj, key, path, required=required)
        if value is not None and (not _COUNTRY.match(value) or value not in COUNTRIES):
            self.add(f"{path}{key}", "must be a valid ISO-3166 alpha-2 country code")
            return None
        return value

    def currency(self, obj: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
        """An ISO-4217 currency code the registry knows."""
        value = self.string(obj, key, path, required=required)
        if value is not None and (not _CURRENCY.match(value) or not is_known_currency(value)):
            self.add(f"{path}{key}", "must be a valid ISO-4217 currency code")
            return None
        return value

    def date(self, obj: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
        """A real calendar date written YYYY-MM-DD."""
        value = self.string(obj, key, path, required=required)
        if value is None:
            return None
        if not _DATE.match(value):
            self.add(f"{path}{key}", "must be in YYYY-MM-DD format")
            return None
        try:
            date.fromisoformat(value)
        except ValueError:
            self.add(f"{path}{key}", "is not a real calendar date")
            return None
        return value

    def enum(
        self, obj: dict[str, Any], key: str, path: str, allowed: tuple[str, ...], *, required: bool
    ) -> str | None:
        """A string field that must be one of ``allowed``."""
        value = self.string(obj, key, path, required=required)
        if value is not None and value not in allowed:
            self.add(f"{path}{key}", f"must be one of {', '.join(allowed)}")
            return None
        return value

    def string_map(self, obj: dict[str, Any], key: str, path: str) -> dict[str, str] | None:
        """An optional object of string values (``metadata``)."""
        if key not in obj or obj[key] is None:
            return None
        value = obj[key]
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.add(f"{path}{key}", "must be an object of string values")
            return None
        return dict(value)

    def boolean(self, obj: dict[str, Any], key: str, path: str) -> bool | None:
        """An optional true or false."""
        if key not in obj or obj[key] is None:
            return None
        if not isinstance(obj[key], bool):
            self.add(f"{path}{key}", "must be true or false")
            return None
        return bool(obj[key])


def require_object(body: Any) -> dict[str, Any]:
    """The request body must be a JSON object."""
    if not isinstance(body, dict):
        raise invalid_body("request body must be a JSON object")
    return body


def reject_unknown(obj: Any, allowed: frozenset[str], path: str) -> None:
    """Refuse the whole body (400) when ``obj`` has a field outside ``allowed``."""
    if not isinstance(obj, dict):
        return
    unknown = sorted(set(obj) - allowed)
    if unknown:
        names = ", ".join(f"{path}{name}" for name in unknown)
        raise invalid_body(f"unknown field(s): {names}")


def norm(text: str | None) -> str:
    """Case-, accent-width- and whitespace-insensitive form used in fingerprints."""
    if not text:
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
