"""``python -m batchpay.sandbox serve ...``: the sandbox CLI without the main batchpay CLI."""

from __future__ import annotations

from .cli import sandbox_group

if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in tests
    sandbox_group(prog_name="batchpay sandbox")
