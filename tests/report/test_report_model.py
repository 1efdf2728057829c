"""The report model: outcomes, needs_attention, validation, totals on a known example."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from batchpay import report as report_mod
from batchpay.report import (
    ATTENTION_OUTCOMES,
    COMPLETED_OUTCOMES,
    FAILED_OR_RETURNED_OUTCOMES,
    NOT_SUBMITTED_OUTCOMES,
    PENDING_OUTCOMES,
    Outcome,
    Report,
    ReportRow,
    Tally,
    outcome_for_payout_status,
)

from .conftest import MakeReport
from .samples import GENERATED_AT, RAW_ACCOUNT


def test_public_names_are_exactly_all() -> None:
    """The module's public surface is its curated __all__."""
    public = {
        name
        for name, value in vars(report_mod).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == report_mod.__name__
    }
    assert public <= set(report_mod.__all__)
    assert all(hasattr(report_mod, name) for name in report_mod.__all__)


def test_outcome_values_are_the_documented_enum() -> None:
    """The outcome enum is exactly the documented list."""
    assert [o.value for o in Outcome] == [
        "completed",
        "pending",
        "failed",
        "returned",
        "screening_failed",
        "velocity_blocked",
        "cancelled",
        "rejected",
        "invalid",
        "duplicate_in_file",
        "already_paid",
        "unknown",
        "skipped",
        "duplicate_payout",
    ]


def test_outcome_groups_partition_the_enum() -> None:
    """Every outcome belongs to exactly one totals group."""
    groups = [
        NOT_SUBMITTED_OUTCOMES,
        COMPLETED_OUTCOMES,
        FAILED_OR_RETURNED_OUTCOMES,
        PENDING_OUTCOMES,
    ]
    members = [o for g in groups for o in g]
    assert sorted(members) == sorted(Outcome)
    assert len(members) == len(set(members))


def test_needs_attention_is_everything_not_paid_or_on_its_way() -> None:
    """Only completed, pending and already_paid rows need no person."""
    calm = {"completed", "pending", "already_paid"}
    for outcome in Outcome:
        row = ReportRow(row=2, outcome=outcome.value)
        assert row.needs_attention is (outcome.value not in calm), outcome
    assert {o.value for o in ATTENTION_OUTCOMES} == {o.value for o in Outcome} - calm


def test_unknown_outcome_is_refused() -> None:
    """An outcome outside the enum cannot be built into a row."""
    with pytest.raises(ValueError, match="unknown outcome 'paid'"):
        ReportRow(row=2, outcome="paid")


def test_outcome_accepts_plain_strings_and_compares_as_text() -> None:
    """A plain string outcome is kept and still equals its text."""
    row = ReportRow(row=2, outcome="screening_failed")
    assert row.outcome == "screening_failed"
    assert row.outcome is Outcome.SCREENING_FAILED


def test_account_is_masked_whatever_was_passed() -> None:
    """An unmasked account number given to a row keeps only its last 4 characters."""
    row = ReportRow(row=2, outcome="completed", masked_account=RAW_ACCOUNT)
    assert row.masked_account == "****3000"
    already = ReportRow(row=2, outcome="completed", masked_account="****3000")
    assert already.masked_account == "****3000"


@pytest.mark.parametrize("bad", [1.5, "1.50", Decimal("NaN"), Decimal("Infinity")])
def test_amounts_must_be_finite_decimals(bad: object) -> None:
    """A float, a string or a non-finite Decimal is refused as an amount."""
    with pytest.raises(ValueError, match="amount must be a finite Decimal"):
        ReportRow(row=2, outcome="completed", amount=bad)  # type: ignore[arg-type]


def test_report_requires_an_aware_time_and_a_known_environment(make_report: MakeReport) -> None:
    """A naive generated_at or an environment other than sandbox/live is refused."""
    good = make_report()
    with pytest.raises(ValueError, match="aware"):
        Report(**{**vars(good), "generated_at": datetime(2025, 1, 1)})
    with pytest.raises(ValueError, match="environment"):
        Report(**{**vars(good), "environment": "production"})


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("completed", "completed"),
        ("returned", "returned"),
        ("screening_failed", "screening_failed"),
        ("cancelled", "cancelled"),
        ("processing", "pending"),
        ("manual_review", "pending"),
        ("created", "pending"),
    ],
)
def test_outcome_for_payout_status(status: str, outcome: str) -> None:
    """Final payout statuses are their own outcome; the rest are pending."""
    assert outcome_for_payout_status(status) == outcome


def test_totals_of_the_sample(make_report: MakeReport) -> None:
    """The sample's totals per currency are the exact sums by group."""
    totals = make_report().totals
    assert list(totals) == ["EUR", "JPY", "KWD", "USD", "XYZ"]
    eur = totals["EUR"]
    assert eur.requested == Tally(3, Decimal("2478.95"))
    assert eur.not_submitted == Tally(1, Decimal("1234.50"))
    assert eur.submitted == Tally(2, Decimal("1244.45"))
    assert eur.completed == Tally(1, Decimal("1234.50"))
    assert eur.failed_or_returned == Tally(1, Decimal("9.95"))
    assert eur.pending == Tally(0, Decimal(0))
    # The failed row's debit (fee included) went back to the EUR balance: refunded, not debited.
    assert eur.fees == Decimal(0)
    assert eur.total_debited == Decimal(0)
    assert eur.refunded == Decimal("10.30")
    assert eur.matches_declared is True
    usd = totals["USD"]
    assert usd.requested == Tally(2, Decimal("100000000.06"))
    assert usd.pending == Tally(1, Decimal("0.07"))  # unknown counts as pending
    # The already_paid row's fee belongs to the earlier run, not this one.
    assert usd.fees == Decimal("2.50")
    assert usd.total_debited == Decimal("1352.62")
    assert totals["JPY"].pending == Tally(1, Decimal("150000"))


def test_rows_without_amount_are_counted_apart(make_report: MakeReport) -> None:
    """A row with no readable amount is in no currency but is still counted."""
    report = make_report()
    assert report.rows_without_amount == 1
    assert sum(t.requested.count for t in report.totals.values()) == len(report.rows) - 1
    assert report.check_totals() == []


def test_declared_totals_mismatch_is_a_problem(make_report: MakeReport) -> None:
    """Totals the file declared but does not hold are reported by check_totals."""
    report = make_report(declared={"EUR": Tally(3, Decimal("2478.96")), "GBP": Tally(1)})
    problems = report.check_totals()
    assert any(p.startswith("EUR: the file declares 3 rows / 2478.96") for p in problems)
    assert any(p.startswith("GBP: the file declares 1 rows / 0.00") for p in problems)
    assert report.totals["EUR"].adds_up  # the file's own totals still add up
    assert report.totals["EUR"].matches_declared is False


def test_rows_for_people_puts_attention_first(make_report: MakeReport) -> None:
    """Rows needing a person come first, each group in row-number order."""
    assert [r.row for r in make_report().rows_for_people()] == [3, 5, 6, 8, 9, 10, 2, 4, 7]


def test_round_trip_through_json(make_report: MakeReport) -> None:
    """to_dict → JSON text → from_dict gives back an equal report."""
    report = make_report()
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    assert again.rows[0].amount == Decimal("1234.50")


def test_from_dict_refuses_floats_and_strangers(make_report: MakeReport) -> None:
    """A float amount, an unknown field or a missing section is a ValueError."""
    data = make_report().to_dict()
    data["rows"][0]["amount"] = 1234.5
    with pytest.raises(ValueError, match="amount must be a decimal string"):
        Report.from_dict(data)
    data = make_report().to_dict()
    data["rows"][0]["iban"] = RAW_ACCOUNT
    with pytest.raises(ValueError, match="unknown report row fields"):
        Report.from_dict(data)
    with pytest.raises(ValueError, match="not a batchpay report"):
        Report.from_dict({"rows": []})


def test_to_dict_times_are_utc(make_report: MakeReport) -> None:
    """generated_at is written in UTC with a Z, whatever zone it was made in."""
    report = make_report()
    report.generated_at = GENERATED_AT.astimezone(timezone(timedelta(hours=-5)))
    assert report.to_dict()["run"]["generated_at"] == "2025-03-14T09:26:53Z"


def test_empty_report(make_report: MakeReport) -> None:
    """A report without rows has no totals, adds up, and round-trips."""
    report = make_report(rows=[])
    assert report.totals == {}
    assert report.check_totals() == []
    data = report.to_dict()
    assert data["totals"]["by_currency"] == {}
    assert data["totals"]["rows"] == 0
    assert Report.from_dict(data) == report
