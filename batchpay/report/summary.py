"""The short summary of a report the CLI prints to the terminal."""

from __future__ import annotations

from decimal import Decimal

from batchpay.report.files import ReportPaths
from batchpay.report.model import (
    SANDBOX_BANNER,
    SUBMITTED_OUTCOMES,
    FundingTotals,
    Report,
    Tally,
    _amount_scale,
)


def human_amount(amount: Decimal, currency: str) -> str:
    """An amount as the report shows it to people: thousands separated, the currency's
    decimals (more when the amount has more: never rounded)."""
    scale = _amount_scale(amount, currency)
    return f"{amount.quantize(Decimal(1).scaleb(-scale)):,f}"


_human_amount = human_amount


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def funding_line(f: FundingTotals) -> str:
    """One balance's line: debited = completed + in flight (fees included), refunded beside."""
    cur = f.currency

    def show(t: Tally) -> str:
        return f"{t.count} / {_human_amount(t.amount, cur)}"

    parts = [
        f"{label} {show(t)}"
        for label, t in (("completed", f.completed), ("in flight", f.in_flight))
        if t.count
    ]
    line = f"{cur} balance (payouts / amount): debited {_human_amount(f.debited, cur)}"
    if parts:
        line += " = " + " + ".join(parts)
    if f.fees:
        line += f" (fees {_human_amount(f.fees, cur)} included)"
    if f.refunded.count:
        line += f"; refunded {show(f.refunded)} (failed or returned"
        if f.fees_refunded:
            line += f", fees {_human_amount(f.fees_refunded, cur)} included"
        line += ")"
    if f.cross_currency:
        line += f"; funds {_rows(f.cross_currency)} paid in another currency"
    return line


def _funded_elsewhere(report: Report, currency: str) -> dict[str, int]:
    """How many submitted rows paid in ``currency`` each other balance funds."""
    out: dict[str, int] = {}
    for r in report.rows:
        if r.currency == currency and r.funded_from and r.outcome in SUBMITTED_OUTCOMES:
            out[r.funded_from] = out.get(r.funded_from, 0) + 1
    return dict(sorted(out.items()))


def summary_lines(report: Report, paths: ReportPaths | None = None) -> list[str]:
    """A short summary for the terminal: outcomes, totals per currency, where the files are."""
    lines: list[str] = []
    if report.is_sandbox:
        lines.append(SANDBOX_BANNER)
    lines.append(f"Run {report.run_id}: {report.file_name}, {len(report.rows)} rows")
    counts = [f"{o} {n}" for o, n in report.outcome_counts.items() if n]
    lines.append("Outcomes: " + (", ".join(counts) if counts else "no rows"))
    totals = report.totals
    for cur, t in totals.items():
        if t.requested.count == 0:
            continue
        parts = [
            f"{label} {part.count} / {_human_amount(part.amount, cur)}"
            for label, part in (
                ("not submitted", t.not_submitted),
                ("completed", t.completed),
                ("failed or returned", t.failed_or_returned),
                ("pending", t.pending),
            )
            if part.count
        ]
        requested = f"{t.requested.count} / {_human_amount(t.requested.amount, cur)}"
        line = f"{cur} (rows / amount): requested {requested} = " + " + ".join(parts)
        funded = _funded_elsewhere(report, cur)
        if funded:
            line += "; " + ", ".join(
                f"{_rows(n)} funded from the {source} balance" for source, n in funded.items()
            )
        lines.append(line)
    for funds in report.funding.values():
        lines.append(funding_line(funds))
    attention = [r.row for r in report.rows_for_people() if r.needs_attention]
    if attention:
        listed = ", ".join(str(n) for n in attention[:10])
        more = f" and {len(attention) - 10} more" if len(attention) > 10 else ""
        one = len(attention) == 1
        rows, need = ("row", "needs") if one else ("rows", "need")
        lines.append(
            f"{len(attention)} {rows} {need} a person: {rows} {listed}{more} "
            "(listed first in the report)"
        )
    for problem in report.check_totals(totals):
        lines.append(f"CONTROL TOTALS PROBLEM: {problem}")
    if paths is not None:
        lines.append(f"Report: {paths.xlsx}")
        lines.append(f"        {paths.csv}, {paths.totals_csv}, {paths.json}")
    return lines
