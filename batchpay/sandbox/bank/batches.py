"""Batches: upload a file of payout rows, validate it later, confirm it once, process it.

A batch walks ``uploaded -> validating -> validated -> confirmed -> processing ->
completed | partial | failed`` (or ``validation_failed``, ``cancelled``), one step per
``step_seconds`` of sandbox time, applied lazily like a payout's path. Validation runs
when the batch reaches ``validated`` (against the books as they are then); processing
turns ``batch_rows_per_step`` valid rows per step into beneficiaries, instruments and
payouts through the very same code as ``POST /v1/beneficiaries`` and ``POST /v1/payouts``,
so a batch's payouts walk the same state machine, debit the same balances and appear in
``GET /v1/payouts`` with their ``batch_id``.

The template (``TEMPLATE_COLUMNS``, in that order) is the sandbox's own: the spec leaves
the columns to the downloaded template. Rows are numbered as in the file, the header
being row 1. Trailing ``metadata.<name>`` columns become the payout's ``metadata``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .._util import decode_cursor, encode_cursor, iso, new_id
from ..clock import SandboxClock
from ..config import SandboxConfig
from ..lifecycle import TRIGGERS
from ..pricing import PricingError, price
from ..problems import ApiProblem
from ..store import Store, load, store_doc
from ..validation import (
    RAIL_CURRENCY,
    RAILS_FOR_INSTRUMENT,
    validate_beneficiary,
    validate_instrument,
    validate_payout,
)
from .balances import Balances
from .beneficiaries import Beneficiaries
from .events import Events
from .paging import Listing, Page
from .payouts import Payouts

TEMPLATE_COLUMNS: tuple[str, ...] = (
    "external_ref",
    "beneficiary_id",
    "instrument_id",
    "beneficiary_type",
    "first_name",
    "last_name",
    "business_name",
    "registration_number",
    "email",
    "phone",
    "date_of_birth",
    "nationality",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "dest_country",
    "method",
    "dest_amount",
    "dest_currency",
    "source_amount",
    "source_currency",
    "reference",
    "purpose",
    "iban",
    "bic",
    "account_number",
    "routing_number",
    "account_type",
    "sort_code",
)
METADATA_PREFIX = "metadata."
_EXAMPLES: tuple[dict[str, str], ...] = (
    {
        "external_ref": "contractor-0042",
        "beneficiary_type": "individual",
        "first_name": "Jane",
        "last_name": "Smith",
        "email": "jane@example.com",
        "address_line1": "10 Example Street",
        "city": "London",
        "postal_code": "SW1A 1AA",
        "dest_country": "GB",
        "method": "faster_payment",
        "dest_amount": "1250.00",
        "dest_currency": "GBP",
        "reference": "INV-2026-0042",
        "purpose": "contractor_payment",
        "account_number": "12345678",
        "sort_code": "12-34-56",
    },
    {
        "beneficiary_id": "ben_01HX8Z9K0M2N3P4Q5R6S7T8UAB",
        "instrument_id": "ins_01HX8Z9K0M2N3P4Q5R6S7T8UAC",
        "dest_country": "DE",
        "method": "sepa",
        "dest_amount": "980.00",
        "dest_currency": "EUR",
        "reference": "INV-2026-0043",
        "purpose": "supplier_payment",
    },
)
# States from which a batch may still be cancelled, and the ones that end it.
CANCELLABLE = frozenset({"uploaded", "validating", "validated", "validation_failed", "confirmed"})
TERMINAL = frozenset({"completed", "partial", "failed", "cancelled", "validation_failed"})
# A batch whose file is "still pending": an upload of the same file is a duplicate_file.
_PENDING = frozenset({"uploaded", "validating", "validated", "confirmed", "processing"})
# Documented batch-only trigger: a row whose amount ends in .99 is refused at validation.
REFUSE_CENTS = 99
_BEN_ID = re.compile(r"^ben_[a-zA-Z0-9]+$")
_INS_ID = re.compile(r"^ins_[a-zA-Z0-9]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Where a field of the API's request bodies comes from in the template.
_FIELD_COLUMN = {
    "type": "beneficiary_type",
    "country": "dest_country",
    "external_ref": "external_ref",
    "first_name": "first_name",
    "last_name": "last_name",
    "legal_name": "business_name",
    "registration_number": "registration_number",
    "email": "email",
    "phone": "phone",
    "date_of_birth": "date_of_birth",
    "nationality": "nationality",
    "street_line_1": "address_line1",
    "street_line_2": "address_line2",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
    "iban": "iban",
    "bic": "bic",
    "account_number": "account_number",
    "routing_number": "routing_number",
    "account_type": "account_type",
    "sort_code": "sort_code",
    "dest_amount": "dest_amount",
    "source_amount": "source_amount",
    "dest_currency": "dest_currency",
    "source_currency": "source_currency",
    "method": "method",
    "purpose": "purpose",
    "reference": "reference",
}


def template(fmt: str) -> tuple[bytes, str]:
    """The template file (header and example rows) and its media type."""
    rows = [[ex.get(c, "") for c in TEMPLATE_COLUMNS] for ex in _EXAMPLES]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(TEMPLATE_COLUMNS)
        writer.writerows(rows)
        return out.getvalue().encode("utf-8"), "text/csv"
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "payouts"
    ws.append(list(TEMPLATE_COLUMNS))
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue(), XLSX_TYPE


def _read_rows(name: str, data: bytes) -> tuple[str, list[list[str]]]:
    """The file's format and its rows of text cells; 400 ``invalid_file`` when unreadable."""
    lower = name.lower()
    if lower.endswith(".csv"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiProblem(400, "invalid_file", "the CSV file is not UTF-8 text") from None
        return "csv", [list(r) for r in csv.reader(io.StringIO(text, newline=""))]
    if lower.endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            ws = wb.worksheets[0]
            rows = [
                ["" if v is None else str(v) for v in r] for r in ws.iter_rows(values_only=True)
            ]
            wb.close()
        except Exception:
            raise ApiProblem(400, "invalid_file", "the XLSX file cannot be read") from None
        return "xlsx", rows
    raise ApiProblem(400, "invalid_file_format", "only .csv and .xlsx batch files are accepted")


def _amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


class Batches:
    """Batch uploads and their lifecycle, over the same books as single requests."""

    def __init__(
        self,
        store: Store,
        clock: SandboxClock,
        config: SandboxConfig,
        balances: Balances,
        beneficiaries: Beneficiaries,
        payouts: Payouts,
        events: Events,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.merchant_id = config.merchant_id
        self.balances = balances
        self.beneficiaries = beneficiaries
        self.payouts = payouts
        self.events = events

    # ------------------------------------------------------------------ upload

    def upload(self, file_name: str, data: bytes, file_hash: str | None) -> dict[str, Any]:
        """Store a file as a new batch in ``uploaded`` status (validated later)."""
        self.apply_due()
        digest = hashlib.sha256(data).hexdigest()
        if file_hash is not None and file_hash.strip().lower() != digest:
            raise ApiProblem(
                400, "file_hash_mismatch", "file_hash does not match the SHA-256 of the file"
            )
        if len(data) > 32 * 1024 * 1024:
            raise ApiProblem(400, "file_too_large", "the file exceeds the 32 MB limit")
        fmt, rows = _read_rows(file_name, data)
        with self.store.tx():
            now = self.clock.time()
            pending = [
                r["id"]
                for r in self.store.all(
                    "SELECT id, status, work FROM batches WHERE file_hash = ? ORDER BY seq",
                    (digest,),
                )
                if r["status"] in _PENDING and not self._expired(load(r["work"]), now)
            ]
            if pending:
                raise ApiProblem(
                    409,
                    "duplicate_file",
                    "a batch with this exact file is still pending; wait for it or cancel it",
                    {"pending_batches": pending},
                )
            seq = self.store.next_seq()
            doc: dict[str, Any] = {
                "id": new_id("bat", now),
                "merchant_id": self.merchant_id,
                "uploaded_by": "usr_sandboxapi",
                "status": "uploaded",
                "file_name": file_name,
                "file_format": fmt,
                "file_size": len(data),
                "total_rows": max(0, len(rows) - 1),
                "created_at": iso(now),
                "updated_at": iso(now),
            }
            work: dict[str, Any] = {"cells": rows, "created_ts": now, "step": 0}
            self.store.execute(
                "INSERT INTO batches (id, seq, created_ts, status, file_hash, next_due_ts,"
                " work, doc) VALUES (?, ?, ?, 'uploaded', ?, ?, ?, ?)",
                (
                    doc["id"],
                    seq,
                    now,
                    digest,
                    now + self.config.step_seconds,
                    store_doc(work),
                    store_doc(doc),
                ),
            )
            self.events.emit("batch.uploaded", doc, now)
        return doc

    # ------------------------------------------------------------------ reads

    def _row(self, batch_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        row = self.store.one("SELECT doc, work FROM batches WHERE id = ?", (batch_id,))
        if row is None:
            raise ApiProblem(404, "batch_not_found", "batch not found")
        return load(row["doc"]), load(row["work"])

    def get(self, batch_id: str) -> dict[str, Any]:
        """One batch, with its summary once validated; 404 ``batch_not_found``."""
        self.apply_due()
        return self._row(batch_id)[0]

    def list_batches(
        self,
        *,
        status: str | None,
        created_after: float | None,
        created_before: float | None,
        page: Page,
    ) -> Listing:
        """Batches, newest first."""
        from .paging import page_of

        self.apply_due()
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        return page_of(self.store, "batches", "batches", where, params, page,
                       created=(created_after, created_before))  # fmt: skip

    def all(self) -> list[dict[str, Any]]:
        """Every batch ever uploaded, oldest first, with its file hash (for judges)."""
        self.apply_due()
        rows = self.store.all("SELECT doc, file_hash FROM batches ORDER BY seq")
        return [{**load(r["doc"]), "file_hash": r["file_hash"]} for r in rows]

    def errors(self, batch_id: str) -> dict[str, Any]:
        """Row-level validation errors and warnings (empty until validated)."""
        self.apply_due()
        _, work = self._row(batch_id)
        return {"errors": work.get("errors", []), "warnings": work.get("warnings", [])}

    def results(self, batch_id: str, page: Page) -> dict[str, Any]:
        """Per-row outcomes in file order (``pending`` until a row is processed)."""
        self.apply_due()
        doc, work = self._row(batch_id)
        results: list[dict[str, Any]] = []
        for item in work.get("rows", []):
            result: dict[str, Any] = {"row": item["row"], "status": item.get("result", "pending")}
            for key in ("payout_id", "beneficiary_id", "instrument_id", "error", "skip_reason"):
                if item.get(key):
                    result[key] = item[key]
            stopped = doc["status"] in ("cancelled", "validation_failed")
            if stopped and result["status"] == "pending":
                result = {"row": item["row"], "status": "skipped", "skip_reason": doc["status"]}
            results.append(result)
        start = 0
        if page.cursor is not None:
            try:
                start = decode_cursor(page.cursor, f"results:{batch_id}")
            except ValueError as exc:
                raise ApiProblem(400, "invalid_cursor", str(exc)) from exc
        chunk = results[start : start + page.limit]
        out: dict[str, Any] = {"data": chunk, "has_more": start + page.limit < len(results)}
        if out["has_more"]:
            out["next_cursor"] = encode_cursor(start + page.limit, f"results:{batch_id}")
        return out

    def payouts_page(self, batch_id: str, page: Page) -> dict[str, Any]:
        """The payouts this batch created, in file order."""
        self.apply_due()
        self._row(batch_id)
        where = ["batch_id = ?"]
        args: list[Any] = [batch_id]
        if page.cursor is not None:
            try:
                start = decode_cursor(page.cursor, f"payouts:{batch_id}")
            except ValueError as exc:
                raise ApiProblem(400, "invalid_cursor", str(exc)) from exc
            where.append("seq > ?")
            args.append(start)
        rows = self.store.all(
            f"SELECT seq, doc FROM payouts WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            (*args, page.limit + 1),
        )
        items = rows[: page.limit]
        out: dict[str, Any] = {
            "data": [load(r["doc"]) for r in items],
            "has_more": len(rows) > page.limit,
        }
        if out["has_more"]:
            out["next_cursor"] = encode_cursor(int(items[-1]["seq"]), f"payouts:{batch_id}")
        return out

    # ------------------------------------------------------------------ confirm, cancel

    def _expired(self, work: dict[str, Any], now: float) -> bool:
        expires = work.get("expires_ts")
        return expires is not None and now > expires and work.get("confirmed_ts") is None

    def confirm(self, batch_id: str, source_currency: str | None) -> dict[str, Any]:
        """Confirm a validated batch before its ``expires_at``; processing starts a step later."""
        self.apply_due()
        with self.store.tx():
            doc, work = self._row(batch_id)
            now = self.clock.time()
            if doc["status"] != "validated":
                raise ApiProblem(
                    409,
                    "batch_not_validated",
                    f"only a validated batch can be confirmed; this one is {doc['status']}",
                )
            if self._expired(work, now):
                raise ApiProblem(
                    409,
                    "batch_confirmation_expired",
                    f"the batch's confirmation window ended at {doc['expires_at']}; "
                    "upload the file again",
                )
            work["confirmed_ts"] = now
            work["default_source"] = source_currency
            doc["status"] = "confirmed"
            doc["confirmed_at"] = iso(now)
            doc["confirmed_by"] = "usr_sandboxapi"
            if source_currency is not None:
                doc["source_currency"] = source_currency
            self._save(doc, work, now + self.config.step_seconds, now)
        return doc

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel from a pre-processing state; 409 ``batch_not_cancellable`` otherwise."""
        self.apply_due()
        with self.store.tx():
            doc, work = self._row(batch_id)
            if doc["status"] == "cancelled":
                return doc
            if doc["status"] not in CANCELLABLE:
                raise ApiProblem(
                    409,
                    "batch_not_cancellable",
                    f"a batch in status {doc['status']} cannot be cancelled",
                )
            now = self.clock.time()
            doc["status"] = "cancelled"
            doc["cancelled_at"] = iso(now)
            doc["cancelled_by"] = "usr_sandboxapi"
            self._save(doc, work, None, now)
        return doc

    def _save(
        self, doc: dict[str, Any], work: dict[str, Any], next_due: float | None, at: float
    ) -> None:
        doc["updated_at"] = iso(at)
        self.store.execute(
            "UPDATE batches SET status = ?, next_due_ts = ?, work = ?, doc = ? WHERE id = ?",
            (doc["status"], next_due, store_doc(work), store_doc(doc), doc["id"]),
        )

    # ------------------------------------------------------------------ the walk

    def apply_due(self, now: float | None = None) -> int:
        """Move every batch whose next step is due; return how many steps were taken."""
        at = self.clock.time() if now is None else now
        steps = 0
        with self.store.tx():
            for row in self.store.all(
                "SELECT id, next_due_ts FROM batches WHERE next_due_ts IS NOT NULL"
                " AND next_due_ts <= ? ORDER BY next_due_ts, seq",
                (at,),
            ):
                due: float | None = row["next_due_ts"]
                while due is not None and due <= at:
                    doc, work = self._row(row["id"])
                    due = self._step(doc, work, due)
                    steps += 1
        return steps

    def _step(self, doc: dict[str, Any], work: dict[str, Any], at: float) -> float | None:
        """Take one due step of a batch; return when the next one is due."""
        step = self.config.step_seconds
        status = doc["status"]
        nxt: float | None
        if status == "uploaded":
            doc["status"] = "validating"
            nxt = at + step
        elif status == "validating":
            self._validate(doc, work, at)
            nxt = None
        elif status == "confirmed":
            doc["status"] = "processing"
            doc["processing_started_at"] = iso(at)
            doc["processed_rows"] = 0
            doc["current_row_index"] = 0
            work["index"] = 0
            nxt = at + step
        elif status == "processing":
            nxt = at + step if self._process(doc, work) else None
            if nxt is None:
                self._finish(doc, work, at)
        else:
            nxt = None
        self._save(doc, work, nxt, at)
        return nxt

    # ------------------------------------------------------------------ validation

    def _validate(self, doc: dict[str, Any], work: dict[str, Any], at: float) -> None:
        cells: list[list[str]] = work.pop("cells")
        errors: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        header = [h.strip() for h in cells[0]] if cells else []
        fixed = header[: len(TEMPLATE_COLUMNS)]
        extra = header[len(TEMPLATE_COLUMNS) :]
        if tuple(fixed) != TEMPLATE_COLUMNS or any(
            not h.startswith(METADATA_PREFIX) for h in extra
        ):
            missing = [c for c in TEMPLATE_COLUMNS if c not in header]
            message = (
                f"missing required columns: {', '.join(missing)}"
                if missing
                else "the header must hold the template's columns in the template's order"
            )
            errors.append({"row": 1, "field": "", "message": message})
            work.update(rows=[], errors=errors, warnings=warnings)
            doc.update(status="validation_failed", valid_rows=0, invalid_rows=doc["total_rows"])
            doc.update(warning_rows=0, skipped_rows=0)
            self.events.emit("batch.failed", doc, at)
            return
        rows: list[dict[str, Any]] = []
        seen: dict[tuple[str, str], int] = {}
        new_refs: set[str] = set()
        existing: set[str] = set()
        matched = 0
        methods: dict[str, int] = {}
        debits: dict[str, dict[str, Any]] = {}
        for n, raw in enumerate(cells[1:], start=2):
            if not any(v.strip() for v in raw):
                continue
            values = {h: (raw[i].strip() if i < len(raw) else "") for i, h in enumerate(header)}
            item: dict[str, Any] = {"row": n, "cells": values}
            problems, notes, plan = self._check_row(values)
            for field, message in problems:
                errors.append({"row": n, "field": field, "message": message})
            for kind, message in notes:
                warnings.append({"row": n, "type": kind, "message": message})
            if problems:
                item.update(result="failed", error="; ".join(m for _, m in problems[:3]))
                rows.append(item)
                continue
            identity = (values["reference"].lower(), plan["payee"])
            if identity in seen:
                warnings.append({"row": n, "type": "duplicate_in_batch",
                                 "message": f"the same payout as row {seen[identity]}; "
                                 "this copy is skipped"})  # fmt: skip
                item.update(result="skipped", skip_reason="duplicate")
                rows.append(item)
                continue
            seen[identity] = n
            item["plan"] = plan
            rows.append(item)
            if plan["beneficiary"] == "new":
                new_refs.add(values["external_ref"])
            else:
                matched += 1
                existing.add(plan["beneficiary_id"])
            methods[values["method"]] = methods.get(values["method"], 0) + 1
            d = debits.setdefault(
                plan["source_currency"],
                {"currency": plan["source_currency"], "amount": Decimal(0), "fx_rows": 0,
                 "same_currency_rows": 0},
            )  # fmt: skip
            d["amount"] += Decimal(plan["debit"])
            d["fx_rows" if plan["source_currency"] != values["dest_currency"] else
              "same_currency_rows"] += 1  # fmt: skip
        valid = [r for r in rows if "plan" in r]
        balance_check: dict[str, Any] = {}
        for ccy, d in debits.items():
            held = self.store.one("SELECT available FROM balances WHERE currency = ?", (ccy,))
            available = Decimal(held["available"]) if held is not None else Decimal(0)
            balance_check[ccy] = {
                "available": f"{available:f}",
                "estimated_debit": f"{d['amount']:f}",
                "sufficient": available >= d["amount"],
            }
            d["amount"] = f"{d['amount']:f}"
            d["rate_timestamp"] = iso(at)
        work.update(rows=rows, errors=errors, warnings=warnings)
        warned = {w["row"] for w in warnings}
        doc.update(
            valid_rows=len(valid),
            invalid_rows=sum(1 for r in rows if r.get("result") == "failed"),
            warning_rows=len(warned),
            skipped_rows=sum(1 for r in rows if r.get("result") == "skipped"),
            processed_rows=0,
        )
        doc["summary"] = {
            "new_beneficiaries": len(new_refs),
            "matched_beneficiaries": matched,
            "existing_beneficiaries": len(existing),
            "methods": methods,
            "estimated_debits": list(debits.values()),
            "fx_markup_bps": 0,
            "balance_check": balance_check,
        }
        currencies = {r["cells"]["dest_currency"] for r in valid}
        if len(currencies) == 1:
            total = sum((Decimal(r["cells"]["dest_amount"] or "0") for r in valid), Decimal(0))
            doc["total_amount"] = f"{total:f}"
            doc["total_currency"] = currencies.pop()
        if not valid:
            doc["status"] = "validation_failed"
            self.events.emit("batch.failed", doc, at)
            return
        doc["status"] = "validated"
        work["expires_ts"] = at + self.config.batch_confirm_ttl_seconds
        doc["expires_at"] = iso(work["expires_ts"])

    def _check_row(
        self, v: dict[str, str]
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[str, Any]]:
        """A row's errors (field, message), warnings (type, message) and processing plan."""
        errors: list[tuple[str, str]] = []
        notes: list[tuple[str, str]] = []
        plan: dict[str, Any] = {}
        ins_method: str | None = None
        if v["beneficiary_id"]:
            ben = self.store.one(
                "SELECT status FROM beneficiaries WHERE id = ?", (v["beneficiary_id"],)
            )
            if not _BEN_ID.match(v["beneficiary_id"]) or ben is None:
                errors.append(("beneficiary_id", "no such beneficiary"))
            elif ben["status"] != "active":
                errors.append(("beneficiary_id", f"beneficiary is {ben['status']}"))
            plan.update(beneficiary="given", beneficiary_id=v["beneficiary_id"])
        elif v["external_ref"]:
            found = self.store.one(
                "SELECT id FROM beneficiaries WHERE external_ref = ? AND status = 'active'"
                " ORDER BY seq LIMIT 1",
                (v["external_ref"],),
            )
            if found is not None:
                plan.update(beneficiary="matched", beneficiary_id=found["id"])
            else:
                body = _beneficiary_body(v)
                errors.extend(_problems(validate_beneficiary, body))
                plan.update(beneficiary="new", body=body)
        else:
            errors.append(("external_ref", "is required unless beneficiary_id is given"))
        plan["payee"] = v["beneficiary_id"] or v["external_ref"]
        if v["instrument_id"]:
            ins = self.store.one(
                "SELECT beneficiary_id, method, status FROM instruments WHERE id = ?",
                (v["instrument_id"],),
            )
            if not _INS_ID.match(v["instrument_id"]) or ins is None:
                errors.append(("instrument_id", "no such instrument"))
            elif plan.get("beneficiary_id") not in (None, ins["beneficiary_id"]):
                errors.append(("instrument_id", "instrument does not belong to this beneficiary"))
            elif ins["status"] != "active":
                errors.append(("instrument_id", "instrument is not active"))
            else:
                ins_method = ins["method"]
                plan["instrument_id"] = v["instrument_id"]
        else:
            ins_body = _instrument_body(v)
            if ins_body is None:
                errors.append(("iban", "bank details are required: iban, sort_code and "
                               "account_number, or routing_number and account_number"))  # fmt: skip
            else:
                errors.extend(_problems(validate_instrument, ins_body))
                ins_method = ins_body["method"]
                plan["instrument_body"] = ins_body
        fixed_dest = bool(v["dest_amount"])
        amount_text = v["dest_amount"] or v["source_amount"]
        payout: dict[str, Any] = {
            "beneficiary_id": "ben_batchrow",
            "instrument_id": "ins_batchrow",
            "source_amount": v["source_amount"] or amount_text,
            "dest_amount": v["dest_amount"] or amount_text,
            "dest_currency": v["dest_currency"],
            "method": v["method"],
            "fixed_side": "fixed_dest" if fixed_dest else "fixed_source",
            "purpose": v["purpose"],
            "reference": v["reference"],
        }
        if v["source_currency"]:
            payout["source_currency"] = v["source_currency"]
        metadata = {
            k[len(METADATA_PREFIX) :]: val
            for k, val in v.items()
            if k.startswith(METADATA_PREFIX) and val
        }
        if metadata:
            payout["metadata"] = metadata
        payout_errors = _problems(validate_payout, payout)
        errors.extend(payout_errors)
        if v["dest_country"] and not _COUNTRY.match(v["dest_country"]):
            errors.append(("dest_country", "must be an ISO 3166-1 alpha-2 code"))
        if not payout_errors:
            if ins_method is not None and v["method"] not in RAILS_FOR_INSTRUMENT.get(
                ins_method, ()
            ):
                errors.append(("method", f"{v['method']} cannot pay a {ins_method} instrument"))
            rail_currency = RAIL_CURRENCY.get(v["method"])
            if rail_currency and v["dest_currency"] != rail_currency:
                errors.append(("dest_currency", f"{v['method']} pays {rail_currency} only"))
            amount = _amount(amount_text) or Decimal(0)
            cents = int((amount * 100) % 100)
            if cents == REFUSE_CENTS:
                errors.append(("dest_amount" if fixed_dest else "source_amount",
                               "refused by the provider's checks (sandbox trigger: "
                               "amount ending in .99)"))  # fmt: skip
            trigger = TRIGGERS.get(cents)
            if trigger in ("sync_velocity_blocked", "velocity_blocked"):
                notes.append(("velocity_block_predicted",
                              "a risk rule is likely to block this payout"))  # fmt: skip
            elif trigger is not None and trigger.startswith("review"):
                notes.append(("velocity_review_predicted",
                              "this payout is likely to need a manual review"))  # fmt: skip
        if errors:
            return errors, notes, plan
        source = v["source_currency"] or self._default_source(v["dest_currency"])
        try:
            amount = _amount(amount_text) or Decimal(0)
            quote = price(
                source_amount=amount,
                source_currency=source,
                dest_amount=amount,
                dest_currency=v["dest_currency"],
                method=v["method"],
                fixed_side=payout["fixed_side"],
                fee_bearer="merchant",
            )
        except PricingError as exc:
            errors.append((_FIELD_COLUMN.get(exc.field, exc.field), exc.message))
            return errors, notes, plan
        plan.update(payout=payout, source_currency=source, debit=f"{quote.total_debited:f}")
        return errors, notes, plan

    def _default_source(self, dest_currency: str) -> str:
        held = self.store.one("SELECT 1 FROM balances WHERE currency = ?", (dest_currency,))
        return dest_currency if held else self.config.default_source_currency

    # ------------------------------------------------------------------ processing

    def _process(self, doc: dict[str, Any], work: dict[str, Any]) -> bool:
        """Process the next chunk of rows; True while rows remain."""
        from ..validation import validate_payout as shape

        rows: list[dict[str, Any]] = work["rows"]
        index: int = work.get("index", 0)
        end = min(len(rows), index + self.config.batch_rows_per_step)
        for item in rows[index:end]:
            plan = item.get("plan")
            if plan is None or item.get("result"):
                continue
            try:
                ben_id = plan.get("beneficiary_id") or self._beneficiary_for(plan["body"])
                ins_id = plan.get("instrument_id") or self._instrument_for(
                    ben_id, plan["instrument_body"], item["cells"]["dest_currency"]
                )
                body = dict(plan["payout"], beneficiary_id=ben_id, instrument_id=ins_id)
                if "source_currency" not in body:
                    body["source_currency"] = work.get("default_source") or plan["source_currency"]
                payout = self.payouts.create_payout(shape(body), None, batch_id=doc["id"])
            except ApiProblem as exc:
                item.update(result="failed", error=f"{exc.code}: {exc.message}")
                continue
            item.update(result="success", payout_id=payout["id"], beneficiary_id=ben_id,
                        instrument_id=ins_id)  # fmt: skip
        work["index"] = end
        doc["current_row_index"] = end
        doc["processed_rows"] = sum(1 for r in rows[:end] if r.get("result") == "success")
        return end < len(rows)

    def _beneficiary_for(self, body: dict[str, Any]) -> str:
        ref = body.get("external_ref")
        found = self.store.one(
            "SELECT id FROM beneficiaries WHERE external_ref = ? AND status = 'active'"
            " ORDER BY seq LIMIT 1",
            (ref,),
        )
        if found is not None:
            return str(found["id"])
        inp = validate_beneficiary(body)
        same = self.store.one(
            "SELECT id FROM beneficiaries WHERE fingerprint = ?", (inp.fingerprint,)
        )
        if same is not None:
            return str(same["id"])
        return str(self.beneficiaries.create_beneficiary(inp)["id"])

    def _instrument_for(self, beneficiary_id: str, body: dict[str, Any], currency: str) -> str:
        inp = validate_instrument({**body, "currency": currency})
        same = self.store.one(
            "SELECT id FROM instruments WHERE beneficiary_id = ? AND fingerprint = ?",
            (beneficiary_id, inp.fingerprint),
        )
        if same is not None:
            return str(same["id"])
        return str(self.beneficiaries.create_instrument(beneficiary_id, inp)["id"])

    def _finish(self, doc: dict[str, Any], work: dict[str, Any], at: float) -> None:
        valid = [r for r in work["rows"] if "plan" in r]
        ok = sum(1 for r in valid if r.get("result") == "success")
        doc["status"] = "completed" if ok == len(valid) else "partial" if ok else "failed"
        doc["completed_at"] = iso(at)
        self.events.emit("batch.failed" if ok == 0 else "batch.completed", doc, at)


def _beneficiary_body(v: dict[str, str]) -> dict[str, Any]:
    """A ``BeneficiaryCreateRequest`` from a template row (blank cells left out)."""
    address = {
        k: v[c]
        for k, c in (
            ("street_line_1", "address_line1"),
            ("street_line_2", "address_line2"),
            ("city", "city"),
            ("state", "state"),
            ("postal_code", "postal_code"),
            ("country", "dest_country"),
        )
        if v[c]
    }
    kind = v["beneficiary_type"] or "individual"
    body: dict[str, Any] = {"type": kind, "external_ref": v["external_ref"]}
    if v["dest_country"]:
        body["country"] = v["dest_country"]
    names: tuple[tuple[str, str], ...]
    if kind == "business":
        names = (("legal_name", "business_name"), ("registration_number", "registration_number"))
    else:
        names = (("first_name", "first_name"), ("last_name", "last_name"),
                 ("date_of_birth", "date_of_birth"), ("nationality", "nationality"))  # fmt: skip
    detail: dict[str, Any] = {k: v[c] for k, c in names if v[c]}
    detail.update({k: v[k] for k in ("email", "phone") if v[k]})
    detail["address"] = address
    body["business" if kind == "business" else "individual"] = detail
    return body


def _instrument_body(v: dict[str, str]) -> dict[str, Any] | None:
    """An ``InstrumentCreateRequest`` from the row's credential columns, or None if none."""
    if v["iban"]:
        creds = {"iban": v["iban"]}
        if v["bic"]:
            creds["bic"] = v["bic"]
        return {"method": "iban", "credentials": creds}
    if v["sort_code"]:
        creds = {"sort_code": v["sort_code"], "account_number": v["account_number"]}
        return {"method": "uk_bank", "credentials": creds}
    if v["routing_number"]:
        creds = {"routing_number": v["routing_number"], "account_number": v["account_number"]}
        creds["account_type"] = v["account_type"] or "checking"
        return {"method": "us_bank", "credentials": creds}
    return None


def _problems(check: Any, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The (template column, message) pairs a request validator refuses ``body`` with."""
    try:
        check(body)
    except ApiProblem as exc:
        if isinstance(exc.details, list) and exc.details:
            return [
                (_FIELD_COLUMN.get(str(d["field"]).rsplit(".", 1)[-1], str(d["field"])),
                 str(d["message"]))
                for d in exc.details
            ]  # fmt: skip
        return [("", exc.message)]
    return []
