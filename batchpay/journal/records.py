"""Typed records the journal hands to the stages, instead of database rows.

Each is a frozen dataclass named for what it is in the payments domain. Fields are read by
name (``row.state``); callers not yet moved off the old row objects may still read
``row["state"]`` and ``dict(row)`` (:class:`Record` keeps that surface), so the stages can
change over one module at a time. A column the record does not declare is an error, so a
new column cannot go unseen.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self


class Record:
    """Read by attribute; ``record["name"]``, ``keys()`` and ``dict(record)`` as well."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise IndexError(f"no column {key!r}") from None

    def keys(self) -> list[str]:
        """The field names, in order."""
        return list(_names(type(self)))

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """The record of one database row (``sqlite3.Row`` or the PostgreSQL row)."""
        keys = tuple(row.keys())
        if (cls, keys) not in _CHECKED:  # a statement's columns, checked once per record
            unknown = set(keys) - set(_names(cls))
            if unknown:
                raise TypeError(f"{cls.__name__} has no field for {sorted(unknown)}")
            _CHECKED.add((cls, keys))
        return cls(**dict(zip(keys, row, strict=True)))  # a row iterates its values

    @classmethod
    def from_rows(cls, found: Any) -> list[Self]:
        """:meth:`from_row` of every row a statement returns (fetched at once): the columns
        are checked once, and rows whose columns are the record's first fields, in order,
        are built positionally."""
        rows = found.fetchall()
        if not rows:
            return []
        keys = tuple(rows[0].keys())
        names = _names(cls)
        if keys != names[: len(keys)]:
            return [cls.from_row(r) for r in rows]
        if (cls, keys) not in _CHECKED:
            _CHECKED.add((cls, keys))
        return [cls(*r) for r in rows]  # a row iterates its values

    @classmethod
    def maybe(cls, row: Any) -> Self | None:
        """:meth:`from_row`, or None for no row."""
        return None if row is None else cls.from_row(row)


_NAMES: dict[type, tuple[str, ...]] = {}
_CHECKED: set[tuple[type, tuple[str, ...]]] = set()


def _names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True, slots=True)
class Run(Record):
    """A run of one file, with what the journal knows of the file."""

    id: str
    file_id: int
    environment: str
    api_url: str
    mode: str
    status: str
    parent_run_id: str | None
    options: str
    created_at: str
    updated_at: str
    lock_owner: str | None = None
    lock_expires_at: float | None = None
    reported_by: str | None = None
    sha256: str | None = None
    fingerprint: str | None = None
    file_name: str | None = None
    row_count: int | None = None
    format: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Row(Record):
    """One input row of a run, with its payout intent's fields when it has one."""

    run_id: str
    row_number: int
    reference: str
    beneficiary_ref: str
    beneficiary_name: str
    row_key: str
    content_hash: str
    amount: str | None
    currency: str | None
    source_currency: str | None
    payment_method: str | None
    masked_account: str | None
    state: str
    duplicate_of: int | None
    related_run: str | None
    beneficiary_id: str | None
    instrument_id: str | None
    idempotency_key: str | None
    error_code: str | None
    error_message: str | None
    request_id: str | None
    updated_at: str
    claimed_by: str | None = None
    claim_expires_at: float | None = None
    # its payout intent (NULL when it has none)
    payout_state: str | None = None
    payout_id: str | None = None
    payout_status: str | None = None
    first_sent_at: str | None = None
    send_count: int | None = None
    source_amount: str | None = None
    p_source_currency: str | None = None
    dest_amount: str | None = None
    dest_currency: str | None = None
    fee: str | None = None
    fee_currency: str | None = None
    exchange_rate: str | None = None
    total_debited: str | None = None
    total_debited_currency: str | None = None
    failure_reason: str | None = None
    attempt: int | None = None
    p_error_code: str | None = None
    p_error_message: str | None = None
    p_request_id: str | None = None
    settled_by: str | None = None
    payout_body: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutIntent(Record):
    """A payout intent: its key and exact body, committed before the request left."""

    idempotency_key: str
    environment: str
    row_key: str
    attempt: int
    run_id: str
    row_number: int
    reference: str
    body: str
    state: str
    first_sent_at: str | None
    last_sent_at: str | None
    send_count: int
    payout_id: str | None
    status: str | None
    status_at: str | None
    source_amount: str | None
    source_currency: str | None
    dest_amount: str | None
    dest_currency: str | None
    fee: str | None
    fee_currency: str | None
    exchange_rate: str | None
    total_debited: str | None
    total_debited_currency: str | None
    failure_reason: str | None
    error_code: str | None
    error_message: str | None
    request_id: str | None
    settled_by: str | None
    created_at: str
    updated_at: str
    live_key: str | None = None
    first_sent_provider_at: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderPayout(Record):
    """A payout the provider holds for a batchpay key, as a ledger sweep saw it."""

    environment: str
    payout_id: str
    idempotency_key: str
    row_key: str
    attempt: int
    reference: str
    status: str | None
    created_at: str
    seen_at: str
    doc: str


@dataclass(frozen=True, slots=True)
class Beneficiary(Record):
    """A beneficiary batchpay created or found, per environment and external reference."""

    environment: str
    external_ref: str
    pii_fingerprint: str
    idempotency_key: str
    beneficiary_id: str | None
    display_name: str
    state: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Instrument(Record):
    """A payment instrument of a beneficiary, per credential fingerprint."""

    environment: str
    beneficiary_id: str
    credential_fingerprint: str
    idempotency_key: str
    instrument_id: str | None
    method: str
    currency: str
    masked_account: str
    state: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class ApiCall(Record):
    """One recorded HTTP exchange (no bodies, no secrets)."""

    id: int
    run_id: str | None
    started_at: str
    method: str
    path: str
    status: int | None
    error_code: str | None
    request_id: str | None
    idempotency_key: str | None
    attempt: int
    duration_ms: float
