"""``python -m batchpay.cli ...`` and the ``batchpay`` console script: the command as a process.

A command that has finished everything it owes (``batchpay run``: the journal closed, the
report written and synced, the summary printed) may say so (``handling.PROCESS.done``);
the process then ends as soon as its output is flushed, without first freeing every
object the run built (a tenth of a second or more after a large run). Anything else, and
any command that did not say so, exits the ordinary way.
"""

from __future__ import annotations

import logging
import os
import sys

from batchpay.cli import handling, main


def entry() -> None:
    """Run the ``batchpay`` command."""
    handling.PROCESS.done = False
    try:
        main()
    except SystemExit as exc:
        if not handling.PROCESS.done:
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in tests
    entry()
