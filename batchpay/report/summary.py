"""The short summary of a report the CLI prints to the terminal."""

from __future__ import annotations

from decimal import Decimal

from batchpay.report.files import ReportPaths
from batchpay.report.model import SANDBOX_BANNER, Report, _amount_scale


def _human_amount(amount: Decimal, currency: str) -> str:
    scale = _amount_scale(amount, currency)
    return f"{amount.quantize(Decimal(1).scaleb(-scale)):,f}"


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
        lines.append(f"{cur} (rows / amount): requested {requested} = " + " + ".join(parts))
    charges = [
        ("Fees", {c: t.fees for c, t in totals.items() if t.fees}),
        ("Total debited", {c: t.total_debited for c, t in totals.items() if t.total_debited}),
    ]
    for label, amounts in charges:
        if amounts:
            shown = ", ".join(f"{c} {_human_amount(a, c)}" for c, a in amounts.items())
            lines.append(f"{label}: {shown}")
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
