"""The holds whose ways out were only named: each situation built as a file, the hint's
command followed, and the row then paid exactly once (the sandbox's ledger)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay import manage, pipeline
from batchpay.config import Settings
from batchpay.errors import DuplicateFileError
from batchpay.holds import duplicate_payout_note, release_command
from batchpay.journal import Journal
from batchpay.resolve import beneficiary_body
from batchpay.sandbox import Sandbox
from batchpay.sandbox.store import load, store_doc
from batchpay.testing import payout_row, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


def _archive(sandbox: Sandbox, beneficiary_id: str) -> None:
    """What a person does in the provider's dashboard (the sandbox has no archive route):
    the beneficiary is archived, no longer active."""
    store = sandbox._rt.store
    found = store.one("SELECT doc FROM beneficiaries WHERE id = ?", (beneficiary_id,))
    assert found is not None
    doc = load(found["doc"])
    doc["status"] = "archived"
    store.execute(
        "UPDATE beneficiaries SET status = 'archived', doc = ? WHERE id = ?",
        (store_doc(doc), beneficiary_id),
    )


def _refs(sandbox: Sandbox) -> list[str]:
    return sorted(p["reference"] for p in sandbox.ledger())


async def test_ambiguous_beneficiary_is_paid_once_after_the_extra_one_is_archived(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Two provider beneficiaries share the row's reference: held, the hint says to archive
    the extra one and re-run with --allow-new-bank-details; doing so pays the row once."""
    row, other = payout_row(0), payout_row(3)
    keep = sandbox.seed_beneficiary(beneficiary_body(row))
    extra = sandbox.seed_beneficiary(beneficiary_body({**row, "first_name": "Alexandra"}))
    f = write_csv(tmp_path / "a.csv", [row, other])
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    held = next(r for r in first.report.rows if r.reference == row["reference"])
    assert held.error_code == "ambiguous_beneficiary"
    assert "2 active beneficiaries with reference 'V-0000'" in held.error_message
    command = "batchpay run a.csv --allow-new-bank-details"
    assert held.note == (
        "held; to pay it: archive the extra beneficiaries at the provider (keep one active), "
        f"then {command}"
    )
    (shown,) = manage.show(first.run_id, settings=settings).held
    assert shown.release.endswith(command)
    assert _refs(sandbox) == [other["reference"]]

    # re-run before the provider is fixed: still held, nothing sent twice
    again = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings, tmp_path, allow_new_bank_details=True)
    )
    assert [r.error_code for r in again.report.rows if r.reference == row["reference"]] == [
        "ambiguous_beneficiary"
    ]
    _archive(sandbox, extra["id"])
    released = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings, tmp_path, allow_new_bank_details=True)
    )
    assert released.run_id == first.run_id
    assert {r.reference: r.outcome for r in released.report.rows} == {
        row["reference"]: "pending",
        other["reference"]: "pending",
    }
    assert _refs(sandbox) == sorted([row["reference"], other["reference"]])  # each once
    paid = next(p for p in sandbox.ledger() if p["reference"] == row["reference"])
    assert paid["beneficiary_id"] == keep["id"]
    assert manage.show(first.run_id, settings=settings).held == []
    with pytest.raises(DuplicateFileError):  # nothing held any more
        await pipeline.run_async(
            f, **run_kwargs(sandbox, settings, tmp_path, allow_new_bank_details=True)
        )
    assert _refs(sandbox) == sorted([row["reference"], other["reference"]])


async def test_row_changed_is_paid_once_by_rerunning_with_the_runs_layout(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A held row re-run with another layout (another default purpose) is no longer the row
    the run planned: held as row_changed, never paid as read. The hint's command (the file
    again, with the layout the run started with) re-opens the run and pays it once."""
    await pipeline.run_async(
        write_csv(tmp_path / "old.csv", [payout_row(0)]), **run_kwargs(sandbox, settings, tmp_path)
    )
    moved = payout_row(0, reference="INV-X", purpose="", iban="FR1420041010050500013M02606",
                       country="FR", nationality="FR")  # fmt: skip
    f = write_csv(tmp_path / "b.csv", [moved, payout_row(3)])
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    held = next(r for r in first.report.rows if r.reference == "INV-X")
    assert held.error_code == "bank_details_changed"
    layout = tmp_path / "other-layout.toml"
    layout.write_text('[columns.purpose]\ndefault = "supplier_payment"\n', encoding="utf-8")
    changed = await pipeline.run_async(
        f,
        **run_kwargs(sandbox, settings, tmp_path, allow_new_bank_details=True, layout_path=layout),
    )
    row = next(r for r in changed.report.rows if r.reference == "INV-X")
    assert (row.outcome, row.error_code) == ("skipped", "row_changed")
    assert (
        row.note
        == "held; to pay it: batchpay run b.csv again with the layout the run was started with"
    )
    assert "INV-X" not in _refs(sandbox)

    # the hint: the same file, the run's own (built-in) layout; the bank details were
    # never confirmed by a run that paid, so they are held again, and then released
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert again.run_id == first.run_id
    row = next(r for r in again.report.rows if r.reference == "INV-X")
    assert row.error_code == "bank_details_changed"
    assert "INV-X" not in _refs(sandbox)
    paid = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings, tmp_path, allow_new_bank_details=True)
    )
    assert {r.reference: r.outcome for r in paid.report.rows}["INV-X"] == "pending"
    assert _refs(sandbox).count("INV-X") == 1
    assert len(sandbox.ledger()) == 3  # old row, INV-X, payout_row(3): each once
    (payout,) = [p for p in sandbox.ledger() if p["reference"] == "INV-X"]
    assert payout.get("purpose", "contractor_payment") == "contractor_payment"


async def test_duplicate_payout_says_what_to_do_at_the_provider(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A second payout for the row that batchpay could not cancel: the report's note names
    the provider-side recall and says no batchpay command closes the row; show agrees."""
    attempts = 5  # the client's retry budget per request
    f = write_csv(tmp_path / "p.csv", [payout_row(0)])
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * attempts)
    await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    # the provider forgets the key a day later; the journal believes it fresh: a resend
    # creates a second payout, and its cancel fails
    with Journal(settings.journal_path) as j, j.transaction() as db:
        db.execute("UPDATE ledger_sweeps SET high_water = '2999-01-01T00:00:00.000000Z'")
        db.execute("DELETE FROM provider_payouts")
    await sandbox.advance(24 * 3600 + 60)
    with Journal(settings.journal_path) as j, j.transaction() as db:
        now = sandbox.clock.now().isoformat().replace("+00:00", "Z")
        db.execute("UPDATE payouts SET first_sent_provider_at = ?", (now,))
    sandbox.faults.plan("POST /v1/payouts/{id}/cancel", ["500"] * attempts)
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    (row,) = again.report.rows
    assert row.outcome == "duplicate_payout"
    extra = [p["id"] for p in sandbox.ledger() if p["id"] != row.payout_id]
    assert len(extra) == 1 and extra[0] in row.error_message  # the payout to recall, named
    assert row.note == duplicate_payout_note(again.run_id)
    assert f"`batchpay track {again.run_id}`" in row.note


def test_duplicate_payout_note_names_the_provider_side_action() -> None:
    """No batchpay command recalls a payout: the note says what to do at the provider, and
    that no batchpay command closes the row (track follows the payout that stands)."""
    note = duplicate_payout_note("R-1")
    assert note.startswith("needs a person: in the Anton dashboard cancel the extra payout(s)")
    assert "ask Anton to return them" in note
    assert "No batchpay command closes this row: `batchpay track R-1` follows its payout" in note
    assert release_command(
        "row_changed", run_id="R", file_name="my file.csv", related_run=None
    ) == ("batchpay run 'my file.csv' again with the layout the run was started with")
