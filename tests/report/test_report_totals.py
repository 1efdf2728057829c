"""Control totals under random rows: they add up, exactly, in every currency and scale."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay.report import Outcome, Report, ReportRow

from .samples import GENERATED_AT

# EUR 2 decimals, JPY 0, KWD 3, and a code batchpay does not know (its amounts keep their digits).
SCALES = {"EUR": 2, "JPY": 0, "KWD": 3, "XYZ": 4}

NOT_SUBMITTED = {"invalid", "duplicate_in_file", "already_paid", "rejected", "skipped"}
COMPLETED = {"completed"}
FAILED_OR_RETURNED = {"failed", "returned", "screening_failed", "velocity_blocked", "cancelled"}
PENDING = {"pending", "unknown", "duplicate_payout"}


@st.composite
def rows(draw: st.DrawFn) -> list[ReportRow]:
    """Random rows: random outcomes, currencies, amounts (sometimes none), fees and debits."""
    out = []
    for number in range(2, 2 + draw(st.integers(0, 30))):
        currency = draw(st.sampled_from([*SCALES, ""]))
        minor = draw(st.none() | st.integers(0, 10**14))
        amount = None if minor is None else Decimal(minor).scaleb(-SCALES.get(currency, 2))
        fee = draw(st.none() | st.integers(0, 10**6).map(lambda n: Decimal(n).scaleb(-2)))
        debit = draw(st.none() | st.integers(0, 10**15).map(lambda n: Decimal(n).scaleb(-2)))
        out.append(
            ReportRow(
                row=number,
                outcome=draw(st.sampled_from(list(Outcome))).value,
                amount=amount,
                currency=currency,
                fee=fee,
                fee_currency=draw(st.sampled_from(["", "EUR", "USD"])),
                total_debited=debit,
                source_currency=draw(st.sampled_from(["", "USD", "KWD"])),
            )
        )
    return out


def _report(report_rows: list[ReportRow]) -> Report:
    return Report(
        run_id="run_h",
        file_name="f.csv",
        file_sha256="00" * 32,
        environment="live",
        api_url="https://api.example",
        generated_at=GENERATED_AT,
        rows=report_rows,
    )


def _minor_sum(report_rows: list[ReportRow], currency: str, outcomes: set[str]) -> Decimal:
    """The expected sum, counted in integer minor units so no Decimal rounding can hide."""
    scale = SCALES[currency]
    units = sum(
        int(r.amount.scaleb(scale))
        for r in report_rows
        if r.amount is not None and r.currency == currency and r.outcome in outcomes
    )
    return Decimal(units).scaleb(-scale)


@settings(max_examples=100, deadline=None)
@given(rows())
def test_totals_add_up_for_random_rows(report_rows: list[ReportRow]) -> None:
    """requested = not submitted + submitted = not submitted + completed + failed + pending."""
    report = _report(report_rows)
    assert report.check_totals() == []
    counted = sum(t.requested.count for t in report.totals.values())
    assert counted + report.rows_without_amount == len(report_rows)  # every row counted once
    for currency, t in report.totals.items():
        assert t.adds_up
        assert t.not_submitted + t.submitted == t.requested
        assert t.completed + t.failed_or_returned + t.pending == t.submitted
        if currency in SCALES:
            everything = NOT_SUBMITTED | COMPLETED | FAILED_OR_RETURNED | PENDING
            assert t.requested.amount == _minor_sum(report_rows, currency, everything)
            assert t.not_submitted.amount == _minor_sum(report_rows, currency, NOT_SUBMITTED)
            assert t.completed.amount == _minor_sum(report_rows, currency, COMPLETED)
            assert t.failed_or_returned.amount == _minor_sum(
                report_rows, currency, FAILED_OR_RETURNED
            )
            assert t.pending.amount == _minor_sum(report_rows, currency, PENDING)


@settings(max_examples=50, deadline=None)
@given(rows())
def test_fees_and_debits_count_only_submitted_payouts(report_rows: list[ReportRow]) -> None:
    """Fees sum per fee currency and debits per balance currency, over submitted rows only."""
    report = _report(report_rows)
    submitted = [r for r in report_rows if r.outcome in COMPLETED | FAILED_OR_RETURNED | PENDING]
    fees: dict[str, Decimal] = {}
    debits: dict[str, Decimal] = {}
    for r in submitted:
        if r.fee is not None:
            cur = r.fee_currency or r.source_currency or r.currency
            fees[cur] = fees.get(cur, Decimal(0)) + r.fee
        if r.total_debited is not None:
            cur = r.source_currency or r.currency
            debits[cur] = debits.get(cur, Decimal(0)) + r.total_debited
    totals = report.totals
    assert {c: t.fees for c, t in totals.items() if c in fees} == fees
    assert {c: t.total_debited for c, t in totals.items() if c in debits} == debits
    assert all(t.fees == 0 for c, t in totals.items() if c not in fees)


@settings(max_examples=40, deadline=None)
@given(rows())
def test_json_round_trip_for_random_rows(report_rows: list[ReportRow]) -> None:
    """Any report survives to_dict → JSON → from_dict unchanged, totals included."""
    report = _report(report_rows)
    data = json.loads(json.dumps(report.to_dict()))
    again = Report.from_dict(data)
    assert again == report
    assert again.to_dict() == data
