"""`batchpay run` through the library against the in-process sandbox."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ControlTotalsMismatch, DuplicateFileError, ExitCode, ValidationFailed
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


def _paid_refs(sb: Sandbox) -> list[str]:
    return sorted(p["reference"] for p in sb.ledger())


async def test_run_pays_every_row_once_and_reports_it(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Every valid row becomes exactly one payout; the report has one row per input row."""
    rows = [payee(i) for i in range(9)]
    f = write_csv(tmp_path / "pay.csv", rows)
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert result.exit_code == ExitCode.OK
    assert _paid_refs(sandbox) == sorted(r["reference"] for r in rows)
    assert [r.row for r in result.report.rows] == list(range(2, 11))
    assert all(
        r.outcome == "pending" and r.payout_id.startswith("pay_") for r in result.report.rows
    )
    assert result.paths is not None
    data = json.loads(result.paths.json.read_text())
    assert len(data["rows"]) == 9
    assert result.report.check_totals() == []


async def test_wait_follows_payouts_to_completed(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """--wait polls until the sandbox's state machine reaches completed."""
    f = write_csv(tmp_path / "pay.csv", [payee(i) for i in range(3)])
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, wait=True))
    assert {r.outcome for r in result.report.rows} == {"completed"}
    assert result.exit_code == ExitCode.OK


async def test_second_run_of_same_file_refused_and_sends_nothing(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The same file again is refused naming the earlier run; the ledger does not grow."""
    f = write_csv(tmp_path / "pay.csv", [payee(i) for i in range(4)])
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    with pytest.raises(DuplicateFileError) as info:
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert first.run_id in info.value.message and info.value.run_id == first.run_id
    assert info.value.exit_code == ExitCode.DUPLICATE_FILE
    assert len(sandbox.ledger()) == 4


async def test_copy_with_same_rows_in_other_order_refused(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A re-exported copy (other bytes, same rows) is caught by the content fingerprint."""
    rows = [payee(i) for i in range(4)]
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", rows), **run_kwargs(sandbox, settings, tmp_path)
    )
    copy = write_csv(tmp_path / "b.csv", list(reversed(rows)))
    with pytest.raises(DuplicateFileError, match="same rows"):
        await pipeline.run_async(copy, **run_kwargs(sandbox, settings, tmp_path))
    assert len(sandbox.ledger()) == 4


async def test_corrected_file_pays_only_new_rows(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Rows paid by an earlier file are reported already_paid; only new rows are sent."""
    rows = [payee(i) for i in range(4)]
    first = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", rows), **run_kwargs(sandbox, settings, tmp_path)
    )
    corrected = [*rows, payee(10), payee(11)]
    result = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", corrected), **run_kwargs(sandbox, settings, tmp_path)
    )
    outcomes = {r.reference: r.outcome for r in result.report.rows}
    assert [outcomes[r["reference"]] for r in rows] == ["already_paid"] * 4
    assert {r.related_run for r in result.report.rows if r.outcome == "already_paid"} == {
        first.run_id
    }
    assert outcomes["INV-2026-1010"] == "pending" and outcomes["INV-2026-1011"] == "pending"
    assert len(sandbox.ledger()) == 6


async def test_invalid_file_sends_nothing_and_lists_all_errors(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A file with invalid rows is refused whole: every error listed, no request sent."""
    rows = [payee(i) for i in range(5)]
    rows[1]["iban"] = "DE89370400440532013001"  # check digits broken
    rows[3]["amount"] = "12,50"
    f = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(ValidationFailed) as info:
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    bad_rows = {i.row for i in info.value.issues}
    assert bad_rows == {3, 5}
    assert sandbox.ledger() == []
    with Journal(settings.journal_path) as j:
        assert j.list_runs() == []


async def test_skip_invalid_pays_only_valid_rows(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """--skip-invalid sends the valid rows and reports the invalid ones as not sent."""
    rows = [payee(i) for i in range(4)]
    rows[2]["routing_number"] = "123456789"
    rows[2]["payment_method"] = "us_bank"
    f = write_csv(tmp_path / "bad.csv", rows)
    result = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings, tmp_path, skip_invalid=True)
    )
    outcomes = [r.outcome for r in result.report.rows]
    assert outcomes.count("invalid") == 1 and len(sandbox.ledger()) == 3


async def test_duplicate_rows_in_file_paid_once(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """With allow_repeats, a row repeated in the file is paid once; the copy is "same as row N"."""
    rows = [payee(0), payee(1), payee(0)]
    result = await pipeline.run_async(
        write_csv(tmp_path / "d.csv", rows),
        **run_kwargs(sandbox, settings, tmp_path, allow_repeats=True),
    )
    dup = [r for r in result.report.rows if r.outcome == "duplicate_in_file"]
    assert [(r.row, r.note) for r in dup] == [(4, "same as row 2")]
    assert len(sandbox.ledger()) == 2


async def test_known_beneficiary_reused_not_recreated(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A beneficiary paid before is found in the journal cache, not created again."""
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [payee(0)]), **run_kwargs(sandbox, settings, tmp_path)
    )
    again = payee(0, reference="INV-NEXT-MONTH")
    result = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", [again]), **run_kwargs(sandbox, settings, tmp_path)
    )
    ledger = sandbox.ledger()
    assert len(ledger) == 2 and ledger[0]["beneficiary_id"] == ledger[1]["beneficiary_id"]
    with Journal(settings.journal_path) as j:
        posts = [c for c in j.calls(result.run_id) if c["path"] == "/v1/beneficiaries"]
    assert posts == []


async def test_changed_bank_details_are_held(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A known beneficiary with new bank details is held for a person, not paid blindly."""
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [payee(0)]), **run_kwargs(sandbox, settings, tmp_path)
    )
    moved = payee(0, reference="INV-X", iban="FR1420041010050500013M02606", country="FR",
                  nationality="FR")  # fmt: skip
    result = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", [moved]), **run_kwargs(sandbox, settings, tmp_path)
    )
    (row,) = result.report.rows
    assert row.outcome == "skipped" and row.error_code == "bank_details_changed"
    assert result.exit_code == ExitCode.ROWS_FAILED
    assert len(sandbox.ledger()) == 1


async def test_duplicate_beneficiary_answer_is_resolved_not_failed(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A beneficiary the provider already holds (duplicate_beneficiary) is looked up and used."""
    row = payee(2)
    from batchpay.resolve import beneficiary_body

    ben = sandbox.seed_beneficiary(beneficiary_body(row))
    result = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [row]), **run_kwargs(sandbox, settings, tmp_path)
    )
    assert result.report.rows[0].outcome == "pending"
    assert sandbox.ledger()[0]["beneficiary_id"] == ben["id"]


async def test_sandbox_outcomes_reach_report(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Each terminal outcome triggered in the sandbox lands in the report."""
    cents = {"91": "failed", "92": "returned", "93": "screening_failed", "94": "velocity_blocked",
             "97": "cancelled", "00": "completed"}  # fmt: skip
    rows = [payee(i, amount=f"{200 + i}.{c}") for i, c in enumerate(cents)]
    result = await pipeline.run_async(
        write_csv(tmp_path / "o.csv", rows),
        **run_kwargs(sandbox, settings, tmp_path, wait=True),
    )
    got = {r.reference: r.outcome for r in result.report.rows}
    assert sorted(got.values()) == sorted(cents.values())
    assert result.exit_code == ExitCode.ROWS_FAILED
    assert result.report.check_totals() == []
    with Journal(settings.journal_path) as j:
        stored = {str(r["reference"]): str(r["payout_status"]) for r in j.rows(result.run_id)}
        assert stored == got
        failed = next(r for r in j.rows(result.run_id) if r["payout_status"] == "failed")
        assert failed["failure_reason"]  # the provider's reason is kept for the report
        events = j.db.execute(
            "SELECT COUNT(*) FROM payout_events WHERE payout_id=?", (failed["payout_id"],)
        ).fetchone()[0]
        assert events >= 2  # created, then the polled final status


async def test_synchronous_velocity_block_is_rejected(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A 403 velocity_blocked at creation is a definitive refusal: reported, not retried."""
    f = write_csv(tmp_path / "v.csv", [payee(0, amount="300.96")])
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    (row,) = result.report.rows
    assert row.outcome == "rejected" and row.error_code == "velocity_blocked"
    assert sandbox.ledger() == []


async def test_control_file_beside_the_file_is_checked(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A matching .ctl file lets the run through; a wrong one refuses it before any request."""
    from batchpay.errors import ControlTotalsMismatch

    rows = [payee(0, amount="10.00"), payee(3, amount="5.50")]  # both EUR
    f = write_csv(tmp_path / "pay.csv", rows)
    ctl = tmp_path / "pay.csv.ctl"
    ctl.write_text('rows = 2\n[totals]\nEUR = "15.49"\n')
    with pytest.raises(ControlTotalsMismatch, match=r"EUR totals 15\.50, the control file"):
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert sandbox.ledger() == []
    ctl.write_text("rows = 2\n[totals]\nEUR = 15.5\n")
    with pytest.raises(ControlTotalsMismatch, match="as a number") as info:
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert "quoted decimals" in info.value.hint
    ctl.write_text('rows = 2\n[totals]\nEUR = "15.50"\n')
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert result.exit_code == ExitCode.OK and len(sandbox.ledger()) == 2


async def test_declared_totals_on_the_command_line(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A declared row count or currency total that disagrees refuses the file."""
    from decimal import Decimal

    from batchpay.errors import ControlTotalsMismatch

    f = write_csv(tmp_path / "pay.csv", [payee(0, amount="10.00")])
    with pytest.raises(ControlTotalsMismatch, match="declares 3"):
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, expected_rows=3))
    with pytest.raises(ControlTotalsMismatch, match="USD totals 0"):
        await pipeline.run_async(
            f,
            **run_kwargs(
                sandbox, settings, tmp_path, expected_totals={"EUR": Decimal("10.00"),
                                                               "USD": Decimal("1")}
            ),
        )  # fmt: skip
    assert sandbox.ledger() == []


SAMPLES = Path(__file__).resolve().parents[2] / "samples"


async def test_sample_file_run_reports_every_row(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The shipped sample pays every row once and its report has one line per row."""
    import csv

    with (SAMPLES / "payouts.csv").open(encoding="utf-8-sig") as fh:
        expected = list(csv.DictReader(fh))
    result = await pipeline.run_async(
        SAMPLES / "payouts.csv", **run_kwargs(sandbox, settings, tmp_path, wait=True)
    )
    assert len(result.report.rows) == len(expected) >= 30
    assert {r.outcome for r in result.report.rows} == {"completed"}
    assert len(sandbox.ledger()) == len(expected)
    assert result.report.check_totals() == []


async def test_resaved_xlsx_copy_is_refused_and_creates_nothing(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """An XLSX opened and saved again in a spreadsheet program is still the paid file."""
    import openpyxl

    first = await pipeline.run_async(
        SAMPLES / "payouts.xlsx", **run_kwargs(sandbox, settings, tmp_path)
    )
    paid = len(sandbox.ledger())
    wb = openpyxl.load_workbook(SAMPLES / "payouts.xlsx")
    copy = tmp_path / "payouts (copy).xlsx"
    wb.save(copy)
    assert copy.read_bytes() != (SAMPLES / "payouts.xlsx").read_bytes()
    with pytest.raises(DuplicateFileError, match="same rows") as info:
        await pipeline.run_async(copy, **run_kwargs(sandbox, settings, tmp_path))
    assert info.value.run_id == first.run_id
    assert len(sandbox.ledger()) == paid


async def test_csv_export_of_a_paid_xlsx_is_refused(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The same rows exported as CSV (1250.00 where Excel stored 1250) are caught too."""
    await pipeline.run_async(SAMPLES / "payouts.xlsx", **run_kwargs(sandbox, settings, tmp_path))
    with pytest.raises(DuplicateFileError):
        await pipeline.run_async(SAMPLES / "payouts.csv", **run_kwargs(sandbox, settings, tmp_path))


async def test_preflight_adds_fees_the_provider_charged_before(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Once a fee was seen for a method and currency, preflight counts it for new rows."""
    from batchpay.errors import PreflightError

    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [payee(0, amount="10.00")]),
        **run_kwargs(sandbox, settings, tmp_path),
    )
    fee = Decimal(sandbox.ledger()[0]["fee"])
    assert fee > 0
    sandbox.set_balance("EUR", "100.00")  # exactly the amount, not the amount plus its fee
    f = write_csv(tmp_path / "b.csv", [payee(3, amount="100.00")])
    with pytest.raises(PreflightError, match="including the fees seen before") as info:
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert f"EUR needs {Decimal('100.00') + fee}" in info.value.message
    assert len(sandbox.ledger()) == 1


async def test_a_file_given_as_bytes_with_a_name_is_paid_like_a_file_on_disk(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A PayoutFile (a name, its bytes, its .ctl) runs the whole pipeline with no file on disk."""
    from batchpay.source import PayoutFile

    rows = [payee(i) for i in range(3)]
    data = write_csv(tmp_path / "scratch.csv", rows).read_bytes()
    (tmp_path / "scratch.csv").unlink()
    totals: dict[str, Decimal] = {}
    for r in rows:
        totals[r["currency"]] = totals.get(r["currency"], Decimal(0)) + Decimal(r["amount"])
    ctl = ("rows = 3\n[totals]\n" + "".join(f'{c} = "{t}"\n' for c, t in totals.items())).encode()
    wrong = PayoutFile("drop.csv", data, {".ctl": b"rows = 4\n"})
    with pytest.raises(ControlTotalsMismatch, match="declares 4"):
        await pipeline.run_async(wrong, **run_kwargs(sandbox, settings, tmp_path))
    source = PayoutFile("drop.csv", data, {".ctl": ctl})
    plan = pipeline.plan(source, settings=settings)
    assert plan.file_name == "drop.csv" and plan.rows_to_pay == 3
    result = await pipeline.run_async(source, **run_kwargs(sandbox, settings, tmp_path))
    assert result.exit_code == ExitCode.OK and len(sandbox.ledger()) == 3
    assert result.report.file_name == "drop.csv"
    with pytest.raises(DuplicateFileError):
        await pipeline.run_async(source, **run_kwargs(sandbox, settings, tmp_path))
