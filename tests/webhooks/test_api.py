"""The public surface of batchpay.webhooks, and its independence from the simulator."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import batchpay.webhooks as webhooks


def test_all_is_exactly_the_public_names() -> None:
    """__all__ lists every public class, function and constant the module defines, no more."""
    defined = {
        name
        for name, value in vars(webhooks).items()
        if not name.startswith("_")
        and (
            (
                (inspect.isclass(value) or inspect.isfunction(value))
                and value.__module__ == webhooks.__name__
            )
            or (name.isupper() and name != "TYPE_CHECKING")
        )
    }
    assert sorted(webhooks.__all__) == sorted(defined)


def test_receiver_does_not_import_the_sandbox() -> None:
    """batchpay's verifier is its own: nothing in the module imports batchpay.sandbox."""
    tree = ast.parse(Path(webhooks.__file__).read_text(encoding="utf-8"))
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert imported and not [m for m in imported if m.startswith("batchpay.sandbox")]
