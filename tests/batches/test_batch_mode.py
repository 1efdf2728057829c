"""`--via batches` in process: what is uploaded, what is referenced, what is refused."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchpay import pipeline
from batchpay.batches import TEMPLATE_COLUMNS, Batches
from batchpay.client import set_testing
from batchpay.errors import ConfigError, ConfirmationRequired, PreflightError
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, run_kwargs, sandbox_settings, write_csv

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries do not sleep."""
    set_testing(True)
    yield
    set_testing(False)


def _batches(sb: Sandbox, confirm: bool = True) -> Batches:
    async def advance(seconds: float) -> None:
        await sb.advance(1)

    return Batches(confirm=confirm, sleep=advance)


class _NoBatchList(httpx.AsyncBaseTransport):
    """The sandbox, answering 404 to the batch list (an account without batch uploads)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/batches":
            body = {"error": {"code": "not_found", "message": "no batches here"}}
            return httpx.Response(404, json=body, request=request)
        return await self.inner.handle_async_request(request)


def _uploaded(journal: Path) -> list[list[str]]:
    db = sqlite3.connect(journal)
    try:
        data = db.execute("SELECT file FROM batches ORDER BY id DESC").fetchone()[0]
    finally:
        db.close()
    return list(csv.reader(io.StringIO(bytes(data).decode("utf-8"))))


async def test_the_upload_is_the_providers_template_and_every_row_is_paid_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The file sent has the provider's columns in its order (as its template says), never
    the user's headers; the batch's payouts carry batchpay's keys and settle every row."""
    rows = [payout_row(i) for i in range(6)]
    path = write_csv(tmp_path / "pay.csv", rows)
    settings = sandbox_settings(tmp_path)
    result = await pipeline.run_async(path, submission=_batches(sandbox),
                                      **run_kwargs(sandbox, settings, tmp_path))  # fmt: skip
    assert result.exit_code == 0
    assert result.counts == {"pending": 6}
    async with sandbox.client() as c:
        template = (await c.get("/v1/batches/template", params={"format": "csv"})).text
    provider_header = next(csv.reader(io.StringIO(template)))
    sent = _uploaded(settings.journal_path)
    assert sent[0][: len(TEMPLATE_COLUMNS)] == provider_header
    assert sent[0][len(TEMPLATE_COLUMNS) :] == ["metadata.batchpay_key", "metadata.description"]
    assert "beneficiary_ref" not in sent[0] and "amount" not in sent[0]
    ledger = sandbox.ledger()
    assert sorted(p["reference"] for p in ledger) == sorted(r["reference"] for r in rows)
    keys = {r.idempotency_key for r in result.report.rows}
    assert {p["metadata"]["batchpay_key"] for p in ledger} == keys
    assert {r.payout_id for r in result.report.rows} == {p["id"] for p in ledger}


async def test_known_beneficiaries_and_instruments_are_referenced_not_sent_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Payees the journal knows go in by id, with no personal or bank details in the file."""
    settings = sandbox_settings(tmp_path)
    first = write_csv(tmp_path / "first.csv", [payout_row(i) for i in range(3)])
    await pipeline.run_async(first, **run_kwargs(sandbox, settings, tmp_path))
    async with sandbox.client() as c:
        before = len((await c.get("/v1/beneficiaries")).json()["data"])
    later = [payout_row(i, reference=f"LATER-{i}") for i in range(3)]
    result = await pipeline.run_async(write_csv(tmp_path / "later.csv", later),
                                      submission=_batches(sandbox),
                                      **run_kwargs(sandbox, settings, tmp_path))  # fmt: skip
    assert result.exit_code == 0
    header, *body = _uploaded(settings.journal_path)
    cells = [dict(zip(header, r, strict=True)) for r in body]
    assert all(c["beneficiary_id"].startswith("ben_") for c in cells)
    assert all(c["instrument_id"].startswith("ins_") for c in cells)
    assert all(not c["last_name"] and not c["email"] and not c["iban"] for c in cells)
    assert all(not c["account_number"] for c in cells)
    async with sandbox.client() as c:
        assert len((await c.get("/v1/beneficiaries")).json()["data"]) == before


async def test_an_unconfirmed_batch_run_is_never_finished_row_by_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Not confirmed: nothing paid; the run cannot be resumed with --via rows; confirmed
    later, the same batch (one upload) pays every row."""
    settings = sandbox_settings(tmp_path)
    path = write_csv(tmp_path / "pay.csv", [payout_row(i) for i in range(4)])
    kwargs: dict[str, Any] = run_kwargs(sandbox, settings, tmp_path)
    with pytest.raises(ConfirmationRequired) as asked:
        await pipeline.run_async(path, submission=_batches(sandbox, confirm=False), **kwargs)
    assert "not confirmed" in asked.value.message
    with pytest.raises(ConfigError) as refused:
        await pipeline.run_async(path, **run_kwargs(sandbox, settings, tmp_path))
    assert "--via batches" in refused.value.hint
    assert sandbox.ledger() == []
    result = await pipeline.run_async(path, submission=_batches(sandbox),
                                      **run_kwargs(sandbox, settings, tmp_path))  # fmt: skip
    assert result.resumed and result.exit_code == 0
    assert len(sandbox.batches()) == 1 and len(sandbox.ledger()) == 4


async def test_provider_warnings_are_notes_in_the_report_by_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A velocity warning (.95, manual review) is kept beside the row it is about."""
    rows = [payout_row(i) for i in range(3)]
    rows[1]["amount"] = "250.95"
    settings = sandbox_settings(tmp_path)
    result = await pipeline.run_async(write_csv(tmp_path / "pay.csv", rows),
                                      submission=_batches(sandbox),
                                      **run_kwargs(sandbox, settings, tmp_path))  # fmt: skip
    notes = {r.row: r.note for r in result.report.rows}
    assert "velocity_review_predicted" in notes[3]
    assert "provider warning" not in notes[2] + notes[4]


async def test_rows_paid_by_another_journal_before_the_confirm_cancel_the_batch(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Another home pays some rows while this batch waits for its confirmation: just before
    confirming, the ledger is read again, the batch is cancelled (never confirmed) and a new
    one pays only the rest; every reference is paid once."""
    rows = [payout_row(i) for i in range(5)]
    path = write_csv(tmp_path / "pay.csv", rows)
    here = sandbox_settings(tmp_path / "here")
    with pytest.raises(ConfirmationRequired):
        await pipeline.run_async(path, submission=_batches(sandbox, confirm=False),
                                 **run_kwargs(sandbox, here, tmp_path))  # fmt: skip
    elsewhere = sandbox_settings(tmp_path / "elsewhere")
    some = write_csv(tmp_path / "some.csv", rows[:2])
    # A home that cannot see the batch (a per-row run holds its rows while it is open).
    kwargs = run_kwargs(sandbox, elsewhere, tmp_path)
    kwargs["transport"] = _NoBatchList(kwargs["transport"])
    await pipeline.run_async(some, **kwargs)
    result = await pipeline.run_async(path, submission=_batches(sandbox),
                                      **run_kwargs(sandbox, here, tmp_path))  # fmt: skip
    assert result.exit_code == 0
    assert result.counts == {"already_paid": 2, "pending": 3}
    refs = [p["reference"] for p in sandbox.ledger()]
    assert sorted(refs) == sorted(r["reference"] for r in rows)
    statuses = [b["status"] for b in sandbox.batches()]
    assert statuses == ["cancelled", "completed"]


async def test_the_providers_balance_check_cancels_and_a_rerun_after_top_up_pays_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Exit 9 with nothing paid; after a top-up the same command pays every row once."""
    rows = [payout_row(i, country="GB", currency="GBP", payment_method="uk_bank", iban="",
                       sort_code="601613", account_number=f"{31926819 + i:08d}")
            for i in range(3)]  # fmt: skip
    sandbox.set_balance("GBP", "10.00")
    settings = sandbox_settings(tmp_path)
    path = write_csv(tmp_path / "pay.csv", rows)
    kwargs = run_kwargs(sandbox, settings, tmp_path, skip_balance_check=True)
    with pytest.raises(PreflightError) as refused:
        await pipeline.run_async(path, submission=_batches(sandbox), **kwargs)
    assert "balance check" in refused.value.message and "run the same command" in refused.value.hint
    assert sandbox.ledger() == []
    sandbox.set_balance("GBP", "100000.00")
    result = await pipeline.run_async(path, submission=_batches(sandbox),
                                      **run_kwargs(sandbox, settings, tmp_path))  # fmt: skip
    assert result.resumed and result.exit_code == 0
    assert sorted(p["reference"] for p in sandbox.ledger()) == sorted(r["reference"] for r in rows)
    assert [b["status"] for b in sandbox.batches()] == ["cancelled", "completed"]
