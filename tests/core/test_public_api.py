"""The package's public surface: curated, lazy, and the library verbs match the CLI verbs."""

from __future__ import annotations

import subprocess
import sys

import batchpay
from batchpay.cli import main

EXPORTED = [
    "ApiError", "BatchpayError", "ConfigError", "ControlTotalsMismatch", "DuplicateFileError",
    "ExitCode", "InputError", "PayoutFile", "Plan", "PreflightError", "RowIssue",
    "RunLockedError", "RunOptions", "RunResult", "Settings", "TransportError",
    "ValidationFailed", "__version__", "cancel", "follow", "plan", "regenerate_report",
    "resolve_settings", "retry_failed", "run", "run_async", "runs", "show",
]  # fmt: skip


def test_all_is_exactly_the_public_names() -> None:
    """__all__ is exactly the curated list; every name resolves; nothing public is missing."""
    assert batchpay.__all__ == EXPORTED
    for name in batchpay.__all__:
        assert getattr(batchpay, name) is not None, name
    public = {n for n in dir(batchpay) if not n.startswith("_")} - {"annotations", "errors"}
    # Submodules imported by other tests show up as attributes; they are not API names.
    public -= {n for n in public if type(getattr(batchpay, n)).__name__ == "module"}
    assert public <= set(batchpay.__all__) | {"import_module", "Any", "logging"}


def test_library_verbs_match_cli_verbs() -> None:
    """Each CLI verb that acts on files or runs has a library function of the same name."""
    for verb in ("run", "runs", "show", "cancel"):
        assert verb in main.commands and callable(getattr(batchpay, verb))
    # batchpay.validate and batchpay.track are the stage modules; their verbs are named apart.
    assert "validate" in main.commands and callable(batchpay.plan)
    assert "track" in main.commands and callable(batchpay.follow)
    assert "retry-failed" in main.commands and callable(batchpay.retry_failed)


def test_import_is_light() -> None:
    """`import batchpay` does not load polars or pandera (the sandbox must start fast)."""
    code = "import batchpay, sys; print('polars' in sys.modules, 'pandera' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
