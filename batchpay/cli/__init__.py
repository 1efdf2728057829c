"""The ``batchpay`` command: parses, calls the library, turns errors into exit codes.

Nothing here decides anything about payments; every verb is a library function.
Errors become one line, a hint and a documented exit code (``--debug`` shows the
traceback). SIGTERM (a service manager, a container stop, ``kill``) is handled like Ctrl-C:
the command unwinds — every ``finally`` runs, the run lock is released — and exits 143.
Only the CLI installs that handler; the library never touches signals.

``group`` holds the ``main`` group and the shared options, ``handling`` the error and
signal handling; the commands live by subject in ``paying``, ``runs``, ``watch``,
``webhooks``, ``auth`` and ``layout``, each importing the heavy modules inside its commands.
"""

from __future__ import annotations

# Importing the command modules registers their commands on ``main``.
from batchpay.cli import auth, layout, paying, runs, watch, webhooks  # noqa: F401
from batchpay.cli.group import main

__all__ = ["main"]


# The simulator's web stack loads only when `batchpay sandbox …` is run or listed.
main.add_lazy_command("sandbox", "batchpay.sandbox.cli", "sandbox_group")
