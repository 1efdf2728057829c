"""``batchpay layout``: the input layout as it is in effect."""

from __future__ import annotations

from pathlib import Path

import click

from batchpay.cli.group import find_layout, main
from batchpay.cli.handling import handle_errors


@main.group("layout")
def layout_group() -> None:
    """The input layout: the built-in one with the user's layout file merged over it."""


@layout_group.command("show")
@click.option("--layout", "layout_path", type=click.Path(path_type=Path, dir_okay=False),
              callback=lambda _ctx, _param, value: find_layout(value),
              help="Layout file merged over the built-in layout (default: $BATCHPAY_LAYOUT, "
              "else batchpay.toml or schemas/layout.toml in the working folder).")  # fmt: skip
@handle_errors
def layout_show(layout_path: Path | None) -> None:
    """Print the effective layout as TOML, each setting with where it came from."""
    from batchpay.layout import layout_toml, load_layout

    click.echo(layout_toml(load_layout(layout_path)), nl=False)
