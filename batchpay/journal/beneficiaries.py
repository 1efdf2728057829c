"""Beneficiaries and instruments: intents to create them, and the provider's ids."""

from __future__ import annotations

from batchpay.journal.base import JournalBase
from batchpay.journal.records import Beneficiary, Instrument
from batchpay.journal.states import (
    CREATED,
    SENDING,
)


class BeneficiaryVerbs(JournalBase):
    """The journal verbs for beneficiaries and their instruments."""

    def get_beneficiary(self, environment: str, external_ref: str) -> Beneficiary | None:
        """The cached beneficiary for ``external_ref`` in this environment."""
        row = self.db.execute(
            "SELECT * FROM beneficiaries WHERE environment=? AND external_ref=?",
            (environment, external_ref),
        ).fetchone()
        return Beneficiary.maybe(row)

    def begin_beneficiary(
        self, environment: str, external_ref: str, pii_fingerprint: str, idempotency_key: str
    ) -> Beneficiary:
        """Commit the intent to create a beneficiary (or return the existing record)."""
        now = self.now()
        with self.transaction() as db:
            db.execute(
                """INSERT OR IGNORE INTO beneficiaries (environment, external_ref,
                   pii_fingerprint, idempotency_key, state, created_at, updated_at)
                   VALUES (?,?,?,?,?,?,?)""",
                (environment, external_ref, pii_fingerprint, idempotency_key, SENDING, now, now),
            )
            row = db.execute(
                "SELECT * FROM beneficiaries WHERE environment=? AND external_ref=?",
                (environment, external_ref),
            ).fetchone()
        return Beneficiary.from_row(row)

    def record_beneficiary(
        self, environment: str, external_ref: str, beneficiary_id: str, display_name: str
    ) -> None:
        """The provider holds this beneficiary."""
        with self.transaction() as db:
            db.execute(
                """UPDATE beneficiaries SET beneficiary_id=?, display_name=?, state=?,
                   updated_at=? WHERE environment=? AND external_ref=?""",
                (beneficiary_id, display_name, CREATED, self.now(), environment, external_ref),
            )

    def forget_beneficiary(self, environment: str, external_ref: str) -> None:
        """Drop an unfinished beneficiary intent the provider definitively refused."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM beneficiaries WHERE environment=? AND external_ref=? AND state!=?",
                (environment, external_ref, CREATED),
            )

    def get_instrument(
        self, environment: str, beneficiary_id: str, credential_fingerprint: str
    ) -> Instrument | None:
        """The cached instrument for these credentials under this beneficiary."""
        row = self.db.execute(
            """SELECT * FROM instruments WHERE environment=? AND beneficiary_id=?
               AND credential_fingerprint=?""",
            (environment, beneficiary_id, credential_fingerprint),
        ).fetchone()
        return Instrument.maybe(row)

    def instruments_of(self, environment: str, beneficiary_id: str) -> list[Instrument]:
        """Every instrument batchpay created or found for this beneficiary."""
        return [
            Instrument.from_row(r)
            for r in self.db.execute(
                "SELECT * FROM instruments WHERE environment=? AND beneficiary_id=? AND state=?",
                (environment, beneficiary_id, CREATED),
            )
        ]

    def begin_instrument(
        self,
        environment: str,
        beneficiary_id: str,
        credential_fingerprint: str,
        idempotency_key: str,
        *,
        method: str,
        currency: str,
        masked_account: str,
    ) -> Instrument:
        """Commit the intent to create an instrument (or return the existing record)."""
        now = self.now()
        with self.transaction() as db:
            db.execute(
                """INSERT OR IGNORE INTO instruments (environment, beneficiary_id,
                   credential_fingerprint, idempotency_key, method, currency, masked_account,
                   state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)""",
                (
                    environment,
                    beneficiary_id,
                    credential_fingerprint,
                    idempotency_key,
                    method,
                    currency,
                    masked_account,
                    SENDING,
                    now,
                    now,
                ),
            )
            row = db.execute(
                """SELECT * FROM instruments WHERE environment=? AND beneficiary_id=?
                   AND credential_fingerprint=?""",
                (environment, beneficiary_id, credential_fingerprint),
            ).fetchone()
        return Instrument.from_row(row)

    def record_instrument(
        self, environment: str, beneficiary_id: str, credential_fingerprint: str, instrument_id: str
    ) -> None:
        """The provider holds this instrument."""
        with self.transaction() as db:
            db.execute(
                """UPDATE instruments SET instrument_id=?, state=?, updated_at=?
                   WHERE environment=? AND beneficiary_id=? AND credential_fingerprint=?""",
                (
                    instrument_id,
                    CREATED,
                    self.now(),
                    environment,
                    beneficiary_id,
                    credential_fingerprint,
                ),
            )

    def forget_instrument(
        self, environment: str, beneficiary_id: str, credential_fingerprint: str
    ) -> None:
        """Drop an unfinished instrument intent the provider definitively refused."""
        with self.transaction() as db:
            db.execute(
                """DELETE FROM instruments WHERE environment=? AND beneficiary_id=?
                   AND credential_fingerprint=? AND state!=?""",
                (environment, beneficiary_id, credential_fingerprint, CREATED),
            )
