"""Beneficiaries and the instruments that pay them: create (refusing duplicates), get, list."""

from __future__ import annotations

from typing import Any

from .._util import iso, new_id
from ..clock import SandboxClock
from ..config import SandboxConfig
from ..problems import ApiProblem, not_found
from ..store import Store, load, store_doc
from ..validation import BeneficiaryInput, InstrumentInput
from .events import Events
from .paging import Listing, Page, page_of


class Beneficiaries:
    """Beneficiaries and their instruments; each creation emits its webhook event."""

    def __init__(
        self, store: Store, clock: SandboxClock, config: SandboxConfig, events: Events
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.merchant_id = config.merchant_id
        self.events = events

    def create_beneficiary(self, inp: BeneficiaryInput) -> dict[str, Any]:
        """Create a beneficiary; 422 ``duplicate_beneficiary`` on the same PII fingerprint."""
        with self.store.tx():
            if self.store.one(
                "SELECT id FROM beneficiaries WHERE fingerprint = ?", (inp.fingerprint,)
            ):
                raise ApiProblem(
                    422,
                    "duplicate_beneficiary",
                    "a beneficiary with the same details already exists",
                )
            now = self.clock.time()
            seq = self.store.next_seq()
            doc: dict[str, Any] = {
                "id": new_id("ben", now),
                "merchant_id": self.merchant_id,
                "type": inp.type,
                "status": "active",
                "display_name": inp.display_name,
                "country": inp.country,
            }
            if inp.external_ref is not None:
                doc["external_ref"] = inp.external_ref
            if inp.metadata is not None:
                doc["metadata"] = inp.metadata
            doc["created_at"] = doc["updated_at"] = iso(now)
            self.store.execute(
                "INSERT INTO beneficiaries (id, seq, created_ts, status, type, country,"
                " external_ref, fingerprint, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc["id"],
                    seq,
                    now,
                    "active",
                    inp.type,
                    inp.country,
                    inp.external_ref,
                    inp.fingerprint,
                    store_doc(doc),
                ),
            )
            self.events.emit("beneficiary.created", doc, now)
        return doc

    def get_beneficiary(self, beneficiary_id: str) -> dict[str, Any]:
        """One beneficiary or 404 ``beneficiary_not_found``."""
        row = self.store.one("SELECT doc FROM beneficiaries WHERE id = ?", (beneficiary_id,))
        if row is None:
            raise not_found("beneficiary")
        return load(row["doc"])

    def list_beneficiaries(self, filters: dict[str, str], page: Page) -> Listing:
        """Beneficiaries, newest first, filtered by status/type/country/external_ref."""
        where = [f"{col} = ?" for col in filters]
        return page_of(
            self.store, "beneficiaries", "beneficiaries", where, list(filters.values()), page
        )

    # ------------------------------------------------------------------ instruments

    def create_instrument(self, beneficiary_id: str, inp: InstrumentInput) -> dict[str, Any]:
        """Attach an instrument; 422 ``duplicate_instrument`` on the same credential."""
        with self.store.tx():
            self.get_beneficiary(beneficiary_id)
            if self.store.one(
                "SELECT id FROM instruments WHERE beneficiary_id = ? AND fingerprint = ?",
                (beneficiary_id, inp.fingerprint),
            ):
                raise ApiProblem(
                    422,
                    "duplicate_instrument",
                    "an instrument with the same credentials already exists for this beneficiary",
                )
            now = self.clock.time()
            existing = self.store.all(
                "SELECT id, doc FROM instruments WHERE beneficiary_id = ?", (beneficiary_id,)
            )
            is_default = inp.is_default or not existing
            if inp.is_default:
                for row in existing:
                    other = load(row["doc"])
                    if other["is_default"]:
                        other["is_default"] = False
                        other["updated_at"] = iso(now)
                        self.store.execute(
                            "UPDATE instruments SET doc = ? WHERE id = ?",
                            (store_doc(other), row["id"]),
                        )
            seq = self.store.next_seq()
            doc: dict[str, Any] = {
                "id": new_id("ins", now),
                "beneficiary_id": beneficiary_id,
                "merchant_id": self.merchant_id,
                "method": inp.method,
                "currency": inp.currency,
                "country": inp.country,
            }
            if inp.label is not None:
                doc["label"] = inp.label
            doc.update(
                {
                    "display_last4": inp.display_last4,
                    "masked_account": inp.masked_account,
                    "status": "active",
                    "is_default": is_default,
                    "created_at": iso(now),
                    "updated_at": iso(now),
                }
            )
            self.store.execute(
                "INSERT INTO instruments (id, seq, created_ts, beneficiary_id, method, currency,"
                " country, status, fingerprint, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc["id"],
                    seq,
                    now,
                    beneficiary_id,
                    inp.method,
                    inp.currency,
                    inp.country,
                    "active",
                    inp.fingerprint,
                    store_doc(doc),
                ),
            )
            self.events.emit("instrument.created", doc, now)
        return doc

    def get_instrument(self, instrument_id: str) -> dict[str, Any]:
        """One instrument or 404 ``instrument_not_found``."""
        row = self.store.one("SELECT doc FROM instruments WHERE id = ?", (instrument_id,))
        if row is None:
            raise not_found("instrument")
        return load(row["doc"])

    def list_instruments(self, filters: dict[str, str], page: Page) -> Listing:
        """Instruments, newest first, filtered by beneficiary/method/currency/country/status."""
        where = [f"{col} = ?" for col in filters]
        scope = "instruments"
        if "beneficiary_id" in filters:
            scope = f"instruments:{filters['beneficiary_id']}"
        return page_of(self.store, "instruments", scope, where, list(filters.values()), page)
