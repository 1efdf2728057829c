"""Writing a report's files: the CSVs and the JSON here, the XLSX through :mod:`.xlsx`.

Each file is written under a temporary name, made private (0600) before any content is
written, synced and renamed into place; the folder is created private (0700).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchpay.errors import ReportError
from batchpay.files import create_private_file, make_private_dir
from batchpay.report.columns import (
    _COLUMNS,
    _INT,
    _MONEY,
    _TOTALS_HEADERS,
    ROW_HEADERS,
    _plain_cell,
    _safe_text,
    _totals_cells,
)
from batchpay.report.model import CurrencyTotals, Report, _amount_text


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where :func:`write_report` put the report's files."""

    csv: Path
    totals_csv: Path
    xlsx: Path
    json: Path

    def __iter__(self) -> Iterator[Path]:
        return iter((self.xlsx, self.csv, self.totals_csv, self.json))


def write_report(report: Report, out_dir: Path, stem: str) -> ReportPaths:
    """Write ``<stem>.csv``, ``<stem>-totals.csv``, ``<stem>.xlsx`` and ``<stem>.json``.

    Each file is written to a temporary name in ``out_dir`` and renamed into place, so a
    reader never sees half a report. ``out_dir`` is created when missing (0700), the files
    are readable by their owner only (0600). A folder that cannot be written raises
    :class:`~batchpay.errors.ReportError`.
    """
    if not stem or Path(stem).name != stem or stem.startswith("."):
        raise ValueError(f"report stem must be a plain file name, not {stem!r}")
    try:
        return _write_all(report, out_dir, stem)
    except OSError as exc:
        raise ReportError(
            f"cannot write the report {stem} in {out_dir} ({_why(exc)})",
            hint="pass --out a folder this user can write; what was paid is in the journal, "
            f"so `batchpay report {stem} --out FOLDER` writes the report again",
        ) from None


def preload_writer() -> threading.Thread | None:
    """Import the workbook writer (openpyxl, about 0.1 s of CPU) in a thread, for a caller
    about to wait on the network (a run reading the provider's ledger): the import is then
    done when the report is written, instead of after the last payout.

    Not a daemon: a command that fails first waits for the import to end before exiting
    rather than finalising the interpreter under an import in progress."""
    if "batchpay.report.xlsx" in sys.modules:
        return None

    def load() -> None:
        with contextlib.suppress(ImportError):  # a missing openpyxl is said when writing
            import batchpay.report.xlsx  # noqa: F401

    thread = threading.Thread(target=load, name="preload-report")
    thread.start()
    return thread


def check_out_dir(out_dir: Path) -> None:
    """Refuse, before anything is sent, a report folder that could not be created or written."""
    existing = out_dir
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    problem = ""
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    if problem:
        raise ReportError(
            f"cannot write reports in {out_dir}: {problem}; nothing was sent",
            hint="pass --out a folder this user can write",
        )


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}{where}"


def _write_all(report: Report, out_dir: Path, stem: str) -> ReportPaths:
    make_private_dir(out_dir)
    paths = ReportPaths(
        csv=out_dir / f"{stem}.csv",
        totals_csv=out_dir / f"{stem}-totals.csv",
        xlsx=out_dir / f"{stem}.xlsx",
        json=out_dir / f"{stem}.json",
    )
    totals = report.totals
    # The rows' text once, for the CSV and the workbook's column widths.
    plain = [[_plain_cell(c, r) for c in _COLUMNS] for r in report.rows_for_people()]
    _atomic_write(paths.json, lambda tmp: _write_json(report, tmp))
    _atomic_write(paths.csv, lambda tmp: _write_rows_csv(report, tmp, plain))
    _atomic_write(paths.totals_csv, lambda tmp: _write_totals_csv(totals, tmp))
    from batchpay.report.xlsx import _write_xlsx  # openpyxl loads only to write a workbook

    _atomic_write(paths.xlsx, lambda tmp: _write_xlsx(report, totals, tmp, plain))
    return paths


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    create_private_file(tmp)  # 0600 before any content is written
    try:
        write(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(report: Report, path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.write(report_json(report.to_dict()))
        fh.write("\n")


_ROWS_MARK = "\x00batchpay-rows\x00"
_ROW_INDENT = "\n      "


def report_json(doc: dict[str, Any]) -> str:
    """``json.dumps(doc, ensure_ascii=False, indent=2)``, the same text, made faster.

    Indented output goes through json's pure-Python encoder; the rows (flat objects of
    scalars, most of the file) are encoded by its C encoder with the indentation as the item
    separator, which gives the very same text.
    """
    rows = doc.get("rows")
    # Flat: dicts whose values are no dict, list or tuple (each a JSON container): one look
    # per distinct type, not per cell.
    flat = (
        isinstance(rows, list)
        and all(isinstance(r, dict) for r in rows)
        and not any(
            issubclass(t, dict | list | tuple) for t in {type(v) for r in rows for v in r.values()}
        )
    )
    if not flat or not rows:
        return json.dumps(doc, ensure_ascii=False, indent=2)
    head = json.dumps({**doc, "rows": _ROWS_MARK}, ensure_ascii=False, indent=2)
    encode = json.JSONEncoder(ensure_ascii=False, separators=("," + _ROW_INDENT, ": ")).encode
    body = ",\n".join(
        "    {" + _ROW_INDENT + encode(r)[1:-1] + "\n    }" if r else "    {}" for r in rows
    )
    return head.replace(json.dumps(_ROWS_MARK), "[\n" + body + "\n  ]", 1)


def _write_rows_csv(report: Report, path: Path, plain: list[list[str]] | None = None) -> None:
    if plain is None:
        plain = [[_plain_cell(c, r) for c in _COLUMNS] for r in report.rows_for_people()]
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(ROW_HEADERS)
        out.writerows(plain)


def _write_totals_csv(totals: Mapping[str, CurrencyTotals], path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(_TOTALS_HEADERS)
        for t in totals.values():
            line = []
            for kind, value in _totals_cells(t):
                if kind == _MONEY:
                    line.append(_amount_text(value, t.currency))
                elif kind == _INT:
                    line.append(str(value))
                else:
                    line.append(_safe_text(value))
            out.writerow(line)
