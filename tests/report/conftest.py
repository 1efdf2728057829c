"""Fixtures for the report tests."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from batchpay.report import Report, ReportRow, Tally

from .samples import GENERATED_AT, sample_rows

MakeReport = Callable[..., Report]


@pytest.fixture
def make_report() -> MakeReport:
    """Build a report: the sample rows and a declared EUR total unless told otherwise."""

    def make(
        *,
        environment: str = "sandbox",
        rows: list[ReportRow] | None = None,
        declared: dict[str, Tally] | None = None,
    ) -> Report:
        if rows is None and declared is None:
            declared = {"EUR": Tally(3, Decimal("2478.95"))}  # what the sample holds
        return Report(
            run_id="run_20250314_0926",
            file_name="payouts-march.csv",
            file_sha256="9f" * 32,
            environment=environment,
            api_url="http://sandbox.local",
            generated_at=GENERATED_AT,
            rows=sample_rows() if rows is None else rows,
            declared_totals=declared,
        )

    return make


@pytest.fixture
def report(make_report: MakeReport) -> Report:
    """The sample sandbox report."""
    return make_report()
