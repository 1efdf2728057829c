"""``python -m batchpay.cli ...``: the ``batchpay`` command."""

from __future__ import annotations

from batchpay.cli import program

if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in tests
    program()
