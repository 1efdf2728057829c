"""Make a script, and every process it starts, run the batchpay of the tree it lives in.

``python scripts/bench_run.py`` imports batchpay through the virtualenv's editable install
(whatever checkout that points at), and the children it starts with ``python -m
batchpay.cli`` put their working folder first on ``sys.path``: a benchmark run from one
checkout on another's script measured the first checkout's code in both arms of an A/B.
Imported first, this module puts this tree first for the script and, through
``PYTHONPATH`` with ``PYTHONSAFEPATH`` (no working folder on the path), for its children.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
# BENCH_TREE: another checkout's batchpay under these scripts (profile_client's --baseline).
ROOT = Path(os.environ.get("BENCH_TREE") or SCRIPTS.parent).resolve()


def use_this_tree() -> None:
    """This tree's batchpay for the running script and every child it starts."""
    root = str(ROOT)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    # The scripts too: a script started as a child (bench_run's bare loop) gets no folder of
    # its own on the path under PYTHONSAFEPATH, and imports this module first.
    first = [root, str(SCRIPTS)]
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in first]
    os.environ["PYTHONPATH"] = os.pathsep.join([*first, *rest])
    os.environ["PYTHONSAFEPATH"] = "1"


use_this_tree()
