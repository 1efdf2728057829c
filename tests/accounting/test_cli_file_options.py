"""`--delimiter`, `--encoding` and `--check-total-row` read a file without a layout file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from batchpay.cli import main
from batchpay.testing import HEADERS, payout_row


def _export(tmp_path: Path, total: str) -> Path:
    rows = [payout_row(0, city="Zürich", amount="1.250,00"), payout_row(3, amount="99,50")]
    lines = [";".join(HEADERS)] + [";".join(r[h] for h in HEADERS) for r in rows]
    amount = HEADERS.index("amount")
    lines.append(
        ";".join("TOTAL" if i == 0 else total if i == amount else "" for i in range(len(HEADERS)))
    )
    path = tmp_path / "export.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def test_file_options_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cp1252 semicolon export with decimal commas and a TOTAL row, read by options alone;
    --check-total-row refuses a wrong total (exit 4)."""
    monkeypatch.chdir(tmp_path)
    args = ["--delimiter", ";", "--encoding", "cp1252", "--decimal-comma", "--check-total-row"]
    good = CliRunner().invoke(main, ["validate", str(_export(tmp_path, "1.349,50")), *args])
    assert good.exit_code == 0, good.output
    assert "total EUR 1,349.50" in good.output
    assert "a totals row ('TOTAL', 1349.50), not a payout" in good.output
    bad = CliRunner().invoke(main, ["validate", str(_export(tmp_path, "1.349,51")), *args])
    assert bad.exit_code == 4
    assert "says 1349.51 but the 2 row(s) above sum to 1349.50" in bad.output


def test_an_unknown_encoding_is_a_usage_error(tmp_path: Path) -> None:
    """An encoding Python does not know is refused as usage (exit 2), naming it."""
    f = tmp_path / "x.csv"
    f.write_text("a\n", encoding="utf-8")
    done = CliRunner().invoke(main, ["validate", str(f), "--encoding", "klingon-8"])
    assert done.exit_code == 2 and "'klingon-8' is not a known text encoding" in done.output
