"""The ``batchpay`` group, and the options and settings its commands share."""

from __future__ import annotations

import importlib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from batchpay.cli.handling import F


def _parse_totals(values: tuple[str, ...]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for v in values:
        cur, _, amount = v.partition("=")
        try:
            totals[cur.strip().upper()] = Decimal(amount.strip())
        except InvalidOperation:
            raise click.BadParameter(f"{v!r} is not CURRENCY=AMOUNT (e.g. EUR=12500.00)") from None
    return totals


class LazyGroup(click.Group):
    """A group whose heavy subgroups (the sandbox) are imported only when named or listed:
    ``batchpay validate`` starts without loading the simulator's web stack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}

    def add_lazy_command(self, name: str, module: str, attribute: str) -> None:
        """Register ``module.attribute`` as the command ``name``, imported on first use."""
        self.lazy[name] = (module, attribute)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, attribute = self.lazy.pop(cmd_name)
            try:
                command = getattr(importlib.import_module(module), attribute)
            except ImportError:  # pragma: no cover - the sandbox ships with batchpay
                return None
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True, envvar="BATCHPAY_LOG_LEVEL",
              help="Log events at this level and above to standard error.")  # fmt: skip
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, envvar="BATCHPAY_LOG_FORMAT",
              help="Log lines as text, or one JSON object per line.")  # fmt: skip
@click.version_option(package_name="batchpay")
def main(debug: bool, log_level: str, log_format: str) -> None:
    """Pay many people from a spreadsheet, exactly once, through the Anton Payments API.

    With no credential set (BATCHPAY_API_KEY, or BATCHPAY_CLIENT_ID with its secret and DPoP
    key), batchpay uses its embedded sandbox: no money moves.
    """
    from batchpay import logs

    logs.configure(level=log_level, fmt=log_format)


class _JournalType(click.ParamType):  # type: ignore[type-arg]
    """``--journal``: a SQLite file, or a ``postgresql://`` URL (kept whole, not a path)."""

    name = "journal"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from batchpay.journal.target import PostgresURL, is_postgres

        if isinstance(value, Path | PostgresURL):
            return value
        return PostgresURL(str(value)) if is_postgres(str(value)) else Path(value)


JOURNAL = _JournalType()

_common_run_options = [
    click.option("--layout", "layout_path", type=click.Path(path_type=Path, dir_okay=False),
                 callback=lambda _ctx, _param, value: find_layout(value),
                 help="Layout file merged over the built-in layout (default: $BATCHPAY_LAYOUT, "
                 "else batchpay.toml or schemas/layout.toml in the working folder)."),
    click.option("--journal", "journal_path", type=JOURNAL,
                 help="Journal: a SQLite file or postgresql://user@host/db (default: "
                 "$BATCHPAY_JOURNAL, else journal.db in $BATCHPAY_HOME or the user's data "
                 "folder)."),
    click.option("--api-url", help="API base URL (default: $BATCHPAY_API_URL, else the "
                 "embedded sandbox when no key is set)."),
]  # fmt: skip


def find_layout(value: Path | None) -> Path | None:
    """The layout file a command uses: the option's, else the environment's or the folder's."""
    from batchpay.config import find_layout as found

    return found(value)


def _encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    import codecs

    if value is None:
        return None
    try:
        return codecs.lookup(value).name
    except LookupError:
        raise click.BadParameter(f"{value!r} is not a known text encoding") from None


_DELIMITER_NAMES = {",": ",", ";": ";", "|": "|", "tab": "\t", "\\t": "\t"}


def number_options(fn: F) -> F:
    """How the file is written (amounts, CSV delimiter and encoding, a totals row), shared by
    `run` and `validate`; each overrides the layout's [file] setting of the same name."""
    options = [
        click.option(
            "--decimal-comma",
            is_flag=True,
            help="Amounts are written 1.234,50 or 1 234,50 (a decimal comma, dots or spaces "
            'between thousands), as decimal_separator = "," under [file] in the layout.',
        ),
        click.option(
            "--delimiter",
            type=click.Choice(sorted(_DELIMITER_NAMES)),
            callback=lambda ctx, param, v: None if v is None else _DELIMITER_NAMES[v],
            help="The CSV field separator (as delimiter under [file] in the layout).",
        ),
        click.option(
            "--encoding",
            callback=_encoding,
            help="The CSV text encoding, e.g. cp1252 (as encoding under [file] in the layout).",
        ),
        click.option(
            "--check-total-row/--no-check-total-row",
            default=None,
            help="Check a trailing TOTAL row against the rows' amounts (as check_total_row "
            "under [file] in the layout).",
        ),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def common_options(fn: F) -> F:
    """Options shared by the commands that read a file or the journal."""
    for opt in reversed(_common_run_options):
        fn = opt(fn)
    return fn


_duplicate_options = [
    click.option("--allow-repeats/--refuse-repeats", default=None,
                 help="Pay a row repeated exactly in the file once (the copies are reported "
                 "duplicate_in_file) instead of refusing the file. Default: the layout's "
                 "[duplicates] allow_repeats, else refuse."),
    click.option("--reference-per-payee/--reference-per-file", default=None,
                 help="References are unique per payee only (supplier invoice numbers): pay one "
                 "reference to several payees instead of refusing the file. Default: the "
                 "layout's [duplicates] reference_per_payee, else refuse."),
]  # fmt: skip


def duplicate_options(fn: F) -> F:
    """Which duplicates inside the file are accepted, shared by `run` and `validate`."""
    for opt in reversed(_duplicate_options):
        fn = opt(fn)
    return fn


def _settings(api_url: str | None, journal_path: Path | None, confirm_live: bool = False) -> Any:
    from batchpay.config import resolve_settings

    return resolve_settings(api_url=api_url, journal_path=journal_path, confirm_live=confirm_live)
