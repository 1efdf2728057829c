"""Every hold has a way out, named in its note and in `batchpay show`, that works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batchpay import manage, pipeline
from batchpay.batches import Batches
from batchpay.cli import main
from batchpay.config import Settings
from batchpay.errors import BatchpayError, DuplicateFileError, ExitCode
from batchpay.holds import bank_label
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, run_kwargs, sandbox_settings, write_csv

pytestmark = pytest.mark.anyio

FR_IBAN = "FR1420041010050500013M02606"


def _moved(**over: str) -> dict[str, str]:
    """payout_row(0)'s payee, paid to another bank (a French IBAN instead of the German one)."""
    return payout_row(0, iban=FR_IBAN, country="FR", nationality="FR", **over)


def _show(settings: Settings, run_id: str) -> str:
    result = CliRunner().invoke(main, ["show", run_id, "--journal", str(settings.journal_path)])
    assert result.exit_code == 0, result.output
    return result.output


async def test_changed_bank_details_held_then_released(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A known payee's new bank details are held, naming both banks; the hint's re-run with
    --allow-new-bank-details pays exactly the held row (not refused as already paid)."""
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [payout_row(0)]), **run_kwargs(sandbox, settings, tmp_path)
    )
    b = write_csv(tmp_path / "b.csv", [_moved(reference="INV-X"), payout_row(3)])
    first = await pipeline.run_async(b, **run_kwargs(sandbox, settings, tmp_path))
    held = next(r for r in first.report.rows if r.reference == "INV-X")
    assert held.outcome == "skipped" and held.error_code == "bank_details_changed"
    # masked, but the two are told apart: country, the bank (registry), the last 4
    assert "IBAN DE Commerzbank Köln COBADEFFXXX ****3000 -> IBAN FR LA BANQUE POSTALE " in (
        held.error_message
    )
    assert "PSSTFRPP ****2606" in held.error_message
    assert "batchpay run b.csv --allow-new-bank-details" in held.note
    assert len(sandbox.ledger()) == 2

    shown = _show(settings, first.run_id)
    assert "1 held row, each with what releases it:" in shown
    assert "to pay it: batchpay run b.csv --allow-new-bank-details" in shown

    with pytest.raises(DuplicateFileError):  # without the option: already run, as always
        await pipeline.run_async(b, **run_kwargs(sandbox, settings, tmp_path))
    again = await pipeline.run_async(
        b, **run_kwargs(sandbox, settings, tmp_path, allow_new_bank_details=True)
    )
    assert again.run_id == first.run_id and again.resumed
    assert again.exit_code == ExitCode.OK
    assert {r.reference: r.outcome for r in again.report.rows} == {
        "INV-X": "pending",
        payout_row(3)["reference"]: "pending",
    }
    ledger = sandbox.ledger()
    assert sorted(p["reference"] for p in ledger) == sorted(
        [payout_row(0)["reference"], "INV-X", payout_row(3)["reference"]]
    )  # the other row was not sent twice
    assert "held row" not in _show(settings, first.run_id)
    with pytest.raises(DuplicateFileError):  # nothing is held any more: refused again
        await pipeline.run_async(
            b, **run_kwargs(sandbox, settings, tmp_path, allow_new_bank_details=True)
        )


async def test_same_bank_and_last_digits_says_where_they_differ(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Two accounts at one bank ending alike are still told apart in the hold's message."""
    first = payout_row(1)  # USD, ABA routing + account
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [first]), **run_kwargs(sandbox, settings, tmp_path)
    )
    other = payout_row(1, reference="INV-Y", account_number="9" + first["account_number"])
    result = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", [other]), **run_kwargs(sandbox, settings, tmp_path)
    )
    (row,) = result.report.rows
    routing = first["routing_number"]
    last4 = first["account_number"][-4:]
    assert f"routing {routing} ****{last4} -> routing {routing} ****{last4}" in row.error_message
    assert "the account differs in the middle" in row.error_message


async def test_failed_in_another_run_is_paid_by_retry_failed_of_that_run(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A row whose payout failed in an earlier run is held in a later file; the command its
    note names (retry-failed of the earlier run) pays it once."""
    failing = payout_row(2, amount="120.91")
    a = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [failing]),
        **run_kwargs(sandbox, settings, tmp_path, wait=True),
    )
    assert a.report.rows[0].outcome == "failed"
    b = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", [payout_row(2, amount="120.00"), payout_row(4)]),
        **run_kwargs(sandbox, settings, tmp_path),
    )
    held = next(r for r in b.report.rows if r.reference == failing["reference"])
    assert held.error_code == "failed_in_other_run"
    assert f"batchpay retry-failed {a.run_id} --yes" in held.note
    assert f"to pay it: batchpay retry-failed {a.run_id} --yes" in _show(settings, b.run_id)
    _, rep, _ = await manage.retry_failed_async(
        a.run_id, confirm=True, settings=settings, out_dir=tmp_path / "r",
        transport=sandbox.transport(), clock=sandbox.clock.now,
    )  # fmt: skip
    assert [r.outcome for r in rep.rows] == ["pending"]
    refs = [p["reference"] for p in sandbox.ledger()]
    assert refs.count(failing["reference"]) == 2  # the failed payout and its one retry


async def test_failed_elsewhere_is_paid_by_retry_failed_of_this_run(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A payout made from another journal that failed holds the row here; `retry-failed`
    of this run (its note's command) pays it again with a new key, once."""
    rows = [payout_row(0, amount="300.91"), payout_row(1)]
    elsewhere = sandbox_settings(tmp_path / "other-home")
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", rows),
        **run_kwargs(sandbox, elsewhere, tmp_path / "other", wait=True),
    )
    here = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", rows), **run_kwargs(sandbox, settings, tmp_path)
    )
    held = next(r for r in here.report.rows if r.reference == rows[0]["reference"])
    assert held.error_code == "failed_elsewhere"
    command = f"batchpay retry-failed {here.run_id} --yes"
    assert command in held.note and f"to pay it: {command}" in _show(settings, here.run_id)
    plan = manage.retry_plan(here.run_id, settings=settings)
    assert [r["reference"] for r in plan.rows] == [rows[0]["reference"]]
    _, rep, _ = await manage.retry_failed_async(
        here.run_id, confirm=True, settings=settings, out_dir=tmp_path / "r",
        transport=sandbox.transport(), clock=sandbox.clock.now,
    )  # fmt: skip
    assert [r.outcome for r in rep.rows] == ["pending"]
    payouts = [p for p in sandbox.ledger() if p["reference"] == rows[0]["reference"]]
    assert len(payouts) == 2 and len({p["id"] for p in payouts}) == 2
    assert manage.retry_plan(here.run_id, settings=settings).rows == []  # not twice


@pytest.mark.parametrize(
    ("iban", "label"),
    [
        ("DE89370400440532013000", "IBAN DE Commerzbank Köln COBADEFFXXX ****3000"),
        ("DE93123456790123456789", "IBAN DE bank #b759 ****6789"),  # a bank code unregistered
    ],
)
def test_bank_label_names_the_bank_without_the_ibans_digits(iban: str, label: str) -> None:
    """The label names the bank (registry BIC and name, else a digest of the bank code) and
    the last 4: no 8 consecutive characters of the IBAN."""
    shown = bank_label({"payment_method": "iban", "iban": iban})
    assert shown == label
    compact = shown.replace(" ", "").upper()
    assert not any(iban[i : i + 8] in compact for i in range(len(iban) - 7))


async def test_in_flight_elsewhere_names_the_run_to_finish_and_then_pays(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A row another unfinished run is paying: show names that run and what to do; doing it
    settles the row once (already paid by the other run), never twice."""
    shared = payout_row(0)
    a = write_csv(tmp_path / "a.csv", [shared])
    sandbox.faults.plan("POST /v1/payouts", ["503"] * 5)  # the client's whole retry budget
    run_a = await pipeline.run_async(a, **run_kwargs(sandbox, settings, tmp_path))
    b = write_csv(tmp_path / "b.csv", [shared, payout_row(1)])
    run_b = await pipeline.run_async(b, **run_kwargs(sandbox, settings, tmp_path))
    (held,) = manage.show(run_b.run_id, settings=settings).held
    assert held.code == "in_flight_elsewhere"
    finish = f"finish run {run_a.run_id} (run its file again)"
    assert held.release == f"{finish}, then batchpay run b.csv"
    await pipeline.run_async(a, **run_kwargs(sandbox, settings, tmp_path))
    again = await pipeline.run_async(b, **run_kwargs(sandbox, settings, tmp_path))
    assert again.exit_code == ExitCode.OK
    assert manage.show(run_b.run_id, settings=settings).held == []
    assert [p["reference"] for p in sandbox.ledger()].count(shared["reference"]) == 1


async def test_a_paid_row_asked_again_with_another_amount_is_held_not_reported_paid(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A corrected export asks 5000.00 for a reference already paid 101.07: the row was
    reported ``already_paid`` at 5000.00 (exit 0, nothing for a person), though 101.07 was
    paid. It is held as ``amount_differs``, needing a person; the same amount written
    otherwise (101.070) is still simply already paid; nothing is sent for either."""
    first = [payout_row(i) for i in range(3)]
    a = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", first), **run_kwargs(sandbox, settings, tmp_path)
    )
    assert a.exit_code == 0
    paid = first[1]["amount"]
    edited = [dict(r) for r in first]
    edited[1]["amount"] = "5000.00"
    edited[2]["amount"] = edited[2]["amount"] + "0"
    b = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", [*edited, payout_row(7)]),
        **run_kwargs(sandbox, settings, tmp_path),
    )
    by_ref = {r.reference: r for r in b.report.rows}
    held = by_ref[first[1]["reference"]]
    assert (held.outcome, held.error_code, held.needs_attention) == (
        "skipped",
        "amount_differs",
        True,
    )
    assert f"already paid {paid} USD" in held.error_message and "5000.00" in held.error_message
    assert by_ref[first[2]["reference"]].outcome == "already_paid"
    assert b.exit_code == ExitCode.ROWS_FAILED
    amounts = {p["reference"]: p["dest_amount"] for p in sandbox.ledger()}
    assert amounts[first[1]["reference"]] == paid and len(sandbox.ledger()) == 4


@pytest.mark.parametrize("via", ["rows", "batches"])
async def test_a_row_another_home_paid_is_held_when_this_file_asks_another_amount(
    sandbox: Sandbox, tmp_path: Path, via: str
) -> None:
    """Home B paid the file; home A runs the corrected export (one amount changed), row by
    row or as a batch: the row was ``already_paid`` at the provider's amount, exit 5, the
    correction nowhere. It is held ``amount_differs``; the row asked at the paid amount is
    simply already paid; nothing is sent (nor uploaded) for either."""
    first = [payout_row(i) for i in range(2)]
    home_b, home_a = sandbox_settings(tmp_path / "b"), sandbox_settings(tmp_path / "a")
    await pipeline.run_async(
        write_csv(tmp_path / "b.csv", first), **run_kwargs(sandbox, home_b, tmp_path / "b")
    )
    edited = [dict(r) for r in first]
    edited[1]["amount"] = "5000.00"

    async def advance(seconds: float) -> None:
        await sandbox.advance(1)

    a = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", edited),
        **run_kwargs(sandbox, home_a, tmp_path / "a"),
        submission=Batches(confirm=True, sleep=advance) if via == "batches" else None,
    )
    outcomes = {r.reference: (r.outcome, r.error_code or None) for r in a.report.rows}
    assert outcomes == {
        first[0]["reference"]: ("already_paid", None),
        first[1]["reference"]: ("skipped", "amount_differs"),
    }
    assert a.exit_code == ExitCode.ROWS_FAILED and len(sandbox.ledger()) == 2


async def test_releasing_bank_details_keeps_a_row_another_home_paid_at_another_amount_held(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The release (``--allow-new-bank-details``) looks at the run's held rows again; a row
    held ``amount_differs`` because another home paid it (its payout adopted into this run)
    was then reported ``already_paid`` at the amount this file asks, which was never paid."""
    home_b, home_a = sandbox_settings(tmp_path / "b"), sandbox_settings(tmp_path / "a")
    r1 = payout_row(1)
    await pipeline.run_async(
        write_csv(tmp_path / "b.csv", [r1]), **run_kwargs(sandbox, home_b, tmp_path / "b")
    )
    await pipeline.run_async(  # payee 0 paid here before: a new IBAN for it is held
        write_csv(tmp_path / "a0.csv", [payout_row(0)]),
        **run_kwargs(sandbox, home_a, tmp_path / "a"),
    )
    f = write_csv(tmp_path / "a.csv", [dict(r1, amount="5000.00"), _moved(reference="INV-X")])
    first = await pipeline.run_async(f, **run_kwargs(sandbox, home_a, tmp_path / "a"))
    codes = {r.reference: (r.outcome, r.error_code) for r in first.report.rows}
    assert codes == {r1["reference"]: ("skipped", "amount_differs"),
                     "INV-X": ("skipped", "bank_details_changed")}  # fmt: skip
    again = await pipeline.run_async(
        f, **run_kwargs(sandbox, home_a, tmp_path / "a", allow_new_bank_details=True)
    )
    codes = {r.reference: (r.outcome, r.error_code) for r in again.report.rows}
    assert codes[r1["reference"]] == ("skipped", "amount_differs")
    assert codes["INV-X"][0] == "pending"  # released: paid
    paid = [p for p in sandbox.ledger() if p["reference"] == r1["reference"]]
    assert [p["dest_amount"] for p in paid] == [r1["amount"]]


def _batches_of(sandbox: Sandbox) -> Batches:
    async def advance(seconds: float) -> None:
        await sandbox.advance(1)

    return Batches(confirm=True, sleep=advance)


async def _batch_run_holding_new_bank_details(
    sandbox: Sandbox, tmp_path: Path
) -> tuple[Settings, Path, Any]:
    """A batch run that paid payee 0, then a batch run of a file whose row ``INV-X`` gives
    payee 0 new bank details (held): (home, that file, its result)."""
    home = sandbox_settings(tmp_path / "h")
    kw = run_kwargs(sandbox, home, tmp_path / "h")
    await pipeline.run_async(write_csv(tmp_path / "a.csv", [payout_row(0)]),
                             submission=_batches_of(sandbox), **kw)  # fmt: skip
    f = write_csv(tmp_path / "b.csv", [_moved(reference="INV-X"), payout_row(3)])
    first = await pipeline.run_async(f, submission=_batches_of(sandbox), **kw)
    return home, f, first


async def test_a_batch_run_pays_a_row_released_with_new_bank_details_in_a_new_batch(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Batch mode planned only ``planned`` rows, and a run whose batch had paid did nothing
    more: a row held for its new bank details stayed held after the release (and ``--via
    rows`` is refused for a batch run)."""
    home, f, first = await _batch_run_holding_new_bank_details(sandbox, tmp_path)
    codes = {r.reference: (r.outcome, r.error_code) for r in first.report.rows}
    assert codes["INV-X"] == ("skipped", "bank_details_changed")
    again = await pipeline.run_async(
        f, submission=_batches_of(sandbox),
        **run_kwargs(sandbox, home, tmp_path / "h", allow_new_bank_details=True),
    )  # fmt: skip
    assert {r.reference: r.outcome for r in again.report.rows}["INV-X"] == "pending"
    refs = [p["reference"] for p in sandbox.ledger()]
    assert refs.count("INV-X") == 1
    assert len(sandbox.batches()) == 3  # the release went in a batch of its own


async def test_a_batch_run_settles_a_row_held_for_another_run_once_that_run_has_ended(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A row held ``in_flight_elsewhere`` (another run of this journal is paying it) stayed
    held in batch mode after that run ended: every re-run exited 10. It is judged again."""
    home = sandbox_settings(tmp_path / "h")
    kw = run_kwargs(sandbox, home, tmp_path / "h")
    shared = payout_row(0)
    f1 = write_csv(tmp_path / "f1.csv", [shared])
    sandbox.faults.plan("POST /v1/payouts", ["503"] * 5)
    assert (await pipeline.run_async(f1, **kw)).exit_code == 10  # unknown: not finished
    f2 = write_csv(tmp_path / "f2.csv", [dict(shared, amount="777.00"), payout_row(3)])
    r2 = await pipeline.run_async(f2, submission=_batches_of(sandbox), **kw)
    held = {r.reference: r.error_code for r in r2.report.rows}
    assert held[shared["reference"]] == "in_flight_elsewhere"
    assert (await pipeline.run_async(f1, **kw)).exit_code == 0  # finished: paid at 100.xx
    again = await pipeline.run_async(f2, submission=_batches_of(sandbox), **kw)
    codes = {r.reference: (r.outcome, r.error_code) for r in again.report.rows}
    assert codes[shared["reference"]] == ("skipped", "amount_differs")
    assert [p["reference"] for p in sandbox.ledger()].count(shared["reference"]) == 1


@pytest.mark.parametrize("via", ["rows", "batches"])
async def test_retry_failed_does_not_pay_a_row_held_amount_differs_at_the_old_amount(
    sandbox: Sandbox, tmp_path: Path, via: str
) -> None:
    """Home B paid a row at 300.91 (a payout that fails: .91); home A's corrected export
    asks 5000.00 for it, held ``amount_differs`` with B's payout adopted. Once that payout
    failed, ``retry-failed`` of A's run paid the row again at B's 300.91, which A's file
    never asked. It is not in the retry (the row stays held for a person); B's own retry of
    its row pays it, once."""
    home_b, home_a = sandbox_settings(tmp_path / "b"), sandbox_settings(tmp_path / "a")
    r1 = payout_row(1, amount="300.91")
    rb = await pipeline.run_async(write_csv(tmp_path / "b.csv", [r1]),
                                  **run_kwargs(sandbox, home_b, tmp_path / "b"))  # fmt: skip
    ra = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [dict(r1, amount="5000.00")]),
        submission=_batches_of(sandbox) if via == "batches" else None,
        **run_kwargs(sandbox, home_a, tmp_path / "a"),
    )  # fmt: skip
    assert [(r.outcome, r.error_code) for r in ra.report.rows] == [("skipped", "amount_differs")]
    await sandbox.advance(30)  # B's payout fails
    await manage.track_async(ra.run_id, settings=home_a, transport=sandbox.transport(),
                             clock=sandbox.clock.now, out_dir=tmp_path / "a" / "t")  # fmt: skip
    assert manage.retry_plan(ra.run_id, settings=home_a).rows == []
    await manage.track_async(rb.run_id, settings=home_b, transport=sandbox.transport(),
                             clock=sandbox.clock.now, out_dir=tmp_path / "b" / "t")  # fmt: skip
    assert len(manage.retry_plan(rb.run_id, settings=home_b).rows) == 1
    await manage.retry_failed_async(
        rb.run_id, confirm=True, settings=home_b, out_dir=tmp_path / "b" / "r",
        transport=sandbox.transport(), clock=sandbox.clock.now,
    )  # fmt: skip
    made = [(p["dest_amount"], p["status"]) for p in sandbox.ledger()]
    assert [a for a, status in made if status != "failed"] == ["300.91"]


class _Stopped(BaseException):
    """The process stops here (as SIGKILL would: nothing more reaches the journal)."""


async def test_a_stop_right_after_adopting_another_homes_payout_leaves_the_row_held(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adopted payout and the row's ``amount_differs`` hold were two writes: stopped
    between them, the row stayed ``already_paid`` at the amount the file asks, and no later
    run looked at it again. The hold is written with the adoption."""
    from batchpay.journal import Journal

    home_b, home_a = sandbox_settings(tmp_path / "b"), sandbox_settings(tmp_path / "a")
    r1 = payout_row(1)
    await pipeline.run_async(
        write_csv(tmp_path / "b.csv", [r1]), **run_kwargs(sandbox, home_b, tmp_path / "b")
    )

    def stop(*args: object, **kwargs: object) -> None:
        raise _Stopped

    monkeypatch.setattr(Journal, "record_payout_created", stop)
    with pytest.raises(_Stopped):
        await pipeline.run_async(write_csv(tmp_path / "a.csv", [dict(r1, amount="5000.00")]),
                                 **run_kwargs(sandbox, home_a, tmp_path / "a"))  # fmt: skip
    with Journal(home_a.journal_path) as j:
        (run,) = j.db.execute("SELECT id FROM runs").fetchall()
        (row,) = j.rows(str(run[0]))
    assert (row.state, row.error_code) == ("held", "amount_differs")


async def test_a_row_another_run_takes_while_a_batch_is_planned_is_held_not_a_journal_error(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run of this journal commits a row's intent between the batch's look at the
    row's history and the batch's own intents: the journal refuses the second live intent
    (nothing is paid twice), and the run ended exit 6, "journal unusable". The row is held
    as any row paid by another run, and the batch pays the rest."""
    from batchpay import ledger

    home = sandbox_settings(tmp_path / "h")
    kw = run_kwargs(sandbox, home, tmp_path / "h")
    shared = payout_row(0)
    sandbox.faults.plan("POST /v1/payouts", ["503"] * 5)
    assert (
        await pipeline.run_async(write_csv(tmp_path / "f1.csv", [shared]), **kw)
    ).exit_code == 10
    monkeypatch.setattr(ledger, "paid_by_another_run", lambda *args, **kwargs: None)  # a look
    monkeypatch.setattr(ledger, "paid_elsewhere_many", lambda *args, **kwargs: {})  # too early
    f2 = write_csv(tmp_path / "f2.csv", [shared, payout_row(3)])
    r2 = await pipeline.run_async(f2, submission=_batches_of(sandbox), **kw)
    codes = {r.reference: (r.outcome, r.error_code) for r in r2.report.rows}
    assert codes[shared["reference"]][1] == "in_flight_elsewhere"
    assert codes[payout_row(3)["reference"]][0] == "pending"
    assert [p["reference"] for p in sandbox.ledger()] == [payout_row(3)["reference"]]


async def test_a_batch_release_stopped_before_its_new_batch_is_paid_by_the_next_run(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release planned the held row again, then stopped (the ledger unreachable) before
    the new batch was recorded: the row was left planned in a run whose batch had settled,
    and no later run planned it (exit 10 for ever)."""
    import httpx

    home, f, first = await _batch_run_holding_new_bank_details(sandbox, tmp_path)
    assert first.report.rows[0].error_code == "bank_details_changed"

    class NoLedger(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "GET" and request.url.path == "/v1/payouts":
                raise httpx.ConnectError("network gone", request=request)
            return await sandbox.transport().handle_async_request(request)

    released = run_kwargs(sandbox, home, tmp_path / "h", allow_new_bank_details=True)
    with pytest.raises(BatchpayError):
        await pipeline.run_async(f, submission=_batches_of(sandbox),
                                 **released | {"transport": NoLedger()})  # fmt: skip
    again = await pipeline.run_async(f, submission=_batches_of(sandbox), **released)
    assert {r.reference: r.outcome for r in again.report.rows}["INV-X"] == "pending"
    assert [p["reference"] for p in sandbox.ledger()].count("INV-X") == 1
