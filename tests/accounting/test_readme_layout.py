"""The README's partial layout works as written, in the working folder where it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchpay.cli import main
from batchpay.testing import HEADERS, payout_row

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    """The README's ```toml block that starts with ``# batchpay.toml``."""
    blocks = re.findall(r"```toml\n(# batchpay\.toml\n.*?)```", README.read_text("utf-8"), re.S)
    assert len(blocks) == 1, "the README shows one batchpay.toml example"
    return blocks[0]


def test_the_readme_partial_layout_reads_a_european_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A semicolon export with a title line, `1.250,00` amounts and a `Währung` header is
    read by the README's batchpay.toml in the working folder, and refused without it."""
    monkeypatch.chdir(tmp_path)
    header = ["Währung" if h == "currency" else h for h in HEADERS]
    rows = [payout_row(0, amount="1.250,00"), payout_row(3, amount="12.345.678,90")]
    lines = ["Zahlungen März 2026" + ";" * (len(HEADERS) - 1), ";".join(header)]
    lines += [";".join(r[h] for h in HEADERS) for r in rows]
    export = tmp_path / "export.csv"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")

    refused = CliRunner().invoke(main, ["validate", str(export)])
    assert refused.exit_code != 0

    (tmp_path / "batchpay.toml").write_text(_example(), encoding="utf-8")
    done = CliRunner().invoke(main, ["validate", str(export)])
    assert done.exit_code == 0, done.output
    assert "2 rows, 2 valid, 2 to pay" in done.output
    assert "total EUR 12,346,928.90" in done.output
    assert "row 1: a title above the header (row 2), skipped: 'Zahlungen März 2026'" in done.output

    shown = CliRunner().invoke(main, ["layout", "show"])
    assert shown.exit_code == 0, shown.output
    assert f"skip_title_rows = true  # {tmp_path / 'batchpay.toml'}" in shown.output
