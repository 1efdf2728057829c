"""Declared control totals: a row count and totals per currency the file must match.

They come from the command line (``--expect-rows``, ``--expect-total``) or a control file
beside the input (``payouts.csv.ctl``, TOML). A file that disagrees is refused before
anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from batchpay.checks import CheckedFile, frame_totals_by_currency
from batchpay.errors import ControlTotalsMismatch
from batchpay.money import parse_amount
from batchpay.options import RunOptions
from batchpay.source import CONTROL_SUFFIX, PayoutFile


@dataclass(frozen=True)
class ControlTotals:
    """Declared row count and totals per currency, from the command line or a .ctl file."""

    rows: int | None = None
    totals: Mapping[str, Decimal] = field(default_factory=dict)
    source: str = "the command line"


def read_control_file(data: bytes, name: str) -> ControlTotals:
    """Read a control file (TOML: ``rows = 32`` and a ``[totals]`` table of decimal strings)."""
    import tomllib

    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ControlTotalsMismatch(
            f"cannot read the control file {name}: {exc}",
            hint='write it as TOML: rows = 32 and [totals] EUR = "12500.00"',
        ) from None
    rows = parsed.get("rows")
    totals_raw = parsed.get("totals", {})
    unknown = set(parsed) - {"rows", "totals"}
    if (
        unknown
        or (rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)))
        or not isinstance(totals_raw, dict)
    ):
        raise ControlTotalsMismatch(
            f"the control file {name} is not shaped as expected",
            hint='only `rows = <integer>` and a [totals] table such as EUR = "12500.00"',
        )
    totals: dict[str, Decimal] = {}
    for cur, value in totals_raw.items():
        if not isinstance(value, str):
            raise ControlTotalsMismatch(
                f"the control file {name} gives {cur} as a number",
                hint=f'write amounts as quoted decimals, e.g. {cur} = "12500.00"',
            )
        try:
            totals[str(cur).upper()] = parse_amount(value.strip())
        except ValueError:
            raise ControlTotalsMismatch(
                f"the control file {name} gives {cur} = {value!r}, not a plain amount"
            ) from None
    return ControlTotals(rows=rows, totals=totals, source=f"the control file {name}")


def declared_controls(source: PayoutFile, options: RunOptions) -> list[ControlTotals]:
    """Every declaration that applies to ``source``: the command line's and its .ctl file's."""
    found = []
    if options.expected_rows is not None or options.expected_totals:
        totals = {k.upper(): v for k, v in options.expected_totals.items()}
        found.append(ControlTotals(options.expected_rows, totals, options.expected_source))
    ctl = source.sidecar(CONTROL_SUFFIX)
    if ctl is not None:
        found.append(read_control_file(ctl, source.name + CONTROL_SUFFIX))
    return found


def check_control_totals(checked: CheckedFile, options: RunOptions) -> None:
    """Refuse the file when its rows or totals disagree with what was declared for it."""
    declarations = declared_controls(checked.source, options)
    if not declarations:
        return
    n = checked.row_count
    actual = frame_totals_by_currency(checked.ingested.frame)
    problems = []
    for declared in declarations:
        if declared.rows is not None and declared.rows != n:
            problems.append(f"the file has {n} rows, {declared.source} declares {declared.rows}")
        for cur, expected in sorted(declared.totals.items()):
            got = actual.get(cur, Decimal(0))
            if got != expected:
                problems.append(f"{cur} totals {got}, {declared.source} declares {expected}")
        for cur in sorted(set(actual) - set(declared.totals)) if declared.totals else []:
            problems.append(f"{cur} totals {actual[cur]}, {declared.source} declares none")
    if problems:
        raise ControlTotalsMismatch("control totals do not match: " + "; ".join(problems))
