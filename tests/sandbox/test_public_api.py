"""The public surface of batchpay.sandbox, its start-up weight and its CLI help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

import batchpay.sandbox
from batchpay.sandbox.cli import sandbox_group


def test_all_is_exactly_the_public_names() -> None:
    """__all__ lists exactly the names a user may import."""
    public = {n for n in vars(batchpay.sandbox) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(batchpay.sandbox, n)).__name__ == "module"}
    assert set(batchpay.sandbox.__all__) == public - modules - {"annotations"}


def test_importing_the_sandbox_stays_light() -> None:
    """Importing the sandbox and its CLI never pulls in polars, pandera or openpyxl."""
    code = (
        "import sys, batchpay.sandbox, batchpay.sandbox.cli, batchpay.sandbox.server;"
        "print(sorted(m for m in ('polars', 'pandera', 'openpyxl') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert out.strip() == "[]"


def test_every_command_has_help() -> None:
    """The sandbox group and each of its commands carry help text."""
    assert sandbox_group.help
    for name, command in sandbox_group.commands.items():
        assert command.help, name
        result = CliRunner().invoke(sandbox_group, [name, "--help"])
        assert result.exit_code == 0
        assert "--fault-lost" in result.output


def test_bad_rate_limit_is_a_usage_error() -> None:
    """--rate-limit accepts a number or 'off' and nothing else."""
    result = CliRunner().invoke(sandbox_group, ["serve", "--rate-limit", "lots"])
    assert result.exit_code == 2
    assert "--rate-limit" in result.output


def test_group_is_named_sandbox() -> None:
    """The group is registered under the name the main CLI expects."""
    assert isinstance(sandbox_group, click.Group)
    assert sandbox_group.name == "sandbox"
