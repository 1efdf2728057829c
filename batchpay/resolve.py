"""Resolve: find or create each row's beneficiary and payment instrument.

A beneficiary is found by ``external_ref`` (the file's ``beneficiary_ref``) in the
journal's cache for this environment, else created with an idempotency key derived
from the reference and its details. ``duplicate_beneficiary`` and
``duplicate_instrument`` answers mean "it already exists": batchpay looks it up and
uses it. A known beneficiary whose bank details differ from the ones batchpay used
before is *held* for a person to confirm, not paid blindly.

The journal commits each creation intent before the request leaves, so a crash or a
lost response is settled on the next run by replaying the same key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from batchpay import dedupe
from batchpay.banking import normalize_iban
from batchpay.errors import (
    ApiError,
    AuthenticationError,
    BatchpayError,
    ConflictError,
    IdempotencyConflictError,
    TransportError,
    UnprocessableError,
)
from batchpay.holds import bank_label, changed_bank_details
from batchpay.journal import CREATED, Journal, parse_ts, utcnow
from batchpay.money import mask_account
from batchpay.submit import KEY_WINDOW, data_of


class ResolveClient(Protocol):
    """The part of the API client resolution needs."""

    async def create_beneficiary(self, body: Mapping[str, Any], idempotency_key: str) -> Any: ...

    def iter_beneficiaries(self, **filters: Any) -> Any: ...

    async def create_instrument(
        self, beneficiary_id: str, body: Mapping[str, Any], idempotency_key: str
    ) -> Any: ...

    async def list_instruments(self, beneficiary_id: str) -> list[dict[str, Any]]: ...


class Held(BatchpayError):
    """The row needs a person before it can be paid (not an API failure)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Refused(BatchpayError):
    """The API definitively refused to create the beneficiary or instrument."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.request_id = error.request_id
        self.error = error


@dataclass(frozen=True)
class Destination:
    """Where a row's money goes: resolved ids."""

    beneficiary_id: str
    instrument_id: str
    display_name: str
    local: bool = False
    """Found in the journal alone: no request was made (or awaited) to resolve it."""


def beneficiary_body(row: Mapping[str, str]) -> dict[str, Any]:
    """The POST /v1/beneficiaries body for a validated row."""
    address: dict[str, str] = {
        "street_line_1": row["address_line1"],
        "city": row["city"],
        "postal_code": row["postal_code"],
        "country": row["country"],
    }
    if row.get("address_line2"):
        address["street_line_2"] = row["address_line2"]
    if row.get("state"):
        address["state"] = row["state"]
    body: dict[str, Any] = {
        "type": row["beneficiary_type"],
        "country": row["country"],
        "external_ref": row["beneficiary_ref"],
    }
    if row["beneficiary_type"] == "individual":
        body["individual"] = {
            "first_name": row["first_name"],
            "last_name": row["last_name"],
            "email": row["email"],
            "phone": row["phone"],
            "date_of_birth": row["date_of_birth"],
            "nationality": row["nationality"],
            "address": address,
        }
    else:
        body["business"] = {
            "legal_name": row["business_name"],
            "registration_number": row["registration_number"],
            "email": row["email"],
            "phone": row["phone"],
            "address": address,
        }
    return body


def display_name(row: Mapping[str, str]) -> str:
    """How the beneficiary is named in reports."""
    if row.get("beneficiary_type") == "business":
        return row.get("business_name", "")
    return f"{row.get('first_name', '')} {row.get('last_name', '')}".strip()


def pii_fingerprint(row: Mapping[str, str]) -> str:
    """Fingerprint of the beneficiary details batchpay would send."""
    b = beneficiary_body(row)
    detail = b.get("individual") or b.get("business") or {}
    parts = [b["type"], b["country"]]
    for k in sorted(detail):
        v = detail[k]
        parts.extend([k, *(f"{ak}={v[ak]}" for ak in sorted(v))] if isinstance(v, dict) else [k, v])
    return dedupe.fingerprint(*parts)


def instrument_body(row: Mapping[str, str]) -> dict[str, Any]:
    """The POST /v1/beneficiaries/{id}/instruments body for a validated row."""
    method = row["payment_method"]
    if method == "iban":
        iban = normalize_iban(row["iban"])
        creds: dict[str, str] = {"iban": iban}
        if row.get("bic"):
            creds["bic"] = row["bic"].upper()
        return {"method": "iban", "currency": row["currency"], "country": iban[:2],
                "credentials": creds}  # fmt: skip
    if method == "us_bank":
        return {
            "method": "us_bank",
            "currency": row["currency"],
            "country": "US",
            "credentials": {
                "routing_number": row["routing_number"],
                "account_number": row["account_number"],
                "account_type": row.get("account_type") or "checking",
            },
        }
    if method == "uk_bank":
        return {
            "method": "uk_bank",
            "currency": row["currency"],
            "country": "GB",
            "credentials": {"sort_code": row["sort_code"], "account_number": row["account_number"]},
        }
    raise ValueError(f"unsupported payment method {method!r}")


def account_of(row: Mapping[str, str]) -> str:
    """The row's primary account identifier (only ever stored masked)."""
    if row.get("payment_method") == "iban":
        return normalize_iban(row.get("iban", ""))
    return row.get("account_number", "")


def masked_account(row: Mapping[str, str]) -> str:
    """The row's account, masked to its last 4 characters."""
    return mask_account(account_of(row))


def credential_fingerprint(row: Mapping[str, str]) -> str:
    """Fingerprint of the instrument credentials (never stored in clear)."""
    body = instrument_body(row)
    creds = body["credentials"]
    return dedupe.fingerprint(
        body["method"], body["currency"], *(f"{k}={creds[k]}" for k in sorted(creds))
    )


class Resolver:
    """Finds or creates beneficiaries and instruments, one creation per identity."""

    def __init__(
        self,
        client: ResolveClient,
        journal: Journal,
        environment: str,
        *,
        allow_new_bank_details: bool = False,
        clock: Callable[[], datetime] = utcnow,
        key_window: timedelta = KEY_WINDOW,
    ) -> None:
        self.client = client
        self.journal = journal
        self.environment = environment
        self.allow_new_bank_details = allow_new_bank_details
        self.clock = clock
        self.key_window = key_window
        self._locks: dict[str, asyncio.Lock] = {}
        # Beneficiaries batchpay knew before this run started (for the bank-change rule).
        self._known_before: dict[str, bool] = {}
        # Their ids, and their instruments' (by beneficiary id and credential fingerprint),
        # as the journal held them created when the run began (see remember_known).
        self._ben_before: dict[str, str] = {}
        self._ins_before: dict[tuple[str, str], str] = {}
        # Look-ups that found no created payee (each may await the provider): a resolve
        # that saw none come about was answered from the journal alone.
        self._misses = 0

    def _expired(self, rec: Any) -> bool:
        """Whether an unfinished creation intent is older than the provider's key memory."""
        return self.clock() - parse_ts(str(rec["created_at"])) >= self.key_window

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def is_known(self, beneficiary_ref: str) -> bool:
        """Whether the journal already holds this beneficiary for this environment."""
        rec = self.journal.get_beneficiary(self.environment, beneficiary_ref)
        return rec is not None and rec["state"] == CREATED

    def remember_known(self, refs: set[str]) -> None:
        """Note which beneficiaries existed before this run (call once at the start): one
        set-based journal query, the same answer as :meth:`is_known` for each."""
        bens, instruments = self.journal.created_destinations(self.environment, refs)
        for ref in refs:
            self._known_before[ref] = ref in bens
        # A created beneficiary or instrument stays so: rows to them are answered from these
        # (no look-up per row); anything else is looked up and created as before.
        self._ben_before, self._ins_before = bens, instruments

    async def resolve(self, row: Mapping[str, str]) -> Destination:
        """The beneficiary and instrument ids for ``row``, creating them if needed.

        Raises :class:`Held`, :class:`Refused`, TransportError or a retryable ApiError.
        """
        misses = self._misses
        ben_id = await self.beneficiary(row)
        ins_id = await self.instrument(ben_id, row)
        return Destination(ben_id, ins_id, display_name(row), local=self._misses == misses)

    async def beneficiary(self, row: Mapping[str, str]) -> str:
        """Find or create the row's beneficiary; return its id."""
        ref = row["beneficiary_ref"]
        if (known := self._ben_before.get(ref)) is not None:
            return known
        async with self._lock("ben:" + ref):
            rec = self.journal.get_beneficiary(self.environment, ref)
            if rec is not None and rec["state"] == CREATED:
                return str(rec["beneficiary_id"])
            self._misses += 1
            fp = pii_fingerprint(row)
            key = dedupe.beneficiary_key(self.environment, ref, fp)
            rec = self.journal.begin_beneficiary(self.environment, ref, fp, key)
            await self.journal.durable()  # the creation key is committed before it is sent

            def record(data: Mapping[str, Any]) -> str:
                ben_id = str(data["id"])
                name = str(data.get("display_name") or display_name(row))
                self.journal.record_beneficiary(self.environment, ref, ben_id, name)
                return ben_id

            return await _create_once(
                _Creation(
                    # An earlier unfinished attempt sent other details under another key, or
                    # the provider may have forgotten ours: look before creating.
                    stale=rec["pii_fingerprint"] != fp or self._expired(rec),
                    create=lambda: self.client.create_beneficiary(
                        beneficiary_body(row), str(rec["idempotency_key"])
                    ),
                    find=lambda: self._find_beneficiary(ref),
                    forget=lambda: self.journal.forget_beneficiary(self.environment, ref),
                    record=record,
                    duplicate_code="duplicate_beneficiary",
                    forget_when_duplicate_unfound=True,
                    duplicate_unfound=Held(
                        "beneficiary_exists_elsewhere",
                        "the provider already has a beneficiary with these details under "
                        f"another reference than {ref!r}; check the beneficiary_ref",
                    ),
                    conflict_unresolved=Held(
                        "idempotency_conflict",
                        "the provider holds this beneficiary's creation key with other "
                        "details and no beneficiary with this reference exists; check it",
                    ),
                )
            )

    async def _find_beneficiary(self, ref: str) -> str | None:
        wanted = dedupe.identity_text(ref)
        matches: list[dict[str, Any]] = []
        async for ben in self.client.iter_beneficiaries():
            if str(ben.get("status") or "active") != "active":  # archived, blocked: not paid
                continue
            if dedupe.identity_text(str(ben.get("external_ref") or "")) == wanted:
                matches.append(ben)
        if len(matches) != 1:
            if len(matches) > 1:
                raise Held(
                    "ambiguous_beneficiary",
                    f"the provider holds {len(matches)} active beneficiaries with reference "
                    f"{ref!r}",
                )
            return None
        ben = matches[0]
        self.journal.record_beneficiary(
            self.environment, ref, str(ben["id"]), str(ben.get("display_name") or "")
        )
        return str(ben["id"])

    async def instrument(self, beneficiary_id: str, row: Mapping[str, str]) -> str:
        """Find or create the row's instrument under ``beneficiary_id``; return its id."""
        fp = credential_fingerprint(row)
        if (known := self._ins_before.get((beneficiary_id, fp))) is not None:
            return known
        async with self._lock(f"ins:{beneficiary_id}:{fp}"):
            rec = self.journal.get_instrument(self.environment, beneficiary_id, fp)
            if rec is not None and rec["state"] == CREATED:
                return str(rec["instrument_id"])
            self._misses += 1
            if (
                rec is None
                and not self.allow_new_bank_details
                and self._known_before.get(row["beneficiary_ref"], False)
            ):
                changed = changed_bank_details(self.journal, self.environment, beneficiary_id, row)
                if changed:
                    raise Held("bank_details_changed", changed)
            body = instrument_body(row)
            key = dedupe.instrument_key(self.environment, beneficiary_id, fp)
            rec = self.journal.begin_instrument(
                self.environment,
                beneficiary_id,
                fp,
                key,
                method=body["method"],
                currency=body["currency"],
                masked_account=bank_label(row),  # what a later hold compares against
            )
            await self.journal.durable()  # the creation key is committed before it is sent

            def record(data: Mapping[str, Any]) -> str:
                ins_id = str(data["id"])
                self.journal.record_instrument(self.environment, beneficiary_id, fp, ins_id)
                return ins_id

            return await _create_once(
                _Creation(
                    stale=self._expired(rec),  # the provider may have forgotten our key
                    create=lambda: self.client.create_instrument(
                        beneficiary_id, body, str(rec["idempotency_key"])
                    ),
                    find=lambda: self._find_instrument(beneficiary_id, row, fp),
                    forget=lambda: self.journal.forget_instrument(
                        self.environment, beneficiary_id, fp
                    ),
                    record=record,
                    duplicate_code="duplicate_instrument",
                    forget_when_duplicate_unfound=False,
                    duplicate_unfound=Held(
                        "instrument_not_found",
                        "the provider says these bank details already exist for the "
                        "beneficiary but batchpay cannot tell which instrument they are",
                    ),
                    conflict_unresolved=Held(
                        "idempotency_conflict",
                        "the provider holds this bank account's creation key with other "
                        "details and no matching instrument exists; check it",
                    ),
                )
            )

    async def _find_instrument(
        self, beneficiary_id: str, row: Mapping[str, str], fp: str
    ) -> str | None:
        body = instrument_body(row)
        last4 = account_of(row)[-4:]
        candidates = [
            i
            for i in await self.client.list_instruments(beneficiary_id)
            if i.get("method") == body["method"]
            and (i.get("currency") in (None, body["currency"]))
            and str(i.get("display_last4") or "") == last4
            and i.get("status", "active") == "active"
        ]
        if len(candidates) != 1:
            return None
        ins_id = str(candidates[0]["id"])
        self.journal.record_instrument(self.environment, beneficiary_id, fp, ins_id)
        return ins_id


@dataclass(frozen=True)
class _Creation:
    """One find-or-create at the provider, as the journal committed its intent."""

    stale: bool  # look before creating: the key may be forgotten or another body sent
    create: Callable[[], Awaitable[Any]]
    find: Callable[[], Awaitable[str | None]]
    forget: Callable[[], None]  # drop the unfinished intent after a definitive refusal
    record: Callable[[Mapping[str, Any]], str]  # store the created resource; its id
    duplicate_code: str  # the provider's "it already exists" answer
    forget_when_duplicate_unfound: bool
    duplicate_unfound: Held  # "it exists" but the look-up cannot tell which one
    conflict_unresolved: Held  # our key holds another body and nothing can be found


async def _create_once(c: _Creation) -> str:
    """Create a beneficiary or instrument at most once; return its id.

    "It already exists" and an idempotency conflict are resolved by looking it up, never by
    a new key; a definitive refusal forgets the intent and raises :class:`Refused`.
    """
    if c.stale and (found := await c.find()) is not None:
        return found
    try:
        result = await c.create()
    except UnprocessableError as exc:
        if exc.code != c.duplicate_code:
            c.forget()
            raise Refused(exc) from None
        found = await c.find()
        if found is None:
            if c.forget_when_duplicate_unfound:
                c.forget()
            raise c.duplicate_unfound from None
        return found
    except IdempotencyConflictError:
        # The provider holds our key with another body: never re-key blindly.
        found = await c.find()
        if found is None:
            raise c.conflict_unresolved from None
        return found
    except (TransportError, AuthenticationError):
        raise
    except ApiError as exc:
        if exc.retryable or isinstance(exc, ConflictError):
            raise
        c.forget()
        raise Refused(exc) from None
    return c.record(data_of(result))
