"""What a user can ask of a run on top of the defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for on top of the defaults."""

    skip_invalid: bool = False
    allow_new_bank_details: bool = False
    # None: as the layout's [duplicates] table says (refused by default).
    allow_repeats: bool | None = None
    reference_per_payee: bool | None = None
    wait: bool = False
    wait_timeout: float = 600.0
    # None: sized from the rate limit and the latency observed (see ratelimit.InFlight).
    concurrency: int | None = None
    out_dir: Path | None = None
    layout_path: Path | None = None
    # Amounts written 1.234,50 or 1 234,50, whatever the layout's [file] says.
    decimal_comma: bool = False
    # CSV delimiter and encoding, and checking a totals row, whatever the layout's [file] says
    delimiter: str | None = None
    encoding: str | None = None
    check_total_row: bool | None = None
    expected_rows: int | None = None
    expected_totals: Mapping[str, Decimal] = field(default_factory=dict)
    # Who declared expected_rows/expected_totals, for the refusal's message.
    expected_source: str = "the command line"
    skip_balance_check: bool = False
