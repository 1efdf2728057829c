"""A user's layout file is found where the README says and merged over the built-in layout."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchpay.cli import main
from batchpay.config import find_layout
from batchpay.errors import ConfigError
from batchpay.layout import BUILT_IN, layout_toml, load_layout
from batchpay.testing import HEADERS, payout_row


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_with_only_new_aliases_extends_the_built_in_ones(tmp_path: Path) -> None:
    """Only `aliases` for one column: the new header matches and the built-in aliases still do."""
    layout = load_layout(write(tmp_path / "l.toml", '[columns.currency]\naliases = ["Währung"]\n'))
    assert layout.match_header("Währung") == "currency"
    assert layout.match_header("ccy") == "currency"
    assert layout.match_header("IBAN") == "iban"
    assert layout.column("currency").required
    assert layout.origins["columns.currency.aliases"] == f"{BUILT_IN} + {tmp_path / 'l.toml'}"


def test_replace_aliases_drops_the_built_in_ones(tmp_path: Path) -> None:
    """`replace_aliases = true` makes the user's list the whole list, freeing the old headers."""
    path = write(
        tmp_path / "l.toml",
        '[columns.beneficiary_type]\nreplace_aliases = true\naliases = ["payee kind"]\n'
        '[columns.description]\naliases = ["type"]\n',
    )
    layout = load_layout(path)
    assert layout.match_header("payee kind") == "beneficiary_type"
    assert layout.match_header("payee type") is None
    assert layout.match_header("type") == "description"


def test_an_alias_of_another_column_is_still_refused(tmp_path: Path) -> None:
    """Extending a list with a header another column owns is refused, naming both."""
    with pytest.raises(ConfigError, match="would match both"):
        load_layout(write(tmp_path / "l.toml", '[columns.currency]\naliases = ["amount"]\n'))


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ('[file]\ndelimiter = ";"\n', lambda lay: lay.file.delimiter == ";"),
        ('[file]\nencoding = "cp1252"\n', lambda lay: lay.file.encoding == "cp1252"),
        ("[limits]\nmax_rows = 500\n", lambda lay: lay.limits.max_rows == 500),
        ("[duplicates]\nallow_repeats = true\n", lambda lay: lay.duplicates.allow_repeats),
    ],
)
def test_a_file_with_one_setting_changes_only_that(
    tmp_path: Path, text: str, check: object
) -> None:
    """A delimiter, an encoding or a limit alone is a whole layout; the rest is built-in."""
    layout = load_layout(write(tmp_path / "l.toml", text))
    assert callable(check) and check(layout)
    builtin = load_layout()
    assert layout.columns == builtin.columns
    changed = {k for k, v in layout.origins.items() if v != BUILT_IN}
    assert len(changed) == 1


def test_a_requirement_replaces_the_built_in_one(tmp_path: Path) -> None:
    """`required = true` on a column required_when in the built-in layout replaces it."""
    layout = load_layout(write(tmp_path / "l.toml", "[columns.state]\nrequired = true\n"))
    assert layout.column("state").required
    assert layout.column("state").required_when == {}


def test_a_bad_value_in_the_user_file_names_that_file(tmp_path: Path) -> None:
    """A mistake in the user's file is reported against the user's file."""
    path = write(tmp_path / "l.toml", "[limits]\nmax_rows = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_layout(path)
    assert str(path) in caught.value.message and "limits.max_rows" in caught.value.message


def test_find_layout_order(tmp_path: Path) -> None:
    """--layout, else BATCHPAY_LAYOUT, else batchpay.toml, else schemas/layout.toml, else none."""
    assert find_layout(None, env={}, cwd=tmp_path) is None
    schemas = write(tmp_path / "schemas" / "layout.toml", "")
    assert find_layout(None, env={}, cwd=tmp_path) == schemas
    local = write(tmp_path / "batchpay.toml", "")
    assert find_layout(None, env={}, cwd=tmp_path) == local
    named = tmp_path / "named.toml"
    assert find_layout(None, env={"BATCHPAY_LAYOUT": str(named)}, cwd=tmp_path) == named
    given = tmp_path / "given.toml"
    assert find_layout(given, env={"BATCHPAY_LAYOUT": str(named)}, cwd=tmp_path) == given


def test_layout_toml_is_toml_and_reloads_to_the_same_layout(tmp_path: Path) -> None:
    """The printed layout is valid TOML that loads to the same effective layout."""
    layout = load_layout(write(tmp_path / "l.toml", '[file]\ndelimiter = ";"\n'))
    printed = write(tmp_path / "printed.toml", layout_toml(layout))
    tomllib.loads(printed.read_text("utf-8"))
    again = load_layout(printed)
    assert (again.columns, again.file, again.limits) == (layout.columns, layout.file, layout.limits)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with no BATCHPAY_LAYOUT set."""
    monkeypatch.delenv("BATCHPAY_LAYOUT", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_layout_show_names_where_each_setting_came_from(workdir: Path) -> None:
    """`batchpay layout show` prints TOML, the user's settings marked with the user's file."""
    write(workdir / "batchpay.toml", '[file]\ndelimiter = ";"\n')
    result = CliRunner().invoke(main, ["layout", "show"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f'delimiter = ";"  # {workdir / "batchpay.toml"}' in lines
    assert 'encoding = "utf-8"  # built-in' in lines
    assert tomllib.loads(result.stdout)["file"]["delimiter"] == ";"


def test_layout_show_reads_batchpay_layout(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHPAY_LAYOUT names the user's file when --layout is not given."""
    path = write(workdir / "elsewhere" / "mine.toml", "[limits]\nmax_rows = 10\n")
    monkeypatch.setenv("BATCHPAY_LAYOUT", str(path))
    result = CliRunner().invoke(main, ["layout", "show"])
    assert result.exit_code == 0, result.output
    assert f"max_rows = 10  # {path}" in result.stdout.splitlines()


def test_validate_reads_aliases_from_schemas_layout_in_the_working_folder(workdir: Path) -> None:
    """Editing schemas/layout.toml in the working folder, as the README says, changes the run."""
    headers = ["Währung" if h == "currency" else h for h in HEADERS]
    rows = [payout_row(i) for i in range(3)]
    lines = [",".join(headers)] + [",".join(r[h] for h in HEADERS) for r in rows]
    write(workdir / "pay.csv", "\n".join(lines) + "\n")
    refused = CliRunner().invoke(main, ["validate", "pay.csv"])
    assert refused.exit_code != 0 and "currency" in refused.stderr
    write(workdir / "schemas" / "layout.toml", '[columns.currency]\naliases = ["Währung"]\n')
    result = CliRunner().invoke(main, ["validate", "pay.csv"])
    assert result.exit_code == 0, result.output
    assert "3 rows, 3 valid" in result.stdout
