"""`validate` plans a file as `run` would: known payees, changed details, already paid."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchpay import pipeline
from batchpay.cli import main
from batchpay.config import Settings
from batchpay.options import RunOptions
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, run_kwargs, write_csv

pytestmark = pytest.mark.anyio

FR_IBAN = "FR1420041010050500013M02606"


async def test_validate_shows_the_plan_run_then_follows(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """After a first file, a second one mixing a row paid before, a payee with new bank
    details, a known payee and a new one: validate's plan is exactly what run then does."""
    first = [payout_row(0), payout_row(3), payout_row(1)]
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", first), **run_kwargs(sandbox, settings, tmp_path, wait=True)
    )
    second = [
        first[2],  # paid by the first file
        payout_row(0, reference="INV-MOVED", iban=FR_IBAN, country="FR", nationality="FR"),
        payout_row(3, reference="INV-KNOWN"),  # same payee, same bank details
        payout_row(6),  # a new payee
    ]
    b = write_csv(tmp_path / "b.csv", second)
    plan = pipeline.plan(b, settings=settings, options=RunOptions(out_dir=tmp_path / "r"))
    assert plan.rows_to_pay == 2 and plan.already_paid == 1
    assert (plan.known_beneficiaries, plan.new_beneficiaries) == (1, 1)
    assert [(h.reference, h.code) for h in plan.held] == [("INV-MOVED", "bank_details_changed")]
    # the bank from the registry (never the IBAN's own digits) and the last 4
    assert "IBAN DE Commerzbank Köln COBADEFFXXX ****3000 -> IBAN FR LA BANQUE POSTALE " in (
        plan.held[0].message
    )
    assert plan.held[0].release == "batchpay run b.csv --allow-new-bank-details"

    result = await pipeline.run_async(b, **run_kwargs(sandbox, settings, tmp_path))
    outcomes = {r.reference: r.outcome for r in result.report.rows}
    assert outcomes == {
        first[2]["reference"]: "already_paid",
        "INV-MOVED": "skipped",
        "INV-KNOWN": "pending",
        payout_row(6)["reference"]: "pending",
    }
    assert plan.totals == {"EUR": Decimal(payout_row(6)["amount"]) + Decimal(second[2]["amount"])}


async def test_validate_estimates_fees_and_debits_per_balance(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Fees the provider charged before for a rail and currency are in the estimate; the
    debit is the amounts plus those fees; a cross-currency row is counted apart."""
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", [payout_row(0), payout_row(1)]),
        **run_kwargs(sandbox, settings, tmp_path, wait=True),
    )
    rows = [
        payout_row(0, reference="N-1", amount="1000.00"),
        payout_row(3, reference="N-2", amount="250.50"),
        payout_row(1, reference="N-3", amount="75.25"),
        payout_row(2, reference="N-4", amount="10.00"),  # GBP: no fee seen yet
        payout_row(6, reference="N-5", amount="20.00", source_currency="USD"),
    ]
    plan = pipeline.plan(
        write_csv(tmp_path / "b.csv", rows),
        settings=settings,
        options=RunOptions(out_dir=tmp_path / "r"),
    )
    eur, gbp, usd = plan.debits["EUR"], plan.debits["GBP"], plan.debits["USD"]
    assert (eur.rows, eur.amount, eur.fees) == (2, Decimal("1250.50"), Decimal("0.92"))
    assert eur.debited == Decimal("1251.42")  # sepa 0.46 a payout, as the sandbox charged
    assert (usd.rows, usd.fees, usd.cross_currency) == (1, Decimal("0.25"), 1)
    assert (gbp.fees, gbp.fees_unknown) == (0, 1)
    assert eur.describe() == (
        "EUR balance: would debit about 1,251.42 (2 payout(s) 1,250.50 + fees 0.92 seen before)"
    )
    assert "the fee of 1 payout(s) is not known yet" in gbp.describe()
    assert "plus 1 payout(s) in another currency at the provider's rate" in usd.describe()


def test_validate_prints_amounts_as_the_report_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Totals carry thousands separators and the currency's decimals."""
    monkeypatch.chdir(tmp_path)
    f = write_csv(
        tmp_path / "big.csv",
        [payout_row(0, amount="523157.3"), payout_row(1, amount="1250"), payout_row(3)],
    )
    done = CliRunner().invoke(main, ["validate", str(f)])
    assert done.exit_code == 0, done.output
    assert f"  total EUR {Decimal('523157.30') + Decimal(payout_row(3)['amount']):,.2f}" in (
        done.output
    )
    assert "  total USD 1,250.00" in done.output
    assert "USD balance: would debit about 1,250.00" in done.output
