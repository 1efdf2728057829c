"""The reconciliation report: one row per input row, control totals per currency.

:class:`Report` holds the run and its :class:`ReportRow` s; :func:`write_report` writes it as

``<stem>.csv``
    one line per input row, rows needing a person first (then by row number), UTF-8 with a
    BOM so Excel reads accents right, friendly column names, amounts as plain decimal strings.
``<stem>-totals.csv``
    the control totals, one line per currency; a file of its own so a machine can read it
    without skipping past the rows.
``<stem>.xlsx``
    a "Summary" sheet (the run, a SANDBOX banner when no money moved, control totals, rows
    by outcome) and a "Rows" sheet laid out for accountants: amounts are numbers at the
    currency's scale, ids and references are text, rows needing a person come first.
``<stem>.json``
    ``{"run": ..., "totals": ..., "rows": ...}`` in file row order; :meth:`Report.from_dict`
    (or :func:`load_report`) reads it back.

Every text cell of the CSV and XLSX files is neutralised against formula injection: text
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``.
Amounts are numbers, never text, and are not touched. No account number appears other than
masked (:func:`batchpay.money.mask_account` is applied again to every row, which is harmless
on an already masked value).

The package is laid out by what each part does: :mod:`.model` (outcomes, rows, control
totals, reading a report back), :mod:`.files` (:func:`write_report`: the CSVs, the JSON,
the folder and atomic writes), :mod:`.xlsx` (the workbook), :mod:`.summary` (the terminal
lines) and :mod:`.columns` (the columns and cell text the CSV and the XLSX share).
:mod:`.from_journal` builds a :class:`Report` from a run's journal rows. Outcomes and the
control totals are described in :mod:`.model`.
"""

from __future__ import annotations

from batchpay.report.files import ReportPaths, check_out_dir, write_report
from batchpay.report.model import (
    ATTENTION_OUTCOMES,
    COMPLETED_OUTCOMES,
    FAILED_OR_RETURNED_OUTCOMES,
    NOT_SUBMITTED_OUTCOMES,
    OUTCOME_MEANINGS,
    PENDING_OUTCOMES,
    SUBMITTED_OUTCOMES,
    CurrencyTotals,
    FundingTotals,
    Outcome,
    Report,
    ReportRow,
    Tally,
    load_report,
    outcome_for_payout_status,
)
from batchpay.report.summary import summary_lines

__all__ = [
    "ATTENTION_OUTCOMES",
    "COMPLETED_OUTCOMES",
    "FAILED_OR_RETURNED_OUTCOMES",
    "NOT_SUBMITTED_OUTCOMES",
    "OUTCOME_MEANINGS",
    "PENDING_OUTCOMES",
    "SUBMITTED_OUTCOMES",
    "CurrencyTotals",
    "FundingTotals",
    "Outcome",
    "Report",
    "ReportPaths",
    "ReportRow",
    "Tally",
    "check_out_dir",
    "load_report",
    "outcome_for_payout_status",
    "summary_lines",
    "write_report",
]
