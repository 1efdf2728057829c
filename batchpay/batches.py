"""The provider's batch upload as a submission strategy (``batchpay run FILE --via batches``).

batchpay's own checks run first (as for ``--via rows``); then the rows to pay are written
in the provider's template (its column names, never the user's file), with known
beneficiaries and instruments referenced by id, uploaded once, validated by the provider,
confirmed once, and followed to the batch's per-row results. Each step is committed in
the journal before it is taken (see :mod:`batchpay.journal.batches`):

* upload intent — the exact file, its SHA-256, the upload's idempotency key and every
  row's live intent — before the upload leaves; a lost answer is settled by sending the
  same bytes under the same key, or by finding the batch in the provider's list (its
  file name carries the run id), never by a second upload that could be confirmed;
* the batch id as soon as it is known;
* the confirm key before the confirm leaves; a resumed run reads the batch first and
  sends the confirm again only while the batch is still ``validated``, with that key;
* each row's payout from the batch's results, by the batchpay key written into the
  payout's metadata (the same ``bp1-…`` key a per-row run would use, so the per-row
  ledger sweep recognises batch payouts too).

An expired confirmation is reported (exit 9), never silently uploaded again.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from batchpay import dedupe, ledger
from batchpay.checks import CheckedFile
from batchpay.connection import Connection
from batchpay.errors import (
    ApiError,
    ConfigError,
    ConfirmationRequired,
    ConflictError,
    PreflightError,
    TransportError,
    UnexpectedAnswer,
)
from batchpay.holds import RELEASED_BY_NEW_BANK_DETAILS, RELEASED_BY_RERUN
from batchpay.journal import CREATED, Journal, LivePayoutExists, dumps_body, parse_ts
from batchpay.journal.batches import (
    BATCHED,
    CANCELLING,
    CONFIRMED,
    CONFIRMING,
    ENDED,
    EXPIRED,
    SETTLED,
    UPLOADED,
    UPLOADING,
    BatchRowIntent,
    BatchRowOutcome,
)
from batchpay.ledger import METADATA_KEY
from batchpay.options import RunOptions
from batchpay.resolve import credential_fingerprint, display_name, masked_account, pii_fingerprint
from batchpay.states import HELD, IN_FLIGHT_ELSEWHERE, PLANNED
from batchpay.submit import payout_method

__all__ = ["TEMPLATE_COLUMNS", "BatchPlan", "Batches", "template_file"]

log = logging.getLogger(__name__)
ProgressFn = Callable[[str, int, int], None]

# The provider's template, in its order (GET /v1/batches/template); batchpay writes these
# names, never the user's headers. Trailing ``metadata.<name>`` columns become metadata.
TEMPLATE_COLUMNS: tuple[str, ...] = (
    "external_ref", "beneficiary_id", "instrument_id", "beneficiary_type", "first_name",
    "last_name", "business_name", "registration_number", "email", "phone", "date_of_birth",
    "nationality", "address_line1", "address_line2", "city", "state", "postal_code",
    "dest_country", "method", "dest_amount", "dest_currency", "source_amount",
    "source_currency", "reference", "purpose", "iban", "bic", "account_number",
    "routing_number", "account_type", "sort_code",
)  # fmt: skip
_EXTRA = (f"metadata.{METADATA_KEY}", "metadata.description")
# The template's names for batchpay's own columns, to name them back in the report.
_OUR_COLUMN = {"dest_amount": "amount", "dest_currency": "currency", "dest_country": "country",
               "external_ref": "beneficiary_ref", "method": "payment_method",
               "address_line1": "address_line1"}  # fmt: skip
_IDENTITY = TEMPLATE_COLUMNS[3:18]
_CREDENTIALS = ("iban", "bic", "account_number", "routing_number", "account_type", "sort_code")
_WAITING = frozenset({"uploaded", "validating"})
_PROCESSING = frozenset({"confirmed", "processing"})
_DONE = frozenset({"completed", "partial", "failed"})


@dataclass(frozen=True)
class BatchPlan:
    """What the provider says the batch will do, shown before it is confirmed."""

    batch_id: str
    file_name: str
    rows: int
    valid_rows: int
    refused_rows: int
    warnings: int
    totals: dict[str, Decimal]
    estimated_debits: dict[str, Decimal]
    balance_ok: dict[str, bool]
    new_beneficiaries: int
    known_beneficiaries: int
    expires_at: str
    refusals: list[tuple[int, str]] = field(default_factory=list)


Confirm = bool | Callable[[BatchPlan], bool]


def template_file(
    cells: list[dict[str, str]],
) -> bytes:
    """The rows as a CSV in the provider's template order (UTF-8, CRLF)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = [*TEMPLATE_COLUMNS, *_EXTRA]
    writer.writerow(header)
    for c in cells:
        writer.writerow([c.get(h, "") for h in header])
    return out.getvalue().encode("utf-8")


def _cells(
    row: Mapping[str, Any],
    key: str,
    beneficiary_id: str | None,
    instrument_id: str | None,
    default_purpose: str,
) -> dict[str, str]:
    """One row in the provider's template: its names, its derived rail, our key."""
    currency = str(row["currency"])
    c = {
        "external_ref": str(row["beneficiary_ref"]),
        "beneficiary_type": str(row["beneficiary_type"]),
        "dest_country": str(row["country"]),
        "method": payout_method(str(row["payment_method"]), currency),
        "dest_amount": str(row["amount"]),
        "dest_currency": currency,
        "source_currency": str(row.get("source_currency") or currency),
        "reference": str(row["reference"]),
        "purpose": str(row.get("purpose") or default_purpose),
        f"metadata.{METADATA_KEY}": key,
        "metadata.description": str(row.get("description") or ""),
    }
    for name in _IDENTITY:
        if name not in c and name in row:
            c[name] = str(row[name] or "")
    for name in _CREDENTIALS:
        c[name] = str(row.get(name) or "")
    if c["iban"]:
        c["iban"] = c["iban"].replace(" ", "").upper()
    if beneficiary_id:
        c["beneficiary_id"] = beneficiary_id
        for name in _IDENTITY:
            if name not in ("dest_country",):
                c[name] = ""
    if instrument_id:
        c["instrument_id"] = instrument_id
        for name in _CREDENTIALS:
            c[name] = ""
    return c


class Batches:
    """Submit a run through the provider's batch upload: a handful of requests per file.

    ``confirm`` decides whether a validated batch is confirmed: True, False, or a function
    shown the :class:`BatchPlan` (the CLI prints it and asks, or honours ``--confirm``).
    ``new_batch`` uploads the rows of an expired batch again, as a new batch (only then).
    ``sleep`` and ``poll_seconds`` pace the polling of the batch while the provider works.
    """

    def __init__(
        self,
        *,
        confirm: Confirm = False,
        new_batch: bool = False,
        poll_seconds: float = 0.5,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.confirm = confirm
        self.new_batch = new_batch
        self.poll_seconds = poll_seconds
        self.sleep = sleep

    async def submit_run(
        self,
        conn: Connection,
        run_id: str,
        checked: CheckedFile,
        options: RunOptions,
        on_progress: ProgressFn | None = None,
    ) -> None:
        """Upload (or resume) the run's batch, confirm it once, and settle every row."""
        await _BatchRun(self, conn, run_id, checked, options, on_progress).run()


class _BatchRun:
    """One run's batch: the steps, each committed before it is taken."""

    def __init__(
        self,
        how: Batches,
        conn: Connection,
        run_id: str,
        checked: CheckedFile,
        options: RunOptions,
        on_progress: ProgressFn | None,
    ) -> None:
        self.how = how
        self.conn = conn
        self.client = conn.client
        self.journal: Journal = conn.journal
        self.env = conn.settings.environment
        self.run_id = run_id
        self.checked = checked
        self.options = options
        self.on_progress = on_progress
        self.deadline = time.monotonic() + options.wait_timeout
        self.by_key: dict[str, Mapping[str, Any]] = {}
        for valid in checked.valid_rows.values():
            key = dedupe.row_key(self.env, str(valid["reference"]), str(valid["beneficiary_ref"]))
            self.by_key.setdefault(key, valid)

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(stage, done, total)

    async def run(self) -> None:
        rec = self.journal.batch_for_run(self.run_id)
        if rec is not None and rec["state"] == EXPIRED:
            if not self.how.new_batch:
                raise self._expired_error()
            self.journal.retire_batch(self.run_id)
            rec = None
        if rec is not None and rec["state"] == CANCELLING:
            # This run's own cancel, begun and not recorded ended (the process stopped, the
            # answer was lost): sent again with its key, then as any cancel of ours.
            await self._cancel_again(rec)
            rec = self.journal.batch_for_run(self.run_id)
        if rec is not None and rec["state"] == ENDED:
            # Cancelled or refused whole: it can never be confirmed. Rows it left planned
            # (our own cancel) go in a new batch; refused rows stay refused.
            self.journal.retire_batch(self.run_id)
            rec = None
        resumed = rec is not None
        if rec is not None and rec["state"] == SETTLED:
            # A batch of this run has paid. Rows it left held are looked at again, as a
            # per-row re-run looks at them; those now payable go in a new batch.
            # (Rows left planned by a re-run stopped before its new batch are taken too.)
            self._recheck_held()
            if not await self._plan_and_record(retire=True):
                return
            rec = self.journal.batch_for_run(self.run_id)
            assert rec is not None
        if rec is None:
            self._recheck_held()
            if not await self._plan_and_record():
                return
            rec = self.journal.batch_for_run(self.run_id)
            assert rec is not None
        state = str(rec["state"])
        if state == UPLOADING:
            await self._upload(rec, look_first=resumed)
            state = UPLOADED
        if state == UPLOADED:
            if not await self._validate_and_confirm():
                return
            state = CONFIRMING
        if state == CONFIRMING:
            if not await self._settle_confirm():
                return
            state = CONFIRMED
        if state == CONFIRMED:
            await self._follow()

    # -- 1. plan: the rows to pay, in the provider's template --------------------------------

    def _recheck_held(self) -> bool:
        """Plan again the held rows a re-run looks at, as a per-row run does: rows waiting
        for another run's payout, rows held ``row_changed``, and with
        ``--allow-new-bank-details`` the rows held for their bank details. The batch's
        planning judges each again (paid meanwhile, still waiting, another amount, new bank
        details). Whether any."""
        codes = {IN_FLIGHT_ELSEWHERE, *RELEASED_BY_RERUN}
        if self.options.allow_new_bank_details:
            codes |= RELEASED_BY_NEW_BANK_DETAILS
        again = [
            int(r["row_number"]) for r in self.journal.rows(self.run_id)
            if r["state"] == HELD and r["error_code"] in codes
        ]  # fmt: skip
        for number in again:
            self.journal.update_row(self.run_id, number, state=PLANNED, error_code=None,
                                    error_message=None, related_run=None)  # fmt: skip
        return bool(again)

    async def _plan_and_record(self, *, retire: bool = False) -> bool:
        """Sweep the ledger, drop rows paid elsewhere, commit the upload intent (``retire``:
        after retiring the run's settled batch, this one is the run's next)."""
        in_flight = [p for p in self.journal.open_payouts(self.run_id) if p["state"] != CREATED]
        if in_flight:
            raise ConfigError(
                f"run {self.run_id} has {len(in_flight)} payout(s) sent row by row whose "
                "outcome is not settled; it cannot continue as a batch",
                hint="run the same command with --via rows to finish it",
            )
        rows = [r for r in self.journal.rows(self.run_id) if r["state"] == PLANNED]
        if not rows:
            return False
        await ledger.sweep(self.client, self.journal, self.env,
                           provider_clock=self.conn.provider_clock,
                           on_progress=self.on_progress)  # fmt: skip
        cells: list[dict[str, str]] = []
        intents: list[BatchRowIntent] = []
        for r in rows:
            number = int(r["row_number"])
            key = str(r["row_key"])
            row = self.by_key.get(key)
            if row is None or dedupe.row_content_hash(row) != r["content_hash"]:
                self.journal.update_row(self.run_id, number, state=HELD, error_code="row_changed",
                                        error_message="the file being resumed no longer holds "
                                        "this row as planned")  # fmt: skip
                continue
            # Paid before — by another run of this journal, or another home (the ledger
            # just swept) — at another amount than this file asks: held, never "paid".
            asked = (row.get("amount"), row.get("currency"))
            history = self.journal.row_history(self.env, key)
            elsewhere = ledger.paid_by_another_run(history, self.run_id, asked)
            if elsewhere is not None:
                self.journal.update_row(self.run_id, number, **elsewhere)
                continue
            if ledger.paid_at_provider(self.journal, self.env, self.run_id, number, key,
                                       asked=asked):  # fmt: skip
                continue
            ben_id, ins_id = self._known(row)
            if ins_id is None and ben_id and self._bank_details_changed(number, row, ben_id):
                continue
            attempt = self.journal.last_attempt(self.env, key) + 1
            idem = dedupe.idempotency_key(key, attempt)
            c = _cells(row, idem, ben_id, ins_id,
                       self.checked.default_purpose or "contractor_payment")  # fmt: skip
            cells.append(c)
            intents.append(
                BatchRowIntent(
                    batch_row=len(cells) + 1,  # the template's header is row 1
                    row_number=number,
                    row_key=key,
                    reference=str(row["reference"]),
                    attempt=attempt,
                    idempotency_key=idem,
                    body=dumps_body(c),
                )
            )
            if ben_id:
                self.journal.update_row(self.run_id, number, beneficiary_id=ben_id,
                                        beneficiary_name=display_name(row))  # fmt: skip
        if not intents:
            return False
        data = template_file(cells)
        digest = hashlib.sha256(data).hexdigest()
        # The run's n-th batch: a new batch of the same rows (after an expiry) is another
        # upload, never the replay of the first one's answer.
        n = self.journal.batch_count(self.run_id) + 1
        if retire:
            self.journal.retire_batch(self.run_id)
        try:
            self.journal.begin_batch(
                environment=self.env,
                run_id=self.run_id,
                # The run id in the name finds the batch again if the upload's answer is lost.
                file_name=f"batchpay-{self.run_id}-{n}-{digest[:8]}.csv",
                file_format="csv",
                file_sha256=digest,
                data=data,
                upload_key=f"bpu1-{n}-{digest[:40]}",
                rows=intents,
            )
        except LivePayoutExists:
            # Another run of this journal took a row between this planning's look at its
            # history and the batch's intents (none was committed): such rows are marked
            # as any row paid before, and the batch is planned again without them.
            if not self._mark_taken(intents):
                raise
            return await self._plan_and_record()
        log.info(
            "run %s: batch file of %d row(s) committed (sha256 %s)", self.run_id, len(intents),
            digest, extra={"run_id": self.run_id, "rows": len(intents), "sha256": digest},
        )  # fmt: skip
        return True

    def _mark_taken(self, intents: list[BatchRowIntent]) -> bool:
        """Mark the rows another run now holds a payout for; whether any."""
        marked = False
        for i in intents:
            row = self.by_key.get(i.row_key) or {}
            asked = (row.get("amount"), row.get("currency"))
            found = ledger.paid_before(self.journal, self.env, i.row_key, asked)
            if found is not None:
                self.journal.update_row(self.run_id, i.row_number, **found)
                marked = True
        return marked

    def _known(self, row: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """The journal's ids for this row's beneficiary and instrument (no request)."""
        rec = self.journal.get_beneficiary(self.env, str(row["beneficiary_ref"]))
        if rec is None or rec["state"] != CREATED or not rec["beneficiary_id"]:
            return None, None
        ben_id = str(rec["beneficiary_id"])
        ins = self.journal.get_instrument(self.env, ben_id, credential_fingerprint(row))
        if ins is not None and ins["state"] == CREATED and ins["instrument_id"]:
            return ben_id, str(ins["instrument_id"])
        return ben_id, None

    def _bank_details_changed(self, number: int, row: Mapping[str, Any], ben_id: str) -> bool:
        """Hold a known beneficiary's new bank details, as a per-row run does."""
        if self.options.allow_new_bank_details:
            return False
        previous = self.journal.instruments_of(self.env, ben_id)
        if not previous:
            return False
        before = ", ".join(sorted({str(p["masked_account"]) for p in previous}))
        self.journal.update_row(
            self.run_id, number, state=HELD, error_code="bank_details_changed",
            error_message=f"bank details differ from the ones paid before ({before} -> "
            f"{masked_account(row)}); confirm them and re-run with --allow-new-bank-details",
        )  # fmt: skip
        return True

    # -- 2. upload, once ---------------------------------------------------------------------

    async def _upload(self, rec: Any, *, look_first: bool) -> None:
        """Upload the committed file under its key; settle a lost answer without a 2nd batch.

        A resumed upload looks in the provider's batch list first: after the provider's
        24 hours the key alone would no longer stop a second batch of the same file.
        """
        name, data = str(rec["file_name"]), bytes(rec["file"])
        found = await self._find_uploaded(name) if look_first else None
        if found is not None:
            self._uploaded(found)
            return
        try:
            result = await self.client.upload_batch(name, data, "text/csv", str(rec["upload_key"]))
            batch = result.data if isinstance(result.data, dict) else {}
        except ConflictError as exc:
            if exc.code != "duplicate_file":
                raise
            # Our own upload arrived before (its answer was lost, its key forgotten).
            batch = await self._find_uploaded(name) or {}
            if not batch:
                raise UnexpectedAnswer(
                    f"the provider holds this run's batch file ({name}) in a pending batch "
                    "that its batch list does not show",
                    hint="check GET /v1/batches, then run the same command again",
                ) from None
        except TransportError:
            # No answer: the upload may or may not have arrived. Look before anything else.
            batch = await self._find_uploaded(name) or {}
            if not batch:
                raise
        except ApiError as exc:
            if exc.retryable:
                raise
            self.journal.end_batch_rows(
                self.run_id,
                batch=dict(state=ENDED, detail=exc.message),
                code=exc.code or "batch_upload_refused",
                message=f"the provider refused the batch file: {exc.message}",
            )
            raise
        self._uploaded(batch)

    def _uploaded(self, batch: Mapping[str, Any]) -> None:
        batch_id = str(batch.get("id") or "")
        if not batch_id.startswith("bat_"):
            raise UnexpectedAnswer("the batch upload's answer carries no batch id")
        self.journal.update_batch(self.run_id, state=UPLOADED, batch_id=batch_id,
                                  provider_status=str(batch.get("status") or ""))  # fmt: skip
        log.info("run %s: batch %s uploaded", self.run_id, batch_id,
                 extra={"run_id": self.run_id, "batch_id": batch_id})  # fmt: skip

    async def _find_uploaded(self, name: str) -> dict[str, Any] | None:
        """The provider's batch made from this run's file, if it arrived."""
        async for batch in self.client.iter_batches():
            if batch.get("file_name") == name:
                return dict(batch)
        return None

    # -- 3. validation, the plan, and the one confirmation -----------------------------------

    async def _wait(self, batch_id: str, waiting: frozenset[str]) -> dict[str, Any]:
        """Poll the batch while its status is one of ``waiting`` (inside the run's timeout)."""
        while True:
            batch = await self.client.get_batch(batch_id)
            status = str(batch.get("status") or "")
            self.journal.update_batch(self.run_id, provider_status=status)
            if status not in waiting:
                return batch
            if time.monotonic() > self.deadline:
                return batch
            self._progress("batch", int(batch.get("processed_rows") or 0),
                           int(batch.get("valid_rows") or 0))  # fmt: skip
            await self.how.sleep(self.how.poll_seconds)

    async def _validate_and_confirm(self) -> bool:
        rec = self.journal.batch_for_run(self.run_id)
        assert rec is not None
        batch_id = str(rec["batch_id"])
        batch = await self._wait(batch_id, _WAITING)
        status = str(batch.get("status") or "")
        if status in _WAITING:
            return False  # still validating when the run's time ran out: run again
        if status in _PROCESSING | _DONE:
            # Confirmed already (by an earlier process of this run, whose record was lost).
            self.journal.update_batch(self.run_id, state=CONFIRMED)
            await self._follow()
            return False
        errors, warnings = await self.client.batch_errors(batch_id)
        refusals = self._record_validation(errors, warnings)
        if status in ("validation_failed", "cancelled"):
            self.journal.end_batch_rows(
                self.run_id,
                batch=dict(state=ENDED),
                code=f"batch_{status}",
                message=f"the provider's batch ended {status}",
            )
            return False
        if status != "validated":
            raise UnexpectedAnswer(f"batch {batch_id} is {status!r}, not a documented status")
        plan = self._plan(batch, refusals, len(warnings))
        short = [c for c, ok in plan.balance_ok.items() if not ok]
        if short:
            why = f"the provider's balance check refused the batch ({', '.join(short)})"
            await self._cancel(batch_id, "insufficient_balance", why)
            raise PreflightError(
                f"the provider's balance check says {', '.join(short)} cannot cover batch "
                f"{batch_id}; it was cancelled and nothing was paid",
                hint="top up the balance, then run the same command again: the rows go in a "
                "new batch (the cancelled one can never be confirmed)",
            )
        if not self._confirmed(plan):
            raise ConfirmationRequired(
                f"batch {batch_id} is uploaded and validated ({plan.valid_rows} row(s) to pay) "
                f"but not confirmed; nothing was paid. It can be confirmed until "
                f"{plan.expires_at}",
                hint="check the plan, then run the same command with --confirm (the same "
                "batch is confirmed; nothing is uploaded again)",
            )
        if plan.valid_rows == 0:
            return False
        if not await self._visible_to_other_homes(batch_id, batch):
            return False  # the run's time ran out first: the same command confirms later
        if await self._paid_meanwhile(batch_id):
            return await self._replan()
        # The key is fixed in the journal before the confirm leaves.
        self.journal.update_batch(self.run_id, state=CONFIRMING, confirm_key=f"bpc1-{batch_id}")
        return True

    def _confirmed(self, plan: BatchPlan) -> bool:
        confirm = self.how.confirm
        return confirm(plan) if callable(confirm) else bool(confirm)

    def _record_validation(
        self, errors: list[dict[str, Any]], warnings: list[dict[str, Any]]
    ) -> list[tuple[int, str]]:
        """Refuse the rows the provider refused; keep its warnings; by batchpay's rows."""
        by_batch_row = {int(r["batch_row"]): r for r in self.journal.batch_rows(self.run_id)}
        messages: dict[int, list[str]] = {}
        for e in errors:
            n = int(e.get("row") or 0)
            field = str(e.get("field") or "")
            text = str(e.get("message") or "refused")
            col = _OUR_COLUMN.get(field, field)
            messages.setdefault(n, []).append(f"{col}: {text}" if col else text)
        refusals: list[tuple[int, str]] = []
        for n, texts in sorted(messages.items()):
            r = by_batch_row.get(n)
            if r is None:
                continue  # a file-level error (row 1): every row ends with the batch
            message = "the provider refused this row: " + "; ".join(texts)
            if r["state"] == BATCHED:
                self.journal.record_payout_rejected(str(r["idempotency_key"]),
                                                    code="provider_validation",
                                                    message=message, request_id=None)  # fmt: skip
            refusals.append((int(r["row_number"]), message))
        for w in warnings:
            r = by_batch_row.get(int(w.get("row") or 0))
            if r is not None:
                text = f"provider warning {w.get('type')}: {w.get('message')}"
                self.journal.note_batch_warning(self.run_id, int(r["batch_row"]), text)
        return refusals

    def _plan(self, batch: Mapping[str, Any], refusals: list[tuple[int, str]],
              warnings: int) -> BatchPlan:  # fmt: skip
        summary = batch.get("summary") if isinstance(batch.get("summary"), dict) else {}
        assert isinstance(summary, dict)
        debits = {
            str(d.get("currency")): Decimal(str(d.get("amount")))
            for d in summary.get("estimated_debits") or []
            if isinstance(d, dict) and d.get("currency") and d.get("amount") is not None
        }
        checks = summary.get("balance_check") or {}
        balance_ok = {
            str(c): bool(v.get("sufficient", True))
            for c, v in checks.items()
            if isinstance(v, dict)
        }
        totals: dict[str, Decimal] = {}
        for r in self.journal.rows(self.run_id):
            if r["payout_state"] == BATCHED and r["amount"]:
                cur = str(r["currency"])
                totals[cur] = totals.get(cur, Decimal(0)) + Decimal(str(r["amount"]))
        return BatchPlan(
            batch_id=str(batch.get("id")),
            file_name=str(batch.get("file_name")),
            rows=int(batch.get("total_rows") or 0),
            valid_rows=int(batch.get("valid_rows") or 0),
            refused_rows=int(batch.get("invalid_rows") or 0),
            warnings=warnings,
            totals=totals,
            estimated_debits=debits,
            balance_ok=balance_ok,
            new_beneficiaries=int(summary.get("new_beneficiaries") or 0),
            known_beneficiaries=int(summary.get("existing_beneficiaries") or 0),
            expires_at=str(batch.get("expires_at") or ""),
            refusals=refusals,
        )

    async def _cancel(self, batch_id: str, code: str, message: str) -> None:
        """Cancel this run's batch, never confirmed; its rows are planned again."""
        # Recorded before it leaves: a run that stops before the answer finds the batch
        # cancelled by itself, not by a person (whose cancel refuses the rows for good).
        self.journal.update_batch(self.run_id, state=CANCELLING, detail=f"{code}: {message}")
        await self.client.cancel_batch(batch_id, f"bpx1-{batch_id}")
        self.journal.end_batch_rows(
            self.run_id,
            batch=dict(state=ENDED, detail=message),
            code=code,
            message=message,
            replan=True,
        )

    async def _cancel_again(self, rec: sqlite3.Row) -> None:
        """Finish this run's own cancel of its batch (it may have arrived): the batch is
        cancelled (or can no longer be confirmed) and its rows are planned again."""
        batch_id = str(rec["batch_id"])
        code, _, message = str(rec["detail"] or "").partition(": ")
        try:
            await self.client.cancel_batch(batch_id, f"bpx1-{batch_id}")
        except ConflictError:
            status = str((await self.client.get_batch(batch_id)).get("status") or "")
            if status in _PROCESSING | _DONE:
                # A person confirmed it meanwhile (the provider's dashboard): it pays, and
                # is followed as this run's own batch.
                log.warning("run %s: batch %s was confirmed outside batchpay before its "
                            "cancel; its payouts are followed", self.run_id, batch_id,
                            extra={"run_id": self.run_id, "batch_id": batch_id})  # fmt: skip
                self.journal.update_batch(self.run_id, state=CONFIRMED, provider_status=status)
                return
            if status not in ("cancelled", "validation_failed"):
                raise
        self.journal.end_batch_rows(
            self.run_id,
            batch=dict(state=ENDED, detail=message),
            code=code or "batch_cancelled",
            message=message,
            replan=True,
        )

    async def _visible_to_other_homes(self, batch_id: str, batch: Mapping[str, Any]) -> bool:
        """Wait until a per-row run in another home can no longer send a payout it decided
        on before this batch existed (``ledger.FOREIGN_BATCH_GUARD`` of the provider's time
        after the batch was created), so the last sweep before confirming lists it. A run
        that looked later sees this batch open and holds its rows. False when the run's
        time ran out first."""
        try:
            created = parse_ts(str(batch.get("created_at")))
        except ValueError:
            created = self.conn.provider_clock.now()  # undated: wait the whole guard from now
        clock = self.conn.provider_clock
        while (left := (created + ledger.FOREIGN_BATCH_GUARD - clock.now()).total_seconds()) > 0:
            if time.monotonic() > self.deadline:
                return False
            await self.how.sleep(min(left, self.how.poll_seconds))
            await self.client.get_batch(batch_id)  # its Date keeps the provider's clock fresh
        return True

    async def _paid_meanwhile(self, batch_id: str) -> bool:
        """Just before confirming, the provider's ledger again: did another journal pay one
        of these rows since the batch was planned? Then this batch is cancelled, never
        confirmed, and its rows planned again (those paid elsewhere become already_paid)."""
        await ledger.sweep(self.client, self.journal, self.env,
                           provider_clock=self.conn.provider_clock)  # fmt: skip
        # This batch is not confirmed: any payout the provider holds for its rows is another's.
        taken = [
            r
            for r in self.journal.rows(self.run_id)
            if r["payout_state"] == BATCHED
            and self.journal.provider_payouts_for(self.env, str(r["row_key"]))
        ]
        if not taken:
            return False
        message = (
            f"{len(taken)} row(s) of batch {batch_id} were paid elsewhere while it waited; "
            "it was cancelled before confirmation and its rows planned again"
        )
        log.warning("run %s: %s", self.run_id, message, extra={"run_id": self.run_id})
        await self._cancel(batch_id, "paid_elsewhere_meanwhile", message)
        return True

    async def _replan(self) -> bool:
        """A new batch for the rows still to pay (the old one was cancelled, never confirmed)."""
        self.journal.retire_batch(self.run_id)
        if not await self._plan_and_record():
            return False
        rec = self.journal.batch_for_run(self.run_id)
        assert rec is not None
        await self._upload(rec, look_first=False)
        return await self._validate_and_confirm()

    async def _settle_confirm(self) -> bool:
        """Send the confirm with its fixed key while the batch is still validated."""
        rec = self.journal.batch_for_run(self.run_id)
        assert rec is not None
        batch_id, key = str(rec["batch_id"]), str(rec["confirm_key"])
        batch = await self.client.get_batch(batch_id)
        status = str(batch.get("status") or "")
        if status == "validated":
            try:
                await self.client.confirm_batch(batch_id, key)
            except ConflictError as exc:
                if exc.code == "batch_confirmation_expired":
                    self._end_expired(batch)
                    raise self._expired_error() from None
                if exc.code != "batch_not_validated":
                    raise
                status = str((await self.client.get_batch(batch_id)).get("status") or "")
                if status not in _PROCESSING | _DONE:
                    raise
            log.info("run %s: batch %s confirmed", self.run_id, batch_id,
                     extra={"run_id": self.run_id, "batch_id": batch_id})  # fmt: skip
        elif status == "cancelled":
            self.journal.end_batch_rows(
                self.run_id,
                batch=dict(state=ENDED, provider_status=status),
                code="batch_cancelled",
                message="the batch was cancelled before it was processed; nothing was paid",
            )
            return False
        elif status not in _PROCESSING | _DONE:
            raise UnexpectedAnswer(f"batch {batch_id} is {status!r} while being confirmed")
        self.journal.update_batch(self.run_id, state=CONFIRMED)
        return True

    def _end_expired(self, batch: Mapping[str, Any]) -> None:
        self.journal.end_batch_rows(
            self.run_id,
            batch=dict(state=EXPIRED, detail=str(batch.get("expires_at") or "")),
            code="batch_confirmation_expired",
            message="the provider's batch expired before it was confirmed; nothing was paid",
            replan=True,
        )

    def _expired_error(self) -> PreflightError:
        rec = self.journal.batch_for_run(self.run_id)
        assert rec is not None
        return PreflightError(
            f"batch {rec['batch_id']} of run {self.run_id} expired before it was confirmed "
            f"(deadline {rec['detail'] or 'passed'}); nothing was paid and nothing was "
            "uploaded again",
            hint="to pay these rows, run the same command with --new-batch --confirm: the rows "
            "are uploaded again as a new batch (check that the first was never paid)",
        )

    # -- 4. processing, followed to the per-row results -------------------------------------

    async def _follow(self) -> None:
        rec = self.journal.batch_for_run(self.run_id)
        assert rec is not None
        batch_id = str(rec["batch_id"])
        batch = await self._wait(batch_id, _PROCESSING)
        status = str(batch.get("status") or "")
        if status in _PROCESSING:
            return  # still processing when the run's time ran out: run again to finish
        if status == "cancelled":
            self.journal.end_batch_rows(
                self.run_id,
                batch=dict(state=ENDED),
                code="batch_cancelled",
                message="the batch was cancelled before it was processed; nothing was paid",
            )
            return
        await self._settle_rows(batch_id)
        self.journal.update_batch(self.run_id, state=SETTLED, provider_status=status)
        # Another home may have sent these rows one by one meanwhile (the batch's payouts
        # carry no idempotency key to refuse them): keep one payout per row (a sweep).
        await ledger.cancel_second_payouts(self.client, self.journal, self.env, self.run_id,
                                           provider_clock=self.conn.provider_clock)  # fmt: skip

    async def _settle_rows(self, batch_id: str) -> None:
        """Each row's intent from the batch's payouts and results."""
        rows = {int(r["batch_row"]): r for r in self.journal.batch_rows(self.run_id)}
        by_key = {str(r["idempotency_key"]): r for r in rows.values()}
        payouts: dict[str, dict[str, Any]] = {}
        async for p in self.client.iter_batch_payouts(batch_id):
            meta = p.get("metadata") if isinstance(p.get("metadata"), dict) else {}
            key = str(meta.get(METADATA_KEY) or "") if isinstance(meta, dict) else ""
            if key in by_key:
                payouts[key] = dict(p)
            if p.get("id"):
                payouts.setdefault(str(p["id"]), dict(p))
        outcomes: list[BatchRowOutcome] = []
        async for result in self.client.iter_batch_results(batch_id):
            r = rows.get(int(result.get("row") or 0))
            if r is None or r["state"] != BATCHED:
                continue
            key = str(r["idempotency_key"])
            number = int(r["row_number"])
            status = str(result.get("status") or "")
            payout = payouts.get(key) or payouts.get(str(result.get("payout_id") or ""))
            if status == "success" and payout is not None:
                outcomes.append(BatchRowOutcome(key, number, payout, payee=self._payee(number)))
            elif status in ("failed", "skipped"):
                why = str(result.get("error") or result.get("skip_reason") or status)
                outcomes.append(
                    BatchRowOutcome(key, number, code=f"batch_row_{status}",
                                    message=f"the provider's batch: {why}")
                )  # fmt: skip
            self._progress("submit", len(outcomes), len(rows))
        self.journal.settle_batch(self.env, self.run_id, outcomes)
        left = [r for r in self.journal.batch_rows(self.run_id) if r["state"] == BATCHED]
        if left:
            raise UnexpectedAnswer(
                f"batch {batch_id} finished but its results do not settle {len(left)} row(s)",
                hint="run the same command again; if it persists, report the batch id",
            )

    def _payee(self, number: int) -> tuple[str, ...] | None:
        """What the journal keeps of a row's beneficiary and instrument, as a per-row run."""
        row = self.checked.valid_rows.get(number)
        if row is None:
            return None
        ref, pii = str(row["beneficiary_ref"]), pii_fingerprint(row)
        cred = credential_fingerprint(row)
        return (ref, pii, dedupe.beneficiary_key(self.env, ref, pii), display_name(row), cred,
                f"batch:{cred}", str(row["payment_method"]), str(row["currency"]),
                masked_account(row))  # fmt: skip


def describe(plan: BatchPlan) -> list[str]:
    """The plan as lines for a person to read before confirming."""
    lines = [
        f"provider batch {plan.batch_id}: {plan.rows} row(s), {plan.valid_rows} valid, "
        f"{plan.refused_rows} refused by the provider, {plan.warnings} warning(s)",
        f"  beneficiaries: {plan.new_beneficiaries} new, {plan.known_beneficiaries} known",
    ]
    for cur, total in sorted(plan.totals.items()):
        lines.append(f"  total {cur} {total}")
    for cur, debit in sorted(plan.estimated_debits.items()):
        ok = "covered" if plan.balance_ok.get(cur, True) else "NOT covered"
        lines.append(f"  estimated debit {cur} {debit} ({ok} by the balance)")
    for number, message in plan.refusals:
        lines.append(f"  row {number}: {message}")
    if plan.expires_at:
        lines.append(f"  confirm before {plan.expires_at}")
    return lines
