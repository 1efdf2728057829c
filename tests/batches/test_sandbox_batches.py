"""The sandbox's batch operations: upload, asynchronous validation, confirm, process, read."""

from __future__ import annotations

import hashlib
import io

import httpx
import pytest
from openpyxl import Workbook

from batchpay.sandbox import Sandbox
from batchpay.sandbox.bank.batches import TEMPLATE_COLUMNS

from .helpers import batch_csv, template_row, upload

pytestmark = pytest.mark.anyio


async def _validated(sb: Sandbox, c: httpx.AsyncClient, data: bytes, name: str = "b.csv") -> str:
    r = await upload(c, data, name)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "uploaded"
    await sb.advance(1)
    assert (await c.get(f"/v1/batches/{r.json()['id']}")).json()["status"] == "validating"
    await sb.advance(1)
    batch_id: str = r.json()["id"]
    return batch_id


async def _confirm(c: httpx.AsyncClient, batch_id: str, key: str = "confirm-1") -> httpx.Response:
    return await c.post(f"/v1/batches/{batch_id}/confirm", json={},
                        headers={"Idempotency-Key": key})  # fmt: skip


async def test_a_confirmed_batch_makes_real_payouts_through_the_payout_state_machine(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """Processing creates payouts with batch_id that list, debit and walk like single ones."""
    before = sandbox.balance("GBP")["available"]
    rows = [template_row("10.00"), template_row("20.00"), template_row("30.91")]
    batch_id = await _validated(sandbox, client, batch_csv(rows))
    batch = (await client.get(f"/v1/batches/{batch_id}")).json()
    assert batch["status"] == "validated" and batch["valid_rows"] == 3
    assert batch["summary"]["new_beneficiaries"] == 3
    assert batch["summary"]["balance_check"]["GBP"]["sufficient"] is True
    assert batch["total_amount"] == "60.91" and batch["total_currency"] == "GBP"
    assert "expires_at" in batch
    assert (await _confirm(client, batch_id)).json()["status"] == "confirmed"
    await sandbox.advance(1)
    assert (await client.get(f"/v1/batches/{batch_id}")).json()["status"] == "processing"
    await sandbox.advance(1)
    done = (await client.get(f"/v1/batches/{batch_id}")).json()
    assert done["status"] == "completed" and done["processed_rows"] == 3
    listed = (await client.get("/v1/payouts", params={"batch_id": batch_id})).json()["data"]
    assert sorted(p["reference"] for p in listed) == sorted(r["reference"] for r in rows)
    assert {p["batch_id"] for p in listed} == {batch_id}
    assert {p["batch_id"] for p in sandbox.ledger()} == {batch_id}
    assert sandbox.balance("GBP")["available"] != before
    results = (await client.get(f"/v1/batches/{batch_id}/results")).json()["data"]
    assert [r["row"] for r in results] == [2, 3, 4]
    assert all(r["status"] == "success" and r["payout_id"].startswith("pay_") for r in results)
    in_order = (await client.get(f"/v1/batches/{batch_id}/payouts")).json()["data"]
    assert [p["reference"] for p in in_order] == [r["reference"] for r in rows]
    await sandbox.advance(30)
    failed = (await client.get(f"/v1/payouts/{results[2]['payout_id']}")).json()
    assert failed["status"] == "failed"  # the .91 trigger, as for a single payout


async def test_validation_reports_errors_and_warnings_by_row_and_refused_rows_are_not_paid(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """The documented triggers: .99 refused at validation, .96 predicted then blocked."""
    rows = [
        template_row("10.00"),
        template_row("11.99"),
        template_row("12.96"),
        template_row("13.00", method="sepa"),
    ]
    batch_id = await _validated(sandbox, client, batch_csv(rows))
    report = (await client.get(f"/v1/batches/{batch_id}/errors")).json()["data"]
    assert {(e["row"], e["field"]) for e in report["errors"]} == {
        (3, "dest_amount"), (5, "method"), (5, "dest_currency")}  # fmt: skip
    assert [(w["row"], w["type"]) for w in report["warnings"]] == [(4, "velocity_block_predicted")]
    await _confirm(client, batch_id)
    await sandbox.advance(2)
    batch = (await client.get(f"/v1/batches/{batch_id}")).json()
    assert batch["status"] == "partial"
    results = {
        r["row"]: r for r in (await client.get(f"/v1/batches/{batch_id}/results")).json()["data"]
    }
    assert results[2]["status"] == "success"
    assert results[3]["status"] == "failed" and results[5]["status"] == "failed"
    assert "velocity_blocked" in results[4]["error"]
    assert [p["reference"] for p in sandbox.ledger()] == [rows[0]["reference"]]


async def test_upload_checks_hash_format_and_duplicates_of_a_pending_file(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """file_hash mismatch, unsupported format, and duplicate_file while the first is pending."""
    data = batch_csv([template_row()])
    bad = await upload(client, data, file_hash=hashlib.sha256(b"other").hexdigest())
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "file_hash_mismatch")
    txt = await upload(client, data, "payouts.txt")
    assert (txt.status_code, txt.json()["error"]["code"]) == (400, "invalid_file_format")
    first = (await upload(client, data)).json()
    again = await upload(client, data, "renamed.csv")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "duplicate_file")
    assert again.json()["error"]["details"]["pending_batches"] == [first["id"]]
    await client.post(f"/v1/batches/{first['id']}/cancel")
    assert (await upload(client, data)).status_code == 201  # cancelled: no longer pending


async def test_an_xlsx_file_in_the_template_is_accepted(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """XLSX uploads are read like CSV ones (first sheet, header row 1)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(list(TEMPLATE_COLUMNS))
    row = template_row("42.00")
    ws.append([row.get(c, "") for c in TEMPLATE_COLUMNS])
    buf = io.BytesIO()
    wb.save(buf)
    batch_id = await _validated(sandbox, client, buf.getvalue(), "payouts.xlsx")
    batch = (await client.get(f"/v1/batches/{batch_id}")).json()
    assert (batch["file_format"], batch["status"], batch["valid_rows"]) == ("xlsx", "validated", 1)


async def test_known_beneficiaries_are_referenced_or_matched_not_created_again(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """Rows naming ids, or an existing external_ref, pay the existing beneficiary."""
    first = template_row("10.00")
    batch_id = await _validated(sandbox, client, batch_csv([first]))
    await _confirm(client, batch_id)
    await sandbox.advance(2)
    made = (await client.get(f"/v1/batches/{batch_id}/results")).json()["data"][0]
    by_id = template_row("11.00", beneficiary_id=made["beneficiary_id"],
                         instrument_id=made["instrument_id"])  # fmt: skip
    for k in ("external_ref", "first_name", "last_name", "account_number", "sort_code"):
        by_id[k] = ""
    by_ref = template_row("12.00", external_ref=first["external_ref"])
    second = await _validated(sandbox, client, batch_csv([by_id, by_ref]), "second.csv")
    summary = (await client.get(f"/v1/batches/{second}")).json()["summary"]
    assert (summary["new_beneficiaries"], summary["matched_beneficiaries"]) == (0, 2)
    assert summary["existing_beneficiaries"] == 1
    await _confirm(client, second, "confirm-2")
    await sandbox.advance(2)
    results = (await client.get(f"/v1/batches/{second}/results")).json()["data"]
    assert {r["beneficiary_id"] for r in results} == {made["beneficiary_id"]}
    listed = (await client.get("/v1/beneficiaries")).json()["data"]
    assert len(listed) == 1


async def test_confirm_needs_a_key_a_validated_batch_and_a_deadline_not_passed(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """missing_idempotency_key, batch_not_validated, batch_confirmation_expired; a replay."""
    data = batch_csv([template_row()])
    early = (await upload(client, data)).json()["id"]
    not_yet = await _confirm(client, early, "early")
    assert (not_yet.status_code, not_yet.json()["error"]["code"]) == (409, "batch_not_validated")
    await sandbox.advance(2)
    keyless = await client.post(f"/v1/batches/{early}/confirm", json={})
    assert keyless.json()["error"]["code"] == "missing_idempotency_key"
    ok = await _confirm(client, early, "the-key")
    replay = await _confirm(client, early, "the-key")
    assert ok.status_code == replay.status_code == 200
    assert replay.headers["x-idempotent-replayed"] == "true"
    other = await _confirm(client, early, "another-key")
    assert other.json()["error"]["code"] == "batch_not_validated"  # never confirmed twice
    late = await _validated(sandbox, client, batch_csv([template_row()]), "late.csv")
    await sandbox.advance(3601)
    expired = await _confirm(client, late, "late")
    assert (expired.status_code, expired.json()["error"]["code"]) == (
        409, "batch_confirmation_expired")  # fmt: skip
    assert sandbox.ledger() == [] or all(p["batch_id"] == early for p in sandbox.ledger())


async def test_cancel_only_before_processing(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """A confirmed batch can be cancelled until it processes; then batch_not_cancellable."""
    batch_id = await _validated(sandbox, client, batch_csv([template_row()]))
    await _confirm(client, batch_id)
    cancelled = await client.post(f"/v1/batches/{batch_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    await sandbox.advance(5)
    assert sandbox.ledger() == []
    second = await _validated(sandbox, client, batch_csv([template_row()]), "two.csv")
    await _confirm(client, second, "k2")
    await sandbox.advance(1)
    refused = await client.post(f"/v1/batches/{second}/cancel")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "batch_not_cancellable")


async def test_the_balance_check_says_when_funds_do_not_cover_the_batch(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """summary.balance_check per funding currency, from the balance at validation."""
    sandbox.set_balance("GBP", "50.00")
    batch_id = await _validated(sandbox, client, batch_csv([template_row("40.00"),
                                                             template_row("40.00")]))  # fmt: skip
    check = (await client.get(f"/v1/batches/{batch_id}")).json()["summary"]["balance_check"]
    assert check["GBP"]["sufficient"] is False
    assert check["GBP"]["available"] == "50.00"


async def test_faults_apply_to_batch_routes(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """A lost answer after the confirm committed: the same key replays the confirmation."""
    batch_id = await _validated(sandbox, client, batch_csv([template_row()]))
    with pytest.raises(httpx.ReadError):
        headers = {"Idempotency-Key": "lost", "X-Sandbox-Fault": "lost_response"}
        await client.post(f"/v1/batches/{batch_id}/confirm", json={}, headers=headers)
    again = await _confirm(client, batch_id, "lost")
    assert again.status_code == 200 and again.headers["x-idempotent-replayed"] == "true"
    busy = await client.get("/v1/batches", headers={"X-Sandbox-Fault": "503"})
    assert busy.status_code == 503
