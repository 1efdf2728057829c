"""Control totals under random rows: they add up, exactly, in every currency and scale."""

from __future__ import annotations

import dataclasses
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
def test_fees_and_debits_follow_the_balance(report_rows: list[ReportRow]) -> None:
    """Per balance: debited = completed + in flight, refunded = failed or returned (fees
    likewise), each the exact sum of those rows' cells; rows not submitted count nowhere."""
    report = _report(report_rows)
    groups = {"kept": COMPLETED | PENDING, "refunded": FAILED_OR_RETURNED}
    fees: dict[tuple[str, str], Decimal] = {}
    debits: dict[tuple[str, str], Decimal] = {}
    for r in report_rows:
        group = next((g for g, outcomes in groups.items() if r.outcome in outcomes), None)
        if group is None:
            continue
        if r.fee is not None:
            key = (r.fee_currency or r.source_currency or r.currency, group)
            fees[key] = fees.get(key, Decimal(0)) + r.fee
        if r.total_debited is not None:
            key = (r.source_currency or r.currency, group)
            debits[key] = debits.get(key, Decimal(0)) + r.total_debited
    funding = report.funding
    for cur, f in funding.items():
        assert f.debited == debits.get((cur, "kept"), Decimal(0))
        assert f.refunded.amount == debits.get((cur, "refunded"), Decimal(0))
        assert f.fees == fees.get((cur, "kept"), Decimal(0))
        assert f.fees_refunded == fees.get((cur, "refunded"), Decimal(0))
        assert report.totals[cur].total_debited == f.debited
        assert report.totals[cur].fees == f.fees
    assert {c for c, _ in debits} | {c for c, _ in fees} == set(funding)


@settings(max_examples=40, deadline=None)
@given(rows())
def test_json_round_trip_for_random_rows(report_rows: list[ReportRow]) -> None:
    """Any report survives to_dict → JSON → from_dict unchanged, totals included."""
    report = _report(report_rows)
    data = json.loads(json.dumps(report.to_dict()))
    again = Report.from_dict(data)
    assert again == report
    assert again.to_dict() == data


def _fresh(report: Report) -> Report:
    """The same report built anew (nothing remembered)."""
    return dataclasses.replace(report, rows=list(report.rows))


@settings(max_examples=60, deadline=None)
@given(first=rows(), second=rows(), pick=st.integers(0, 29))
def test_totals_asked_again_follow_every_change_to_the_rows(
    first: list[ReportRow], second: list[ReportRow], pick: int
) -> None:
    """Funding and totals are remembered between asks, never past a change of the rows:
    a row appended, one replaced in place, the list replaced, declared totals set."""
    report = _report(list(first))
    assert report.totals == _fresh(report).totals and report.funding == _fresh(report).funding
    report.totals["XXX"] = report.totals.get("EUR")  # type: ignore[assignment]
    assert "XXX" not in report.totals  # a caller's change to the answer is not remembered
    if second:
        report.rows.append(second[0])
        assert report.totals == _fresh(report).totals
        assert report.funding == _fresh(report).funding
    if report.rows and second:
        report.rows[pick % len(report.rows)] = second[-1]
        assert report.totals == _fresh(report).totals
        assert report.funding == _fresh(report).funding
    report.rows = list(second)
    assert report.totals == _fresh(report).totals and report.funding == _fresh(report).funding
    fresh = _fresh(report)
    report.declared_totals = {cur: t.requested for cur, t in fresh.totals.items()}
    assert report.totals == _fresh(report).totals
    assert all(t.declared is not None for t in report.totals.values())


def test_what_a_report_remembers_goes_with_it() -> None:
    import gc

    from batchpay.report import model

    report = _report(
        [ReportRow(row=2, outcome="completed", amount=Decimal("1.00"), currency="EUR")]
    )
    assert report.totals["EUR"].requested.amount == Decimal("1.00")
    key = id(report)
    assert key in model._MEMO
    del report
    gc.collect()
    assert key not in model._MEMO
