"""Fixtures for the report tests: a small report with every kind of row."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from batchpay.report import Report, ReportRow, Tally

GENERATED_AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def sample_rows() -> list[ReportRow]:
    """Rows covering paid, failed, pending, not sent, odd scales and hostile text."""
    return [
        ReportRow(
            row=2,
            reference="INV-0001",
            beneficiary_ref="EMP-001",
            beneficiary_name="Zoë Müller",
            outcome="completed",
            payout_id="pay_01HX8Z9K0M2N3P4Q5R6S7T8UAB",
            beneficiary_id="ben_01HX8Z9K0M",
            instrument_id="ins_01HX8Z9K0M",
            payout_status="completed",
            request_id="req_7f3a",
            idempotency_key="bp1-sandbox-0b8f2c",
            amount=Decimal("1234.50"),
            currency="EUR",
            source_amount=Decimal("1350.12"),
            source_currency="USD",
            fee=Decimal("2.50"),
            fee_currency="USD",
            exchange_rate=Decimal("0.914367"),
            total_debited=Decimal("1352.62"),
            masked_account="****3000",
            attempt=1,
        ),
        ReportRow(
            row=3,
            reference="=cmd|' /C calc'!A0",
            beneficiary_ref="+EMP-002",
            beneficiary_name="@Evil Corp",
            outcome="failed",
            payout_id="pay_02",
            payout_status="failed",
            error_code="account_closed",
            error_message="-The beneficiary's account is closed",
            amount=Decimal("9.95"),
            currency="EUR",
            source_amount=Decimal("9.95"),
            source_currency="EUR",
            fee=Decimal("0.35"),
            fee_currency="EUR",
            total_debited=Decimal("10.30"),
            masked_account="DE89370400440532013000",
            attempt=2,
        ),
        ReportRow(
            row=4,
            reference="INV-0003",
            beneficiary_ref="EMP-003",
            beneficiary_name="山田 太郎",
            outcome="pending",
            payout_id="pay_03",
            payout_status="processing",
            amount=Decimal("150000"),
            currency="JPY",
            masked_account="****1234",
            attempt=1,
        ),
        ReportRow(
            row=5,
            reference="INV-0004",
            beneficiary_ref="EMP-004",
            beneficiary_name="Ahmed Al-Sabah",
            outcome="invalid",
            error_code="invalid_iban",
            error_message="iban: fails the IBAN check digits (mod-97)",
            amount=Decimal("12.345"),
            currency="KWD",
        ),
        ReportRow(
            row=6,
            reference="INV-0001",
            beneficiary_ref="EMP-001",
            beneficiary_name="Zoë Müller",
            outcome="duplicate_in_file",
            amount=Decimal("1234.50"),
            currency="EUR",
            note="also on row 2",
        ),
        ReportRow(
            row=7,
            reference="INV-0005",
            beneficiary_ref="EMP-005",
            beneficiary_name="Jane Doe",
            outcome="already_paid",
            payout_id="pay_00",
            amount=Decimal("99999999.99"),
            currency="USD",
            related_run="run_20250301",
            note="paid by run run_20250301",
        ),
        ReportRow(
            row=8,
            reference="INV-0006",
            beneficiary_ref="EMP-006",
            beneficiary_name="Tab\tName",
            outcome="unknown",
            request_id="req_lost",
            idempotency_key="bp1-sandbox-77aa",
            amount=Decimal("0.07"),
            currency="USD",
            attempt=3,
            note="response lost; resume the run",
        ),
        ReportRow(
            row=9,
            reference="INV-0007",
            beneficiary_ref="EMP-007",
            beneficiary_name="No Amount",
            outcome="invalid",
            error_message="amount: 1.234,56 is not a plain decimal amount",
        ),
        ReportRow(
            row=10,
            reference="INV-0008",
            beneficiary_ref="EMP-008",
            beneficiary_name="Odd Coin",
            outcome="rejected",
            error_code="unsupported_currency",
            amount=Decimal("5.125"),
            currency="XYZ",
            request_id="req_9",
        ),
    ]


def sample_report(environment: str = "sandbox") -> Report:
    """A sandbox report over :func:`sample_rows` with a declared EUR total."""
    return Report(
        run_id="run_20250314_0926",
        file_name="payouts-march.csv",
        file_sha256="9f" * 32,
        environment=environment,
        api_url="http://sandbox.local",
        generated_at=GENERATED_AT,
        rows=sample_rows(),
        declared_totals={"EUR": Tally(3, Decimal("2478.95"))},
    )


@pytest.fixture
def report() -> Report:
    """A fresh sample report."""
    return sample_report()
