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

import gc
import sys

# Importing the command modules registers their commands on ``main``.
from batchpay.cli import auth, handling, layout, paying, runs, watch, webhooks  # noqa: F401
from batchpay.cli.group import main

__all__ = ["main", "program"]


def program() -> None:
    """The ``batchpay`` program (and ``python -m batchpay.cli``): :func:`main` as a process of
    its own, which a command that keeps nothing may end at once when done
    (:func:`batchpay.cli.handling.exits_at_once`); code calling ``main`` itself is returned to."""
    handling.AS_PROGRAM = True
    # A run makes and frees millions of short-lived objects (requests, answers, rows), nearly
    # all freed by reference counting: the cyclic collector's first generation is collected
    # every 50,000 allocations instead of every 700 (a 5,000-payout run: about 20 collections
    # instead of 800, 0.4 s of CPU less). Code calling ``main`` itself keeps its own settings.
    gc.set_threshold(*PROGRAM_GC_THRESHOLD)
    # pandera loads hypothesis, when it is installed, for its data-synthesis strategies,
    # which no command uses: 0.1-0.3 s of CPU in every `validate` and `run` in an environment
    # that has it (a test or notebook environment). Code calling ``main`` itself keeps it.
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]
    main()


PROGRAM_GC_THRESHOLD = (50_000, 20, 20)


# The simulator's web stack loads only when `batchpay sandbox …` is run or listed.
main.add_lazy_command("sandbox", "batchpay.sandbox.cli", "sandbox_group")
